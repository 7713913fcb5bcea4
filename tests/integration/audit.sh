#!/usr/bin/env bash
# Integration test of the audit topic (kafka.audit_topic) through
# `driftcast run` against driftcast-mockbroker, kcat consuming (TAP): every
# audit row of the database -- new series, adaptations, an operator's
# rollback from another process -- is on the topic once, keyed by its
# series, with the same fields as the row; after a clean stop and a start
# with the Kafka Connect envelope (kafka.audit_format = connect) only the
# new rows are published (the cursor is stored), each with schema and
# payload; after a kill -9 and a start, no row is missing (at least once).
#
# Needs: DRIFTCAST, MOCKBROKER (set by meson), kcat, python3, sqlite3.
set -u

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/tap.sh"
WORK=$(tap_workdir audit)
L=32
H=8
T0=1700000000
bail() { tap_bail "$WORK/daemon.log" "$@"; }
cleanup() {
    tap_kill_pids
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT

tap_train_small "$BIN" "$WORK" $T0 $L $H 5 || bail "driftcast train failed"

"$MB" -t measurements:2 -t forecasts:1 -t deadletter:1 -t audit:2 \
    -f "$WORK/bootstraps" -c "$WORK/control" > "$WORK/mb.log" 2>&1 &
pids+=($!)
wait_for 10 test -s "$WORK/bootstraps" || bail "mock broker did not start"
BS=$(cat "$WORK/bootstraps")

config() { # config FORMAT
    cat > "$WORK/driftcast.conf" <<EOF
[kafka]
brokers = $BS
group = it-audit
input_topic = measurements
output_topic = forecasts
deadletter_topic = deadletter
audit_topic = audit
audit_format = $1
commit_interval_ms = 200
session_timeout_ms = 6000
[storage]
path = $WORK/driftcast.db
[model]
path = $WORK/model.dcm
lookback = $L
horizon = $H
[ttt]
every = 8
[metrics]
listen = off
[librdkafka.consumer]
fetch.wait.max.ms = 10
EOF
}

# produce FROM TO: hourly values FROM..TO-1 of four series
produce() {
    awk -v t0=$T0 -v a=$1 -v b=$2 'BEGIN {
        for (i = a; i < b; i++)
            for (s = 1; s <= 4; s++)
                printf "m%d:{\"series\":\"m%d\",\"ts\":%d,\"value\":%.4f}\n",
                    s, s, t0 + i * 3600, 10 + s + 3 * sin(i * 2 * 3.14159 / 24) + (i > 60 ? 2 : 0)
    }' > "$WORK/input.txt"
    kcat -P -b "$BS" -t measurements -K: -l "$WORK/input.txt" 2>/dev/null || bail "kcat -P failed"
}
start() {
    "$BIN" run --config "$WORK/driftcast.conf" >> "$WORK/daemon.log" 2>&1 &
    daemon_pid=$!
    pids+=($daemon_pid)
}
applied() { # input messages applied (SQLite's offsets)
    sqlite3 "$WORK/driftcast.db" "SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets WHERE topic = 'measurements'" 2>/dev/null || echo 0
}
applied_at_least() { test "$(applied)" -ge "$1"; }
# every row of the database on the topic (not a count: after a kill -9 the
# topic holds rows twice, so a count is reached with rows still missing)
all_published() { compare atleast > /dev/null; }
topic_rows() {
    kcat -C -b "$BS" -t audit -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l
}
# compare: every audit row of the database on the topic (with its fields),
# keyed by its series; ARG once: each exactly once, else at least once
compare() {
    kcat -C -b "$BS" -t audit -o beginning -e -q -f '%k\t%s\n' 2>/dev/null > "$WORK/audit.txt"
    sqlite3 -json "$WORK/driftcast.db" "SELECT a.id, s.key AS series, a.ts, a.event, \
        a.triggered_by AS \"trigger\", a.version_from, a.version_to, a.reason \
        FROM audit a JOIN series s ON s.id = a.series_id ORDER BY a.id" > "$WORK/rows.json"
    python3 - "$WORK/audit.txt" "$WORK/rows.json" "$1" "$WORK/driftcast.db" <<'PY'
import json, sys
msgs, rows, mode, db = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = json.load(open(rows)) if open(rows).read().strip() else []
seen, bad = {}, []
for line in open(msgs):
    key, text = line.rstrip("\n").split("\t", 1)
    m = json.loads(text)
    if "payload" in m:
        if m.get("schema", {}).get("type") != "struct":
            bad.append("envelope without a struct schema")
        m = m["payload"]
    if key != m["series"]:
        bad.append("key %r for series %r" % (key, m["series"]))
    if m["db"] != db:
        bad.append("db %r" % m["db"])
    seen.setdefault(m["id"], []).append(m)
for r in rows:
    ms = seen.get(r["id"], [])
    if not ms:
        bad.append("row %d (%s %s) missing" % (r["id"], r["series"], r["event"]))
        continue
    if mode == "once" and len(ms) != 1:
        bad.append("row %d published %d times" % (r["id"], len(ms)))
    for m in ms:
        for k in ("series", "ts", "event", "trigger", "version_from", "version_to", "reason"):
            if m[k] != r[k]:
                bad.append("row %d: %s %r != %r" % (r["id"], k, m[k], r[k]))
extra = set(seen) - {r["id"] for r in rows}
if extra:
    bad.append("%d messages of no row" % len(extra))
events = sorted({r["event"] for r in rows})
print("rows %d messages %d events %s; %s" % (len(rows), sum(map(len, seen.values())),
      ",".join(events), "; ".join(bad[:5]) or "all match"))
sys.exit(1 if bad else 0)
PY
}

