#!/usr/bin/env bash
# `driftcast status`, /healthz, /readyz and the metrics behind the alert
# rules and the dashboard, against a running daemon on driftcast-mockbroker
# (librdkafka's mock cluster over TCP).  Output: TAP.
#
# Covers: status with nothing listening (exit 3, says where it asked);
# the daemon ready (exit 0) with its partitions, series, forecasts,
# adaptations and dead letters in the text and the JSON; /healthz and
# /readyz 200; the process_* metrics, the realised error histograms, the
# worse-than-frozen ratio; every metric the Prometheus rules and the
# Grafana dashboard query is in /metrics; a second member joins the group
# and driftcast_series counts only the series of the partitions each owns;
# while the daemon drains to stop, /readyz is 503 "stopping" and status
# exits 1 while /healthz stays 200.
#
# Needs: DRIFTCAST, MOCKBROKER (set by meson), SOURCE_ROOT, kcat, python3.
set -u

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
SRC=${SOURCE_ROOT:?SOURCE_ROOT must name the source tree}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tap.sh
. "$HERE/tap.sh"
WORK=$(tap_workdir status)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    tap_cleanup_workdir "$WORK"
}
trap cleanup EXIT
bail() {
    echo "Bail out! $*"
    tail -n 20 "$WORK"/daemon*.log 2>/dev/null | sed 's/^/#   /'
    exit 1
}
L=32
H=8
T0=1700000000
SERIES="s1 s2 s3 s4 s5 s6"

tap_train_small "$BIN" "$WORK" $T0 $L $H 7 || bail "driftcast train failed"

"$MB" -t measurements:2 -t forecasts:2 -t deadletter:1 \
    -f "$WORK/bootstraps" -c "$WORK/control" > "$WORK/mb.log" 2>&1 &
pids+=($!)
wait_for 10 test -s "$WORK/bootstraps" || bail "mock broker did not start"
BS=$(cat "$WORK/bootstraps")
mbctl() { echo "$*" > "$WORK/control"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port1=$(free_port)
port2=$(free_port)
write_conf() { # write_conf FILE DB PORT
    cat > "$1" <<EOF
[kafka]
brokers = $BS
group = status-group
input_topic = measurements
output_topic = forecasts
deadletter_topic = deadletter
# the mock broker waits session.timeout.ms - 1 s for members to rejoin
session_timeout_ms = 3000
[storage]
path = $2
batch_ms = 200
[model]
path = $WORK/model.dcm
lookback = $L
horizon = $H
[ttt]
every = 8
shadow_every = 1
[metrics]
listen = 127.0.0.1:$3
[librdkafka.consumer]
fetch.wait.max.ms = 10
# a member joining is noticed at the next heartbeat
heartbeat.interval.ms = 500
EOF
}
write_conf "$WORK/d1.conf" "$WORK/d1.db" "$port1"
write_conf "$WORK/d2.conf" "$WORK/d2.db" "$port2"

# get PORT PATH: the body on stdout; exit 0 for HTTP 200, 1 for 503, 2
# otherwise (bash's /dev/tcp: a python3 per request is slow to start)
get() {
    local reply code
    reply=$({ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || exit 2
        printf 'GET %s HTTP/1.0\r\nConnection: close\r\n\r\n' "$2" >&3
        timeout 5 cat <&3) || return 2
    code=$(sed -n '1s/^HTTP\/1\.[01] \([0-9]*\).*/\1/p' <<<"$reply" | tr -d '\r')
    printf '%s' "${reply#*$'\r\n\r\n'}"
    case $code in 200) return 0 ;; 503) return 1 ;; *) return 2 ;; esac
}
code_of() { get "$1" "$2" > /dev/null; echo $?; } # 0: 200, 1: 503, 2: other
answers() { test "$(code_of "$1" "$2")" = "$3"; } # answers PORT PATH CODE_OF

produce_steps() { # produce_steps FROM TO
    for s in $SERIES; do
        awk -v s=$s -v from=$1 -v to=$2 -v t0=$T0 'BEGIN {
            for (i = from; i < to; i++)
                printf "%s:{\"series\":\"%s\",\"ts\":%d,\"value\":%.4f}\n",
                    s, s, t0 + i * 3600, 10 + 3 * sin(i * 2 * 3.14159 / 24)
        }'
    done | kcat -P -b "$BS" -t measurements -K:
}
count_topic() { kcat -C -b "$BS" -t "$1" -o beginning -e -q -f '%o\n' 2>/dev/null | wc -l; }
topic_ge() { test "$(count_topic "$1")" -ge "$2"; }

