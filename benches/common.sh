# Sourced by the wrk benchmarks (benches/*.sh).

# start_demo BIN DATA OUT [serve flags…]: serves the demo bureau from a
# fresh DATA directory on a free loopback port, its stdout in OUT; sets PID
# and ADDR (host:port) once it listens.
start_demo() {
  local bin=$1 data=$2 out=$3
  shift 3
  ETAX_LOG=warn "$bin" serve --demo --listen 127.0.0.1:0 --data "$data" "$@" >"$out" 2>/dev/null &
  PID=$!
  for _ in $(seq 300); do grep -q listening "$out" && break; sleep 0.1; done
  ADDR=$(sed -n 's/.*listening on http:\/\///p' "$out")
}

# authorize_lua FILE: a wrk script asking /v1/authorize whether the demo
# clerk 张伟 may use vat_filing (allowed through his filing role).
authorize_lua() {
  cat >"$1" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"principal":"Staff::\\"91210102MA0TAX001F/resident_id:210102199001015035\\"","action":"Action::\\"useFunction\\"","resource":"Function::\\"vat_filing\\""}'
LUA
}

# mix_lua FILE PRINCIPALS [BATCH]: a wrk script asking random questions of
# /v1/authorize — 60 % clerks, 25 % officers, 15 % agents acting for a
# client that recognizes their agency (PRINCIPALS: the Lua tables
# benches/load_principals.py writes), each with a random business function.
# With BATCH, each request asks BATCH such questions of /v1/authorize/batch.
mix_lua() {
  { cat "$2"; echo "local batch = ${3:-0}"; cat <<'LUA'
local functions = {"vat_filing", "cit_filing", "iit_withholding", "invoice_purchase",
  "invoice_issue", "social_insurance_fee", "tax_payment", "tax_certificate", "taxpayer_info"}
local head = '{"action":"Action::\\"useFunction\\"","resource":"Function::\\"'
function init(args)
  math.randomseed(os.time() * 1000 + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003))
end
local function question()
  local r = math.random(100)
  local f = functions[math.random(#functions)]
  if r <= 60 then
    return head .. f .. '\\"","principal":"Staff::\\"' .. clerks[math.random(#clerks)] .. '\\""}'
  elseif r <= 85 then
    return head .. f .. '\\"","principal":"Staff::\\"' .. officers[math.random(#officers)] .. '\\""}'
  end
  local a = agents[math.random(#agents)]
  return head .. f .. '\\"","principal":"AgentStaff::\\"' .. a[1] ..
    '\\"","context":{"actingFor":{"__entity":{"type":"Etax::Enterprise","id":"' .. a[2] .. '"}}}}'
end
local json = {["Content-Type"] = "application/json"}
function request()
  if batch == 0 then
    return wrk.format("POST", "/v1/authorize", json, question())
  end
  local qs = {}
  for i = 1, batch do qs[i] = question() end
  return wrk.format("POST", "/v1/authorize/batch", json, '{"requests":[' .. table.concat(qs, ",") .. ']}')
end
LUA
  } >"$1"
}

# start_postgres WORK: a throwaway PostgreSQL cluster in WORK/pg on a free
# loopback port, as the `postgres` user when root (PostgreSQL refuses to run
# as root); sets PG_BIN and URL. The caller stops it with stop_postgres WORK.
start_postgres() {
  local work=$1 port
  PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
  if [ "$(id -u)" = 0 ]; then chown postgres "$work"; fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_pg "$PG_BIN/initdb" -D "$work/pg" -U postgres --auth=trust >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -o "-p $port -k $work -c listen_addresses=127.0.0.1" \
    -l "$work/pg.log" -w start >/dev/null
  URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_postgres() {
  [ -n "${PG_BIN:-}" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$1/pg" -m immediate stop >/dev/null 2>&1 || true
}

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# storm_lua FILE PRINCIPALS PASSWORD: a wrk script of enterprise logins
# (POST /v1/login/enterprise, the right PASSWORD, so each runs argon2), each
# as a random enterprise among those of the officers PRINCIPALS holds: one
# account would cap the storm at the lockout's attempts in flight (5), the
# rest answered 429 without hashing.
storm_lua() {
  { cat "$2"; echo "local password = \"$3\""; cat <<'LUA'
function init(args)
  math.randomseed(os.time() * 1000 + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003))
end
local json = {["Content-Type"] = "application/json"}
function request()
  local account = officers[math.random(#officers)]:match("^([^/]+)/")
  return wrk.format("POST", "/v1/login/enterprise", json,
    '{"account":"' .. account .. '","password":"' .. password .. '"}')
end
LUA
  } >"$1"
}
