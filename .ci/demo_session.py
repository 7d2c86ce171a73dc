"""Logs the `serve --demo` legal representative (staff `**国` of the synced
demo enterprise) in by SMS code and prints the session token: what
examples/java/EtaxClient.java does, for CI's schemathesis run over staff
maintenance. ETAX_ADDR is the server's http://host:port, ETAX_KEY an API
key with the `login` scope (empty: no key)."""

import json
import os
import urllib.request

ADDR = os.environ["ETAX_ADDR"]
KEY = os.environ.get("ETAX_KEY", "")
ENTERPRISE = "91210102MA0TAX001F"


def post(path, body):
    req = urllib.request.Request(
        ADDR + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    if KEY:
        req.add_header("Authorization", "Bearer " + KEY)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


first = post("/v1/login/enterprise", {"account": ENTERPRISE, "password": "Etax@2026"})
flow = first["flow"]
staff = next(s["staff_id"] for s in first["staff"] if s["name"] == "**国")
code = post("/v1/login/enterprise/code", {"flow": flow, "staff": staff})
grant = post("/v1/login/enterprise/complete", {
    "flow": flow, "staff": staff, "challenge": code["challenge"], "code": code["code"]})
print(grant["session"])
