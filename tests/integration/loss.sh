#!/usr/bin/env bash
# No silent loss in the daemon loop (issue 13 items 1, 2, 7): `driftcast
# run` against driftcast-mockbroker, kcat as the external client (TAP).
#   1. a dead letter larger than the producer's message.max.bytes is
#      truncated into the dead-letter topic with its original size (a key
#      too, the reason saying so; a null value stays null); one the
#      broker refuses holds its batch (offsets not advanced, input paused,
#      alarm) and is produced again until it is delivered;
#   2. a full disk holds the batch until space returns: every series keeps
#      its stored versions and no offset runs ahead of SQLite;
#   7. SIGTERM while the dead-letter topic is down ends within
#      kafka.stop_timeout_ms, exit status 1, naming what replays; the
#      restart delivers it.
# Needs: DRIFTCAST, MOCKBROKER (set by meson), kcat, python3, sqlite3,
# prlimit (a full disk is a tmpfs where mount is allowed, else
# RLIMIT_FSIZE).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/tap.sh"

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
WORK=$(tap_workdir loss)
L=16
H=4
T0=1700000000
pids=()
MNT=
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT
bail() {
    echo "Bail out! $*"
    tail -n 30 "$WORK/daemon.log" 2>/dev/null | sed 's/^/#   /'
    exit 1
}

awk -v t0=$T0 'BEGIN { srand(3); print "date,a";
    for (i = 0; i < 600; i++)
        printf "%s,%.4f\n", strftime("%Y-%m-%d %H:%M:%S", t0 - 600 * 3600 + i * 3600, 1),
            10 + 3 * sin(i * 2 * 3.14159 / 24) + rand() }' > "$WORK/train.csv"
"$BIN" train --data "$WORK/train.csv" --out "$WORK/model.dcm" --lookback $L \
    --horizon $H --epochs 1 --set model.width=8 --set model.layers=1 \
    --quiet > "$WORK/train.log" 2>&1 || bail "driftcast train failed"

"$MB" -t measurements:2 -t forecasts:2 -t deadletter:1 \
    -f "$WORK/bootstraps" -c "$WORK/control" > "$WORK/mb.log" 2>&1 &
pids+=($!)
wait_for 10 test -s "$WORK/bootstraps" || bail "mock broker did not start"
BS=$(cat "$WORK/bootstraps")
mbctl() { tap_mbctl "$WORK" "$@"; }

# The database directory: an 8 MB tmpfs when mounting is allowed (a real
# ENOSPC), else a plain directory and RLIMIT_FSIZE on the daemon.
DBDIR="$WORK/db"
mkdir -p "$DBDIR"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=8m tmpfs "$DBDIR" 2>/dev/null; then
    MNT=$DBDIR
fi
diag "full disk: $([ -n "$MNT" ] && echo "an 8 MB tmpfs" || echo RLIMIT_FSIZE)"

metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/driftcast.conf" <<EOF
[kafka]
brokers = $BS
group = loss
input_topic = measurements
output_topic = forecasts
deadletter_topic = deadletter
session_timeout_ms = 6000
commit_interval_ms = 0
stop_timeout_ms = 3000
[storage]
path = $DBDIR/driftcast.db
[model]
path = $WORK/model.dcm
lookback = $L
horizon = $H
[ttt]
every = 4
guard = false
[metrics]
listen = 127.0.0.1:$metrics_port
[librdkafka.consumer]
fetch.wait.max.ms = 10
EOF

python3 "$HERE/notify_listen.py" "$WORK/notify.sock" "$WORK/notify.log" &
pids+=($!)
wait_for 20 grep -q LISTENING "$WORK/notify.log" 2>/dev/null || bail "notify listener"

