//! The fleet's decision log and status against a real PostgreSQL and real
//! sidecars (each its own data directory): records shipped per host with
//! verifiable chains, tampering named by host and record, outages and
//! kill -9 caught up with nothing lost or duplicated, `/v1/fleet/status`.
//! Skipped with a notice when PostgreSQL is not installed (CI installs it).

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::fleet::{decide, shipped, shipping, sidecar};
use common::postgres::Postgres;
use common::{action, cli, staff, wait_until, Server, E_SYNCED, P_NATURAL};
use serde_json::{json, Value};

/// `(count, max seq, distinct seqs)` of a host's rows.
fn rows(pg: &Postgres, db: &str, host: &str) -> (u64, u64, u64) {
    let sql = format!(
        "SELECT count(*) || ' ' || coalesce(max(seq), 0) || ' ' || count(DISTINCT seq) \
         FROM fleet_decisions WHERE host = '{host}'"
    );
    let out = pg.psql(db, &sql);
    let v: Vec<u64> = out.split(' ').map(|n| n.parse().unwrap()).collect();
    (v[0], v[1], v[2])
}

fn verify_fleet(url: &str) -> (i32, String) {
    let (code, out, err) = cli(&["audit", "verify", "--fleet", url]);
    (code, format!("{out}{err}"))
}

#[test]
fn two_hosts_ship_verifiable_chains_and_a_tampered_row_is_named_by_host_and_record() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("chains");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let h1 = sidecar(d1.path(), &url, "h1");
    let h2 = sidecar(d2.path(), &url, "h2");
    for _ in 0..5 {
        decide(&h1);
        decide(&h2);
    }
    let head1 = shipped(&h1, 6);
    let head2 = shipped(&h2, 6);
    assert_eq!(rows(&pg, "chains", "h1"), (head1, head1, head1));
    assert_eq!(rows(&pg, "chains", "h2"), (head2, head2, head2));

    let (code, out) = verify_fleet(&url);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("host h1: ok, {head1} records")),
        "{out}"
    );
    assert!(
        out.contains(&format!("host h2: ok, {head2} records")),
        "{out}"
    );
    // The same over HTTP, from either sidecar.
    let (status, report) = h1.get("/v1/fleet/verify");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["hosts"].as_array().unwrap().len(), 2);
    let (status, page) = h2.get("/v1/fleet/decisions?kind=authorize&limit=1000");
    assert_eq!(status, 200, "{page}");
    let hosts: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts.iter().filter(|h| **h == "h1").count(), 5, "{page}");
    assert_eq!(hosts.iter().filter(|h| **h == "h2").count(), 5, "{page}");

    // The table refuses rewrites, even by its owner...
    pg.psql(
        "chains",
        "DO $$ BEGIN
           UPDATE fleet_decisions SET canonical = '{}' WHERE host = 'h2' AND seq = 3;
           RAISE EXCEPTION 'the update went through';
         EXCEPTION WHEN insufficient_privilege THEN NULL; END $$",
    );
    let (code, out) = verify_fleet(&url);
    assert_eq!(code, 0, "{out}");
    // ...until a superuser disables the trigger: the chain names the row.
    pg.psql(
        "chains",
        "ALTER TABLE fleet_decisions DISABLE TRIGGER fleet_decisions_no_update_or_delete;
         UPDATE fleet_decisions SET canonical = replace(canonical, '\"latency_us\":', '\"latency_us\":9')
           WHERE host = 'h2' AND seq = 3;
         ALTER TABLE fleet_decisions ENABLE TRIGGER fleet_decisions_no_update_or_delete",
    );
    let (code, out) = verify_fleet(&url);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("host h1: ok"), "{out}");
    assert!(out.contains("host h2: Tampered at record 3"), "{out}");
    let (_, report) = h1.get("/v1/fleet/verify?host=h2");
    assert_eq!(report["verdict"], "tampered", "{report}");
    assert_eq!(
        report["hosts"][0]["report"]["problem"]["seq"], 3,
        "{report}"
    );
    // A link column rewritten alone is caught too: the record says which
    // hash it follows.
    pg.psql(
        "chains",
        "ALTER TABLE fleet_decisions DISABLE TRIGGER fleet_decisions_no_update_or_delete;
         UPDATE fleet_decisions SET prev_hash = repeat('0', 64) WHERE host = 'h1' AND seq = 2;
         ALTER TABLE fleet_decisions ENABLE TRIGGER fleet_decisions_no_update_or_delete",
    );
    let (code, out) = verify_fleet(&url);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("host h1: Tampered at record 2"), "{out}");
    h1.stop();
    h2.stop();
}

