"""Principals for benches/load.sh's wrk script, from a document `gen` wrote.

    python3 benches/load_principals.py BUREAU.json ACCOUNT_FILE > principals.lua

Reads the document a line at a time (gen writes one record per line) and
keeps a uniform sample (reservoir, fixed seed) of at most 10,000 clerks,
10,000 officers (legal reps and finance heads) and 10,000 (agent, client)
pairs — an agent of an agency the client recognizes — as Lua tables
`clerks`, `officers`, `agents`. Writes one enterprise's credit code (an
account for the login storm) to ACCOUNT_FILE.
"""
import json
import random
import sys

KEEP = 10_000
rng = random.Random(1)
samples = {"clerks": [], "officers": [], "agents": []}
seen = {k: 0 for k in samples}


def keep(kind, item):
    seen[kind] += 1
    if len(samples[kind]) < KEEP:
        samples[kind].append(item)
    else:
        j = rng.randrange(seen[kind])
        if j < KEEP:
            samples[kind][j] = item


section = None
agents = {}  # agency credit code -> agents' person keys
account = None
with open(sys.argv[1], encoding="utf-8") as doc:
    for line in doc:
        line = line.strip().rstrip(",")
        if line.endswith(":["):
            section = line.strip('{"').split('"')[0]
            continue
        if not line.startswith("{"):
            continue
        if section == "enterprises" and account is None:
            account = json.loads(line)["credit_code"]
        elif section == "staff":
            r = json.loads(line)
            p = r["person"]
            key = f'{r["enterprise"]}/{p["id_type"]}:{p["id_number"]}'
            keep("clerks" if r["identity_type"] == "tax_clerk" else "officers", key)
        elif section == "agent_staff":
            r = json.loads(line)
            p = r["person"]
            agents.setdefault(r["agency"], []).append(f'{p["id_type"]}:{p["id_number"]}')
        elif section == "recognitions":
            r = json.loads(line)
            for person in agents.get(r["agency"], []):
                keep("agents", (f'{r["agency"]}/{person}', r["enterprise"]))

with open(sys.argv[2], "w") as f:
    f.write(account or "")
for kind in ("clerks", "officers"):
    print(f"{kind} = {{" + ",".join(json.dumps(k) for k in samples[kind]) + "}")
print("agents = {" + ",".join("{%s,%s}" % (json.dumps(a), json.dumps(c)) for a, c in samples["agents"]) + "}")
