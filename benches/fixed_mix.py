#!/usr/bin/env python3
"""The random mix of benches/load.sh as a fixed, seeded sequence of
questions, sent one after the other over one keep-alive connection, so that
two binaries answer exactly the same questions (benches/instructions.sh).

    fixed_mix.py ADDR PRINCIPALS_LUA COUNT [BATCH] [SEED]

PRINCIPALS_LUA is the principals file benches/load.sh writes; BATCH > 0
sends COUNT batches of BATCH questions to /v1/authorize/batch instead.
Exits 1 if any answer is not 200.
"""
import http.client
import json
import random
import re
import sys

FUNCTIONS = ["vat_filing", "cit_filing", "iit_withholding", "invoice_purchase", "invoice_issue",
             "social_insurance_fee", "tax_payment", "tax_certificate", "taxpayer_info"]


def principals(path):
    text = open(path).read()

    def strings(name):
        return re.findall(r'"([^"]*)"', re.search(name + r' = \{(.*?)\}\n', text, re.S).group(1))

    agents = re.findall(r'\{"([^"]*)","([^"]*)"\}', re.search(r'agents = \{(.*)\}\n', text, re.S).group(1))
    return strings("clerks"), strings("officers"), agents


def main():
    addr, lua, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    rnd = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    clerks, officers, agents = principals(lua)

    # 60 % clerks, 25 % officers, 15 % agents acting for a client, as load.sh.
    def question():
        r, f = rnd.randint(1, 100), rnd.choice(FUNCTIONS)
        q = {"action": 'Action::"useFunction"', "resource": f'Function::"{f}"'}
        if r <= 60:
            q["principal"] = f'Staff::"{rnd.choice(clerks)}"'
        elif r <= 85:
            q["principal"] = f'Staff::"{rnd.choice(officers)}"'
        else:
            agent, client = rnd.choice(agents)
            q["principal"] = f'AgentStaff::"{agent}"'
            q["context"] = {"actingFor": {"__entity": {"type": "Etax::Enterprise", "id": client}}}
        return q

    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    failed = 0
    for _ in range(count):
        if batch:
            path, body = "/v1/authorize/batch", {"requests": [question() for _ in range(batch)]}
        else:
            path, body = "/v1/authorize", question()
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        failed += answer.status != 200
    if failed:
        print(f"{failed} of {count} answers were not 200", file=sys.stderr)
        sys.exit(1)


main()
