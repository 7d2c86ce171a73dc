#!/usr/bin/env bash
# /v1/authorize at bureau scale (issue #13, item 3), beside the machine's
# ceiling: a bare hyper server answering a fixed JSON body
# (benches/bare_server.rs), driven by the same wrk in the same script.
#
#   benches/load.sh [BINARY] [SECONDS] [ENTERPRISES…] [-- SERVE FLAGS…]
#
# BINARY defaults to target/release/etax-authz, built here (release, once).
# For each ENTERPRISES (default 100 and 100000: about 1,000 and 1,000,000
# staff) it generates the bureau with `gen --seed 1` and imports it — both
# kept under target/load-bench/ and reused by later runs, since the million
# takes minutes (delete target/load-bench/ after a change of the stored
# format or of gen) — copies the imported store to a fresh data directory,
# starts `serve` (decision logging on, default configuration plus SERVE
# FLAGS), and drives POST /v1/authorize with wrk for SECONDS (default 15)
# at 16 and 64 connections. Each request is a random principal with a
# random business function: 60 % clerks, 25 % officers (legal reps and
# finance heads), 15 % agents acting for a client that recognizes their
# agency — from 10,000 of each kind sampled from the generated document.
# Then the same at 64 connections during a storm of 32 concurrent
# enterprise logins of random enterprises (production argon2 cost, as
# benches/login_storm.sh).
#
# Before the mix, GET /healthz on the same server at 64 connections: what
# the service's HTTP stack alone reaches, so that the bare server's lead is
# split between that stack and the decision with its record.
#
# The bare server is driven twice: with one fixed request (wrk sends the
# same bytes every time) and with the very script that drives the mix. The
# mix's script builds each request in Lua, which costs wrk about 5 µs more
# CPU a request on the same two cores (BENCHMARKS.md, session 21), so the
# fixed request's ceiling is one no server can reach with these requests;
# the same requests' ceiling is what a server that costs nothing would
# reach. Each mix row gives its ratio to both.
#
# Prints per run: requests/s and its ratio to the bare server's at the same
# connections (same requests / fixed request), p50/p99, server CPU per
# request (from /proc/PID/stat before and after), non-2xx answers; RSS of
# the server after its runs; load.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
BIN=${1:-target/release/etax-authz}
shift || true
SECS=${1:-15}
shift || true
SIZES=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do SIZES+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
SERVE_FLAGS=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(100 100000)
CACHE=target/load-bench
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$CACHE"

if [ "$BIN" = target/release/etax-authz ]; then
  cargo build --release --locked --quiet
