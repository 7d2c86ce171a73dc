#!/usr/bin/env bash
# Where /v1/authorize's CPU goes under benches/load.sh's random mix (issue
# #13): serves a bureau load.sh prepared (run it once first; the store is
# reused from target/load-bench/), drives the mix with wrk, and samples the
# server with perf meanwhile.
#
#   benches/profile.sh [BINARY] [ENTERPRISES] [SECONDS] [CONNECTIONS] [-- SERVE FLAGS…]
#
# Call graphs come from DWARF (the release profile keeps line tables, not
# frame pointers), 499 samples/s. Writes target/profile-ENTERPRISES.data and
# prints the top functions by self time and by time including callees.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
BIN=${1:-target/release/etax-authz}
N=${2:-100000}
SECS=${3:-10}
CONNS=${4:-64}
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = "--" ] && shift
CACHE=target/load-bench
[ -f "$CACHE/data-$N/.imported" ] || { echo "run benches/load.sh first (no $CACHE/data-$N)" >&2; exit 1; }
WORK=$(mktemp -d)
PID=
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
cp -r "$CACHE/data-$N" "$WORK/data"
ETAX_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --data "$WORK/data" "$@" >"$WORK/out" 2>/dev/null &
PID=$!
for _ in $(seq 600); do grep -q listening "$WORK/out" && break; sleep 0.1; done
ADDR=$(sed -n 's/.*listening on http:\/\///p' "$WORK/out")
mix_lua "$WORK/mix.lua" "$CACHE/principals-$N.lua"
# Warm redb's pages and the caches first, so the profile is the steady state.
wrk -t2 -c"$CONNS" -d3s -s "$WORK/mix.lua" "http://$ADDR/v1/authorize" >/dev/null
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ); $BIN $N enterprises"
OUT=target/profile-$N.data
perf record -F 499 --call-graph dwarf,16384 -p "$PID" -o "$OUT" -- sleep "$SECS" 2>/dev/null &
PERF=$!
wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$WORK/mix.lua" "http://$ADDR/v1/authorize" | grep -E "Requests/sec|Non-2xx" || true
wait "$PERF"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## self"
perf report -i "$OUT" --no-children --sort symbol --percent-limit 0.7 --stdio 2>/dev/null |
  grep -E '^ +[0-9.]+%' | head -40
echo "## including callees"
perf report -i "$OUT" --children --sort symbol --percent-limit 2 --stdio 2>/dev/null |
  grep -E '^ +[0-9.]+% +[0-9.]+%' | head -60
