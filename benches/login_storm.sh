#!/usr/bin/env bash
# Whether a login storm stalls /v1/authorize.
#
#   benches/login_storm.sh [BINARY] [SECONDS] [LOGIN_CONNECTIONS]
#
# Starts BINARY (default target/release/etax-authz) with --demo and the
# production argon2id cost (19 MiB, t=2) on a fresh data dir. Measures
# POST /v1/authorize with wrk (1 thread, 8 connections) for SECONDS (default
# 10) on a quiet server, then again while a second wrk keeps
# LOGIN_CONNECTIONS (default 32) enterprise-account logins in flight (the
# right password, so no lockout cuts the argon2 work short). argon2 runs on
# its own threads, one per core (authn::hash_pool), so logins
# queue there while decisions keep running on the async workers: authorize
# latency may grow with the CPU the hashing takes, but must not stall.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
BIN=${1:-target/release/etax-authz}
SECS=${2:-10}
LOGINS=${3:-32}
DATA=$(mktemp -d)
OUT=$(mktemp)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA" "$OUT" "$OUT".*' EXIT

start_demo "$BIN" "$DATA" "$OUT"
authorize_lua "$OUT.authorize.lua"
cat >"$OUT.login.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"account":"91210102MA0TAX001F","password":"Etax@2026"}'
LUA

authorize() {
  wrk -t1 -c8 -d"${SECS}s" --latency -s "$OUT.authorize.lua" "http://$ADDR/v1/authorize" |
    grep -E "Requests/sec|^ +(50|90|99)%|Non-2xx|Socket errors"
}

echo "== /v1/authorize, quiet server"
authorize
echo "== /v1/authorize during a storm of $LOGINS concurrent logins"
wrk -t1 -c"$LOGINS" -d"$((SECS + 2))s" --latency -s "$OUT.login.lua" \
  "http://$ADDR/v1/login/enterprise" >"$OUT.storm" &
STORM=$!
sleep 1
authorize
wait $STORM
echo "== the storm itself (/v1/login/enterprise)"
grep -E "Requests/sec|^ +(50|99)%|Non-2xx|Socket errors" "$OUT.storm"
