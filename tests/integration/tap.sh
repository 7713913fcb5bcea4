# TAP helpers sourced by the integration scripts (demo.sh, produce.sh,
# timestamps.sh): ok/not_ok/check count and print results, diag comments,
# wait_for polls, tap_bail stops, tap_kill_pids ends what a script started,
# tap_mock_start starts the mock cluster, tap_hourly makes input messages,
# tap_train_small makes a tiny model, tap_mbctl commands the mock broker.
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { # check DESCRIPTION COMMAND...: ok when the command succeeds
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
diag() { echo "# $*"; }
tap_workdir() { # tap_workdir NAME: a new private directory for the script's files
    # mktemp turns the trailing X's into random characters; TMPDIR is
    # honoured as by every other tool here
    mktemp -d "${TMPDIR:-/tmp}/dc-$1-XXXXXX"
}
tap_cleanup_workdir() { # removed when every check passed, else kept to look at
    if [ "$failed" -eq 0 ]; then rm -rf "$1"; else diag "kept $1"; fi
}
wait_for() { # wait_for SECONDS COMMAND...: poll until the command succeeds
    local end=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $end ]; do
        "$@" && return 0
        sleep 0.3
    done
    return 1
}
tap_bail() { # tap_bail LOG MESSAGE...: stop the whole script, with LOG's tail
    local log=$1
    shift
    echo "Bail out! $*"
    tail -n 20 "$log" 2>/dev/null | sed 's/^/#   /'
    exit 1
}
pids=() # the processes a script started, ended by tap_kill_pids
tap_kill_pids() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
}
tap_train_small() { # tap_train_small BIN DIR T0 L H SEED: DIR/model.dcm, a tiny GRU
    # trained for an epoch on 600 hourly values of a noisy daily cycle
    # ending at T0 (DIR/train.csv); fails when driftcast train does
    awk -v t0="$3" -v seed="$6" 'BEGIN {
        srand(seed); print "date,a";
        for (i = 0; i < 600; i++)
            printf "%s,%.4f\n", strftime("%Y-%m-%d %H:%M:%S", t0 - 600 * 3600 + i * 3600, 1),
                10 + 3 * sin(i * 2 * 3.14159 / 24) + rand();
    }' > "$2/train.csv"
    "$1" train --data "$2/train.csv" --out "$2/model.dcm" --lookback "$4" \
        --horizon "$5" --epochs 1 --set model.width=16 --set model.layers=1 \
        --quiet > "$2/train.log" 2>&1
}
tap_mbctl() { # tap_mbctl DIR COMMAND...: once the mock broker started with
    # -c DIR/control (its log DIR/mb.log) has carried the command out
    # (within TAP_MBCTL_WAIT seconds, 10 unless set)
    local dir=$1 before
    shift
    before=$(grep -c "command '" "$dir/mb.log")
    echo "$*" > "$dir/control"
    wait_for "${TAP_MBCTL_WAIT:-10}" test "$(grep -c "command '" "$dir/mb.log")" -gt "$before"
}
tap_mock_start() { # tap_mock_start DIR TOPIC:PARTITIONS...: driftcast-mockbroker
    # ($MB) with those topics, its log DIR/mb.log, commands through
    # DIR/control (tap_mbctl); sets BS to its bootstrap servers
    local dir=$1 args=() t
    shift
    for t in "$@"; do args+=(-t "$t"); done
    "$MB" "${args[@]}" -f "$dir/bootstraps" -c "$dir/control" > "$dir/mb.log" 2>&1 &
    pids+=($!)
    wait_for 10 test -s "$dir/bootstraps" || return 1
    BS=$(cat "$dir/bootstraps")
}
tap_free_port() { # a free TCP port on 127.0.0.1
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
tap_hourly() { # tap_hourly FROM TO T0 KEY...: KEY:message lines of hourly
    # values of a daily cycle, steps [FROM, TO) after T0, for each KEY
    local from=$1 to=$2 t0=$3 k
    shift 3
    for k in "$@"; do
        awk -v k="$k" -v from="$from" -v to="$to" -v t0="$t0" 'BEGIN {
            for (i = from; i < to; i++)
                printf "%s:{\"series\":\"%s\",\"ts\":%d,\"value\":%.4f}\n",
                    k, k, t0 + i * 3600, 10 + 3 * sin(i * 2 * 3.14159 / 24)
        }'
    done
}