# ---- nobody listening ----------------------------------------------------------

"$BIN" status --set metrics.listen=127.0.0.1:$port1 > "$WORK/none.out" 2> "$WORK/none.err"
rc=$?
check "status with no daemon exits 3 (got $rc)" test $rc -eq 3
check "... and says where it asked" grep -q "no answer from http://127.0.0.1:$port1/status" "$WORK/none.err"
check "... and where that address came from (--set, not the defaults)" \
    grep -q "(metrics.listen from --set)" "$WORK/none.err"
"$BIN" status --set metrics.listen=off > /dev/null 2> "$WORK/off.err"
rc=$?
check "status with metrics.listen = off is a usage error (exit $rc)" test $rc -eq 2

# ---- one daemon, ready ------------------------------------------------------------

"$BIN" run --config "$WORK/d1.conf" > "$WORK/daemon1.log" 2>&1 &
d1=$!
pids+=($d1)
check "/healthz answers 200 once the daemon listens" wait_for 20 answers $port1 /healthz 0
check "/readyz answers 200 once partitions are assigned" wait_for 30 answers $port1 /readyz 0

produce_steps 0 60
echo 's1:{"series":"s1","ts":"not a time","value":1}' | kcat -P -b "$BS" -t measurements -K:
n_series=$(echo $SERIES | wc -w)
expected=$(( n_series * (60 - L + 1) ))
wait_for 60 topic_ge forecasts $expected || diag "only $(count_topic forecasts) of $expected forecasts"
status_ok() { # the status reports every forecast and the dead letter
    "$BIN" status --config "$WORK/d1.conf" --format json > "$WORK/s1.json" 2>/dev/null &&
        python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["since_start"]["forecasts"] >= int(sys.argv[2]) and j["since_start"]["dead_letters"] >= 1 else 1)' \
            "$WORK/s1.json" $expected
}
check "status --format json exits 0 and counts every forecast" wait_for 10 status_ok
check "status JSON: version, ready, partitions with lag, series, rates, storage, last minute and since start" \
    python3 - "$WORK/s1.json" "$n_series" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
assert j["version"] and j["pid"] > 0 and j["uptime_seconds"] >= 0, j
assert j["healthy"] is True and j["ready"] is True and j["not_ready"] == [], j
assert sorted(p["partition"] for p in j["partitions"]) == [0, 1], j["partitions"]
assert all(p["lag"] == 0 for p in j["partitions"]), j["partitions"]
assert j["series"] == n and j["series_in_memory"] == n, j
assert j["series_scored"] == n, j
assert j["model"] == "model.dcm" and j["input_topic"] == "measurements", j
assert j["messages_per_second"] > 0 and j["forecasts_per_second"] > 0, j
assert j["last_minute"]["forecasts"] == j["since_start"]["forecasts"], j
assert j["since_start"]["dead_letters"] == 1, j
assert j["since_start"]["accepted"] + j["since_start"]["rejected"] > 0, j
assert j["storage"] == "ok", j
EOF
"$BIN" status --config "$WORK/d1.conf" > "$WORK/s1.txt" 2>&1
rc=$?
check "status (text) exits 0 for a ready daemon" test $rc -eq 0
check "... and prints the summary" grep -q '^state: *ready$' "$WORK/s1.txt"
check "... partitions with their lag" grep -q '^partitions: *2 of measurements assigned, total lag 0: \[[01]\] lag 0, \[[01]\] lag 0$' "$WORK/s1.txt"
check "... series owned" grep -q "^series: *$n_series owned ($n_series in memory)" "$WORK/s1.txt"
check "... adaptations, dead letters, storage" \
    grep -q '^adaptations: *last minute [0-9]* accepted' "$WORK/s1.txt"
check "... dead letters" grep -q '^dead letters: *1 last minute, 1 since start$' "$WORK/s1.txt"
check "... storage ok" grep -q '^storage: *ok$' "$WORK/s1.txt"
sed 's/^/#   /' "$WORK/s1.txt"
check "/healthz says ok" test "$(get $port1 /healthz)" = "ok"
check "/readyz says ok" test "$(get $port1 /readyz)" = ok

# ---- metrics ------------------------------------------------------------------------