#[test]
fn a_database_outage_is_caught_up_with_nothing_lost_or_duplicated() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("outage");
    let data = tempfile::tempdir().unwrap();
    let h1 = sidecar(data.path(), &url, "h1");
    decide(&h1);
    let before = shipped(&h1, 2);
    pg.stop();
    for _ in 0..20 {
        decide(&h1);
    }
    // Decisions go on; the lag shows what waits, and that the database is
    // away once the shipper has tried.
    wait_until("the lag to show the outage", || {
        let l = shipping(&h1);
        l["records"].as_u64().unwrap() >= 20 && l["connected"] == false
    });
    assert!(shipping(&h1)["oldest_age_ms"].is_u64());
    pg.restart();
    let head = shipped(&h1, before + 20);
    assert_eq!(rows(&pg, "outage", "h1"), (head, head, head));
    let (code, out) = verify_fleet(&url);
    assert_eq!(code, 0, "{out}");
    h1.stop();
}

#[test]
fn another_log_under_a_shipped_host_name_is_a_conflict_not_a_silent_skip() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("conflict");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = sidecar(d1.path(), &url, "h1");
    decide(&first);
    let head = shipped(&first, 2);
    first.stop();
    let hashes = "SELECT string_agg(hash, ',' ORDER BY seq) FROM fleet_decisions";
    let before = pg.psql("conflict", hashes);
    // A second sidecar, its own fresh log, under the same name.
    let second = sidecar(d2.path(), &url, "h1");
    wait_until("the conflict reported", || {
        shipping(&second)["conflict"] == true
    });
    assert_eq!(second.metric("etax_fleet_log_conflict"), 1);
    // Nothing of the second log went in, nothing of the first was lost.
    assert_eq!(pg.psql("conflict", hashes), before);
    assert_eq!(rows(&pg, "conflict", "h1"), (head, head, head));
    second.stop();
}

#[test]
fn kill_9_under_load_then_restart_ships_every_acknowledged_record_exactly_once() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("crash");
    let data = tempfile::tempdir().unwrap();
    let mut h1 = sidecar(data.path(), &url, "h1");
    let addr = h1.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let body = json!({
                    "principal": staff(E_SYNCED, P_NATURAL),
                    "action": action("useFunction"),
                    "resource": "Function::\"vat_filing\"",
                    "context": {},
                });
                while !stop.load(Ordering::Relaxed) {
                    // Refused connections after the kill are expected.
                    let _ = common::try_request(addr, "POST", "/v1/authorize", Some(&body));
                }
            })
        })
        .collect();
    // The checkpoint is the durable head: every record up to it was
    // acknowledged as written.
    let mut acked = (0, String::new());
    wait_until("records under load", || {
        let (_, cp) = h1.get("/v1/audit/checkpoint");
        acked = (
            cp["seq"].as_u64().unwrap(),
            cp["hash"].as_str().unwrap().into(),
        );
        acked.0 >= 300
    });
    h1.kill();
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let h1 = sidecar(data.path(), &url, "h1");
    let head = shipped(&h1, acked.0);
    assert_eq!(rows(&pg, "crash", "h1"), (head, head, head));
    let hash = pg.psql(
        "crash",
        &format!(
            "SELECT hash FROM fleet_decisions WHERE host = 'h1' AND seq = {}",
            acked.0
        ),
    );
    assert_eq!(hash, acked.1);
    let (code, out) = verify_fleet(&url);
    assert_eq!(code, 0, "{out}");
    h1.stop();
}

