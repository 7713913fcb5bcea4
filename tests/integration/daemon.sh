#!/usr/bin/env bash
# Integration test of `driftcast run` against a real Kafka protocol peer
# (driftcast-mockbroker: librdkafka's mock cluster over TCP), with kcat as
# the external client that produces the input and consumes the forecasts
# and dead-letter topics.  Output: TAP.
#
# Covers: READY/WATCHDOG/RELOADING/STOPPING through a NOTIFY_SOCKET we
# listen on; good messages -> forecasts; a catalogue of malformed messages
# -> the dead-letter topic with reasons while good messages keep flowing;
# metrics; SIGHUP reload; an operator rollback from another process applied
# by the running daemon; injected request errors and a broker down/up;
# SIGTERM drains and exits 0; restart with the same group without duplicate
# versions; kill -9 at random points, then integrity, lineage and offsets.
#
# Needs: DRIFTCAST, MOCKBROKER (set by meson), kcat, python3, sqlite3.
set -u

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/dc-int-XXXXXX)
L=32
H=8
SERIES="s1 s2 s3 s4"
T0=1700000000 # epoch seconds; hourly steps

n=0
failed=0
pids=()
ok() {
    n=$((n + 1))
    echo "ok $n - $*"
}
not_ok() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $*"
}
check() {
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
diag() { echo "# $*"; }
bail() {
    echo "Bail out! $*"
    diag "daemon log tail:"
    tail -n 30 "$WORK/daemon.log" 2>/dev/null | sed 's/^/#   /'
    exit 1
}
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "$failed" -eq 0 ]; then rm -rf "$WORK"; else diag "kept $WORK"; fi
}
trap cleanup EXIT

# wait_for SECONDS COMMAND...: poll until the command succeeds
wait_for() {
    local t=$1
    shift
    local end=$((SECONDS + t))
    while [ $SECONDS -lt $end ]; do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

# ---- fixtures ------------------------------------------------------------

# A small hourly CSV: two channels of daily cycles plus noise.
awk -v t0=$T0 'BEGIN {
    srand(7); print "date,a,b";
    for (i = 0; i < 2400; i++) {
        t = t0 - 2400 * 3600 + i * 3600;
        printf "%s,%.4f,%.4f\n", strftime("%Y-%m-%d %H:%M:%S", t, 1),
            10 + 3 * sin(i * 2 * 3.14159 / 24) + rand(),
            5 + 2 * cos(i * 2 * 3.14159 / 24) + rand();
    }
}' > "$WORK/train.csv"
"$BIN" train --data "$WORK/train.csv" --out "$WORK/model.dcm" --lookback $L \
    --horizon $H --epochs 2 --set model.width=16 --set model.layers=1 \
    --quiet > "$WORK/train.log" 2>&1 || bail "driftcast train failed: $(tail -3 "$WORK/train.log" | tr "\n" " ")"

"$MB" -t measurements:4 -t forecasts:4 -t deadletter:1 \
    -f "$WORK/bootstraps" -c "$WORK/control" > "$WORK/mb.log" 2>&1 &
pids+=($!)
wait_for 10 test -s "$WORK/bootstraps" || bail "mock broker did not start"
BS=$(cat "$WORK/bootstraps")
diag "mock cluster at $BS"
mbctl() { echo "$*" > "$WORK/control"; }

metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
write_conf() {
    cat > "$WORK/driftcast.conf" <<EOF
[kafka]
brokers = $BS
group = it-group
input_topic = measurements
output_topic = forecasts
deadletter_topic = deadletter
session_timeout_ms = 6000
max_message_bytes = 65536
max_poll_records = 500
# offsets reach Kafka only when a partition is revoked and at a clean stop
commit_interval_ms = 600000

[storage]
path = $WORK/driftcast.db
# a batch is committed when the input pauses (an empty poll), long
# before this: a forecast that waited for it would fail the test
batch_ms = 30000

[model]
path = $WORK/model.dcm
lookback = $L
horizon = $H

[ttt]
every = 8
# accept every candidate, so that series surely have versions to roll back
guard = false

[log]
level = ${1:-info}

[metrics]
listen = 127.0.0.1:$metrics_port

# passed to librdkafka as they are (the path a SASL/TLS cluster's settings
# take); the mock parks an empty Fetch for the whole wait
[librdkafka]
client.id = it-driftcast
[librdkafka.consumer]
fetch.wait.max.ms = 10
EOF
}
write_conf info
config_ok() { "$BIN" config check "$1" > /dev/null; }
check "config check accepts the test configuration" config_ok "$WORK/driftcast.conf"

