#!/usr/bin/env bash
# The auditor console's overview on a big decision log.
#
#   benches/console_overview.sh [RECORDS] [REPEATS]
#
# Fills a fresh data directory's log with RECORDS (default 10,000,000)
# records spread over 30 days through the log's own writer
# (benches/console_overview_fill.rs: chain, blocks and the writer's
# per-minute counts as a server writes them), starts the release binary on
# it, and times REPEATS (default 20) requests of each:
#
#   - /healthz                                  (baseline: the same server
#     answering a request that reads nothing)
#   - /v1/audit/overview?since=30d&bucket=day   (every record in range)
#   - /v1/audit/overview?since=30d&bucket=hour  (720 points)
#   - /v1/audit/overview?since=24h&bucket=minute (1,440 points)
#
# and prints each one's median and worst time and the ratio of its median
# to the baseline's. An overview also commits its own audit.read record
# (one fsync) before answering, as every read of the log does. Also prints
# how long the server took to start on the log (the saved counts checked
# against it) and the time the fill took.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
N=${1:-10000000}
REPEATS=${2:-20}
PID=
DATA=$(mktemp -d)
# The server finishes its clean close before the directory goes.
trap 'if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; fi; rm -rf "$DATA"' EXIT

echo "date: $(date -u +%FT%TZ)  machine: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --locked --quiet --bin etax-authz --bench console_overview_fill
FILL=$(ls -t target/release/deps/console_overview_fill-* | grep -v '\.d$' | head -1)

"$FILL" "$DATA/data" "$N" 30

out=$(mktemp)
t0=$(date +%s.%N)
start_demo target/release/etax-authz "$DATA/data" "$out"
t1=$(date +%s.%N)
echo "server listening after $(awk "BEGIN{printf \"%.2f\", $t1-$t0}") s on a log of $N records"

# time URL: REPEATS requests; prints median and max seconds, sets MEDIAN.
time_url() {
  local path=$1 times
  times=$(for _ in $(seq "$REPEATS"); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "http://$ADDR$path"
  done)
  if grep -qv '^200 ' <<<"$times"; then echo "non-200 answer for $path: $times" >&2; exit 1; fi
  MEDIAN=$(awk '{print $2}' <<<"$times" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  local max; max=$(awk '{print $2}' <<<"$times" | sort -n | tail -1)
  printf '%-48s median %8.4f s  max %8.4f s' "$path" "$MEDIAN" "$max"
}

time_url /healthz; BASE=$MEDIAN; echo
for path in "/v1/audit/overview?since=30d&bucket=day" \
            "/v1/audit/overview?since=30d&bucket=hour" \
            "/v1/audit/overview?since=24h&bucket=minute"; do
  time_url "$path"
  echo "  ratio to /healthz: $(awk "BEGIN{printf \"%.1f\", $MEDIAN/$BASE}")"
done
total=$(curl -s "http://$ADDR/v1/audit/overview?since=31d&bucket=day" | sed 's/.*"total":{"allow":\([0-9]*\),"deny":\([0-9]*\)}.*/\1 \2/')
echo "overview of 31 days counts allow+deny: $(awk '{print $1+$2}' <<<"$total") (filled: $N)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
