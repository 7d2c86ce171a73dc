#!/usr/bin/env bash
# What the one decision path (issue #11: outcome, persons with keyed
# pseudonyms, masked context, decision metrics) costs /v1/authorize.
#
#   benches/decision_path.sh BASELINE_BINARY NEW_BINARY [SECONDS] [CONNECTIONS] [ROUNDS]
#
# Runs the same wrk load (2 threads, an allowed useFunction question) against
# each binary in turn, ROUNDS times alternating (default 3), each on a fresh
# demo data dir, and prints requests/s for each run, the medians and the
# ratio new/baseline. Alternating rounds spread the machine's other load
# over both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
BASE=$1
NEW=$2
SECS=${3:-10}
CONNS=${4:-32}
ROUNDS=${5:-3}
WORK=$(mktemp -d)
PID=
# The server flushes its decision log as it stops: wait for it before the
# directory goes, or the removal races the last writes.
trap '{ kill $PID 2>/dev/null && wait $PID 2>/dev/null; } || true; rm -rf "$WORK"' EXIT
authorize_lua "$WORK/authorize.lua"

run() { # run BIN → requests/s
  local data; data=$(mktemp -d -p "$WORK")
  start_demo "$1" "$data" "$data.out"
  wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$WORK/authorize.lua" "http://$ADDR/v1/authorize" \
    | awk '/Requests\/sec/ {print $2}'
  kill "$PID"; wait "$PID" 2>/dev/null || true
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: >"$WORK/base"; : >"$WORK/new"
for r in $(seq "$ROUNDS"); do
  b=$(run "$BASE"); echo "round $r baseline: $b req/s"; echo "$b" >>"$WORK/base"
  n=$(run "$NEW"); echo "round $r new:      $n req/s"; echo "$n" >>"$WORK/new"
done
mb=$(median <"$WORK/base"); mn=$(median <"$WORK/new")
echo "median baseline $mb req/s, new $mn req/s, ratio new/baseline $(awk -v a="$mn" -v b="$mb" 'BEGIN {printf "%.3f", a/b}')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