python3 "$HERE/notify_listen.py" "$WORK/notify.sock" "$WORK/notify.log" &
pids+=($!)
wait_for 30 grep -q LISTENING "$WORK/notify.log" 2>/dev/null || bail "notify listener"

# ---- a database damaged inside: refused, or moved aside on request ---------

# A real driftcast database (versions and audit rows of an eval), with
# garbage written over its pages 3..8.
"$BIN" eval --model "$WORK/model.dcm" --data "$WORK/train.csv" --arms ttt \
    --db "$WORK/damaged.db" -q > "$WORK/damaged-eval.log" 2>&1 || bail "eval --db failed"
# its rows are at the file's times (they were row numbers, as seconds
# after 1970): train.csv's 600 hours end at T0
eval_times() {
    sqlite3 "$WORK/damaged.db" "SELECT count(*) > 0 AND min(ts) >= ($T0 - 600 * 3600) * 1000000000 AND max(ts) <= $T0 * 1000000000 FROM audit;" | grep -qx 1
}
check "eval --db stores the data's times, not row numbers" eval_times
python3 - "$WORK/damaged.db" <<'PY' || bail "cannot damage the database"
import os, sys
p = sys.argv[1]
assert os.path.getsize(p) > 16 * 4096, os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(2 * 4096)
    f.write(b"\xa5" * 6 * 4096)
PY
run_damaged() { # run_damaged EXTRA-ARGS...: the daemon on damaged.db, 20 s at most
    timeout 20 "$BIN" run --config "$WORK/driftcast.conf" \
        --set storage.path="$WORK/damaged.db" --set kafka.group=it-damaged "$@" \
        > "$WORK/damaged.log" 2>&1
}
run_damaged
rc=$?
check "a database damaged inside stops start-up with exit 1 (got $rc)" test "$rc" -eq 1
check "... saying it is corrupt and how to start afresh" \
    grep -q 'corrupt.*storage.rename_corrupt = true' "$WORK/damaged.log"
check "... and leaves the file where it was" test -s "$WORK/damaged.db"
( run_damaged --set storage.rename_corrupt=true ) &
damaged_pid=$!
moved_logged() { grep -q "moved it .*to $WORK/damaged.db.corrupt-" "$WORK/damaged.log"; }
check "rename_corrupt: the move is logged at warning with both file names" \
    wait_for 15 moved_logged
pkill -TERM -f "storage.path=$WORK/damaged.db" 2>/dev/null
wait $damaged_pid 2>/dev/null
moved=$(ls "$WORK"/damaged.db.corrupt-* 2>/dev/null | head -1)
check "... the damaged file is kept beside a fresh database" \
    test -s "$moved" -a -s "$WORK/damaged.db"

daemon_pid=
start_daemon() {
    NOTIFY_SOCKET="$WORK/notify.sock" WATCHDOG_USEC=1000000 \
        "$BIN" run --config "$WORK/driftcast.conf" >> "$WORK/daemon.log" 2>&1 &
    daemon_pid=$!
    pids+=($daemon_pid)
}

# produce_steps FROM TO: hourly values of every series, keyed by series
produce_steps() {
    local from=$1 to=$2
    for s in $SERIES; do
        awk -v s=$s -v from=$from -v to=$to -v t0=$T0 'BEGIN {
            for (i = from; i < to; i++)
                printf "%s:{\"series\":\"%s\",\"ts\":%d,\"value\":%.4f}\n",
                    s, s, t0 + i * 3600, 10 + 3 * sin(i * 2 * 3.14159 / 24)
        }'
    done | kcat -P -b "$BS" -t measurements -K:
}

count_topic() { # count_topic TOPIC
    kcat -C -b "$BS" -t "$1" -o beginning -e -q -f '%o\n' 2>/dev/null | wc -l
}

notified() { grep -q "$1" "$WORK/notify.log"; }
readies() { grep -c '^READY=1$' "$WORK/notify.log"; }
ready_more_than() { test "$(readies)" -gt "$1"; }
topic_ge() { test "$(count_topic "$1")" -ge "$2"; } # re-counted on every poll

