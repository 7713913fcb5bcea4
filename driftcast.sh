#!/usr/bin/env bash
# The two README commands:
#   ./driftcast.sh demo   install what is missing, build, run the demo
#   ./driftcast.sh test   install what is missing, build, run every test
#                         (also under ASan+UBSan)
set -euo pipefail
cd "$(dirname "$0")"
cmd=${1:-}
shift || true
case "$cmd" in
demo)
    scripts/bootstrap
    meson compile -C build >/dev/null
    exec scripts/demo "$@"
    ;;
test)
    exec scripts/test "$@"
    ;;
*)
    echo "usage: ./driftcast.sh demo|test" >&2
    exit 2
    ;;
esac
