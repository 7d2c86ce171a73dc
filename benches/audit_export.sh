#!/usr/bin/env bash
# Reading a long decision log over HTTP: paging /v1/audit/decisions (the
# only way before the export endpoint) against streaming /v1/audit/export,
# in the same run over the same log.
#
#   benches/audit_export.sh [BINARY] [RECORDS]
#
# Starts BINARY (default target/release/etax-authz) with --demo on a fresh
# data dir, fills the log to RECORDS (default 500000) decision records with
# wrk driving POST /v1/authorize/batch (100 questions per request), waits for
# the writer to settle, then times with curl: (1) every page of
# /v1/audit/decisions?limit=1000 (the baseline), (2) /v1/audit/export as
# JSON lines, (3) as CSV. While each read runs, the server's resident memory
# is sampled every 50 ms; the growth over its value before the read shows
# whether the answer is built in memory or streamed.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
BIN=${1:-target/release/etax-authz}
RECORDS=${2:-500000}
DATA=$(mktemp -d)
OUT=$(mktemp)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA" "$OUT" "$OUT".*' EXIT

start_demo "$BIN" "$DATA" "$OUT"

ask='{"principal":"Staff::\"91210102MA0TAX001F/resident_id:210102199001015035\"","action":"Action::\"useFunction\"","resource":"Function::\"vat_filing\""}'
batch="{\"requests\":[$(for _ in $(seq 100); do printf '%s,' "$ask"; done | sed 's/,$//')]}"
cat >"$OUT.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$(printf '%s' "$batch" | sed 's/\\/\\\\/g')'
LUA

head_seq() { curl -s "http://$ADDR/v1/audit/checkpoint" | sed 's/.*"seq":\([0-9]*\).*/\1/'; }
fill_start=$(date +%s)
while [ "$(head_seq)" -lt "$RECORDS" ]; do
  wrk -t2 -c8 -d5s -s "$OUT.lua" "http://$ADDR/v1/authorize/batch" >/dev/null
done
# Let the writer drain its queue: settled once the head grows only by the
# checkpoint read's own record.
prev=-1; now=$(head_seq)
while [ "$now" != "$((prev + 1))" ]; do sleep 0.5; prev=$now; now=$(head_seq); done
echo "log filled: $now records in $(( $(date +%s) - fill_start )) s"

rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
# sample CMD…: runs CMD while sampling the server's RSS; prints seconds and
# the peak RSS growth (KiB).
sample() {
  local base peak=0 pid start end
  base=$(rss)
  start=$(date +%s.%N)
  "$@" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local r; r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.05
  done
  wait "$pid"
  end=$(date +%s.%N)
  echo "$(awk "BEGIN{printf \"%.2f\", $end - $start}") $(( peak > base ? peak - base : 0 ))"
}

page_all() {
  local after=0 pages=0 n=0
  while :; do
    curl -s "http://$ADDR/v1/audit/decisions?limit=1000&after=$after" >"$OUT.page"
    pages=$((pages + 1))
    n=$(( n + $(grep -o '"decision_id"' "$OUT.page" | wc -l) ))
    after=$(sed 's/.*"next_after":\([0-9a-z]*\)}$/\1/' "$OUT.page")
    [ "$after" = "null" ] && break
  done
  echo "$n" >"$OUT.paged"
}
export_as() {
  curl -s -o "$OUT.export" "http://$ADDR/v1/audit/export?$1"
}

read -r page_s page_kib < <(sample page_all)
read -r jsonl_s jsonl_kib < <(sample export_as "format=jsonl")
jsonl_lines=$(wc -l <"$OUT.export"); jsonl_mb=$(( $(stat -c %s "$OUT.export") / 1048576 ))
read -r csv_s csv_kib < <(sample export_as "format=csv&bom=true")
csv_lines=$(( $(wc -l <"$OUT.export") - 1 ))

echo "paging /v1/audit/decisions?limit=1000: $(cat "$OUT.paged") records in ${page_s} s; server RSS +${page_kib} KiB"
echo "export jsonl: $jsonl_lines records ($jsonl_mb MiB) in ${jsonl_s} s; server RSS +${jsonl_kib} KiB"
echo "export csv:   $csv_lines records in ${csv_s} s; server RSS +${csv_kib} KiB"
echo "export jsonl is $(awk "BEGIN{printf \"%.1f\", $page_s / $jsonl_s}")x faster than paging"
