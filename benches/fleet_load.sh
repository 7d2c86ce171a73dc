#!/usr/bin/env bash
# Fleet mode under load (issue #15, item 7): benches/load.sh's decision mix
# and a login mix against one embedded sidecar, one fleet sidecar, and
# three fleet sidecars sharing one PostgreSQL.
#
#   benches/fleet_load.sh [BINARY] [SECONDS] [ENTERPRISES]
#
# BINARY defaults to target/release/etax-authz (built here if missing).
# Starts a throwaway PostgreSQL cluster (initdb into a temp dir, a free
# loopback port, as benches/fleet.sh), generates a bureau of ENTERPRISES
# (default 100: about 1,000 staff) with `gen --seed 1`, imports it into an
# embedded data directory and, with `import --fleet`, into the fleet; then
# starts one embedded sidecar and three fleet sidecars (each its own data
# directory and port, caught up from the change log at start; no keys:
# open on loopback, as the embedded one) and runs, each for SECONDS
# (default 10):
#
# 1. Decisions: the random mix of benches/load.sh (60 % clerks, 25 %
#    officers, 15 % agents acting for a client) on POST /v1/authorize, one
#    wrk at 32 connections per sidecar: the embedded sidecar alone, one
#    fleet sidecar alone, then the three fleet sidecars at once (three wrk
#    at the same time). Each fleet figure is printed as a ratio of the
#    embedded one (the baseline, measured in the same run).
# 2. Logins: the first step of an enterprise login with the right password
#    (argon2id at the production cost, and in fleet mode a write through
#    the fleet-wide lock), 8 connections per sidecar: the embedded sidecar,
#    one fleet sidecar, then three at once; the fleet's total logins/s with
#    three sidecars as a ratio of one.
#
# Every sidecar, every wrk and PostgreSQL share this machine's cores, so
# three sidecars here divide the CPU one had: what the figures can show is
# the fleet's overhead per decision (one sidecar against the embedded one)
# and whether the fleet's write lock, rather than the CPU, bounds logins.
#
# HOST_CPUS=0.5 gives each sidecar a host of its own size: a cgroup capped
# at that many CPUs (cgroup v1 `cpu` or v2 `cpu.max`; needs root). Three
# such sidecars then have three times one's CPU between them, as three
# front-end hosts would, and the login ratio shows whether the fleet lets
# them use it (only the shared PostgreSQL and its lock are common to them).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
BIN=${1:-target/release/etax-authz}
SECS=${2:-10}
N=${3:-100}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_postgres "$WORK"
  for g in "${GROUPS_MADE[@]}"; do rmdir "$g" 2>/dev/null || true; done
  rm -rf "$WORK"
}
GROUPS_MADE=()
# cap PID NAME: with HOST_CPUS, moves PID into a cgroup of its own capped at
# HOST_CPUS CPUs.
cap() {
  [ -n "${HOST_CPUS:-}" ] || return 0
  local quota g
  quota=$(awk -v c="$HOST_CPUS" 'BEGIN {printf "%d", c * 100000}')
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    g=/sys/fs/cgroup/etax-bench-$2
    grep -q cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
    mkdir -p "$g"; echo "$quota 100000" >"$g/cpu.max"
  else
    g=/sys/fs/cgroup/cpu/etax-bench-$2
    mkdir -p "$g"; echo 100000 >"$g/cpu.cfs_period_us"; echo "$quota" >"$g/cpu.cfs_quota_us"
  fi
  GROUPS_MADE+=("$g")
  echo "$1" >"$g/cgroup.procs"
}
trap cleanup EXIT
if [ "$BIN" = target/release/etax-authz ] && [ ! -x "$BIN" ]; then
  cargo build --release --locked --quiet
fi

start_postgres "$WORK"

echo "date: $(date -u +%FT%TZ)  load before: $(cut -d' ' -f1-3 /proc/loadavg)  cores: $(nproc)  binary: $BIN  $N enterprises, ${SECS}s a run  CPUs per sidecar: ${HOST_CPUS:-uncapped}"
"$BIN" gen --enterprises "$N" --seed 1 "$WORK/bureau.json" 2>"$WORK/gen.err"
PASSWORD=$(sed -n 's/.*password \([^ ]*\) .*/\1/p' "$WORK/gen.err")
python3 benches/load_principals.py "$WORK/bureau.json" "$WORK/account" >"$WORK/principals.lua"
mix_lua "$WORK/mix.lua" "$WORK/principals.lua"
# Every enterprise's account, one picked at random per login: logins in
# flight on one account count toward its lockout threshold before argon2
# runs (so parallel guesses cannot outrun it), and past it are refused 429
# `attempts_in_progress`.
python3 - "$WORK/bureau.json" "$PASSWORD" >"$WORK/login.lua" <<'PY'
import json, sys
accounts = [json.loads(l.rstrip().rstrip(","))["credit_code"]
            for l in open(sys.argv[1])
            if l.startswith('{"credit_code"') and '"category"' in l]  # not the agency
