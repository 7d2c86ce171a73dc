//! `GET /v1/fleet/decisions/export` against a real PostgreSQL and real
//! sidecars: every host's records streamed as JSON lines, the very lines
//! `audit export --fleet` prints, filtered by host and record filters,
//! each read recorded, scope `audit`, and documented (line schema and
//! parameters) in `/openapi.json`. Skipped with a notice when PostgreSQL
//! is not installed (CI installs it).

use crate::common;

use common::fleet::{decide, shipped, sidecar};
use common::postgres::Postgres;
use common::{cli, get_streamed, wait_until, Server};
use serde_json::{json, Value};

const EXPORT: &str = "/v1/fleet/decisions/export";

/// The export's lines, each parsed.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn the_export_streams_every_hosts_records_as_the_cli_prints_them() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("export");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let h1 = sidecar(d1.path(), &url, "h1");
    let h2 = sidecar(d2.path(), &url, "h2");
    for _ in 0..4 {
        decide(&h1);
        decide(&h2);
    }
    decide(&h2);
    let mut text = String::new();
    wait_until("every question shipped", || {
        let (status, body) = get_streamed(h1.addr, &format!("{EXPORT}?kind=authorize"), &[]);
        assert_eq!(status, 200, "{body}");
        text = body;
        text.lines().count() >= 9
    });
    let got = lines(&text);
    let from = |host: &str| got.iter().filter(|l| l["host"] == host).count();
    assert_eq!((from("h1"), from("h2"), got.len()), (4, 5, 9), "{text}");
    for l in &got {
        assert_eq!(l["record"]["kind"], "authorize", "{l}");
        assert_eq!(l["record"]["hash"].as_str().unwrap().len(), 64, "{l}");
    }
    // Byte for byte the lines of `audit export --fleet`.
    let (code, out, err) = cli(&["audit", "export", "--fleet", &url, "--kind", "authorize"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(text, out);

    // One host; the record filters as locally.
    let (status, text) = get_streamed(h2.addr, &format!("{EXPORT}?host=h1&kind=authorize"), &[]);
    assert_eq!(status, 200, "{text}");
    let only = lines(&text);
    assert!(
        only.len() == 4 && only.iter().all(|l| l["host"] == "h1"),
        "{text}"
    );
    let (_, text) = get_streamed(
        h2.addr,
        &format!("{EXPORT}?decision=allow&kind=authorize"),
        &[],
    );
    assert!(text.is_empty(), "every question was denied: {text}");

    // Bad input is a 400 naming the parameter, before anything streams.
    let (status, body) = h1.get(&format!("{EXPORT}?limit=5"));
    assert_eq!(
        (status, &body["error"]["field"]),
        (400, &json!("limit")),
        "{body}"
    );
    let (status, body) = h1.get(&format!("{EXPORT}?since=yesterday-ish"));
    assert_eq!(
        (status, &body["error"]["field"]),
        (400, &json!("since")),
        "{body}"
    );

    // Each export is recorded in the answering host's own log.
    let (_, page) = h2.get("/v1/audit/decisions?kind=audit.read&include_reads=true&limit=1000");
    let exports = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "audit.fleet.export")
        .count();
    assert_eq!(exports, 2, "{page}");
    h1.stop();
    h2.stop();
}

#[test]
fn the_export_needs_the_audit_scope_and_fleet_mode() {
    let server = Server::demo();
    let (status, body) = server.get(EXPORT);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "fleet_mode_off", "{body}");
    server.stop();

    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("scope");
    let key = |id: &str, scope: &str| {
        let (code, out, err) = cli(&[
            "keys", "create", "--id", id, "--scope", scope, "--fleet", &url,
        ]);
        assert_eq!(code, 0, "{err}");
        format!("Bearer {}", out.trim())
    };
    let (auditor, ops) = (key("auditor", "audit"), key("ops", "admin"));
    let data = tempfile::tempdir().unwrap();
    let h1 = sidecar(data.path(), &url, "h1");
    let (status, _) = get_streamed(h1.addr, EXPORT, &[("Authorization", &ops)]);
    assert_eq!(status, 403);
    let (status, _) = get_streamed(h1.addr, EXPORT, &[]);
    assert_eq!(status, 401);
    let (status, text) = get_streamed(h1.addr, EXPORT, &[("Authorization", &auditor)]);
    assert_eq!(status, 200, "{text}");
    assert!(lines(&text).iter().all(|l| l["host"] == "h1"), "{text}");
    h1.stop();
}

/// The route in `/openapi.json`: JSON lines of a typed line, scope
/// `audit`, and every documented parameter accepted with its example, an
/// undocumented one refused naming it.
#[test]
fn the_export_is_documented_and_its_parameters_are_the_ones_it_takes() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("doc");
    let data = tempfile::tempdir().unwrap();
    let h1 = sidecar(data.path(), &url, "h1");
    decide(&h1);
    shipped(&h1, 2);
    let (_, doc) = h1.get("/openapi.json");
    let op = &doc["paths"][EXPORT]["get"];
    assert_eq!(op["x-etax-scope"], "audit", "{op}");
    let media = &op["responses"]["200"]["content"]["application/x-ndjson"];
    let line = media["x-etax-item-schema"]["$ref"].as_str().unwrap();
    let name = line.trim_start_matches("#/components/schemas/");
    let schema = &doc["components"]["schemas"][name];
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["host", "record"], "{schema}");
    let (_, text) = get_streamed(h1.addr, EXPORT, &[]);
    for l in lines(&text) {
        assert!(l["host"].is_string() && l["record"].is_object(), "{l}");
        assert_eq!(l.as_object().unwrap().len(), 2, "{l}");
    }

    let params = op["parameters"].as_array().unwrap();
    let mut checked = 0;
    for p in params.iter().filter(|p| p["in"] == "query") {
        let name = p["name"].as_str().unwrap();
        let example = match &p["example"] {
            Value::String(s) => s.replace('+', "%2B"),
            other => other.to_string(),
        };
        let (status, text) = get_streamed(h1.addr, &format!("{EXPORT}?{name}={example}"), &[]);
        assert_eq!(status, 200, "{name}={example}: {text}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} parameters documented");
    let (status, body) = h1.get(&format!("{EXPORT}?undocumented=1"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "undocumented", "{body}");
    h1.stop();
}
