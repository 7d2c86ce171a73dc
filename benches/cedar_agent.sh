#!/usr/bin/env bash
# The same /v1/authorize-style question, asked of etax-authz and of
# cedar-agent (permitio), one after the other on this machine.
#
#   benches/cedar_agent.sh CEDAR_AGENT [BINARY] [SECONDS] [CONNECTIONS] [EXTRA_STAFF]
#
# CEDAR_AGENT is a cedar-agent binary (`cargo install cedar-agent --root
# /tmp/cedar-agent` builds one; nothing of it is part of this project).
# BINARY defaults to target/release/etax-authz. Both answer "may the demo
# clerk 张伟 use vat_filing?" (allow, through Staff in PermissionIdentity in
# Function), driven by wrk (1 thread) for SECONDS (default 10) over
# CONNECTIONS (default 8).
#
# cedar-agent 0.2 embeds Cedar 2.4, which cannot parse this project's
# policies (`is`, enum entities, the .cedarschema format), so it gets the
# two business-function policies rewritten in Cedar 2 syntax: exactly the
# policies etax-authz's action index evaluates for this question (it holds
# all 22). Its data store gets the clerk's entities plus EXTRA_STAFF
# (default 10000) generated staff members with their enterprises and
# roles, as an in-memory store holds a bureau; etax-authz reads the same
# question's slice from redb. etax-authz also logs every decision
# (cedar-agent keeps no decision log) and is run twice: with its built-
# entities cache (the default) and without (--decision-cache-bytes 0).
# The CPU column is each server's share over the run (200 % = both cores).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
AGENT=${1:?usage: benches/cedar_agent.sh CEDAR_AGENT [BINARY] [SECONDS] [CONNECTIONS] [EXTRA_STAFF]}
BIN=${2:-target/release/etax-authz}
SECS=${3:-10}
CONNS=${4:-8}
EXTRA=${5:-10000}
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

CLERK='91210102MA0TAX001F/resident_id:210102199001015035'
python3 - "$WORK" "$EXTRA" "$CLERK" <<'PY'
import json, sys
work, extra, clerk = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def uid(t, i): return {"type": f"Etax::{t}", "id": i}
ents = [
    {"uid": uid("Function", f), "attrs": {}, "parents": []}
    for f in ["vat_filing", "tax_payment", "invoice_issue"]
]
def bureau(code, person, roles):
    pi = [{"uid": uid("PermissionIdentity", f"{code}/{r}"), "attrs": {"name": r},
           "parents": [uid("Function", f) for f in fs]} for r, fs in roles.items()]
    return pi + [
        {"uid": uid("Enterprise", code), "attrs": {}, "parents": []},
        {"uid": uid("Person", person), "attrs": {"realNameVerified": True}, "parents": []},
        {"uid": uid("Staff", f"{code}/{person}"),
         "attrs": {"passwordChangeRequired": False, "person": {"__entity": uid("Person", person)}},
         "parents": [uid("Enterprise", code)] + [uid("PermissionIdentity", f"{code}/{r}") for r in roles]},
    ]
code, person = clerk.split("/")
ents += bureau(code, person, {"filing": ["vat_filing", "tax_payment"]})
for n in range(extra):
    ents += bureau(f"E{n:07d}", f"resident_id:P{n:07d}", {"filing": ["vat_filing"]})
json.dump(ents, open(f"{work}/data.json", "w"))
json.dump([
    {"id": "function.via-permission-identity",
     "content": 'permit (principal, action == Etax::Action::"useFunction", resource) when { principal in resource };'},
    {"id": "function.password-change-pending",
     "content": 'forbid (principal, action in [Etax::Action::"useFunction", Etax::Action::"maintainStaff"], resource) when { principal.passwordChangeRequired };'},
], open(f"{work}/policies.json", "w"))
body = {"principal": f'Etax::Staff::"{clerk}"', "action": 'Etax::Action::"useFunction"',
        "resource": 'Etax::Function::"vat_filing"'}
with open(f"{work}/agent.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("wrk.body = " + json.dumps(json.dumps(body)) + "\n")
PY

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name pid url wrk-script
  local before after hz=$(getconf CLK_TCK)
  before=$(cpu_ticks "$2")
  wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$4" "$3" >"$WORK/wrk.out"
  after=$(cpu_ticks "$2")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/{print $2}' "$WORK/wrk.out")
  p50=$(awk '$1=="50%"{print $2}' "$WORK/wrk.out")
  p99=$(awk '$1=="99%"{print $2}' "$WORK/wrk.out")
  errs=$(grep -E "Non-2xx|Socket errors" "$WORK/wrk.out" | tr -s ' ' || true)
  printf '| %s | %s | %s | %s | %s %% | %s\n' "$1" "$rps" "$p50" "$p99" \
    "$(( 100 * (after - before) / hz / SECS ))" "$errs"
}
wait_port() { for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$1/$2" && return; sleep 0.1; done; }

echo "| server | requests/s | p50 | p99 | CPU | errors"
echo "|---|---:|---:|---:|---:|"
"$AGENT" --port 18181 --data "$WORK/data.json" --policies "$WORK/policies.json" \
  --log-level error >/dev/null 2>&1 &
PIDS+=($!)
wait_port 18181 "v1/policies"
answer=$(curl -s -X POST -H 'content-type: application/json' \
  --data "$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().split("wrk.body = ",1)[1]))' "$WORK/agent.lua")" \
  http://127.0.0.1:18181/v1/is_authorized)
echo "$answer" | grep -q '"Allow"' || { echo "cedar-agent did not allow: $answer" >&2; exit 1; }
run "cedar-agent 0.2 (Cedar 2.4, 2 policies, $EXTRA extra staff in memory)" "${PIDS[-1]}" \
  http://127.0.0.1:18181/v1/is_authorized "$WORK/agent.lua"
kill "${PIDS[-1]}"

authorize_lua "$WORK/etax.lua"
for cache in 50331648 0; do
  start_demo "$BIN" "$WORK/data-$cache" "$WORK/serve-$cache.out" --decision-cache-bytes "$cache"
  PIDS+=("$PID")
  run "etax-authz (22 policies, index, decision log, cache $cache)" "$PID" \
    "http://$ADDR/v1/authorize" "$WORK/etax.lua"
  kill "$PID"
  sleep 0.5
done