# ---- start, READY -----------------------------------------------------------

start_daemon
wait_for 30 notified 'READY=1' || bail "no READY=1"
ok "READY=1 after the database, the model and the subscription"

# ---- good messages -> forecasts ------------------------------------------------

t_start=$SECONDS
produce_steps 0 60
expected=$(( 4 * (60 - L + 1) ))
wait_for 60 topic_ge forecasts $expected
took=$((SECONDS - t_start))
got=$(count_topic forecasts)
check "forecasts for every full lookback ($got of $expected)" test "$got" -eq $expected
check "a batch is committed when the input pauses, not after batch_ms = 30 s (${took} s)" \
    test "$took" -lt 20

kcat -C -b "$BS" -t forecasts -o beginning -e -q -f '%s\n' > "$WORK/forecasts.json" 2>/dev/null
check "forecast messages are JSON with series, origin, model, host, db, adapter_version and $H values" \
    python3 - "$WORK/forecasts.json" $H "$WORK/driftcast.db" <<'EOF'
import json, socket, sys
n = 0
for line in open(sys.argv[1]):
    f = json.loads(line)
    assert f["series"] in ("s1", "s2", "s3", "s4"), f
    assert isinstance(f["origin"], int)
    assert "model" in f and isinstance(f["adapter_version"], int)
    assert f["host"] == socket.gethostname() and f["db"] == sys.argv[3], f
    assert len(f["horizon"]) == int(sys.argv[2])
    assert all(isinstance(v, (int, float)) for v in f["horizon"])
    n += 1
assert n > 0
EOF

# ---- the malformed catalogue -------------------------------------------------------

cat_dir="$WORK/bad"
mkdir -p "$cat_dir"
i=0
bad() { # bad KEY PAYLOAD: one message per file (kcat sends a file as one message)
    i=$((i + 1))
    printf '%s' "$2" > "$cat_dir/$i.msg"
    echo "$1" > "$cat_dir/$i.key"
}
ts=$((T0 + 3600 * 60))
bad - '{'
bad - 'not json at all'
bad - '[]'
bad - '{"series":"s1","ts":'$ts'}'
bad - '{"series":"s1","value":1}'
bad - '{"ts":'$ts',"value":1}'
bad - '{"series":"s1","ts":"yesterday","value":1}'
bad - '{"series":"s1","ts":'$ts',"value":"12"}'
bad - '{"series":"s1","ts":'$ts',"value":NaN}'
bad - '{"series":"s1","ts":'$ts',"value":Infinity}'
bad - '{"series":"s1","ts":'$ts',"value":1e308}'
bad - '{"series":"s1","ts":'$ts',"value":1e999}'
bad - '{"series":"","ts":'$ts',"value":1}'
bad - '{"series":"s1","ts":'$ts',"value":1,"value":2}'
bad - '{"series":"s1","ts":-5,"value":1}'
bad - '{"series":"s1","ts":99999999999999999999,"value":1}'
bad - '{"series":"s1","ts":"2023-13-45T99:00:00Z","value":1}'
bad - '{"series":"s1","ts":'$ts',"values":{}}'
bad - '{"series":"s1","ts":'$ts',"values":{"a":"x"}}'
bad - '{"series":"s1","ts":'$ts',"value":null}'
bad - '{"series":"s1","ts":'$ts',"value":true}'
bad - '{"series":"s1","ts":'$ts',"value":[1,2]}'
bad - '{"series":{"n":1},"ts":'$ts',"value":1}'
bad - "$(printf '{"series":"s\xff\xfe","ts":%d,"value":1}' $ts)"
bad - '{"series":"a\u0001b","ts":'$ts',"value":1}'
bad - "$(head -c 70000 /dev/zero | tr '\0' ' '){}"
bad other '{"series":"s1","ts":'$ts',"value":1}'
bad - "{\"series\":\"$(head -c 300 /dev/zero | tr '\0' x)\",\"ts\":$ts,\"value\":1}"
bad - '{"series":"s1","ts":'$ts',"value":1} trailing'
bad - '{"series":"s1","ts":1700000000.5.5,"value":1}'
bad - "$(head -c 5000 /dev/zero | tr '\0' '[')"
bad - 'cpu,host=a usage=1 1700000000000000000'
bad - ' '
# already seen timestamps and a late one: the engine refuses them
bad s2 '{"series":"s2","ts":'$((T0 + 3600 * 10))',"value":1}'
bad s3 '{"series":"s3","ts":'$((T0 + 3600 * 59))',"value":1}'
n_bad=$i
for f in $(ls "$cat_dir"/*.msg | sort -V); do
    key=$(cat "${f%.msg}.key")
    if [ "$key" = - ]; then
        kcat -P -b "$BS" -t measurements "$f"
    else
        kcat -P -b "$BS" -t measurements -k "$key" "$f"
    fi
done
# good messages keep flowing behind them
produce_steps 60 70
wait_for 60 topic_ge deadletter $n_bad
got=$(count_topic deadletter)
check "all $n_bad malformed messages are dead-lettered (got $got)" test "$got" -eq $n_bad
kcat -C -b "$BS" -t deadletter -o beginning -e -q -f '%h\n' > "$WORK/dead.hdr" 2>/dev/null
check "every dead letter carries a driftcast-reason header" \
    test "$(grep -c '^driftcast-reason=.\+' "$WORK/dead.hdr")" -eq $n_bad
diag "dead-letter reasons: $(sed 's/^driftcast-reason=//; s/:.*//' "$WORK/dead.hdr" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
check "duplicate and late timestamps are dead-lettered by the engine" \
    test "$(grep -c 'rejected_value' "$WORK/dead.hdr")" -eq 2
kcat -C -b "$BS" -t deadletter -o beginning -e -q -f '%s\n' > "$WORK/dead.payloads" 2>/dev/null
check "dead letters keep the payload unchanged" grep -qF '{"series":"s1","ts":'$ts',"value":1} trailing' "$WORK/dead.payloads"
expected=$(( 4 * (70 - L + 1) ))
wait_for 30 topic_ge forecasts $expected
check "good messages kept flowing between the bad ones" test "$(count_topic forecasts)" -eq $expected

# ---- metrics ---------------------------------------------------------------------------

python3 - "$metrics_port" > "$WORK/metrics.txt" 2>&1 <<'EOF'
import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode())
EOF
check "metrics: Prometheus text with messages, dead letters, forecasts and latency" \
    grep -q 'driftcast_forecasts_total' "$WORK/metrics.txt"