daemon_pid=
start_daemon() {
    # ignored signals stay ignored across exec: a file over RLIMIT_FSIZE
    # is then a failed write (EFBIG), not SIGXFSZ
    (trap '' XFSZ; exec env NOTIFY_SOCKET="$WORK/notify.sock" \
        "$BIN" run --config "$WORK/driftcast.conf" >> "$WORK/daemon.log" 2>&1) &
    daemon_pid=$!
    pids+=($daemon_pid)
}
readies() { grep -c '^READY=1$' "$WORK/notify.log"; }
ready_more_than() { test "$(readies)" -gt "$1"; }
count_topic() { kcat -C -b "$BS" -t "$1" -o beginning -e -q -f '%o\n' 2>/dev/null | wc -l; }
topic_ge() { test "$(count_topic "$1")" -ge "$2"; }
metric() { # metric NAME: its value, or -1
    python3 - "$metrics_port" "$1" <<'EOF'
import re, sys, urllib.request
try:
    t = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
    m = re.search("^" + re.escape(sys.argv[2]) + r" (\S+)$", t, re.M)
    print(m.group(1) if m else -1)
except Exception:
    print(-1)
EOF
}
metric_is() { test "$(metric "$1")" = "$2"; }
sql() { sqlite3 "$DBDIR/driftcast.db" "$@" 2>/dev/null; }
# the next offset SQLite holds for partition P of measurements (-1: none)
stored_next() { local v; v=$(sql "SELECT next_offset FROM kafka_offsets WHERE topic = 'measurements' AND partition = $1;"); echo "${v:--1}"; }
# the end of partition P of measurements (its next offset)
end_of() { kcat -C -b "$BS" -t measurements -p "$1" -o beginning -e -q -f '%o\n' 2>/dev/null | awk 'END { print (NR ? $1 + 1 : 0) }'; }
at_end() { test "$(stored_next "$1")" = "$(end_of "$1")"; }
# values FROM TO SERIES...: hourly values, keyed (all to one partition each)
lines() { # lines FROM TO SERIES...: the messages of values, KEY:VALUE
    local from=$1 to=$2
    shift 2
    for s in "$@"; do
        awk -v s=$s -v from=$from -v to=$to -v t0=$T0 'BEGIN {
            for (i = from; i < to; i++)
                printf "%s:{\"series\":\"%s\",\"ts\":%d,\"value\":%.4f}\n",
                    s, s, t0 + i * 3600, 10 + 3 * sin(i * 2 * 3.14159 / 24)
        }'
    done
}
values() { lines "$@" | kcat -P -b "$BS" -t measurements -K: 2>/dev/null; }
# bad KEY TEXT: one malformed message, keyed (its partition is the key's)
bad() { printf '%s' "$2" > "$WORK/bad.msg"; kcat -P -b "$BS" -t measurements -k "$1" "$WORK/bad.msg"; }
part_of() { # the partition key K lands on (a probe message's)
    kcat -C -b "$BS" -t measurements -o beginning -e -q -f '%k %p\n' 2>/dev/null | awk -v k="$1" '$1 == k { p = $2 } END { print p }'
}

start_daemon
wait_for 90 ready_more_than 0 || bail "no READY=1"
values 0 20 k1
wait_for 30 topic_ge forecasts 1 || bail "no forecasts"
P=$(part_of k1)

# ---- 1a. a dead letter above message.max.bytes ---------------------------
head -c 1000500 /dev/zero | tr '\0' x > "$WORK/big.msg"
kcat -P -b "$BS" -t measurements -k k1 -X message.max.bytes=2000000 "$WORK/big.msg" ||
    bail "kcat cannot produce 1,000,500 bytes"
values 20 22 k1
check "an oversized message (1,000,500 bytes) reaches the dead-letter topic" \
    wait_for 30 topic_ge deadletter 1
kcat -C -b "$BS" -t deadletter -o beginning -e -q -f '%S %h\n' > "$WORK/dead1" 2>/dev/null
check "... truncated below message.max.bytes, its size in driftcast-original-size" \
    awk '$1 < 1000000 && /driftcast-original-size=1000500/ { ok = 1 } END { exit !ok }' "$WORK/dead1"
check "... and its offset applied with the values after it" wait_for 20 at_end "$P"
diag "dead letter: $(cut -c1-120 "$WORK/dead1" | head -1)"

# ---- 1a'. a key above message.max.bytes, and no value (a tombstone) -------
# The key was copied whole: its dead letter was refused for ever, and the
# input stayed paused.  A tombstone's dead letter had an empty value.
d0=$(count_topic deadletter)
{ head -c 1000100 /dev/zero | tr '\0' K; printf ':\n'; } > "$WORK/bigkey.msg"
kcat -P -b "$BS" -t measurements -K: -Z -X message.max.bytes=2000000 < "$WORK/bigkey.msg" ||
    bail "kcat cannot produce a 1,000,100-byte key"
values 22 24 k1
check "a message with a 1,000,100-byte key reaches the dead-letter topic" \
    wait_for 30 topic_ge deadletter $((d0 + 1))
kcat -C -b "$BS" -t deadletter -o $d0 -e -q -f '%K %S %h\n' > "$WORK/dead1k" 2>/dev/null
check "... its key truncated below message.max.bytes, and the reason says so" \
    awk '$1 < 1000000 && /key truncated from 1000100 bytes/ { ok = 1 } END { exit !ok }' "$WORK/dead1k"
