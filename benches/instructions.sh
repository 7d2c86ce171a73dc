#!/usr/bin/env bash
# Instructions the server executes per question, counted by callgrind, for
# two binaries answering exactly the same questions (issue #13): on this
# 2-core machine wall-clock runs of one binary vary ±10–15 % from run to
# run, which hides any change smaller than that; instruction counts do not
# vary. Uses the bureau benches/load.sh prepared (run it once first).
#
#   benches/instructions.sh BASELINE CANDIDATE [ENTERPRISES] [QUESTIONS] [BATCH]
#
# For each binary: serves a fresh copy of the store under valgrind, warms
# it with a quarter as many questions of another seed (so the caches hold
# what a running server's would), zeroes the counts, sends QUESTIONS
# (default 2000) questions of benches/fixed_mix.py one after the other
# (or QUESTIONS batches of BATCH), and prints the server's instructions
# per question, all threads (the decision log's writer included), and the
# candidate's ratio to the baseline.
#
# Not time: valgrind hides the CPU's SHA extensions, so the decision log's
# SHA-256 counts as software (several times its real cost), and cache
# misses, system calls and the kernel's share are not counted. Questions
# come one at a time, so each thread's clock-values memo (decision::context)
# misses more often than under load.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1
B=$2
N=${3:-100}
COUNT=${4:-2000}
BATCH=${5:-0}
CACHE=target/load-bench
[ -f "$CACHE/data-$N/.imported" ] || { echo "run benches/load.sh first (no $CACHE/data-$N)" >&2; exit 1; }
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
WORK=$(mktemp -d)
PID=
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
PER=$((BATCH > 0 ? BATCH : 1))

# count BINARY → instructions per question
count() {
  rm -rf "$WORK/data" "$WORK"/cg.* "$WORK/out"
  cp -r "$CACHE/data-$N" "$WORK/data"
  ETAX_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" \
    "$1" serve --listen 127.0.0.1:0 --data "$WORK/data" >"$WORK/out" 2>/dev/null &
  PID=$!
  for _ in $(seq 1200); do grep -q listening "$WORK/out" && break; sleep 0.1; done
  local addr
  addr=$(sed -n 's/.*listening on http:\/\///p' "$WORK/out")
  python3 benches/fixed_mix.py "$addr" "$CACHE/principals-$N.lua" $((COUNT / 4 + 1)) "$BATCH" 7
  callgrind_control -z "$PID" >/dev/null 2>&1
  python3 benches/fixed_mix.py "$addr" "$CACHE/principals-$N.lua" "$COUNT" "$BATCH" 1
  callgrind_control -d "$PID" >/dev/null 2>&1
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
  # The dump taken after zeroing is part 1.
  awk -v n=$((COUNT * PER)) '/^summary:/ {printf "%.0f\n", $2 / n}' "$WORK"/cg.*.1
}

echo "$(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg); $N enterprises, $COUNT × ${BATCH:-0}"
a=$(count "$A")
b=$(count "$B")
echo "| binary | instructions per question |"
echo "|---|---:|"
echo "| $A | $a |"
echo "| $B | $b |"
awk -v a="$a" -v b="$b" 'BEGIN {printf "candidate / baseline: %.3f\n", b / a}'