check "metrics: dead letters counted" grep -Eq 'driftcast_deadletter(ed)?_total.* [1-9]' "$WORK/metrics.txt"
# the two legs the daemon tells apart: every forecast handed on was held
# under 10 s (a bad tag decode lands in +Inf), and acknowledgements timed
legs_ok() {
    python3 - "$WORK/metrics.txt" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
def v(name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", t, re.M)
    return float(m.group(1)) if m else -1
p = v("driftcast_processing_latency_seconds_count")
ok = p > 0 and v('driftcast_processing_latency_seconds_bucket{le="10"}') == p
ok = ok and v("driftcast_delivery_latency_seconds_count") > 0
sys.exit(0 if ok else 1)
EOF
}
check "metrics: processing and delivery latency legs" legs_ok

# ---- watchdog, reload ---------------------------------------------------------------------

check "WATCHDOG=1 pings from the main loop" wait_for 5 notified 'WATCHDOG=1'
write_conf debug
kill -HUP "$daemon_pid"
check "SIGHUP: RELOADING=1 with MONOTONIC_USEC" wait_for 10 notified 'RELOADING=1|MONOTONIC_USEC='
check "SIGHUP: READY=1 again after the reload" wait_for 10 grep -q 'configuration reloaded' "$WORK/daemon.log"

# ---- operator rollback from another process ---------------------------------------------

versions=$("$BIN" versions --db "$WORK/driftcast.db" --series s1 --format csv 2>/dev/null | tail -n +2 | wc -l)
if [ "$versions" -ge 2 ]; then
    t_start=$(date +%s.%N)
    # version 1, an adaptation: it has a published average of its own
    "$BIN" rollback --db "$WORK/driftcast.db" --series s1 --to-version 1 \
        --reason "integration test" > "$WORK/rollback.out" 2>&1
    rc=$?
    t_end=$(date +%s.%N)
    check "driftcast rollback against a running daemon exits 0" test $rc -eq 0
    check "the daemon applied the rollback (via the control table)" \
        grep -qi 'daemon' "$WORK/rollback.out"
    check "applied within one second" python3 -c "import sys; sys.exit(0 if $t_end - $t_start <= 1.0 else 1)"
    check "the running daemon logged the operator rollback" \
        wait_for 5 grep -q 'operator rollback: s1' "$WORK/daemon.log"
    check "... publishing the average stored with version 1" \
        grep -q 'operator rollback: s1 .*content of version 1, publishing its stored average' "$WORK/daemon.log"
    same_average_as_1() {
        test "$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM versions n, versions o, series s
            WHERE s.key = 's1' AND n.series_id = s.id AND o.series_id = s.id AND o.number = 1
            AND n.reason = 'manual' AND n.restored_from = 1 AND o.average IS NOT NULL
            AND n.average = o.average AND n.average_checksum = o.average_checksum")" = 1
    }
    check "the rollback's version stores version 1's published average" same_average_as_1
else
    not_ok "series s1 has adapter versions to roll back to (has $versions)"
fi

# ---- injected request errors, broker down and up ---------------------------------------

mbctl "error Produce 3 NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT"
mbctl "error Fetch 3 NOT_LEADER_FOR_PARTITION"
produce_steps 70 75
before=$(count_topic forecasts)
mbctl "down -1"
sleep 3
mbctl "up -1"
produce_steps 75 80
expected=$(( 4 * (80 - L + 1) ))
wait_for 60 topic_ge forecasts $expected
check "after request errors and a broker outage every forecast arrives ($(count_topic forecasts)/$expected)" \
    test "$(count_topic forecasts)" -ge $expected
check "the daemon survived the outage" kill -0 "$daemon_pid"

# ---- the watchdog is fed while a dead letter waits for the broker ----------------------

# Every broker answers 3 s late: a malformed message's dead letter holds the
# batch (dead letters are delivered before the SQLite commit) for that long.
# systemd's watchdog (WATCHDOG_USEC = 1 s here) must keep getting pings.
now_mono() { python3 -c 'import time; print("%.3f" % time.monotonic())'; }
w_from=$(now_mono)
dead_before=$(count_topic deadletter)
mbctl "rtt -1 3000"
echo 's1:{"series": "s1", "ts": "not a time", "value": 1}' | kcat -P -b "$BS" -t measurements -K:
sleep 4
mbctl "rtt -1 0"
w_to=$(now_mono)
max_gap() { # the longest silence between WATCHDOG=1 pings in [w_from, w_to]
    awk -v a="$w_from" -v b="$w_to" '$2 ~ /WATCHDOG=1/ && $1 >= a && $1 <= b {
        if (p != "" && $1 - p > g) g = $1 - p; p = $1 } END { printf "%.2f", g }' \
        "$WORK/notify.log.t"
}
gap=$(max_gap)
# a silence of WATCHDOG_USEC (1 s) is what makes systemd kill the daemon;
# pings are due every 0.5 s, so a healthy loop stays well under it
check "watchdog pings continue while a dead letter waits 3 s for the broker (longest gap ${gap} s)" \
    awk -v g="$gap" 'BEGIN { exit !(g > 0 && g < 1.0) }'
