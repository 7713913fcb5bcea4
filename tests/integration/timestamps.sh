#!/usr/bin/env bash
# Integration test of series time through `driftcast run` against
# driftcast-mockbroker, kcat producing and consuming (TAP): a 10 Hz sensor
# (RFC 3339 with milliseconds) and a 1 kHz one (epoch milliseconds) are
# forecast at full resolution -- every reading used, no duplicates, the
# forecast message saying when its steps fall, the database holding
# distinct sub-second origins; a reading dated 2199 on its series' grid is
# dead-lettered as future_timestamp and the series' later readings are
# used; a jump ahead that is still in the past (history) is accepted.
#
# Needs: DRIFTCAST, MOCKBROKER (set by meson), kcat, python3, sqlite3.
set -u

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/tap.sh"
WORK=$(tap_workdir ts)
L=32
H=8
N=300           # readings per fast series
T0=1700000000   # 2023-11-14T22:13:20Z
bail() { tap_bail "$WORK/daemon.log" "$@"; }
cleanup() {
    tap_kill_pids
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT

tap_train_small "$BIN" "$WORK" $T0 $L $H 3 || bail "driftcast train failed"

"$MB" -t measurements:1 -t forecasts:1 -t deadletter:1 \
    -f "$WORK/bootstraps" -c "$WORK/control" > "$WORK/mb.log" 2>&1 &
pids+=($!)
wait_for 10 test -s "$WORK/bootstraps" || bail "mock broker did not start"
BS=$(cat "$WORK/bootstraps")

cat > "$WORK/driftcast.conf" <<EOF
[kafka]
brokers = $BS
group = it-ts
input_topic = measurements
output_topic = forecasts
deadletter_topic = deadletter
session_timeout_ms = 6000
[storage]
path = $WORK/driftcast.db
[model]
path = $WORK/model.dcm
lookback = $L
horizon = $H
[ttt]
every = 16
[metrics]
listen = off
[librdkafka.consumer]
fetch.wait.max.ms = 10
EOF

# hz10: RFC 3339 with milliseconds, 10 a second; khz: epoch ms, 1000 a
# second; fut: hourly, then one reading dated 2199 on its grid, then 40
# more real ones; past: hourly, then a jump 1000 hours ahead (still 2023).
far=$(( (7226582400 - T0) / 3600 ))   # hours from T0 to about 2199-01-01
{
    awk -v n=$N -v t0=$T0 'BEGIN {
        for (i = 0; i < n; i++)
            printf "hz10:{\"series\":\"hz10\",\"ts\":\"%s.%03dZ\",\"value\":%.4f}\n",
                strftime("%Y-%m-%dT%H:%M:%S", t0 + int(i / 10), 1), (i % 10) * 100,
                10 + 3 * sin(i * 2 * 3.14159 / 50)
        for (i = 0; i < n; i++)
            printf "khz:{\"series\":\"khz\",\"ts\":%.0f,\"value\":%.4f}\n",
                t0 * 1000 + i, 5 + sin(i * 2 * 3.14159 / 40)
    }'
    awk -v t0=$T0 -v far=$far 'BEGIN {
        for (i = 0; i < 60; i++) {
            if (i == 40)
                printf "fut:{\"series\":\"fut\",\"ts\":%.0f,\"value\":99}\n", t0 + far * 3600
            printf "fut:{\"series\":\"fut\",\"ts\":%d,\"value\":%.4f}\n",
                t0 + i * 3600, 10 + 3 * sin(i * 2 * 3.14159 / 24)
        }
        for (i = 0; i < 40; i++)
            printf "past:{\"series\":\"past\",\"ts\":%d,\"value\":%.4f}\n",
                t0 - 2000 * 3600 + (i < 20 ? i : i + 1000) * 3600, 10 + (i % 7)
    }'
} > "$WORK/input.txt"
kcat -P -b "$BS" -t measurements -K: -l "$WORK/input.txt" 2>/dev/null || bail "kcat -P failed"

"$BIN" run --config "$WORK/driftcast.conf" > "$WORK/daemon.log" 2>&1 &
daemon_pid=$!
pids+=($daemon_pid)

per_series() { # per_series KEY: forecast messages of that series
    kcat -C -b "$BS" -t forecasts -o beginning -e -q -f '%k\n' 2>/dev/null | grep -cx "$1"
}
want_fast=$((N - L + 1))
want_fut=$((60 - L + 1))
all_in() {
    test "$(per_series hz10)" -ge $want_fast -a "$(per_series khz)" -ge $want_fast \
        -a "$(per_series fut)" -ge $want_fut
}
wait_for 60 all_in || diag "forecasts: hz10 $(per_series hz10) khz $(per_series khz) fut $(per_series fut)"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
check "the daemon stops cleanly (exit $rc)" test $rc -eq 0

