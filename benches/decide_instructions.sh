#!/usr/bin/env bash
# Instructions of one in-process decision (a case of benches/decision.rs),
# counted by callgrind, for two builds of that bench side by side (issue
# #13): on this machine criterion's wall-clock figures for one binary can
# move by half between runs, instruction counts do not.
#
#   benches/decide_instructions.sh BASELINE CANDIDATE [CASE]
#
# BASELINE and CANDIDATE are built bench binaries of benches/decision.rs
# (`cargo bench --bench decision --no-run` prints its path; copy it aside
# before building the other). CASE defaults to the uncached decision,
# `decide/useFunction/built/stored_enterprises/0`. Each binary runs the
# case for a fixed time under callgrind (`--profile-time 2`); the figure is
# `Engine::decide`'s inclusive instructions divided by its calls (the calls
# it made to `Engine::request_and_entities`, one per decision). Setup (the
# stores the bench builds) is outside that function and not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1
B=$2
CASE=${3:-decide/useFunction/built/stored_enterprises/0}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# count BINARY → instructions per decision
count() {
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    "$1" --bench --profile-time 2 "$CASE" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes --tree=calling --threshold=100 "$WORK/cg.out" 2>/dev/null |
    python3 -c '
import re, sys
lines = sys.stdin.read().splitlines()
for i, line in enumerate(lines):
    if re.search(r"\*\s+\S*:etax_authz::decision::Engine::decide \[", line):
        total = int(line.split()[0].replace(",", ""))
        for callee in lines[i + 1:]:
            if not callee.strip().startswith(tuple("0123456789")) or "*" in callee:
                break
            m = re.search(r"Engine::request_and_entities \(([\d,]+)x\)", callee)
            if m:
                print(round(total / int(m.group(1).replace(",", ""))))
                sys.exit(0)
sys.exit("no Engine::decide in the profile")'
  rm -f "$WORK/cg.out"
}

echo "$(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg); $CASE"
a=$(count "$A")
b=$(count "$B")
echo "| binary | instructions per decision |"
echo "|---|---:|"
echo "| $A | $a |"
echo "| $B | $b |"
python3 -c "print(f'candidate / baseline: {$b / $a:.3f}')"