grep -q 'waiting for the dead-letter topic' "$WORK/daemon.log" ||
    diag "no dead-letter wait seen in the log: the check above may not have tested the drain"
# its dead letter delivered before the next part, whose refused Produce
# requests would otherwise hold the batch for it (and pause the input for
# that reason, not the one checked there)
wait_for 30 topic_ge deadletter $((dead_before + 1)) ||
    diag "the malformed message's dead letter was not delivered within 30 s"

# ---- backpressure: input paused while forecasts wait for the broker ---------------------------

# kafka.max_in_flight is reloadable: 100.  The daemon is stopped while 4
# new series bring 4 * (BP - L + 1) = 196 forecasts, then the broker
# refuses the next 40 Produce requests (retriable): the forecasts stay in
# flight.  Twice the limit, so that the input pauses even when the loop
# takes them in two batches and the first is delivered before the second
# is produced (with 4 * (60 - L + 1) = 116, one batch had to hold them).
BP=80
reloads=$(grep -c 'configuration reloaded' "$WORK/daemon.log")
sed -i 's/^max_poll_records = 500$/&\nmax_in_flight = 100/' "$WORK/driftcast.conf"
kill -HUP "$daemon_pid"
reloaded() { test "$(grep -c 'configuration reloaded' "$WORK/daemon.log")" -gt "$reloads"; }
wait_for 10 reloaded || diag "no reload seen"
kill -STOP "$daemon_pid"
produce_bp() { # produce_bp FROM TO: steps of the series bp1..bp4
    for s in bp1 bp2 bp3 bp4; do
        awk -v s=$s -v from=$1 -v to=$2 -v t0=$T0 'BEGIN {
            for (i = from; i < to; i++)
                printf "%s:{\"series\":\"%s\",\"ts\":%d,\"value\":%.4f}\n",
                    s, s, t0 + i * 3600, 5 + 2 * cos(i * 2 * 3.14159 / 24)
        }'
    done | kcat -P -b "$BS" -t measurements -K: 2>/dev/null
}
produce_bp 0 $BP
mbctl "error Produce 40 NOT_ENOUGH_REPLICAS"
kill -CONT "$daemon_pid"
check "backpressure: input paused above kafka.max_in_flight" \
    wait_for 30 grep -q 'input paused: [0-9]* produced messages not yet acknowledged' "$WORK/daemon.log"