kcat -C -b "$BS" -t forecasts -o beginning -e -q -f '%s\n' 2>/dev/null > "$WORK/forecasts.json"
# a forecast's Kafka timestamp is its input message's (docs/OUTPUT.md):
# the input was all produced before the daemon started, so a forecast
# stamped when it was produced would carry a later time
kcat -C -b "$BS" -t measurements -o beginning -e -q -f '%T\n' 2>/dev/null | sort -u > "$WORK/in_ts"
kcat -C -b "$BS" -t forecasts -o beginning -e -q -f '%T\n' 2>/dev/null | sort -u > "$WORK/fc_ts"
stamped=$(comm -13 "$WORK/in_ts" "$WORK/fc_ts" | wc -l)
check "forecasts carry their input's Kafka timestamp ($stamped of $(wc -l < "$WORK/fc_ts") timestamps are not an input's)" \
    test "$stamped" -eq 0 -a -s "$WORK/fc_ts"
kcat -C -b "$BS" -t deadletter -o beginning -e -q -f '%h %s\n' 2>/dev/null > "$WORK/dead.txt"
diag "dead letters: $(wc -l < "$WORK/dead.txt"); $(head -c 300 "$WORK/dead.txt")"

check "10 Hz: every reading used, $want_fast forecasts (got $(per_series hz10))" \
    test "$(per_series hz10)" -eq $want_fast
check "1 kHz: every reading used, $want_fast forecasts (got $(per_series khz))" \
    test "$(per_series khz)" -eq $want_fast
check "no reading dead-lettered as a duplicate" \
    test "$(grep -c duplicate "$WORK/dead.txt")" -eq 0
check "the reading dated 2199 is the one dead letter, as future_timestamp" \
    test "$(wc -l < "$WORK/dead.txt")" -eq 1 -a \
    "$(grep -c '^driftcast-reason=future_timestamp: fut: 219[89]-' "$WORK/dead.txt")" -eq 1
check "... and the series' later readings are used ($want_fut forecasts, got $(per_series fut))" \
    test "$(per_series fut)" -eq $want_fut
check "a jump ahead that is still in the past is accepted (history restarted)" \
    test "$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM v_history WHERE series = 'past' AND event = 'gap_filled'")" -eq 1

python3 - "$WORK/forecasts.json" $T0 $N $L $H <<'PY' > "$WORK/msg.check"
import json, sys
from decimal import Decimal
path, t0, n, L, H = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:])
by = {}
for line in open(path):
    m = json.loads(line, parse_float=Decimal)
    by.setdefault(m["series"], []).append(m)
ok = True
for key, step in (("hz10", Decimal("0.1")), ("khz", Decimal("0.001"))):
    ms = by[key]
    origins = [m["origin"] for m in ms]
    want = [t0 + step * i for i in range(L - 1, n)]
    good = (all(m["step_seconds"] == step for m in ms) and origins == want
            and all(len(m["horizon"]) == H for m in ms))
    print(key, "ok" if good else "BAD", ms[-1]["origin"], ms[-1]["step_seconds"])
    ok &= good
fut = by["fut"]
print("fut", fut[-1]["origin"], fut[-1]["step_seconds"])
ok &= fut[-1]["step_seconds"] == 3600 and fut[-1]["origin"] == t0 + 59 * 3600
sys.exit(0 if ok else 1)
PY
msg_rc=$?
diag "messages: $(tr '\n' ';' < "$WORK/msg.check")"
check "forecast messages: exact sub-second origins and step_seconds 0.1 / 0.001 / 3600" \
    test $msg_rc -eq 0
check "the database holds $want_fast distinct sub-second origins of each fast series" \
    test "$(sqlite3 "$WORK/driftcast.db" "SELECT count(DISTINCT f.origin_ts) FROM forecasts f JOIN series s ON s.id = f.series_id WHERE s.key IN ('hz10', 'khz') GROUP BY s.key" | sort -u)" = "$want_fast"
check "the newest 10 Hz origin is 22:13:49.9, in ns" \
    test "$(sqlite3 "$WORK/driftcast.db" "SELECT max(origin_ts) FROM forecasts f JOIN series s ON s.id = f.series_id WHERE s.key = 'hz10'")" = "$(( (T0 + 29) * 1000000000 + 900000000 ))"
check "the views show sub-second times with their fraction" \
    test "$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM v_history WHERE series = 'khz' AND time LIKE '%:__.___'")" -gt 0

echo "1..$n"
exit $((failed > 0))