# finish APPLIED WHEN: once APPLIED input messages are applied and every
# row published, SIGTERM (exit 0 checked, WHEN says after what); then the
# topic compared with the database (MODE once or atleast) into $out
finish() {
    wait_for 60 applied_at_least "$1"
    wait_for 60 all_published
    kill -TERM "$daemon_pid"
    wait "$daemon_pid"
    local rc=$?
    check "the daemon stops cleanly $2 (exit $rc)" test $rc -eq 0
}
compared() { # compared MODE DESCRIPTION
    out=$(compare "$1")
    local rc=$?
    diag "$out"
    check "$2" test $rc -eq 0
}

# ---- 1: a fresh database, the topic on from the start ----------------------
config json
produce 0 100
start
wait_for 60 applied_at_least 400
# an operator's rollback while the daemon runs: a row written outside a batch
"$BIN" rollback --db "$WORK/driftcast.db" --series m1 --to-version 0 \
    --reason "audit test" > "$WORK/rollback.out" 2>&1
check "driftcast rollback against the running daemon exits 0" test $? -eq 0
finish 400 "after the first run"
compared once "every audit row is on the topic once, keyed by series, fields equal"
check "... adaptations, new series and the operator's rollback among them" \
    eval "echo '$out' | grep -q 'adapt_accepted.*init.*manual'"

# ---- 2: restart, Kafka Connect's envelope: only the new rows ---------------
before=$(topic_rows)
config connect
produce 100 160
start
finish 640 "after a restart"
compared once "after a restart only the new rows are published (none twice)"
# (two partitions: the new messages are not the last ones kcat prints)
check "... in the Kafka Connect envelope (schema and payload)" \
    test "$(kcat -C -b "$BS" -t audit -o beginning -e -q -f '%s\n' 2>/dev/null |
        grep -c '^{"schema":{"type":"struct"')" -eq $(($(topic_rows) - before))

# ---- 3: kill -9 mid-stream, start again: nothing missing -------------------
config json
produce 160 260
start
wait_for 60 applied_at_least 800
kill -9 "$daemon_pid"
wait "$daemon_pid" 2>/dev/null
start
finish 1040 "after a kill -9 and a restart"
compared atleast "after a kill -9 every audit row is on the topic (at least once)"

# ---- 4: the broker refuses produce requests: the rows published again ------
mbctl() { tap_mbctl "$WORK" "$@"; }
assigned() { test "$(grep -c 'info: assigned measurements' "$WORK/daemon.log")" -ge "$1"; }
a0=$(grep -c 'info: assigned measurements' "$WORK/daemon.log")
start
wait_for 30 assigned $((a0 + 2)) || diag "no assignment after the restart"
kill -STOP "$daemon_pid"
produce 260 300
mbctl "error Produce 64 TOPIC_AUTHORIZATION_FAILED"
kill -CONT "$daemon_pid"
refused() { grep -q 'rows not acknowledged by the broker' "$WORK/daemon.log"; }
check "refused audit messages are logged at error" wait_for 30 refused
mbctl "clear Produce"
finish 1200 "after the broker refused produce requests"
compared atleast "... and every audit row is on the topic all the same"

echo "1..$n"
exit $((failed > 0))