check "... its value null, as it came (not empty)" \
    awk '$2 == -1 { ok = 1 } END { exit !ok }' "$WORK/dead1k"
check "... and the input goes on" wait_for 20 metric_is driftcast_deadletter_undelivered 0
check "... its batch durable" wait_for 20 at_end "$P"
diag "dead letter: $(cut -c1-160 "$WORK/dead1k" | head -1)"

# ---- 1b. the broker refuses dead letters ----------------------------------
# every Produce fails with a permanent error until the errors are cleared:
# the malformed message's dead letter is refused, its batch held; no
# forecast is in flight
d0=$(count_topic deadletter)
before=$(stored_next "$P")
# (the errors are the cluster's: kcat produces the message first, while
# the daemon is stopped)
kill -STOP "$daemon_pid"
bad k1 '{"series":"k1","ts":"not a time","value":1}'
mbctl "error Produce 64 TOPIC_AUTHORIZATION_FAILED"
kill -CONT "$daemon_pid"
alarmed() { grep -q 'dead letters not accepted by deadletter' "$WORK/daemon.log"; }
check "a refused dead letter is logged at error" wait_for 20 alarmed
check "... the metric counts it (driftcast_deadletter_undelivered 1)" \
    wait_for 10 metric_is driftcast_deadletter_undelivered 1
check "... STATUS= says so" wait_for 10 grep -q '^STATUS=.*DEAD LETTERS UNDELIVERED' "$WORK/notify.log"
check "... its offset is not stored while it is undelivered ($(stored_next "$P") = $before)" \
    test "$(stored_next "$P")" = "$before"
mbctl "clear Produce"
check "... it is produced again until the broker takes it" wait_for 60 topic_ge deadletter $((d0 + 1))
check "... then its offset is stored" wait_for 20 at_end "$P"
check "... and the alarm clears" wait_for 10 metric_is driftcast_deadletter_undelivered 0

# ---- 2. a full disk ----------------------------------------------------------
NS=50
series=$(seq -f 'f%g' 1 $NS)
fill_disk() {
    if [ -n "$MNT" ]; then
        dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null
        true
    else
        local lim
        lim=$(stat -c %s "$DBDIR"/driftcast.db* | sort -n | tail -1)
        prlimit --pid "$daemon_pid" --fsize="$lim:" # the soft limit: the hard one stays
    fi
}
free_disk() {
    if [ -n "$MNT" ]; then rm -f "$MNT/filler"; else prlimit --pid "$daemon_pid" --fsize=unlimited:; fi
}
fill_disk
# $NS new series: each a version 0 and adaptations every 4 values
values 0 40 $series
degraded() { grep -q 'storage degraded' "$WORK/daemon.log"; }
check "full disk: the failed commit is logged at error" wait_for 30 degraded
check "full disk: driftcast_storage_degraded 1" wait_for 10 metric_is driftcast_storage_degraded 1
check "full disk: STATUS= says so" wait_for 10 grep -q '^STATUS=.*STORAGE DEGRADED' "$WORK/notify.log"
ends_stored() { # every partition's stored offset at its end
    for p in 0 1; do at_end $p || return 1; done
}
sleep 2
if ends_stored; then not_ok "full disk: no offset stored past what SQLite kept"; else ok "full disk: no offset stored past what SQLite kept"; fi
free_disk
recovered() { grep -q 'storage recovered' "$WORK/daemon.log"; }
check "space returns: the held batch commits" wait_for 60 recovered
check "space returns: every offset stored" wait_for 30 ends_stored
check "space returns: driftcast_storage_degraded 0" wait_for 10 metric_is driftcast_storage_degraded 0
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
check "full disk: the stop afterwards exits 0 (got $rc)" test $rc -eq 0
# the same values for every series: the same adaptations, so the same
# number of stored versions (before: 48 of 50 series had none)
nv=$(sql "SELECT count(*), min(n), max(n) FROM (SELECT s.id, count(v.id) AS n FROM series s LEFT JOIN versions v ON v.series_id = s.id WHERE s.key LIKE 'f%' GROUP BY s.id);")
check "full disk: each of the $NS series has all its versions stored (series, min, max: $nv)" \
    awk -F'|' -v ns=$NS '{ exit !($1 == ns && $2 == $3 && $2 > 1) }' <<< "$nv"