fi
# BARE may name an already built bare server (benches/bare_server.rs), so
# comparing two binaries does not rebuild the benches between them.
[ -n "${BARE:-}" ] || BARE=$(cargo bench --locked --no-run --bench bare_server --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable") and m["target"]["name"] == "bare_server": print(m["executable"])')

# prepare N: generated document, imported store and the wrk script's
# principals, once per N (kept in $CACHE).
prepare() {
  local n=$1 doc="$CACHE/bureau-$1.json" data="$CACHE/data-$1"
  if [ ! -f "$data/.imported" ]; then
    echo "preparing $n enterprises (kept in $CACHE for later runs)…" >&2
    "$BIN" gen --enterprises "$n" --seed 1 "$doc" 2>"$CACHE/gen-$n.err"
    sed -n 's/.*password \([^ ]*\) .*/\1/p' "$CACHE/gen-$n.err" >"$CACHE/password-$n"
    rm -rf "$data"
    "$BIN" import "$doc" --data "$data" >/dev/null 2>&1
    python3 benches/load_principals.py "$doc" "$CACHE/account-$n" >"$CACHE/principals-$n.lua"
    rm -f "$doc"
    touch "$data/.imported"
  fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# measure NAME PID URL SCRIPT CONNS [SAME FIXED] → one table row;
# requests/s in $RPS. SAME and FIXED: the bare server's requests/s at CONNS
# with the same script and with the fixed request (none: it is the bare
# server).
measure() {
  local before after hz; hz=$(getconf CLK_TCK)
  before=$(cpu_ticks "$2")
  wrk -t2 -c"$5" -d"${SECS}s" --latency -s "$4" "$3" >"$WORK/wrk.out"
  after=$(cpu_ticks "$2")
  RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  local total p50 p99 errs cpu share
  total=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
  errs=$(grep -E "Non-2xx|Socket errors" "$WORK/wrk.out" | tr -s ' ' | tr '\n' ' ' || true)
  cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$total" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}')
  share=$(awk -v a="$RPS" -v s="${6:-}" -v f="${7:-}" \
    'BEGIN {if (s == "") print "—"; else printf "%.1f %% / %.1f %%", 100 * a / s, 100 * a / f}')
  printf '| %s | %s | %s | %s | %s / %s | %s µs | %s\n' "$1" "$5" "$RPS" "$share" "$p50" "$p99" "$cpu" "$errs"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $(date -u +%FT%TZ); serve flags: ${SERVE_FLAGS[*]:-(defaults)}"
cat >"$WORK/bare.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"principal":"Staff::\\"x\\"","action":"Action::\\"useFunction\\"","resource":"Function::\\"vat_filing\\""}'
LUA
"$BARE" 127.0.0.1:0 >"$WORK/bare.out" &
BARE_PID=$!
PIDS+=("$BARE_PID")
for _ in $(seq 100); do grep -q listening "$WORK/bare.out" && break; sleep 0.1; done
BARE_ADDR=$(sed -n 's/.*listening on http:\/\///p' "$WORK/bare.out")
declare -A FIXED SAME
echo "| server | connections | requests/s | of bare (same requests / fixed request) | p50 / p99 | CPU per request | errors"
echo "|---|---:|---:|---:|---|---:|---|"
for c in 16 64; do
  measure "bare hyper, fixed answer, fixed request" "$BARE_PID" "http://$BARE_ADDR/" "$WORK/bare.lua" "$c"
  FIXED[$c]=$RPS
done

for n in "${SIZES[@]}"; do
  prepare "$n"
  mix_lua "$WORK/mix-$n.lua" "$CACHE/principals-$n.lua"
  for c in 16 64; do
    measure "bare hyper, fixed answer, the $n-enterprise mix's requests" "$BARE_PID" \
      "http://$BARE_ADDR/" "$WORK/mix-$n.lua" "$c"
    SAME[$n,$c]=$RPS
  done
done
kill "$BARE_PID"

for n in "${SIZES[@]}"; do
  data="$WORK/data-$n"
  cp -r "$CACHE/data-$n" "$data"
  ETAX_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --data "$data" "${SERVE_FLAGS[@]}" \
    >"$WORK/serve-$n.out" 2>/dev/null &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 600); do grep -q listening "$WORK/serve-$n.out" && break; sleep 0.1; done
  ADDR=$(sed -n 's/.*listening on http:\/\///p' "$WORK/serve-$n.out")
  # The service's own floor: its HTTP stack (task per request, request
  # id, metrics, limits) answering a route that decides and logs nothing.
  # wrk sends it one fixed request, so both its ratios are to the fixed
  # request's ceiling.
  echo 'wrk.method = "GET"' >"$WORK/healthz.lua"
  measure "etax-authz, $n enterprises, GET /healthz" "$PID" "http://$ADDR/healthz" \
    "$WORK/healthz.lua" 64 "${FIXED[64]}" "${FIXED[64]}"
  for c in 16 64; do
    measure "etax-authz, $n enterprises, random mix" "$PID" "http://$ADDR/v1/authorize" \
      "$WORK/mix-$n.lua" "$c" "${SAME[$n,$c]}" "${FIXED[$c]}"
  done
  # A login storm: 32 enterprise logins in flight (the right password, so
  # every one runs argon2; random enterprises, so the lockout's limit of
  # attempts in flight per account does not thin it out) while the mix
  # runs at 64 connections.
  storm_lua "$WORK/login.lua" "$CACHE/principals-$n.lua" "$(cat "$CACHE/password-$n")"
  wrk -t1 -c32 -d"$((SECS + 2))s" -s "$WORK/login.lua" "http://$ADDR/v1/login/enterprise" \
    >"$WORK/storm.out" &
  STORM=$!
  sleep 1
  measure "etax-authz, $n enterprises, mix during 32 logins" "$PID" \
    "http://$ADDR/v1/authorize" "$WORK/mix-$n.lua" 64 "${SAME[$n,64]}" "${FIXED[64]}"
  wait "$STORM"
  echo "|   storm: $(awk '/Requests\/sec/ {print $2}' "$WORK/storm.out") logins/s, latency avg/stdev/max $(awk '/^ +Latency/ {print $2 "/" $3 "/" $4}' "$WORK/storm.out") $(grep -E 'Non-2xx|Socket errors' "$WORK/storm.out" | tr -s ' ' | tr '\n' ' ')"
  echo "|   RSS after the runs: $(rss_mb "$PID") MB; cache: $(curl -s "http://$ADDR/metrics" | grep "^etax_decision_cache_total" | tr "\n" " ")"
  kill "$PID"; wait "$PID" 2>/dev/null || true
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