#[test]
fn fleet_status_lists_every_host_with_its_policy_version_and_shipping() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("status");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let h1 = sidecar(d1.path(), &url, "h1");
    let h2 = sidecar(d2.path(), &url, "h2");
    let version = h1.get("/v1/status").1["policy_version"].clone();
    let head = shipped(&h2, 1);
    let mut status = Value::Null;
    wait_until("both hosts in the fleet's status", || {
        status = h1.get("/v1/fleet/status").1;
        status["hosts"].as_array().is_some_and(|h| h.len() == 2)
            && status["hosts"][1]["shipped_seq"].as_u64() >= Some(head)
    });
    assert_eq!(status["this_host"], "h1", "{status}");
    for (i, name) in ["h1", "h2"].iter().enumerate() {
        let host = &status["hosts"][i];
        assert_eq!(host["host"], *name, "{status}");
        assert_eq!(host["policy_version"], version, "{status}");
        assert_eq!(host["stale"], false, "{status}");
    }
    assert_eq!(
        status["policy_versions"],
        json!([{ "policy_version": version, "hosts": ["h1", "h2"] }])
    );
    // A host gone quiet is flagged stale once its row ages.
    h2.stop();
    wait_until("h2 flagged stale", || {
        let s = h1.get("/v1/fleet/status").1;
        s["hosts"][1]["stale"] == true && s["hosts"][0]["stale"] == false
    });
    h1.stop();
}

#[test]
fn fleet_routes_answer_404_naming_fleet_mode_when_it_is_off() {
    let server = Server::demo();
    for path in [
        "/v1/fleet/status",
        "/v1/fleet/decisions",
        "/v1/fleet/verify",
    ] {
        let (status, body) = server.get(path);
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "fleet_mode_off", "{path}: {body}");
    }
    assert!(server.get("/v1/status").1.get("fleet_shipping").is_none());
}

/// The fleet routes' query parameters as `/openapi.json` documents them,
/// each sent with its example, are accepted; an undocumented one is
/// refused naming it (ops_openapi checks the other routes without a fleet).
#[test]
fn every_documented_fleet_query_parameter_is_accepted_and_no_other() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("params");
    let data = tempfile::tempdir().unwrap();
    let h1 = sidecar(data.path(), &url, "h1");
    shipped(&h1, 1);
    let (_, doc) = h1.get("/openapi.json");
    let mut checked = 0;
    for path in [
        "/v1/fleet/decisions",
        "/v1/fleet/verify",
        "/v1/fleet/status",
    ] {
        let params = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for p in params.iter().filter(|p| p["in"] == "query") {
            let name = p["name"].as_str().unwrap();
            let example = match &p["example"] {
                Value::String(s) => s.replace('+', "%2B"),
                other => other.to_string(),
            };
            // A checkpoint names one host's record, so it goes with a host:
            // h1's first record, which the chain must still extend.
            let query = match name {
                "checkpoint" => format!("host=h1&checkpoint=1:{}", first_hash(&pg)),
                _ => format!("{name}={example}"),
            };
            let (status, body) = h1.get(&format!("{path}?{query}"));
            assert_eq!(status, 200, "{path}?{query}: {body}");
            checked += 1;
        }
        let (status, body) = h1.get(&format!("{path}?undocumented=1"));
        if !params.is_empty() {
            assert_eq!(status, 400, "{path}: {body}");
            assert_eq!(body["error"]["field"], "undocumented", "{body}");
        }
    }
    assert!(checked >= 18, "only {checked} fleet parameters documented");
    h1.stop();
}

/// The hash of h1's first record, from the fleet's table.
fn first_hash(pg: &Postgres) -> String {
    pg.psql(
        "params",
        "SELECT hash FROM fleet_decisions WHERE host = 'h1' AND seq = 1",
    )
}

/// The fleet's reads refuse a parameter given twice (`host=h1&host=h2`
/// once read the last) and a time past an i64 of ms (once wrapped to a
/// negative bound: an empty 200), each a 400 naming the parameter.
#[test]
fn fleet_reads_refuse_repeated_parameters_and_times_past_the_range() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("params");
    let dir = tempfile::tempdir().unwrap();
    let h1 = Server::start_in(
        dir.path(),
        &["--demo", "--fleet", &url, "--fleet-host", "h1"],
    );
    let huge = "9999999999999999999";
    for (query, field) in [
        ("decisions?host=h1&host=h2", "host"),
        ("decisions?since=1&since=2", "since"),
        ("decisions/export?host=h1&host=h2", "host"),
        ("verify?host=h1&host=h2", "host"),
        (&format!("decisions?since={huge}"), "since"),
        (&format!("decisions?until={huge}"), "until"),
        (&format!("decisions/export?since={huge}"), "since"),
    ] {
        let (status, err) = h1.get(&format!("/v1/fleet/{query}"));
        assert_eq!(status, 400, "{query}: {err}");
        assert_eq!(err["error"]["field"], field, "{query}: {err}");
    }
    h1.stop();
}