# the batch kept in memory and written again keeps each version's average
nav=$(sql "SELECT count(*), sum(v.average IS NULL OR v.average_checksum IS NULL) FROM versions v JOIN series s ON s.id = v.series_id WHERE s.key LIKE 'f%' AND v.reason IN ('ttt', 'drift');")
check "full disk: every adaptation's version has its published average (versions, without: $nav)" \
    awk -F'|' '{ exit !($1 > 0 && $2 == 0) }' <<< "$nav"
ndiff=$(sql "SELECT count(*) FROM (SELECT v.number FROM versions v JOIN series s ON s.id = v.series_id WHERE s.key LIKE 'f%' AND v.reason IN ('ttt', 'drift') GROUP BY v.number HAVING count(DISTINCT v.average) > 1);")
check "full disk: the same for every series, as their values are ($ndiff numbers differ)" \
    test "$ndiff" -eq 0
na=$(sql "SELECT count(*), count(DISTINCT a.series_id) FROM audit a JOIN series s ON s.id = a.series_id WHERE s.key LIKE 'f%' AND a.event IN ('adapt_accepted', 'adapt_rejected');")
check "full disk: and their adaptations in the audit log (rows, series: $na)" \
    awk -F'|' -v ns=$NS '{ exit !($2 == ns && $1 % ns == 0 && $1 > 0) }' <<< "$na"
group_rest() {
    kcat -C -G loss -b "$BS" -X partition.assignment.strategy=cooperative-sticky \
        -X session.timeout.ms=6000 -X auto.offset.reset=earliest -X enable.auto.commit=false \
        -e -q -f '%p %o\n' measurements 2>/dev/null | wc -l
}
rest=$(group_rest) # (once: a second member of the group may get nothing)
check "full disk: Kafka's committed offsets are at the end, none lost ($rest left)" \
    test "$rest" -eq 0

# ---- 7. SIGTERM while the dead-letter topic is down ---------------------------
r0=$(readies)
start_daemon
wait_for 90 ready_more_than "$r0" || bail "no READY=1 after restart"
d0=$(count_topic deadletter) # (not while it has no leader: kcat waits)
mbctl "leader deadletter 0 -1"
before=$(stored_next "$P")
rows() { sql "SELECT (SELECT count(*) FROM forecasts) || ' ' || (SELECT count(*) FROM versions) || ' ' || (SELECT count(*) FROM audit);"; }
rows0=$(rows)
# the bad message and values after it, at once: the held batch holds
# their forecasts (and adaptations) too
{ echo 'k1:{"series":"k1","ts":"not a time either","value":1}'; lines 22 30 k1; } |
    kcat -P -b "$BS" -t measurements -K: 2>/dev/null
taken() { grep -q "dead letter (partition $P offset $before)" "$WORK/daemon.log"; }
wait_for 20 taken || diag "the daemon did not take the message before SIGTERM"
t0=$(date +%s.%N)
kill -TERM "$daemon_pid"
# (a zombie until waited for: gone means no such process or state Z)
gone() { ! test -e /proc/$daemon_pid || grep -q '^[0-9]* (.*) Z' /proc/$daemon_pid/stat; }
wait_for 25 gone || kill -9 "$daemon_pid"
wait "$daemon_pid"
rc=$?
took=$(python3 -c "import time; print('%.1f' % ($(date +%s.%N) - $t0))")
check "SIGTERM with the dead-letter topic down: exit status 1 (got $rc)" test $rc -eq 1
check "... within kafka.stop_timeout_ms = 3 s and the close (${took} s < 15 s)" \
    python3 -c "import sys; sys.exit(0 if $took < 15 else 1)"
check "... saying what replays and from where" \
    grep -q "gave up after .* from partition $P from offset $before" "$WORK/daemon.log"
check "... its offset not stored ($(stored_next "$P") = $before)" test "$(stored_next "$P")" = "$before"
held=$(sed -n 's/.*gave up after .* s: \([0-9]*\) messages.*/\1/p' "$WORK/daemon.log" | tail -1)
check "... the batch it gave up held the values after the bad message too (${held:-no} messages)" \
    test "${held:-0}" -gt 1
check "... and none of its rows is stored (forecasts, versions, audit: $rows0 before, $(rows) after)" \
    test "$(rows)" = "$rows0"
mbctl "leader deadletter 0 1"
start_daemon
check "restart: the message replays and its dead letter is delivered" \
    wait_for 60 topic_ge deadletter $((d0 + 1))
check "restart: its offset is stored" wait_for 20 at_end "$P"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
check "restart: the stop exits 0 (got $rc)" test $rc -eq 0

echo "1..$n"
[ "$failed" -eq 0 ]
