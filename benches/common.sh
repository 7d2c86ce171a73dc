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
