#!/usr/bin/env bash
# Import at scale (issue #13, item 2): time and peak RSS of `import` of a
# generated bureau into a fresh data directory.
#
#   benches/import.sh [BINARY] [ENTERPRISES…]
#
# For each ENTERPRISES (default 10000 and 100000: about 100,000 and
# 1,000,000 staff), generates the bureau with `gen` (not timed), then runs
# `import` under /usr/bin/time -v and prints the summary, the elapsed time,
# the CPU time (less disturbed by a busy machine than the elapsed time),
# the peak RSS, the file and store sizes and the machine's load average.
# Build the release binary once beforehand (cargo build --release --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/etax-authz}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for n in "${SIZES[@]}"; do
  doc="$WORK/bureau-$n.json"
  data="$WORK/data-$n"
  "$BIN" gen --enterprises "$n" --seed 1 "$doc" 2>/dev/null
  echo "== $n enterprises: $(du -h "$doc" | cut -f1) file; load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v "$BIN" import "$doc" --data "$data" >"$WORK/out" 2>"$WORK/err" || {
    cat "$WORK/err"
    exit 1
  }
  cat "$WORK/out"
  grep '^import:' "$WORK/err" || true
  awk -F': ' '/Elapsed \(wall clock\)/ {print "elapsed: " $2}
              /User time/ {u = $2} /System time/ {printf "cpu: %.1f s user + %.1f s system\n", u, $2}
              /Maximum resident set size/ {printf "peak RSS: %.0f MB\n", $2 / 1024}' "$WORK/err"
  echo "store: $(du -h "$data/identities.redb" | cut -f1); load after $(cut -d' ' -f1-3 /proc/loadavg)"
  rm -rf "$doc" "$data"
done