diag "$(grep -m1 -o 'input paused: [0-9]* produced' "$WORK/daemon.log")"
check "backpressure: input resumed once half were delivered" \
    wait_for 30 grep -q 'input resumed' "$WORK/daemon.log"
curl_metrics() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:'$metrics_port'/metrics").read().decode())'; }
paused_counted() { curl_metrics | grep -q '^driftcast_input_pauses_total [1-9]'; }
check "backpressure: metrics count the pause" wait_for 5 paused_counted
bp_forecasts() { kcat -C -b "$BS" -t forecasts -o beginning -e -q -f '%k\n' 2>/dev/null | grep -c '^bp'; }
bp_all() { test "$(bp_forecasts)" -eq $(( 4 * (BP - L + 1) )); }
check "backpressure: every forecast of the paused period arrives, once" wait_for 60 bp_all

# storage.forecast_sample = 0 (reloadable): forecasts still reach the topic,
# no longer the forecasts table.
rows() { sqlite3 "$WORK/driftcast.db" 'SELECT count(*) FROM forecasts;'; }
rows_before=$(rows)
reloads=$(grep -c 'configuration reloaded' "$WORK/daemon.log")
sed -i "s|^path = $WORK/driftcast.db\$|&\nforecast_sample = 0|" "$WORK/driftcast.conf"
kill -HUP "$daemon_pid"
wait_for 10 reloaded || diag "no reload seen"
produce_bp $BP $((BP + 10))
bp_all() { test "$(bp_forecasts)" -eq $(( 4 * (BP + 10 - L + 1) )); }
check "forecast_sample = 0: forecasts keep reaching the topic" wait_for 60 bp_all
check "forecast_sample = 0: no new rows in the forecasts table ($(rows) vs $rows_before)" \
    test "$(rows)" -eq "$rows_before"
sed -i '/^forecast_sample = 0$/d' "$WORK/driftcast.conf"

# ---- SIGTERM drains and exits 0 ---------------------------------------------------------------

# the group refuses the stop's offset commit once, as the mock does during a
# rebalance: the stop must commit all the same (nothing later would)
mbctl "error OffsetCommit 1 REBALANCE_IN_PROGRESS"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
check "SIGTERM: exit status 0" test $rc -eq 0
check "SIGTERM: STOPPING=1" notified 'STOPPING=1'
# the group's committed offsets are at the end of every partition: a member
# of it that does not commit finds nothing to consume
group_rest() {
    kcat -C -G it-group -b "$BS" -X partition.assignment.strategy=cooperative-sticky \
        -X session.timeout.ms=6000 -X auto.offset.reset=earliest -X enable.auto.commit=false \
        -e -q -f '%p %o\n' measurements 2>/dev/null | wc -l
}
rest=$(group_rest)
check "SIGTERM: the applied offsets are committed to Kafka at the stop ($rest messages left)" \
    test "$rest" -eq 0
saved=$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM series_recent;")
check "SIGTERM: every series' recent values saved ($saved rows)" \
    test "$saved" -eq "$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM series;")"
