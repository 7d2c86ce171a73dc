#!/usr/bin/env bash
# What the decision log costs /v1/authorize throughput.
#
#   benches/decision_log.sh [BINARY] [SECONDS] [CONNECTIONS]
#
# Starts BINARY (default target/release/etax-authz) with --demo on a fresh
# data dir, drives POST /v1/authorize with wrk (2 threads) for SECONDS
# (default 10) over CONNECTIONS (default 32), and reads per-thread CPU time
# from /proc: the share of the server's CPU spent by the decision-log writer
# thread (serializing, hashing, redb inserts, commits) is the throughput the
# log costs when the server is CPU-bound. Handlers only build the record (as
# they did before the log existed) and push it into a channel.
# Then checks that every answered decision was logged (no drops).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/etax-authz}
SECS=${2:-10}
CONNS=${3:-32}
DATA=$(mktemp -d)
OUT=$(mktemp)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA" "$OUT" "$OUT.lua"' EXIT

ETAX_LOG=warn "$BIN" serve --demo --listen 127.0.0.1:0 --data "$DATA" >"$OUT" 2>/dev/null &
PID=$!
for _ in $(seq 100); do grep -q listening "$OUT" && break; sleep 0.1; done
ADDR=$(sed -n 's/.*listening on http:\/\///p' "$OUT")

cat >"$OUT.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"principal":"Staff::\\"91210102MA0TAX001F/resident_id:210102199001015035\\"","action":"Action::\\"useFunction\\"","resource":"Function::\\"vat_filing\\""}'
LUA

cpu() { # utime+stime ticks of threads whose name matches $1 (or all)
  local total=0
  for t in /proc/$PID/task/*; do
    local name; name=$(cat "$t/comm")
    if [[ -z "$1" || "$name" == $1* ]]; then
      local s; s=$(sed 's/^.*) //' "$t/stat")
      total=$(( total + $(echo "$s" | awk '{print $12 + $13}') ))
    fi
  done
  echo $total
}
before_all=$(cpu ""); before_w=$(cpu "decision-log")
wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$OUT.lua" "http://$ADDR/v1/authorize" | tee "$OUT.wrk"
after_all=$(cpu ""); after_w=$(cpu "decision-log")
all=$(( after_all - before_all )); w=$(( after_w - before_w ))
echo "server CPU: $all ticks; decision-log writer: $w ticks ($(awk "BEGIN{printf \"%.1f\", 100*$w/$all}")% of the server's CPU)"
sleep 0.2
head=$(curl -s "http://$ADDR/v1/audit/checkpoint" | sed 's/.*"seq":\([0-9]*\).*/\1/')
sent=$(grep -o '[0-9]* requests in' "$OUT.wrk" | awk '{print $1}')
echo "wrk completed $sent requests; log head is record $head (answered decisions + this read; in-flight requests at the end add a few)"
