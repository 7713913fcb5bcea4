#!/usr/bin/env bash
# A rebalance while the forecasts topic has no leader (TAP): with the state
# topic on, a revoke waits for its states to be acknowledged before it
# commits -- for those only, and at most kafka.stop_timeout_ms.  It waited
# for every message of the producer, so the forecasts in flight held the
# revoke, and with it the partitions the host keeps, until the forecasts
# topic had a leader again.  The forecasts in flight are delivered when it
# has one.
#
# Needs: DRIFTCAST, MOCKBROKER (set by meson), kcat, sqlite3.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/tap.sh"

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
WORK=$(tap_workdir revoke-stuck)
L=16
H=4
T0=1700000000
cleanup() {
    tap_kill_pids
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT
bail() { tap_bail "$WORK/daemon.log" "$@"; }

tap_train_small "$BIN" "$WORK" $T0 $L $H 3 || bail "driftcast train failed"
tap_mock_start "$WORK" measurements:2 forecasts:1 deadletter:1 state:2 ||
    bail "the mock cluster did not start"
mbctl() { tap_mbctl "$WORK" "$@"; }
port=$(tap_free_port)
cat > "$WORK/d.conf" <<CONF
[kafka]
brokers = $BS
group = revoke-stuck
input_topic = measurements
output_topic = forecasts
deadletter_topic = deadletter
state_topic = state
session_timeout_ms = 6000
stop_timeout_ms = 3000
commit_interval_ms = 600000
[storage]
path = $WORK/d.db
[model]
path = $WORK/model.dcm
lookback = $L
horizon = $H
[metrics]
listen = 127.0.0.1:$port
[librdkafka.consumer]
fetch.wait.max.ms = 10
CONF
# values FROM TO: hourly values of k1..k4, keyed (both partitions get some)
values() {
    tap_hourly "$1" "$2" $T0 k1 k2 k3 k4 | kcat -P -b "$BS" -t measurements -K: 2>/dev/null
}
applied() { sqlite3 "$WORK/d.db" "SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets WHERE topic = 'measurements';" 2>/dev/null; }
applied_ge() { test "$(applied)" -ge "$1"; }
count_topic() { kcat -C -b "$BS" -t "$1" -o beginning -e -q -f '.\n' 2>/dev/null | wc -l; }

"$BIN" run --config "$WORK/d.conf" > "$WORK/daemon.log" 2>&1 &
daemon_pid=$!
pids+=($daemon_pid)
wait_for 30 grep -q "assigned at offset" "$WORK/daemon.log" || bail "no assignment"
values 0 20
wait_for 60 applied_ge 80 || bail "the first 80 messages not applied ($(applied))"
forecasts0=$(count_topic forecasts)
sleep 3 # the first commit made: one during the join would lose the partitions

mbctl "leader forecasts 0 -1"
values 20 24 # their forecasts stay in flight
wait_for 30 applied_ge 96 || bail "messages 80-95 not applied ($(applied))"

# a second member: the daemon gives one partition up and keeps the other
kcat -C -G revoke-stuck -b "$BS" -X partition.assignment.strategy=cooperative-sticky \
    -X session.timeout.ms=6000 -X enable.auto.commit=false \
    -X auto.offset.reset=latest -f '%p %o\n' measurements > "$WORK/kcat.log" 2>&1 &
pids+=($!)
revoked() { grep -q "revoked: .* series handed over" "$WORK/daemon.log"; }
check "a second member joins: a partition is revoked" wait_for 40 revoked
before=$(applied)
values 24 27
# the kept partition's values: 3 per series of that partition
check "the partition the daemon keeps is consumed while the forecasts topic has no leader (from $before applied)" \
    wait_for 20 applied_ge $((before + 3))
check "... and never waited for the forecasts (no wait on the producer's every message)" \
    test "$(grep -c "waiting for the state topic" "$WORK/daemon.log")" -le 5
mbctl "leader forecasts 0 1"
delivered() { test "$(count_topic forecasts)" -ge $((forecasts0 + 4 * 4)); }
check "the forecasts held in flight are delivered once the topic has a leader" \
    wait_for 60 delivered
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
check "the stop exits 0 (got $rc)" test $rc -eq 0
echo "1..$n"
[ "$failed" -eq 0 ]
