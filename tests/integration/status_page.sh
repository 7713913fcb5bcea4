#!/usr/bin/env bash
# The status page (GET / on metrics.listen) of a running `driftcast run`,
# loaded in a real browser.  Output: TAP.
#
# A tiny model is trained, driftcast-mockbroker serves Kafka, `driftcast
# produce` replays a CSV whose second half shifts, and the daemon forecasts
# and adapts.  Then headless Chromium loads the page: a screenshot is taken
# (PNG, non-trivial size), the DOM it built is dumped and checked (the
# sections, one inline SVG picture per ranked series, no script, no
# external reference), its log must show no console message, and its
# network log no request but the page's own (answered with 200).  `driftcast plot` is run on the same database as well.
#
# Needs: DRIFTCAST, MOCKBROKER (set by meson), chromium, python3.
set -u

BIN=${DRIFTCAST:?DRIFTCAST must name the driftcast binary}
MB=${MOCKBROKER:?MOCKBROKER must name driftcast-mockbroker}
CHROMIUM=${CHROMIUM:-chromium}
pids=()
# shellcheck source=tap.sh
. "$(dirname "$0")/tap.sh"
WORK=$(tap_workdir status-page)
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${KEEP_WORKDIR:-}" ]; then diag "kept $WORK"; else tap_cleanup_workdir "$WORK"; fi
}
trap cleanup EXIT
bail() {
    echo "Bail out! $*"
    tail -n 20 "$WORK/daemon.log" 2>/dev/null | sed 's/^/#   /'
    exit 1
}
command -v "$CHROMIUM" > /dev/null || bail "no $CHROMIUM (apt-get install chromium)"

L=32
H=8
T0=1700000000
# three channels of daily cycles; from row 700 on, b's level and a's
# amplitude shift (something to adapt to)
awk -v t0=$T0 'BEGIN {
    srand(11); print "date,a,b,c";
    for (i = 0; i < 1000; i++) {
        t = t0 + i * 3600; s = (i >= 700);
        printf "%s,%.4f,%.4f,%.4f\n", strftime("%Y-%m-%d %H:%M:%S", t, 1),
            10 + (3 + 3 * s) * sin(i * 2 * 3.14159 / 24) + rand(),
            5 + 4 * s + 2 * cos(i * 2 * 3.14159 / 24) + rand(),
            1 + 0.5 * sin(i * 2 * 3.14159 / 12) + 0.3 * rand();
    }
}' > "$WORK/data.csv"
head -701 "$WORK/data.csv" > "$WORK/train.csv"
"$BIN" train --data "$WORK/train.csv" --out "$WORK/model.dcm" --lookback $L \
    --horizon $H --epochs 2 --set model.width=16 --set model.layers=1 \
    --quiet > "$WORK/train.log" 2>&1 || bail "driftcast train failed"

"$MB" -t measurements:2 -t forecasts:2 -t deadletter:1 \
    -f "$WORK/bootstraps" > "$WORK/mb.log" 2>&1 &
pids+=($!)
wait_for 10 test -s "$WORK/bootstraps" || bail "mock broker did not start"
BS=$(cat "$WORK/bootstraps")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/driftcast.conf" <<EOF
[kafka]
brokers = $BS
group = status-page
input_topic = measurements
output_topic = forecasts
deadletter_topic = deadletter
[storage]
path = $WORK/driftcast.db
[model]
path = $WORK/model.dcm
lookback = $L
horizon = $H
[ttt]
every = 8
shadow_every = 2
[metrics]
listen = 127.0.0.1:$port
EOF
"$BIN" run --config "$WORK/driftcast.conf" > "$WORK/daemon.log" 2>&1 &
dpid=$!
pids+=($dpid)
"$BIN" produce --brokers "$BS" --topic measurements -q --series-prefix sp \
    "$WORK/data.csv" > "$WORK/produce.log" 2>&1 || bail "produce failed"
forecasts() {
    local n
    n=$(python3 - "$WORK/driftcast.db" <<'PY' 2>/dev/null
import sqlite3, sys
print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute(
    "SELECT count(*) FROM forecasts").fetchone()[0])
PY
)
    [ "${n:-0}" -ge $((3 * (1000 - L))) ]
}
wait_for 120 forecasts || bail "the daemon did not forecast every value"
URL="http://127.0.0.1:$port/"

# ---- the page over plain HTTP ----------------------------------------------
python3 - "$URL" > "$WORK/page.html" 2> "$WORK/page.err" <<'PY'
import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=30)
assert r.status == 200, r.status
assert r.headers["Content-Type"].startswith("text/html"), r.headers["Content-Type"]
sys.stdout.write(r.read().decode())
PY
check "GET / answers 200 text/html" test $? -eq 0
for section in "The daemon" "Where the consumer stands" "Adapted vs frozen" \
    "Adaptation hurting most" "Adaptation helping most" "Latest adaptations" \
    "Latest rollbacks"; do
    check "the page has '$section'" grep -q "$section" "$WORK/page.html"
