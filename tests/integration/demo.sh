#!/usr/bin/env bash
# Integration test of `driftcast demo` as a user meets it: the binary run
# from another directory finds the checkout's data/ETTh1.csv and
# data/ETTh2.csv (or says to pass --data), streams both and prints frozen,
# adapted and persistence error per dataset, and --serve keeps the broker
# and the first dataset's daemon up after the summary until SIGINT -- kcat
# and sqlite3 work while the commands shown are on screen, `driftcast
# produce` feeds the daemon more, and SIGINT ends it cleanly.  Tiny base
# models are trained first and put in the demo's model cache, so nothing
# here trains the real ones.  Output: TAP.
#
# Needs: DRIFTCAST, DATA and DATA2 (the bundled ETTh1.csv and ETTh2.csv;
# set by meson), kcat, sqlite3.
set -u

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
DATA=${DATA:?DATA must name data/ETTh1.csv}
DATA2=${DATA2:?DATA2 must name data/ETTh2.csv}
dpid=
# shellcheck source=tap.sh
. "$(dirname "$0")/tap.sh"
WORK=$(tap_workdir demo)
cleanup() {
    [ -n "$dpid" ] && kill -9 "$dpid" 2>/dev/null
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT

# ---- no data anywhere: say to pass --data ----------------------------------
mkdir -p "$WORK/elsewhere/bin"
cp "$BIN" "$WORK/elsewhere/bin/driftcast"
(cd "$WORK/elsewhere" && ./bin/driftcast demo --quick) > "$WORK/nodata.out" 2> "$WORK/nodata.err"
check "no data: exit 2" test $? -eq 2
check "no data: says to pass --data" grep -q "pass --data FILE" "$WORK/nodata.err"

# ---- two files of one name: their series keys would clash -------------------
"$BIN" demo --quick --workdir "$WORK/clash" --data "$DATA" --data "$DATA" \
    > "$WORK/clash.out" 2> "$WORK/clash.err"
check "two datasets of one name: exit 2" test $? -eq 2
check "two datasets of one name: says why" grep -q "both named ETTh1" "$WORK/clash.err"

# ---- cached tiny models, so the demo does not train -------------------------
mkdir -p "$WORK/wd"
for f in "$DATA" "$DATA2"; do
    name=$(basename "$f" .csv)
    "$BIN" train --data "$f" --out "$WORK/wd/$name-gru-L96-H96.dcm" \
        --epochs 1 --set model.width=16 --set model.layers=1 \
        --set train.epoch_windows=256 -q > "$WORK/train.out" 2>&1 ||
        { echo "Bail out! train failed: $(tail -2 "$WORK/train.out")"; exit 1; }
done

# ---- from another directory, with --serve -----------------------------------
if [ -r "$(dirname "$BIN")/../data/ETTh1.csv" ]; then
    data_arg=() # the binary's checkout has them: found without --data
else
    data_arg=(--data "$DATA" --data "$DATA2")
    diag "this build directory is not inside the checkout: --data given"
fi
(cd "$WORK/elsewhere" && exec "$BIN" demo --quick --serve --workdir "$WORK/wd" \
    "${data_arg[@]}") > "$WORK/demo.out" 2> "$WORK/demo.err" &
dpid=$!
if wait_for 240 grep -q "^== serving until Ctrl-C" "$WORK/demo.out"; then
    ok "serving after the summary"
else
    not_ok "serving after the summary"
    sed 's/^/#   /' "$WORK/demo.err" | tail -5
    exit 1
fi
check "the data was found from another directory" \
    grep -q "ETTh1.csv: 17420 rows x 7 channels" "$WORK/demo.out"
check "ETTh2 beside it" grep -q "ETTh2.csv: 17420 rows x 7 channels" "$WORK/demo.out"
check "the cached models were used" \
    test "$(grep -c "using the cached model" "$WORK/demo.out")" -eq 2
check "ETTh2 streamed to its own topic" \
    grep -q "^  4872 messages to measurements-ETTh2: rows 13840..14535 of .*ETTh2.csv" "$WORK/demo.out"
# the table: frozen, adapted, change, persistence per dataset
num='[0-9]+\.[0-9]{4}'
for ds in ETTh1 ETTh2; do
    check "$ds: frozen, adapted and persistence error" \
        grep -Eq "^  $ds +[0-9]+ +$num +$num +[-+][0-9]+\.[0-9]{2}% +$num$" "$WORK/demo.out"
    check "$ds: what happened to it" grep -q "^== what happened to $ds " "$WORK/demo.out"
done
check "no kcat line before the broker is served" \
    test "$(grep -n 'kcat' "$WORK/demo.out" | head -1 | cut -d: -f1)" -gt \
         "$(grep -n '^== serving' "$WORK/demo.out" | cut -d: -f1)"
BS=$(sed -n 's/^  brokers \(127[^ ]*\)$/\1/p' "$WORK/demo.out")
DB=$(sed -n 's/^  sqlite3 \([^ ]*\) "SELECT count(\*) FROM forecasts;"$/\1/p' "$WORK/demo.out")
diag "brokers $BS, database $DB"
check "kcat reaches the served broker" bash -c "kcat -b '$BS' -L -m 5 > /dev/null"
forecasts() { sqlite3 "$DB" "SELECT count(*) FROM forecasts;"; }
before=$(forecasts)
check "sqlite3 reads the served database ($before forecasts)" test "${before:-0}" -gt 0

# the 48 hours after the quick run's last row, through driftcast produce
# (test split from row 13840, quick: 696 rows -> data rows 14536..)
{ head -1 "$DATA"; sed -n '14538,14585p' "$DATA"; } > "$WORK/ETTh1.csv"
"$BIN" produce --brokers "$BS" --topic measurements -q "$WORK/ETTh1.csv" \
    > "$WORK/produce.out" 2>&1
check "produce into the served broker" grep -q "^336 messages .* 336 delivered$" "$WORK/produce.out"
grown() { [ "$(forecasts)" -gt "$before" ]; }
check "the served daemon forecasts the new input" wait_for 60 grown

kill -INT $dpid
wait $dpid
rc=$?
dpid=
check "SIGINT: exit 0" test $rc -eq 0
check "SIGINT: says it stopped" grep -q "^== stopped; the broker is gone" "$WORK/demo.out"
check "the broker is gone" bash -c "! kcat -b '$BS' -L -m 3 >/dev/null 2>&1"
# the rollback the summary suggests works on the stopped demo's database
# (a clean stop releases the series; it does not hand them to another host)
"$BIN" rollback --db "$DB" --series ETTh1/OT --to-version 0 --reason test \
    > "$WORK/rollback.out" 2> "$WORK/rollback.err"
check "after the stop: driftcast rollback --db acts ($(head -c 200 "$WORK/rollback.err"))" \
    grep -q "^series ETTh1/OT: version 0 restored as new version" "$WORK/rollback.out"

echo "1..$n"
[ "$failed" -eq 0 ]
