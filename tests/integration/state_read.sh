#!/usr/bin/env bash
# A partition assigned while its state partition cannot be read (TAP): the
# state topic's partition 0 has no leader when host b takes the group's
# partitions over from host a.  b holds partition 0 -- nothing of it
# consumed, applied or committed -- reads it again until it can, and then
# continues its series from a's states, at a's commit.  It used what the
# read had got (here nothing): partition 0's series started again from the
# base adapter, their adapter versions going back.  Partition 1 is served
# meanwhile.
#
# Needs: DRIFTCAST, MOCKBROKER, DATA (set by meson), kcat, python3.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/tap.sh"
. "$HERE/hosts.sh"

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
DATA=${DATA:?DATA must name data/ETTh1.csv}
WORK=$(tap_workdir state-read)
L=24
H=4
HOSTS=(a b)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT

rows() { hosts_ett_rows "$@"; } # the 7 ETTh1 columns of rows [FROM, TO)
NSERIES=7
hosts_cluster 600 2
hosts_conf state-read driftcast-state a b
# the mock cluster, under the sanitizers and busy answering the host's
# questions about a partition without a leader, once took 11 s to carry a
# command out
mbctl() { TAP_MBCTL_WAIT=60 tap_mbctl "$WORK" "$@"; }
# the series of a partition, from host a's database
series_of() {
    sqlite3 "$WORK/a.db" "SELECT key FROM series s JOIN handovers h ON h.series_id = s.id WHERE h.partition = $1 GROUP BY key"
}
# (series, origin) pairs published by host b's database for series $1...
published_by_b() {
    forecasts | python3 -c '
import sys, json
want = set(sys.argv[1:])
print(sum(1 for m in map(json.loads, sys.stdin)
          if m["db"].endswith("/b.db") and m["series"] in want))' "$@"
}

start_host a
wait_for 40 grep -q "measurements\[1\] assigned at offset" "$WORK/a.log" ||
    bail "host a was not assigned its partitions"
produce 0 100
wait_for 60 distinct_ge "$(expected 100)" || bail "no forecasts for rows 0-99"
kill -TERM "${host_pid[a]}"
wait "${host_pid[a]}"
check "host a stops cleanly" test $? -eq 0

mapfile -t p0 < <(series_of 0)
mapfile -t p1 < <(series_of 1)
diag "partition 0: ${p0[*]}; partition 1: ${p1[*]}"
[ ${#p0[@]} -gt 0 ] && [ ${#p1[@]} -gt 0 ] || bail "a partition has no series"

# ---- b takes over while driftcast-state[0] has no leader --------------------
mbctl leader driftcast-state 0 -1 || bail "the mock broker did not take the command"
start_host b
wait_for 40 grep -q "measurements\[0\] is held" "$WORK/b.log"
check "b holds partition 0: its state partition cannot be read" \
    grep -q "measurements\[0\] is held, nothing of it applied" "$WORK/b.log"
produce 100 130
wait_for 60 test "$(published_by_b "${p1[@]}")" -ge $((${#p1[@]} * 30))
check "partition 1 is served meanwhile" \
    test "$(published_by_b "${p1[@]}")" -ge $((${#p1[@]} * 30))
check "partition 0's series are not ($(published_by_b "${p0[@]}") forecasts)" \
    test "$(published_by_b "${p0[@]}")" -eq 0
check "b read it again, and again" \
    test "$(grep -c "measurements\[0\] is held" "$WORK/b.log")" -ge 2

# ---- the leader back: the partition is read, restored and released --------
mbctl leader driftcast-state 0 1 || bail "the mock broker did not take the command"
wait_for 60 distinct_ge "$(expected 130)"
check "then every (series, origin) is forecast" distinct_ge "$(expected 130)"
check "b released partition 0 once its states were read" \
    grep -q "measurements\[0\]: its states read, consumed from offset [0-9]" "$WORK/b.log"
check "... its series restored from the state topic" \
    grep -q "measurements\[0\] assigned at offset [0-9]*: .* [1-9][0-9]* from the state topic" \
    "$WORK/b.log"
total=$(forecasts | wc -l)
check "no (series, origin) published twice ($total forecasts)" \
    test "$total" -eq "$(expected 130)"
hosts_versions_back > "$WORK/back"
check "adapter_version never goes back within a series ($(cat "$WORK/back") times)" \
    test "$(cat "$WORK/back")" -eq 0
kill -TERM "${host_pid[b]}"
wait "${host_pid[b]}"
check "host b stops cleanly" test $? -eq 0
echo "1..$n"
