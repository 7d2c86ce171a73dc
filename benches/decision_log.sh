#!/usr/bin/env bash
# What the decision log costs /v1/authorize throughput, and its size on disk.
#
#   benches/decision_log.sh [BINARY] [SECONDS] [CONNECTIONS] [BASELINE_BINARY]
#
# Starts BINARY (default target/release/etax-authz) with --demo on a fresh
# data dir, drives POST /v1/authorize with wrk (2 threads) for SECONDS
# (default 10) over CONNECTIONS (default 32), and reads per-thread CPU time
# from /proc: the share of the server's CPU spent by the decision-log writer
# thread (serializing, hashing, journal appends, compression, fsyncs) is the
# throughput the log costs when the server is CPU-bound. Handlers only build
# the record (as they did before the log existed) and push it into a channel.
# Then checks that every answered decision was logged (no drops) and prints
# the log's bytes on disk per record after a clean stop.
#
# With BASELINE_BINARY (e.g. a build of the commit before a change), the
# same run is made with it first, and the ratio of requests/s printed.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
BIN=${1:-target/release/etax-authz}
SECS=${2:-10}
CONNS=${3:-32}
BASE=${4:-}
PID=
trap '[[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true' EXIT

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

# run BIN: one measurement; sets RPS.
run() {
  local bin=$1 data out
  data=$(mktemp -d); out=$(mktemp)
  start_demo "$bin" "$data" "$out"
  authorize_lua "$out.lua"
  local before_all before_w after_all after_w all w head sent
  before_all=$(cpu ""); before_w=$(cpu "decision-log")
  wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$out.lua" "http://$ADDR/v1/authorize" | tee "$out.wrk"
  after_all=$(cpu ""); after_w=$(cpu "decision-log")
  all=$(( after_all - before_all )); w=$(( after_w - before_w ))
  echo "server CPU: $all ticks; decision-log writer: $w ticks ($(awk "BEGIN{printf \"%.1f\", 100*$w/$all}")% of the server's CPU)"
  sleep 0.2
  head=$(curl -s "http://$ADDR/v1/audit/checkpoint" | sed 's/.*"seq":\([0-9]*\).*/\1/')
  sent=$(grep -o '[0-9]* requests in' "$out.wrk" | awk '{print $1}')
  echo "wrk completed $sent requests; log head is record $head (answered decisions + this read; in-flight requests at the end add a few)"
  RPS=$(grep 'Requests/sec' "$out.wrk" | awk '{print $2}')
  kill "$PID"; wait "$PID" 2>/dev/null || true
  local bytes
  bytes=$(du -sb "$data"/decisions* | awk '{s += $1} END {print s}')
  echo "decision log on disk after a clean stop: $bytes bytes, $(awk "BEGIN{printf \"%.0f\", $bytes/$head}") bytes/record"
  rm -rf "$data" "$out" "$out.lua" "$out.wrk"
}

if [[ -n "$BASE" ]]; then
  echo "== baseline: $BASE"
  run "$BASE"; base_rps=$RPS
  echo "== $BIN"
  run "$BIN"
  echo "requests/s: $RPS against $base_rps for the baseline: ratio $(awk "BEGIN{printf \"%.2f\", $RPS/$base_rps}")"
else
  run "$BIN"
fi