# what each adapted series publishes the share of, with its version
averages() {
    sqlite3 "$WORK/driftcast.db" "SELECT s.key, r.average_version, hex(r.average) FROM series_recent r JOIN series s ON s.id = r.series_id WHERE r.average IS NOT NULL ORDER BY s.key;"
}
averages > "$WORK/averages.before"
check "SIGTERM: the published averages saved, for the current versions ($(wc -l < "$WORK/averages.before") series)" \
    test -s "$WORK/averages.before" -a "$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM series_recent r JOIN series s ON s.id = r.series_id WHERE r.average IS NOT NULL AND r.average_version <> s.current_version;")" -eq 0

# released at this host's own stop, not handed over to another host: an
# offline `driftcast rollback --db` still acts on them
check "SIGTERM: every series released at the stop (handovers source 'stopped')" \
    test "$(sqlite3 "$WORK/driftcast.db" "SELECT count(DISTINCT series_id) FROM handovers WHERE direction = 'out' AND source = 'stopped';")" -eq "$saved"
check "... and listed as stopped, not handed over (v_series.status)" \
    test "$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM v_series WHERE status = 'stopped';")" -eq "$saved"

# and each series' recalibration (on by default), byte for byte
recals() {
    sqlite3 "$WORK/driftcast.db" "SELECT s.key, hex(r.recal) FROM series_recent r JOIN series s ON s.id = r.series_id ORDER BY s.key;"
}
recals > "$WORK/recals.before"
check "SIGTERM: every series' recalibration saved" \
    test "$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM series_recent WHERE recal IS NOT NULL;")" -eq "$saved"

# A replayed message would adapt again at the same series time: a second
# ttt/drift version (or adaptation audit row) with the same ts.
dups() {
    sqlite3 "$WORK/driftcast.db" "SELECT (SELECT count(*) FROM (SELECT 1 FROM versions WHERE reason IN ('ttt', 'drift') GROUP BY series_id, ts HAVING count(*) > 1)) + (SELECT count(*) FROM (SELECT 1 FROM audit WHERE event IN ('adapt_accepted', 'adapt_rejected') GROUP BY series_id, ts HAVING count(*) > 1));"
}
check "no duplicate versions after the first run" test "$(dups)" = 0

# s2's saved recent values lose their average (a file from before schema 10,
# or a damaged one): it is taken from its version's row instead
check "s2 has a published average to lose" grep -q '^s2|' "$WORK/averages.before"
sqlite3 "$WORK/driftcast.db" "UPDATE series_recent SET average = NULL, average_version = NULL,
    average_checksum = NULL WHERE series_id = (SELECT id FROM series WHERE key = 's2');"

# ---- restart with the same group ----------------------------------------------------------------

v_before=$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM versions;")
r0=$(readies)
assigned_n() { grep -c 'assigned at offset' "$WORK/daemon.log"; }
a0=$(assigned_n)
start_daemon
wait_for 30 ready_more_than "$r0" || bail "no READY=1 after restart"
# taken when the partitions are assigned (after the group join), not at READY
all_assigned() { test "$(assigned_n)" -ge $((a0 + 4)); }
check "restart: every partition assigned again" wait_for 30 all_assigned
check "restart: the recent values taken at assignment are saved again at once (one row per series)" \
    test "$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM series_recent;")" -eq \
    "$(sqlite3 "$WORK/driftcast.db" "SELECT count(*) FROM series;")"
# restarted from its version alone, a series' average would be the version
same_averages() { averages | cmp -s - "$WORK/averages.before"; }
check "restart: the published averages restored as they were saved (s2's from its version's row)" same_averages
# saved again at once from the engine: the same bytes only if it took them
same_recals() { recals | cmp -s - "$WORK/recals.before"; }
check "restart: the recalibrations restored as they were saved" same_recals
f0=$(count_topic forecasts)
produce_steps 80 83
wait_for 60 topic_ge forecasts $((f0 + 4 * 3))
check "restart: forecasts resume at the first new value (recent values restored)" \
    test "$(count_topic forecasts)" -eq $((f0 + 4 * 3))
produce_steps 83 $((80 + L + 10))
wait_for 60 topic_ge forecasts $((f0 + 4 * (L + 10)))
check "restart: a forecast for every value after it" \
    test "$(count_topic forecasts)" -eq $((f0 + 4 * (L + 10)))

# ---- an outage longer than the group session ---------------------------------------------------

