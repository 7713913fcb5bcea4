#!/usr/bin/env bash
# Integration test of `driftcast produce` against driftcast-mockbroker
# (librdkafka's mock cluster over TCP), read back with kcat.  Output: TAP.
#
# Covers: every cell of a small CSV arrives once, keyed by its series id,
# each series on one partition and in time order; both payload formats;
# --rate holds the pace; SIGINT stops cleanly and says how many were sent;
# an unreachable broker ends with delivery errors and exit 1.  (That every
# payload is accepted by the daemon's parser is tests/daemon/test_cli.c's
# produce_messages_parse_back.)
#
# Needs: DRIFTCAST, MOCKBROKER (set by meson), kcat.
set -u

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
mbpid=
# shellcheck source=tap.sh
. "$(dirname "$0")/tap.sh"
WORK=$(tap_workdir produce)
cleanup() {
    [ -n "$mbpid" ] && kill "$mbpid" 2>/dev/null && wait "$mbpid" 2>/dev/null
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT

# 50 hourly rows, 3 numeric columns (one named with a space)
awk 'BEGIN {
    print "date,OT,HUFL,low load";
    for (i = 0; i < 50; i++)
        printf "%s,%.3f,%d,%.2f\n",
            strftime("%Y-%m-%d %H:%M:%S", 1467331200 + i * 3600, 1),
            30 + i / 10, i - 25, i * 0.25;
}' > "$WORK/h.csv"
gzip -c "$WORK/h.csv" > "$WORK/h.csv.gz"
ROWS=50
COLS=3

"$MB" -t measurements:4 -t lines:4 -t slow:1 -f "$WORK/bootstraps" \
    > "$WORK/mb.log" 2>&1 &
mbpid=$!
for _ in $(seq 50); do [ -s "$WORK/bootstraps" ] && break; sleep 0.2; done
[ -s "$WORK/bootstraps" ] || { echo "Bail out! mock broker did not start"; exit 1; }
BS=$(cat "$WORK/bootstraps")
diag "mock cluster at $BS"

readback() { # readback TOPIC: "partition<TAB>key<TAB>payload" lines
    kcat -C -b "$BS" -t "$1" -o beginning -e -q -f '%p\t%k\t%s\n' 2>/dev/null
}

# ---- JSON, gzip input, the default prefix (the file's base name) ----------
"$BIN" produce --brokers "$BS" --topic measurements "$WORK/h.csv.gz" \
    > "$WORK/json.out" 2> "$WORK/json.err"
check "produce json exits 0" test $? -eq 0
check "summary counts messages, series and rows" \
    grep -q "^150 messages (3 series x 50 rows) produced to measurements in .* msg/s; 150 delivered$" "$WORK/json.out"
check "no progress lines for a short non-tty run" test ! -s "$WORK/json.err"
readback measurements > "$WORK/json.tsv"
check "every cell arrived once" test "$(wc -l < "$WORK/json.tsv")" -eq $((ROWS * COLS))
check "keys are the series ids h/COLUMN" \
    test "$(cut -f2 "$WORK/json.tsv" | sort | uniq -c | awk '{$1=$1; print}' | tr '\n' '|')" \
    = "50 h/HUFL|50 h/OT|50 h/low load|"
check "each series lives on one partition" \
    test "$(cut -f1,2 "$WORK/json.tsv" | sort -u | wc -l)" -eq $COLS
check "the payload names the key's series" \
    awk -F'\t' 'index($3, "\"series\":\"" $2 "\"") == 0 { bad = 1 } END { exit bad }' "$WORK/json.tsv"
check "first reading of OT as the daemon reads it" \
    grep -qF '{"series":"h/OT","ts":"2016-07-01T00:00:00Z","value":30}' "$WORK/json.tsv"
check "each series in time order" \
    awk -F'\t' '{ match($3, /"ts":"[^"]*"/); t = substr($3, RSTART, RLENGTH);
                  if ($2 in last && t <= last[$2]) bad = 1; last[$2] = t }
                END { exit bad }' "$WORK/json.tsv"

# ---- line protocol, a prefix, a column subset --------------------------
"$BIN" produce --brokers "$BS" --topic lines --format influx \
    --series-prefix tx-3 --columns OT,"low load" -q "$WORK/h.csv" \
    > "$WORK/lp.out" 2> "$WORK/lp.err"
check "produce influx exits 0" test $? -eq 0
readback lines > "$WORK/lp.tsv"
check "influx: 100 messages" test "$(wc -l < "$WORK/lp.tsv")" -eq 100
check "influx: a line per reading, series tag and escaped field" \
    grep -qF "tx-3/low load	driftcast,series=tx-3 low\\ load=0.25 1467334800000000000" "$WORK/lp.tsv"

# ---- defaults from the daemon's settings file ----------------------------
printf '[kafka]\nbrokers = %s\ninput_topic = fromconf\ninput_format = influx\nts_unit = s\n' \
    "$BS" > "$WORK/d.conf"
"$BIN" produce --config "$WORK/d.conf" --columns OT -q "$WORK/h.csv" \
    > "$WORK/conf.out" 2>&1
check "--config: brokers, topic, format and ts_unit from the file" \
    grep -qF "h/OT	driftcast,series=h OT=30 1467331200" <(readback fromconf)

# ---- --rate -------------------------------------------------------------
start=$(date +%s.%N)
"$BIN" produce --brokers "$BS" --topic slow --rate 60/s --columns OT -q \
    "$WORK/h.csv" > "$WORK/rate.out" 2>&1
end=$(date +%s.%N)
check "rate 60/s: 50 messages take about 0.8 s" \
    awk -v a="$start" -v b="$end" 'BEGIN { d = b - a; exit !(d > 0.7 && d < 5) }'

# ---- SIGINT ---------------------------------------------------------------
"$BIN" produce --brokers "$BS" --topic slow --rate 20 "$WORK/h.csv" \
    > "$WORK/int.out" 2> "$WORK/int.err" &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid
rc=$?
check "SIGINT: exit 1 (not everything was sent)" test $rc -eq 1
check "SIGINT: says how many were sent" grep -q "interrupted after [0-9]* of 150 messages" "$WORK/int.err"
sent=$(sed -n 's/^\([0-9]*\) messages .*/\1/p' "$WORK/int.out")
delivered=$(sed -n 's/.*; \([0-9]*\) delivered$/\1/p' "$WORK/int.out")
check "SIGINT: what was sent was delivered ($sent)" \
    test -n "$sent" -a "$sent" = "$delivered" -a "${sent:-0}" -gt 10 -a "${sent:-999}" -lt 100

# ---- failures -------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 9)
timeout 60 "$BIN" produce --brokers "127.0.0.1:$port" -q \
    "$WORK/h.csv" > "$WORK/down.out" 2> "$WORK/down.err"
check "unreachable broker: exit 1" test $? -eq 1
check "unreachable broker: undelivered messages reported" \
    grep -q "150 messages not delivered" "$WORK/down.err"
echo "bad" > "$WORK/bad.csv"
"$BIN" produce --brokers "$BS" "$WORK/bad.csv" > /dev/null 2> "$WORK/bad.err"
check "a bad file: exit 2 with its reason" test $? -eq 2

echo "1..$n"
[ "$failed" -eq 0 ]