print("local accounts = {" + ",".join(f'"{a}"' for a in accounts) + "}")
print(f'local password = "{sys.argv[2]}"')
print("""local json = {["Content-Type"] = "application/json"}
function init(args) math.randomseed(os.time() * 1000 + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003)) end
function request()
  local body = '{"account":"' .. accounts[math.random(#accounts)] .. '","password":"' .. password .. '"}'
  return wrk.format("POST", nil, json, body)
end""")
PY
# Which answers the logins got: 200, and the first refusal's error code.
cat >>"$WORK/login.lua" <<'LUA'
ok, refused, why = 0, 0, ""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else
    refused = refused + 1
    if why == "" then why = status .. " " .. (body:match('"code":"([^"]*)"') or "?") end
  end
end
function done()
  for _, t in ipairs(threads) do
    io.write(string.format("answers: %d ok, %d refused %s\n", t:get("ok"), t:get("refused"), t:get("why")))
  end
end
LUA
"$BIN" import "$WORK/bureau.json" --data "$WORK/embedded" >/dev/null 2>&1
"$BIN" import "$WORK/bureau.json" --data "$WORK/importer" --fleet "$URL" \
  --fleet-host importer >/dev/null 2>&1

# start NAME [flags…]: a sidecar over $WORK/NAME; its address in ADDR[NAME].
declare -A ADDR
start() {
  local name=$1; shift
  ETAX_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --data "$WORK/$name" "$@" \
    >"$WORK/$name.out" 2>/dev/null &
  PIDS+=($!)
  cap $! "$name"
  for _ in $(seq 1200); do grep -q listening "$WORK/$name.out" 2>/dev/null && break; sleep 0.1; done
  ADDR[$name]=$(sed -n 's/.*listening on http:\/\///p' "$WORK/$name.out")
  [ -n "${ADDR[$name]}" ] || { echo "sidecar $name did not start" >&2; exit 1; }
}
start embedded
for h in f1 f2 f3; do start "$h" --fleet "$URL" --fleet-host "$h"; done

# run NAME PATH SCRIPT CONNS: wrk against sidecar NAME in the background,
# its output in $WORK/NAME.wrk; finish waits for every wrk started (not
# for the sidecars, which `wait` alone would).
WRKS=()
run() {
  wrk -t1 -c"$4" -d"${SECS}s" --latency -s "$3" "http://${ADDR[$1]}$2" >"$WORK/$1.wrk" &
  WRKS+=($!)
}
finish() { wait "${WRKS[@]}"; WRKS=(); }
rps() { awk '/Requests\/sec/ {print $2}' "$WORK/$1.wrk"; }
row() {
  local p50 p99 errs
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/$2.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/$2.wrk")
  errs=$(grep -E "Non-2xx|Socket errors|^answers" "$WORK/$2.wrk" | tr -s ' ' | tr '\n' ' ' || true)
  printf '| %s | %s | %s | %s | %s / %s | %s\n' "$1" "$2" "$(rps "$2")" "$3" "$p50" "$p99" "${errs:-none}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# compare WHAT PATH SCRIPT CONNS: WHAT on the embedded sidecar (the
# baseline), on one fleet sidecar alone, then on the three at once; each
# as a ratio of the baseline. Sets ONE and SUM: the fleet's requests/s
# with one sidecar and with three.
compare() {
  local base h
  run embedded "$2" "$3" "$4"; finish
  base=$(rps embedded)
  row "$1, embedded alone (baseline)" embedded "1.00"
  run f1 "$2" "$3" "$4"; finish
  ONE=$(rps f1)
  row "$1, 1 fleet sidecar alone" f1 "$(ratio "$ONE" "$base")"
  for h in f1 f2 f3; do run "$h" "$2" "$3" "$4"; done; finish
  SUM=0
  for h in f1 f2 f3; do
    row "$1, 3 fleet sidecars at once" "$h" "$(ratio "$(rps "$h")" "$base")"
    SUM=$(awk -v a="$SUM" -v b="$(rps "$h")" 'BEGIN {print a + b}')
  done
  echo "| $1, 3 fleet sidecars: total | all | $SUM | $(ratio "$SUM" "$base") | | "
}

echo
echo "| run | sidecar | requests/s | ratio | p50 / p99 | errors"
echo "|---|---|---:|---:|---|---|"
compare decisions /v1/authorize "$WORK/mix.lua" 32
compare logins /v1/login/enterprise "$WORK/login.lua" 8
echo
echo "logins/s, 3 fleet sidecars against 1: $(ratio "$SUM" "$ONE")"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