get $port1 /metrics > "$WORK/metrics.txt"
check "metrics: process_* of the Prometheus client libraries" \
    python3 - "$WORK/metrics.txt" <<'EOF'
import re, sys, time
t = open(sys.argv[1]).read()
def v(name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", t, re.M)
    assert m, name
    return float(m.group(1))
assert v("process_cpu_seconds_total") > 0
assert v("process_resident_memory_bytes") > 1e6
assert abs(v("process_start_time_seconds") - time.time()) < 600
assert v("process_open_fds") > 3
assert "# TYPE process_cpu_seconds_total counter" in t
EOF
check "metrics: realised error histograms of adapted and frozen, worse-than-frozen ratio, owned series" \
    python3 - "$WORK/metrics.txt" "$n_series" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
def v(name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", t, re.M)
    assert m, name
    return float(m.group(1))
for model in ("adapted", "frozen"):
    c = v('driftcast_realised_error_count{model="%s"}' % model)
    assert c > 0, model
    assert v('driftcast_realised_error_bucket{model="%s",le="+Inf"}' % model) == c
    assert v('driftcast_realised_error_sum{model="%s"}' % model) > 0
r = v("driftcast_series_worse_than_frozen_ratio")
assert 0 <= r <= 1, r
assert v("driftcast_series") == int(sys.argv[2])
assert v("driftcast_ready") == 1 and v("driftcast_healthy") == 1
assert "# TYPE driftcast_realised_error histogram" in t
EOF
check "every metric of the alert rules and the dashboard is in /metrics" \
    python3 "$HERE/check_metrics.py" "$WORK/metrics.txt" \
    "$SRC/contrib/prometheus/driftcast.rules.yml" "$SRC/contrib/grafana/driftcast.json"

# ---- a second member: each counts the series of its own partitions -----------------------

"$BIN" run --config "$WORK/d2.conf" > "$WORK/daemon2.log" 2>&1 &
d2=$!
pids+=($d2)
nparts() { get "$1" /status | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["partitions"]))'; }
split() { test "$(nparts $port1)" = 1 && test "$(nparts $port2)" = 1; }
check "a second member takes one of the two partitions" wait_for 60 split
produce_steps 60 64
owned_sum() { # both members have published their series of the new values
    local a b m
    a=$(get $port1 /status) && b=$(get $port2 /status) || return 1
    python3 - "$a" "$b" "$n_series" <<'EOF'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
n = int(sys.argv[3])
print("# member 1 owns %d series (%d in memory), member 2 owns %d" %
      (a["series"], a["series_in_memory"], b["series"]))
# the revoked partition's series are forgotten (run_handover_out): the first
# member holds only its own in memory
sys.exit(0 if a["series"] + b["series"] == n and a["series_in_memory"] == a["series"] else 1)
EOF
}
check "driftcast_series counts owned series: the members' sum is $n_series, the first holds only its own in memory" \
    wait_for 30 owned_sum
owned_sum | head -1
metric_is() { # metric_is PORT NAME VALUE
    get "$1" /metrics | grep -qx "$2 $3"
}
owned1=$(get $port1 /status | python3 -c 'import json,sys; print(json.load(sys.stdin)["series"])')
check "member 1's driftcast_series is its $owned1 owned series, driftcast_series_in_memory too (the rest forgotten)" \
    eval "metric_is $port1 driftcast_series $owned1 && metric_is $port1 driftcast_series_in_memory $owned1 && test $owned1 -lt $n_series"

# ---- draining to stop: not ready, still alive --------------------------------------------

# Every broker answers 2 s late: the final synchronous offset commit keeps
# the daemon in its drain for that long.
mbctl "rtt -1 2000"
kill -TERM $d2
stopping() { test "$(code_of $port2 /readyz)" = 1 && get $port2 /readyz | grep -q 'stopping'; }
check "while draining, /readyz answers 503 \"stopping\"" wait_for 3 stopping
"$BIN" status --config "$WORK/d2.conf" > "$WORK/s2.txt" 2>&1
rc=$?
check "... status exits 1 (got $rc) and says why" eval 'test $rc -eq 1 && grep -q "NOT READY: stopping" "$WORK/s2.txt"'
check "... /healthz still 200" answers $port2 /healthz 0
mbctl "rtt -1 0"
wait $d2
check "the second member stopped cleanly" test $? -eq 0
kill -TERM $d1
wait $d1
check "the first member stopped cleanly" test $? -eq 0

echo "1..$n"
[ "$failed" -eq 0 ]
