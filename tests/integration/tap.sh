# TAP helpers sourced by the integration scripts (demo.sh, produce.sh):
# ok/not_ok/check count and print results, diag comments, wait_for polls.
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
wait_for() { # wait_for SECONDS COMMAND...: poll until the command succeeds
    local end=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $end ]; do
        "$@" && return 0
        sleep 0.3
    done
    return 1
}
