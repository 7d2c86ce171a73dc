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
. benches/common.sh
BIN=${1:-target/release/etax-authz}
SECS=${2:-10}
CONNS=${3:-32}
DATA=$(mktemp -d)
OUT=$(mktemp)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA" "$OUT" "$OUT.lua"' EXIT

start_demo "$BIN" "$DATA" "$OUT"
authorize_lua "$OUT.lua"

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
