#!/usr/bin/env bash
# 100 questions in one POST /v1/authorize/batch against 100 separate
# POST /v1/authorize calls (issue #13, item 6), on the generated
# 100-enterprise bureau benches/load.sh prepares (run it once first; the
# store is reused from target/load-bench/).
#
#   benches/batch.sh [BINARY] [SECONDS] [ROUNDS]
#
# Same random mix as load.sh. Prints, for singles and for batches of 100,
# questions/s and server CPU per question (from /proc/PID/stat), and their
# ratio (the target: a batched question costs ≤ 30 % of a single one), for
# each of ROUNDS (default 3) rounds of singles then batches, and the median
# ratio.
# Then the time one caller waits for 100 questions one after another on
# one connection, against one batch of 100.
# Then p50/p99 of single questions at 8 connections alone and while 4
# connections keep batches in flight: batches are decided on the blocking
# pool, so the single questions keep being answered meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
BIN=${1:-target/release/etax-authz}
SECS=${2:-10}
ROUNDS=${3:-3}
CACHE=target/load-bench
[ -f "$CACHE/data-100/.imported" ] || { echo "run benches/load.sh first" >&2; exit 1; }
WORK=$(mktemp -d)
PID=
# The server flushes its decision log as it stops: wait for it before the
# directory goes, or the removal races the last writes.
trap '{ kill $PID 2>/dev/null && wait $PID 2>/dev/null; } || true; rm -rf "$WORK"' EXIT
cp -r "$CACHE/data-100" "$WORK/data"
ETAX_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --data "$WORK/data" >"$WORK/out" 2>/dev/null &
PID=$!
for _ in $(seq 300); do grep -q listening "$WORK/out" && break; sleep 0.1; done
ADDR=$(sed -n 's/.*listening on http:\/\///p' "$WORK/out")
mix_lua "$WORK/single.lua" "$CACHE/principals-100.lua"
mix_lua "$WORK/batch.lua" "$CACHE/principals-100.lua" 100
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
# run SCRIPT CONNS PER_REQUEST → "questions/s CPU-µs-per-question"
run() {
  local before after
  before=$(cpu_ticks)
  wrk -t2 -c"$2" -d"${SECS}s" -s "$1" "http://$ADDR/" >"$WORK/wrk.out"
  after=$(cpu_ticks)
  awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v per="$3" \
    '/requests in/ {n = $1 * per} /Requests\/sec/ {r = $2 * per}
     END {printf "%.0f %.1f\n", r, t / hz * 1e6 / n}' "$WORK/wrk.out"
  grep -E "Non-2xx|Socket errors" "$WORK/wrk.out" >&2 || true
}
# Singles then batches, ROUNDS times: each round's ratio pairs two runs a
# few seconds apart, so a change in the machine's load between them moves
# it less than it moves either figure alone; the median round is the one
# to quote.
echo "| round | singles (16 connections) | batches of 100 (4 connections) | batched / single CPU per question |"
echo "|---|---|---|---:|"
ratios=()
for round in $(seq "$ROUNDS"); do
  read -r s_qps s_cpu < <(run "$WORK/single.lua" 16 1)
  read -r b_qps b_cpu < <(run "$WORK/batch.lua" 4 100)
  ratio=$(awk -v a="$b_cpu" -v b="$s_cpu" 'BEGIN {printf "%.1f", 100 * a / b}')
  ratios+=("$ratio")
  echo "| $round | $s_qps questions/s, $s_cpu µs CPU per question | $b_qps questions/s, $b_cpu µs CPU per question | $ratio % |"
done
echo "batched / single CPU per question, median of $ROUNDS rounds: $(printf '%s\n' "${ratios[@]}" | sort -n |
  awk '{v[NR] = $1} END {printf "%.1f %%", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')"

# What one caller waits: 100 questions asked one after another on one
# connection against one batch of 100, on the otherwise idle server (mean
# latency of each, from the same wrk).
mean_us() { wrk -t1 -c1 -d"${SECS}s" -s "$1" "http://$ADDR/" |
  awk '$1 == "Latency" {v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v);
       printf "%.1f\n", v * (u == "ms" ? 1000 : u == "s" ? 1e6 : 1)}'; }
one=$(mean_us "$WORK/single.lua")
batch=$(mean_us "$WORK/batch.lua")
echo "one caller, 100 questions: one after another $(awk -v a="$one" 'BEGIN {printf "%.2f ms", a * 100 / 1000}'), \
one batch $(awk -v b="$batch" 'BEGIN {printf "%.2f ms", b / 1000}'): \
$(awk -v a="$one" -v b="$batch" 'BEGIN {printf "%.1f %%", 100 * b / (100 * a)}')"

latency() { wrk -t1 -c8 -d"${SECS}s" --latency -s "$WORK/single.lua" "http://$ADDR/" |
  awk '$1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2} /Requests\/sec/ {r = $2}
       END {printf "%s/s, p50 %s, p99 %s\n", r, p50, p99}'; }
echo "singles alone (8 connections): $(latency)"
wrk -t1 -c4 -d"$((SECS + 2))s" -s "$WORK/batch.lua" "http://$ADDR/" >"$WORK/bg.out" &
BG=$!
sleep 1
echo "singles beside 4 connections of batches: $(latency)"
wait "$BG"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
