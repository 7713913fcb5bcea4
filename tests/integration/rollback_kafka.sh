#!/usr/bin/env bash
# An operator's rollback through Kafka reaches the series' owner (TAP; issue
# 12 item 5).  Two `driftcast run` daemons in one group (cooperative-sticky,
# session timeout 4 s) against driftcast-mockbroker, each with its own
# database, with the state topic on.  Host b serves every series first and
# makes their versions; host a joins and takes a partition (its series
# restored from the state topic).  For a series that now lives on a:
# `rollback --db b.db` refuses and points to the Kafka form; `rollback
# --brokers ... --db b.db` to a version only b's database holds is applied
# by a within seconds, in a's database once (version, parent, restored
# version, reason and operator), and a's forecasts use it; after a stops
# and b takes the series back, nobody applies it again.  Control records
# for an unknown series, an unknown version and one on another partition
# than the series' readings land in the dead-letter topic with their
# reasons.
#
# Needs: DRIFTCAST, MOCKBROKER, DATA (set by meson), kcat, python3, sqlite3.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/tap.sh"
. "$HERE/hosts.sh"

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
DATA=${DATA:?DATA must name data/ETTh1.csv}
WORK=$(tap_workdir rollback-kafka)
L=24
H=4
HOSTS=(a b)
cleanup() {
    tap_kill_pids
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT

# rows FROM TO: rows [FROM, TO) of the seven ETTh1 columns
rows() { hosts_ett_rows "$@"; }
hosts_cluster 800 2

hosts_conf rollback driftcast-state a b
q() { sqlite3 -cmd ".timeout 5000" "$WORK/$1.db" "$2" 2>>"$WORK/sqlite.err"; } # q HOST SQL
count_topic() {
    kcat -C -b "$BS" -t "$1" -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l
}
topic_ge() { test "$(count_topic "$1")" -ge "$2"; }
active_on() { # active_on HOST: the series HOST serves, one per line
    q "$1" "SELECT key FROM series WHERE status = 'active' ORDER BY key"
}
manual_rows() { # manual_rows HOST SERIES: its operator rollbacks in the audit
    q "$1" "SELECT count(*) FROM audit a JOIN series s ON s.id = a.series_id
            WHERE s.key = '$2' AND a.event = 'manual'"
}
rows_eq() { test "$(manual_rows "$1" "$2")" = "$3"; }
# (wait_for runs a command again and again: a $(...) in its arguments would
# be evaluated once, so every polled condition is a function)
versions_made() {
    test "$(q b "SELECT count(*) FROM series WHERE current_version >= 4")" -ge 7
}
serves_some() { test -n "$(active_on "$1")"; }
serves() { active_on "$1" | grep -qx "$2"; } # serves HOST SERIES

t0=$SECONDS
start_host b
wait_for 20 grep -q "assigned at offset" "$WORK/b.log" || bail "host b got no partition"
produce 0 80
wait_for 45 versions_made ||
    bail "host b made no versions: $(q b "SELECT key, current_version FROM series" | tr '\n' ' ')"
start_host a
wait_for 30 grep -q "assigned at offset" "$WORK/a.log" || bail "host a got no partition"
produce 80 100
wait_for 30 serves_some a || bail "no series on host a"
S=$(active_on a | head -1)
diag "series $S lives on host a now ($((SECONDS - t0)) s)"
# a applies the rest of S's partition first: a version it made after the
# current one is read below would be the rollback's parent instead (seen
# on a loaded machine)
P=$(q a "SELECT partition FROM series WHERE key = '$S'")
end_of() { # end_of PARTITION: its next offset
    kcat -C -b "$BS" -t measurements -p "$1" -o beginning -e -q -f '%o\n' 2>/dev/null |
        awk 'END { print $1 + 1 }'
}
END_P=$(end_of "$P")
applied_through() {
    test "$(q a "SELECT next_offset FROM kafka_offsets WHERE topic = 'measurements' AND partition = $P")" = "$END_P"
}
wait_for 30 applied_through || bail "host a did not apply partition $P to its end ($END_P)"
# a version made on b, before the move: only b's database holds it
V=2
check "version $V of $S is in b's database only" \
    test "$(q b "SELECT count(*) FROM versions v JOIN series s ON s.id = v.series_id
                WHERE s.key = '$S' AND v.number = $V")$(q a "SELECT count(*)
                FROM versions v JOIN series s ON s.id = v.series_id
                WHERE s.key = '$S' AND v.number = $V")" = 10

# ---- the --db form on the host that handed it over --------------------------

"$BIN" rollback --db "$WORK/b.db" --series "$S" --to-version $V \
    --reason "bad sensor" > "$WORK/db.out" 2> "$WORK/db.err"
rc=$?
check "rollback --db on the host that handed the series over exits 1 (got $rc)" test $rc -eq 1
check "... saying so" grep -q "handed over to another host" "$WORK/db.err"
check "... and pointing to the Kafka form" grep -q "driftcast rollback --brokers" "$WORK/db.err"

# ---- the Kafka form: applied by the owner -------------------------------------

cur=$(q a "SELECT current_version FROM series WHERE key = '$S'")
t_start=$SECONDS
"$BIN" rollback --brokers "$BS" --topic measurements --series "$S" \
    --to-version $V --reason "bad sensor" --by alice --db "$WORK/b.db" \
    > "$WORK/kafka.out" 2> "$WORK/kafka.err"
rc=$?
check "rollback --brokers exits 0 once the broker has it (got $rc)" test $rc -eq 0
check "... and says where it went" grep -q "sent to measurements partition" "$WORK/kafka.out"
check "host a applies it within 10 s" wait_for 10 rows_eq a "$S" 1
diag "applied after $((SECONDS - t_start)) s"
check "a's log names the operator" \
    grep -q "operator rollback from Kafka .*by alice.*: $S now runs" "$WORK/a.log"
new=$(q a "SELECT current_version FROM series WHERE key = '$S'")
row=$(q a "SELECT v.reason, v.parent_number, v.restored_from FROM versions v
           JOIN series s ON s.id = v.series_id WHERE s.key = '$S' AND v.number = $new")
check "a's new current version $new is 'manual', parent $cur, restored from $V (got $row)" \
    test "$new" -gt "$cur" -a "$row" = "manual|$cur|$V"
note=$(q a "SELECT a.reason FROM audit a JOIN series s ON s.id = a.series_id
            WHERE s.key = '$S' AND a.event = 'manual'")
check "the audit row carries reason, operator and the carried block ($note)" \
    eval 'case "$note" in *"by alice"*"block carried"*"bad sensor"*) true ;; *) false ;; esac'
check "its content is version $V's (the same adapter blob as in b's database)" \
    test "$(q a "SELECT hex(v.adapter) FROM versions v JOIN series s ON s.id = v.series_id
                 WHERE s.key = '$S' AND v.number = $new")" = \
         "$(q b "SELECT hex(v.adapter) FROM versions v JOIN series s ON s.id = v.series_id
                 WHERE s.key = '$S' AND v.number = $V")"
check "host b recorded nothing" rows_eq b "$S" 0
produce 100 110
used() {
    kcat -C -b "$BS" -t forecasts -o beginning -e -q -f '%s\n' 2>/dev/null |
        python3 -c "
import sys, json
sys.exit(0 if any(m['series'] == '$S' and m['adapter_version'] == $new
                  for m in map(json.loads, sys.stdin)) else 1)"
}
check "a's next forecasts of $S come from version $new" wait_for 10 used

# ---- refusals into the dead-letter topic --------------------------------------

dead0=$(count_topic deadletter)
"$BIN" rollback --brokers "$BS" --topic measurements --series ett/NOSUCH \
    --to-version 1 --reason test > /dev/null 2>&1
check "a record for an unknown series is delivered (exit $?)" test $? -eq 0
"$BIN" rollback --brokers "$BS" --topic measurements --series "$S" \
    --to-version 9999 --reason test > /dev/null 2>&1
# the right key on the wrong partition (a producer with another
# partitioner): refused by whoever owns that partition
P=$(q a "SELECT partition FROM series WHERE key = '$S'")
printf '{"control":"rollback","series":"%s","to_version":1,"reason":"x"}' "$S" |
    kcat -P -b "$BS" -t measurements -p $((1 - P)) -k "$S" \
        -H driftcast-control=rollback 2>/dev/null
wait_for 10 topic_ge deadletter $((dead0 + 3))
kcat -C -b "$BS" -t deadletter -o beginning -e -q -f '%h\n' > "$WORK/dead.hdr" 2>/dev/null
check "the unknown series is dead-lettered as unknown_series" \
    grep -q "driftcast-reason=unknown_series: ett/NOSUCH" "$WORK/dead.hdr"
check "the unknown version is dead-lettered as unknown_version" \
    grep -q "driftcast-reason=unknown_version: .*$S.*9999" "$WORK/dead.hdr"
check "a record on another partition than the series' readings is refused" \
    grep -q "driftcast-reason=unknown_series: $S: its readings arrive on input partition $P, this record on $((1 - P))" "$WORK/dead.hdr"
check "nothing else was applied on a" rows_eq a "$S" 1

# ---- recorded once: the series moves back to b --------------------------------

kill -TERM "${host_pid[a]}"
wait "${host_pid[a]}"
rc=$?
check "host a exits 0 after SIGTERM (got $rc; a sanitizer build fails here on a leak)" test $rc -eq 0
produce 110 120
check "b takes the series back" wait_for 20 serves b "$S"
sleep 1
check "b did not apply the rollback again (restored it from the state topic)" rows_eq b "$S" 0
check "b continues from a's rollback version $new or later" \
    test "$(q b "SELECT current_version FROM series WHERE key = '$S'")" -ge "$new"
check "a's database holds the rollback once" rows_eq a "$S" 1

diag "total $((SECONDS - t0)) s"
echo "1..$n"
exit $((failed > 0))