# The partitions are lost, then assigned to this member again, and nobody
# served them meanwhile: the series go on from their state here, recent
# values included (saved when they were forgotten), with no lookback refill.
lost0=$(grep -c ' lost: ' "$WORK/daemon.log")
f1=$(count_topic forecasts)
mbctl "down -1"
sleep 8 # > session_timeout_ms
mbctl "up -1"
lost_more() { test "$(grep -c ' lost: ' "$WORK/daemon.log")" -gt "$lost0"; }
check "long outage: the partitions were lost (the session timed out)" wait_for 30 lost_more
produce_steps $((80 + L + 10)) $((80 + L + 13))
wait_for 60 topic_ge forecasts $((f1 + 4 * 3))
check "long outage: forecasts go on at the next value ($(count_topic forecasts)/$((f1 + 4 * 3)))" \
    test "$(count_topic forecasts)" -eq $((f1 + 4 * 3))
kill -TERM "$daemon_pid"
wait "$daemon_pid"
check "restart: no duplicate versions" test "$(dups)" = 0
check "restart: versions only grew" test "$(sqlite3 "$WORK/driftcast.db" 'SELECT count(*) FROM versions;')" -ge "$v_before"

# ---- kill -9 at random points ---------------------------------------------------------------------

step=$((80 + L + 13))
for k in 1 2 3 4 5; do
    start_daemon
    produce_steps $step $((step + 15))
    step=$((step + 15))
    sleep "0.$((RANDOM % 9 + 1))"
    kill -9 "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
done
r0=$(readies)
start_daemon
wait_for 30 ready_more_than "$r0" || bail "no READY=1 after the crashes"
# everything consumed: the applied offsets reach the end of every partition
ends=$(kcat -C -b "$BS" -t measurements -o beginning -e -q -f '%p %o\n' 2>/dev/null |
    awk '{ if ($2 + 1 > e[$1]) e[$1] = $2 + 1 } END { for (p in e) print p, e[p] }' | sort)
applied_at_end() { test "$(applied)" = "$ends"; }
applied() {
    sqlite3 "$WORK/driftcast.db" "SELECT partition, next_offset FROM kafka_offsets WHERE topic = 'measurements' ORDER BY partition;" | tr '|' ' '
}
check "kill -9: every message applied after restart (offsets at the end of every partition)" \
    wait_for 60 applied_at_end
# A crash after durable batches (the kills above mostly land before the
# group join): every durable batch saved its series' recent values with
# its offsets, so they describe the stored state and the series forecast
# at their next value instead of refilling a lookback (L - 1 forecasts
# lost each).  Values saved only at the start would be 10 steps old: a gap
# longer than ttt.max_gap, so a refilled lookback too.
settled() { local a; a=$(count_topic forecasts); sleep 1; test "$(count_topic forecasts)" -eq "$a"; }
wait_for 30 settled
f2=$(count_topic forecasts)
produce_steps $step $((step + 10))
step=$((step + 10))
wait_for 60 topic_ge forecasts $((f2 + 4 * 10)) || bail "no forecasts before the crash"
sleep 0.5 # the last batch durable
kill -9 "$daemon_pid"
wait "$daemon_pid" 2>/dev/null
a0=$(assigned_n)
start_daemon
wait_for 30 all_assigned || bail "not assigned after the crash"
f2=$(count_topic forecasts)
produce_steps $step $((step + 3))
wait_for 60 topic_ge forecasts $((f2 + 4 * 3))
check "kill -9: forecasts go on at the next value ($(($(count_topic forecasts) - f2))/$((4 * 3)))" \
    test "$(count_topic forecasts)" -eq $((f2 + 4 * 3))
kill -TERM "$daemon_pid"
wait "$daemon_pid"
check "kill -9: integrity_check ok" test "$(sqlite3 "$WORK/driftcast.db" 'PRAGMA integrity_check;')" = ok
check "kill -9: no duplicate versions" test "$(dups)" = 0
check "kill -9: every version's parent exists (lineage intact)" test "$(sqlite3 "$WORK/driftcast.db" \
    "SELECT count(*) FROM versions v WHERE v.parent_id IS NOT NULL AND v.parent_id != 0 AND NOT EXISTS (SELECT 1 FROM versions p WHERE p.id = v.parent_id);")" = 0

echo "1..$n"
[ "$failed" -eq 0 ]
