#!/usr/bin/env bash
# A host killed with -9 between a batch and the next offset commit (TAP):
# its database is then ahead of the group's commit.  Every durable batch
# saved the recent values of the series it changed with its offsets, so,
# started again, the host continues from its own database and every
# (series, origin) keeps its forecast (before, each series refilled a
# lookback: L - 1 origins lost).  A database without them (written by a
# driftcast that saved them only at a clean stop: emulated by deleting
# them) starts at the group's commit from the state topic, whose states
# carry the recent values, and applies the messages after it again; the
# versions made again join the lineage after the newest one here, never
# reusing a number.  And when the state topic holds nothing, the database
# is kept.
#
# Needs: DRIFTCAST, MOCKBROKER, DATA (set by meson), kcat, python3, sqlite3.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/tap.sh"
. "$HERE/hosts.sh"

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
DATA=${DATA:?DATA must name data/ETTh1.csv}
WORK=$(tap_workdir crash)
L=24
H=4
HOSTS=(a)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT

rows() { hosts_ett_rows "$@"; } # the 7 ETTh1 columns of rows [FROM, TO)
NSERIES=7
hosts_cluster 600 2 driftcast-state-new:2
hosts_conf crash driftcast-state a
# no periodic commit: only a clean stop (or a revoke) commits, so the
# batches after a start are in SQLite and beyond the group's commit
sed -i 's/^commit_interval_ms = .*/commit_interval_ms = 600000/' "$WORK/a.conf"
assigned() { grep -c "assigned at offset" "$WORK/a.log" 2>/dev/null; }
assigned_ge() { test "$(assigned)" -ge "$1"; }

# crash_after_two_batches FROM MID TO: rows [FROM, MID) forecast (the first
# batch after a start commits at once), then [MID, TO) forecast and durable
# but not committed, then kill -9
crash_after_two_batches() {
    produce "$1" "$2"
    wait_for 60 distinct_ge "$(expected "$2")" || bail "no forecasts for rows $1-$(($2 - 1))"
    sleep 1
    produce "$2" "$3"
    wait_for 60 distinct_ge "$(expected "$3")" || bail "no forecasts for rows $2-$(($3 - 1))"
    sleep 0.5 # the last batch durable (the database is what a restart reads)
    kill -9 "${host_pid[a]}"
    wait "${host_pid[a]}" 2>/dev/null
}

start_host a
wait_for 40 assigned_ge 2 || bail "host a was not assigned its partitions"
produce 0 100
wait_for 60 distinct_ge "$(expected 100)" || bail "no forecasts for rows 0-99"
kill -TERM "${host_pid[a]}"
wait "${host_pid[a]}"
check "a clean stop exits 0" test $? -eq 0

since_start() { # the log of host a's last start
    awk '/ running: /{buf = ""} {buf = buf $0 "\n"} END {printf "%s", buf}' "$WORK/a.log"
}
recent_rows() { sqlite3 "$WORK/a.db" 'SELECT count(*) FROM series_recent'; }

# ---- a crash: the database holds the recent values of every series ---------
start_host a
wait_for 40 assigned_ge 4 || bail "host a was not assigned again"
crash_after_two_batches 100 130 160
check "the crash left every series' recent values saved ($(recent_rows) of $NSERIES)" \
    test "$(recent_rows)" -eq "$NSERIES"
start_host a
wait_for 40 assigned_ge 6 || bail "host a was not assigned after the crash"
produce 160 200
wait_for 60 distinct_ge "$(expected 200)"
check "after the crash every (series, origin) is forecast" \
    distinct_ge "$(expected 200)"
check "... from this host's database, with the recent values" \
    test "$(since_start | grep -c "series from this host.s database ([1-9][0-9]* with their recent values)")" -eq 2
not_from_topic() { ! since_start | grep -q 'starting at offset [0-9]* from the state topic'; }
check "... not from the state topic" not_from_topic
kill -TERM "${host_pid[a]}"
wait "${host_pid[a]}"

# ---- a crash, the database without recent values: from the state topic -----
start_host a
wait_for 40 assigned_ge 8 || bail "host a was not assigned again"
crash_after_two_batches 200 230 260
sqlite3 "$WORK/a.db" 'DELETE FROM series_recent'
start_host a
wait_for 40 assigned_ge 10 || bail "host a was not assigned after the second crash"
produce 260 300
wait_for 60 distinct_ge "$(expected 300)"
check "after a crash without saved values every (series, origin) is forecast" \
    distinct_ge "$(expected 300)"
check "... the restart started at the group's commit, from the state topic" \
    grep -q "ahead of the group's commit .* starting at offset [0-9]* from the state topic" \
    "$WORK/a.log"
check "... whose states carried the recent values" \
    grep -q "[1-9][0-9]* from the state topic" "$WORK/a.log"
check "... and the series' published averages" \
    grep -q "states restored, [1-9][0-9]* with a published average" "$WORK/a.log"
check "... and their recalibrations" \
    grep -q "states restored, .* [1-9][0-9]* with a recalibration" "$WORK/a.log"
kill -TERM "${host_pid[a]}"
wait "${host_pid[a]}"
check "no storage error (a version number used twice)" \
    sh -c "! grep -q 'storage:' '$WORK/a.log'"
check "every version number is used once per series" test "$(sqlite3 "$WORK/a.db" \
    'SELECT count(*) FROM (SELECT series_id, number FROM versions GROUP BY 1, 2 HAVING count(*) > 1)')" -eq 0
check "the versions made before the crash stay; the states taken later come after them" \
    test "$(sqlite3 "$WORK/a.db" "SELECT count(*) FROM versions v WHERE reason = 'handover' AND number <= (SELECT max(number) FROM versions w WHERE w.series_id = v.series_id AND w.reason <> 'handover' AND w.id < v.id)")" -eq 0
hav=$(sqlite3 "$WORK/a.db" "SELECT count(*), count(average) FROM versions WHERE reason = 'handover'")
check "the versions taken from the state topic store the averages it carried (versions, with one: $hav)" \
    awk -F'|' '{ exit !($2 > 0) }' <<< "$hav"
hosts_versions_back > "$WORK/back"
check "adapter_version never goes back within a series ($(cat "$WORK/back") times)" \
    test "$(cat "$WORK/back")" -eq 0

# ---- the same crash, the state topic holding nothing (just created) ----------
# Starting at the commit would put every series back on the base adapter:
# this host's database (its adapters, lookbacks refilling) is the better state.
sed -i 's/^state_topic = .*/state_topic = off/' "$WORK/a.conf"
start_host a
wait_for 40 assigned_ge 12 || bail "host a was not assigned without a state topic"
crash_after_two_batches 300 330 360
sqlite3 "$WORK/a.db" 'DELETE FROM series_recent'
sed -i 's/^state_topic = .*/state_topic = driftcast-state-new/' "$WORK/a.conf"
start_host a
wait_for 40 assigned_ge 14 || bail "host a was not assigned with the new state topic"
check "an empty state topic: the database's state is kept" \
    grep -q "the state topic holds no state of it: continuing from this host's database" \
    "$WORK/a.log"
check "... no series back on the base adapter" \
    test "$(since_start | grep -c '[1-9][0-9]* from the base adapter')" -eq 0
check "... its series from the database, on both partitions" \
    test "$(since_start | grep -c '[1-9][0-9]* series from this host.s database')" -eq 2
kill -TERM "${host_pid[a]}"
wait "${host_pid[a]}"
echo "1..$n"