done
check "owned partitions shown" grep -q "owned partitions" "$WORK/page.html"
check "the series are named" grep -q "sp/b" "$WORK/page.html"
check "no script, no external reference" \
    bash -c "! grep -Eiq '<script|src=|href=\"(http|//)|@import|url\\(http' '$WORK/page.html'"
check "/metrics still served" python3 -c "
import urllib.request; t = urllib.request.urlopen('${URL}metrics', timeout=10).read().decode()
assert 'driftcast_forecasts_total' in t"

# ---- in the browser --------------------------------------------------------
chrome() { # chrome OUTFILE-PREFIX ARGS...: headless, logging to OUT.log
    local out=$1
    shift
    timeout 90 "$CHROMIUM" --headless=new --no-sandbox --disable-gpu \
        --no-first-run --no-default-browser-check --disable-extensions \
        --disable-background-networking --disable-component-update \
        --disable-sync --no-pings --disable-domain-reliability \
        --user-data-dir="$WORK/chrome-profile" --enable-logging=stderr --v=0 \
        --log-net-log="$out.net.json" --window-size=1280,2400 "$@" "$URL" \
        2> "$out.log"
}
# requests_ok NETLOG: every request of the page (Chromium's own services
# aside) is the page itself, answered without a network error or an HTTP
# error status
requests_ok() {
    python3 - "$1" "$URL" <<'PY'
import json, sys
from urllib.parse import urlsplit
d = json.load(open(sys.argv[1]))
ev = {v: k for k, v in d["constants"]["logEventTypes"].items()}
src = {v: k for k, v in d["constants"]["logSourceType"].items()}
own = ("google.com", "googleapis.com", "gvt1.com", "gstatic.com")
reqs = {}
for e in d["events"]:
    if src.get(e["source"]["type"]) != "URL_REQUEST":
        continue
    p, sid, t = e.get("params", {}), e["source"]["id"], ev.get(e["type"])
    if t == "URL_REQUEST_START_JOB" and "url" in p:
        reqs.setdefault(sid, {"url": p["url"], "err": 0, "status": None})
    if sid in reqs and p.get("net_error"):
        reqs[sid]["err"] = p["net_error"]
    if sid in reqs and t == "HTTP_TRANSACTION_READ_RESPONSE_HEADERS":
        reqs[sid]["status"] = int(p["headers"][0].split()[1])
page = [r for r in reqs.values()
        if not urlsplit(r["url"]).hostname.endswith(own)]
bad = [r for r in page if r["url"] != sys.argv[2] or r["err"] or
       (r["status"] or 0) >= 400]
print("#", len(page), "page request(s):", [r["url"] for r in page])
sys.exit(1 if bad or not page else 0)
PY
}
chrome "$WORK/shot" --screenshot="$WORK/page.png" > /dev/null
check "chromium took a screenshot" test -s "$WORK/page.png"
size=$(stat -c %s "$WORK/page.png" 2>/dev/null || echo 0)
check "the screenshot is not blank ($size bytes)" test "$size" -gt 60000
chrome "$WORK/dom" --dump-dom > "$WORK/dom.html"
check "chromium built the DOM" grep -q "Adapted vs frozen" "$WORK/dom.html"
svgs=$(grep -o '<svg' "$WORK/dom.html" | wc -l)
cards=$(grep -o 'class="card"' "$WORK/dom.html" | wc -l)
diag "$cards ranked series, $svgs inline SVG pictures"
check "one SVG picture per ranked series ($cards)" test "$cards" -ge 1 -a "$svgs" -eq "$cards"
check "no 'no picture' on the page" bash -c "! grep -q 'no picture' '$WORK/dom.html'"
for f in shot dom; do
    check "no console message ($f)" bash -c "! grep -q 'CONSOLE' '$WORK/$f.log'"
    check "no failed request ($f): the page is its only request" \
        requests_ok "$WORK/$f.net.json"
done

# ---- driftcast plot on the daemon's database --------------------------------
"$BIN" plot --db "$WORK/driftcast.db" --series sp/b --out "$WORK/b.png" \
    > "$WORK/plot.out" 2>&1
check "driftcast plot on the live database" test $? -eq 0 -a -s "$WORK/b.png"
check "the frozen forecasts were recomputed" \
    grep -Eq "[1-9][0-9]* frozen forecast points" "$WORK/plot.out"
kill -TERM "$dpid"
wait "$dpid"
check "the daemon stops cleanly" test $? -eq 0
echo "1..$n"
[ "$failed" -eq 0 ]
