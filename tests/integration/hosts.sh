# Several `driftcast run` hosts in one consumer group against the mock
# cluster, sourced after tap.sh by scale.sh, crash.sh, rollback_kafka.sh,
# state_read.sh and bench/handoff: the model and the cluster (its commands
# through tap_mbctl), each host's settings file,
# starting one, and producing rows of the script's own rows() function
# (hosts_ett_rows: DATA's rows as they are),
# and bail; what the forecasts topic holds.  Uses BIN, MB, DATA, WORK, L,
# H, HOSTS (the host names) and NSERIES; sets BS.

declare -A host_pid
bail() { # bail MESSAGE: stop the script, with every host's log tail
    echo "Bail out! $*"
    failed=1 # keeps the work directory
    for h in "${HOSTS[@]}"; do
        diag "host $h log tail:"
        tail -n 15 "$WORK/$h.log" 2>/dev/null | sed 's/^/#   /'
    done
    exit 1
}
hosts_cluster() { # hosts_cluster ROWS PARTITIONS [TOPIC:PARTS...]: a model
    # trained on the first ROWS rows of DATA (unless $WORK/model.dcm is there
    # already); the cluster with the topics (and those named), at $BS,
    # commanded through tap_mbctl "$WORK"
    head -$(($1 + 1)) "$DATA" > "$WORK/train.csv"
    [ -s "$WORK/model.dcm" ] || "$BIN" train --data "$WORK/train.csv" \
        --out "$WORK/model.dcm" --lookback $L --horizon $H --epochs 1 \
        --set model.width=16 --set model.layers=1 --quiet \
        > "$WORK/train.log" 2>&1 || bail "driftcast train failed"
    local extra=() t
    for t in "${@:3}"; do extra+=(-t "$t"); done
    "$MB" -t measurements:$2 -t forecasts:$2 -t driftcast-state:$2 -t deadletter:1 \
        "${extra[@]}" -f "$WORK/bootstraps" -c "$WORK/control" > "$WORK/mb.log" 2>&1 &
    pids+=($!)
    wait_for 10 test -s "$WORK/bootstraps" || bail "mock broker did not start"
    BS=$(cat "$WORK/bootstraps")
}
hosts_conf() { # hosts_conf GROUP STATE_TOPIC NAME...: $WORK/NAME.conf each
    local group=$1 state=$2 h
    shift 2
    for h in "$@"; do
        cat > "$WORK/$h.conf" <<CONF
[kafka]
brokers = $BS
group = $group
input_topic = measurements
output_topic = forecasts
deadletter_topic = deadletter
state_topic = $state
session_timeout_ms = 4000
commit_interval_ms = 200
[storage]
path = $WORK/$h.db
[model]
path = $WORK/model.dcm
lookback = $L
horizon = $H
[ttt]
every = 6
guard = false
[log]
level = info
[metrics]
listen = off
CONF
    done
}
start_host() { # start_host NAME [RUN-OPTION...]
    "$BIN" run --config "$WORK/$1.conf" "${@:2}" >> "$WORK/$1.log" 2>&1 &
    host_pid[$1]=$!
    pids+=($!)
}
produce() { # produce FROM TO: those rows of every series (rows FROM TO)
    rows "$1" "$2" > "$WORK/rows-$1.csv"
    "$BIN" produce --brokers "$BS" --topic measurements --series-prefix ett \
        -q "$WORK/rows-$1.csv" > /dev/null 2>&1 || bail "produce $1..$2 failed"
}
hosts_ett_rows() { # hosts_ett_rows FROM TO: DATA's header and rows [FROM, TO)
    python3 - "$DATA" "$1" "$2" <<'PY'
import sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l]
print(lines[0])
print("\n".join(lines[1 + int(sys.argv[2]):1 + int(sys.argv[3])]))
PY
}
hosts_versions_back() { # how often a series' adapter_version goes back
    # from one origin to the next, over the forecasts topic (each origin's
    # last forecast)
    forecasts | python3 -c '
import sys, json
last = {}
for m in map(json.loads, sys.stdin):
    last.setdefault(m["series"], {})[m["origin"]] = m["adapter_version"]
back = 0
for by in last.values():
    vs = [by[o] for o in sorted(by)]
    back += sum(1 for a, b in zip(vs, vs[1:]) if b < a)
print(back)'
}
forecasts() { # the forecasts topic from its beginning, a JSON per line
    kcat -C -b "$BS" -t forecasts -o beginning -e -q -f '%s\n' 2>/dev/null
}
# expected TO: the (series, origin) pairs of rows [0, TO), every series
expected() { echo $((NSERIES * ($1 - L + 1))); }
distinct_ge() { # distinct_ge N: at least N distinct (series, origin) published
    test "$(forecasts | python3 -c '
import sys, json
print(len({(m["series"], m["origin"]) for m in map(json.loads, sys.stdin)}))')" -ge "$1"
}
