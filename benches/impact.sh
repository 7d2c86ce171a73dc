#!/usr/bin/env bash
# Proofs and impact (issue #17, items 1–3).
#
#   benches/impact.sh [BINARY] [ENTERPRISES…]
#
# 1. Proof time per reload: `prove` of the bundled set (cvc5 started, every
#    property of policies/properties/ checked) five times, against `check`
#    (load and validate the same set) as the baseline run beside it.
# 2. Impact at scale: for each ENTERPRISES (default 10000 and 100000: about
#    100,000 and 1,000,000 staff), generates and imports a bureau (not
#    timed), then times `impact --format jsonl --no-symbolic` of a candidate
#    that takes the invoice functions out of the staff permit (every staff
#    member holding them loses them) under /usr/bin/time -v: elapsed, CPU,
#    peak RSS, questions asked. The smallest size is the baseline the others
#    are compared with (elapsed per principal).
# Needs cvc5 (apt-get install cvc5, or CVC5=/path).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/etax-authz}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

ms() { date +%s%3N; }

echo "== proofs: load $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(ms); for _ in 1 2 3 4 5; do "$BIN" check >/dev/null; done; t1=$(ms)
for _ in 1 2 3 4 5; do "$BIN" prove >"$WORK/prove.out"; done; t2=$(ms)
grep -E '^property|prove result' "$WORK/prove.out"
awk -v c=$((t1 - t0)) -v p=$((t2 - t1)) 'BEGIN {
  printf "check: %.0f ms per run; prove: %.0f ms per run (%.1f x check)\n", c / 5, p / 5, p / c }'

# The candidate: no invoice functions through permission identities.
mkdir -p "$WORK/candidate"
cp policies/*.cedar "$WORK/candidate/"
sed -i 's/^when { principal in resource };$/when { principal in resource \&\& !(resource in [Etax::Function::"invoice_issue", Etax::Function::"invoice_purchase"]) };/' \
  "$WORK/candidate/functions.cedar"
grep -q invoice_purchase "$WORK/candidate/functions.cedar"

base=""
for n in "${SIZES[@]}"; do
  doc="$WORK/bureau-$n.json"
  data="$WORK/data-$n"
  "$BIN" gen --enterprises "$n" --seed 1 "$doc" >/dev/null 2>&1
  "$BIN" import "$doc" --data "$data" >/dev/null 2>&1
  rm -f "$doc"
  echo "== $n enterprises: load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v "$BIN" impact --candidate "$WORK/candidate" --data "$data" \
    --format jsonl --no-symbolic >"$WORK/changes" 2>"$WORK/err" || { cat "$WORK/err"; exit 1; }
  grep -E '^impact: [0-9]+ principals, [0-9]+ questions' "$WORK/err"
  grep -E '^gained' "$WORK/err"
  echo "changes listed: $(wc -l <"$WORK/changes")"
  principals=$(sed -n 's/^impact: \([0-9]*\) principals, .*/\1/p' "$WORK/err" | tail -1)
  secs=$(sed -n 's/.*questions, each decided by both sets in \([0-9.]*\) s/\1/p' "$WORK/err")
  awk -F': ' '/User time/ {u = $2} /System time/ {printf "cpu: %.1f s user + %.1f s system\n", u, $2}
              /Maximum resident set size/ {printf "peak RSS: %.0f MB\n", $2 / 1024}' "$WORK/err"
  per=$(awk -v s="$secs" -v p="$principals" 'BEGIN {printf "%.2f", s * 1e6 / p}')
  if [ -z "$base" ]; then base=$per; fi
  echo "elapsed: $secs s; $per µs per principal ($(awk -v a="$per" -v b="$base" 'BEGIN {printf "%.2f", a / b}') x the first size); load after $(cut -d' ' -f1-3 /proc/loadavg)"
  rm -rf "$data"
done
