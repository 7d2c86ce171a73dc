#!/usr/bin/env bash
# Resident memory after login storms (issue #10, item 12).
#
#   benches/login_memory.sh [BINARY] [SECONDS] [CONNECTIONS]
#
# Starts BINARY (default target/release/etax-authz) with --demo and the
# production argon2id cost (19 MiB, t=2) on a fresh data dir, then runs two
# storms of SECONDS (default 30) each, CONNECTIONS (default 64) enterprise
# logins in flight (the right password, so every request runs argon2), with
# curl's parallel mode, 5 s apart. Prints VmRSS (from /proc/PID/status) at
# start, after each storm and 5 s after the last, and the logins served.
# Extra environment (MALLOC_* tunables, to compare allocator settings) is
# passed to the server through the environment of this script.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
BIN=${1:-target/release/etax-authz}
SECS=${2:-30}
CONNS=${3:-64}
DATA=$(mktemp -d)
OUT=$(mktemp)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA" "$OUT" "$OUT".*' EXIT

start_demo "$BIN" "$DATA" "$OUT"
rss() { awk '/^VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$PID/status"; }
logins() { curl -s "http://$ADDR/metrics" | awk '/^etax_password_verifications_total / {print $2}'; }

storm() {
  # One curl, CONNECTIONS transfers at a time, a URL glob far longer than
  # the storm; the query string only makes the URLs differ.
  timeout "$SECS" curl -s -Z --parallel-max "$CONNS" -o /dev/null -X POST \
    -H 'Content-Type: application/json' \
    -d '{"account":"91210102MA0TAX001F","password":"Etax@2026"}' \
    "http://$ADDR/v1/login/enterprise?n=[1-1000000]" >/dev/null 2>&1 || true
}

echo "== $BIN, ${SECS}s storms of $CONNS concurrent logins"
echo "start:           $(rss)"
storm
echo "after storm 1:   $(rss)  ($(logins) argon2 verifications so far)"
sleep 5
storm
echo "after storm 2:   $(rss)  ($(logins) argon2 verifications so far)"
sleep 5
echo "5 s later:       $(rss)"
