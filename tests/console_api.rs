//! `GET /v1/audit/overview`, the console's overview, against the real
//! binary: its counts (kept by the log's writer, per minute) equal a scan of
//! the log's records, and stay equal when their saved files are deleted,
//! torn, left behind by a crash or ahead of the log they were copied onto.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

const CLERK: &str = "Staff::\"91210102MA0TAX001F/resident_id:210102199001015035\"";

fn ask(function: &str) -> Value {
    use_function(CLERK, function)
}

/// Allowed and denied authorizations, a batch, a refused and a completed
/// login: records of several kinds, outcomes and policies.
fn make_decisions(s: &Server) {
    for f in ["vat_filing", "invoice_issue", "cit_filing", "invoice_issue"] {
        s.post("/v1/authorize", &ask(f));
    }
    let (status, _) = s.post(
        "/v1/authorize/batch",
        &json!({ "requests": [ask("tax_payment"), ask("invoice_issue")] }),
    );
    assert_eq!(status, 200);
    let (status, _) = s.post(
        "/v1/login/enterprise",
        &json!({ "account": E_SYNCED, "password": "Wrong@2026x" }),
    );
    assert_eq!(status, 401);
    login_by_sms(s, "**国");
}

type Tallies = BTreeMap<String, (u64, u64)>;

/// The overview's rows as `key → (allow, deny)`.
fn rows(v: &Value) -> Tallies {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                r["key"].as_str().unwrap().to_owned(),
                (n("allow"), n("deny")),
            )
        })
        .collect()
}

fn bump(t: &mut Tallies, key: &str, deny: bool) {
    let e = t.entry(key.to_owned()).or_default();
    if deny {
        e.1 += 1
    } else {
        e.0 += 1
    }
}

/// The overview of the last hour, per minute.
fn overview(s: &Server, include_reads: bool) -> Value {
    let (status, o) = s.get(&format!(
        "/v1/audit/overview?since=1h&bucket=minute&include_reads={include_reads}"
    ));
    assert_eq!(status, 200, "{o}");
    o
}

/// Counts a scan of every record (the export) the way the overview should
/// have, over its range and up to the record it says it counted through,
/// and compares.
fn assert_counts_match_the_log(s: &Server, include_reads: bool) {
    let o = overview(s, include_reads);
    let c = &o["counts"];
    let (since, until) = (
        c["since_ms"].as_u64().unwrap(),
        c["until_ms"].as_u64().unwrap(),
    );
    let through = c["through_seq"].as_u64().unwrap();
    let (mut kinds, mut callers, mut policies, mut outcomes, mut series) = (
        Tallies::new(),
        Tallies::new(),
        Tallies::new(),
        Tallies::new(),
        Tallies::new(),
    );
    let (mut allow, mut deny) = (0, 0);
    let mut last_seq = 0;
    for r in every_record(s) {
        let seq = r["seq"].as_u64().unwrap();
        last_seq = seq;
        let ts = r["timestamp_ms"].as_u64().unwrap();
        let kind = r["kind"].as_str().unwrap();
        if seq > through || ts < since || ts >= until || (!include_reads && kind == "audit.read") {
            continue;
        }
        let d = r["decision"] == "deny";
        if d {
            deny += 1
        } else {
            allow += 1
        }
        bump(&mut kinds, kind, d);
        bump(&mut callers, r["caller"].as_str().unwrap_or(""), d);
        bump(&mut outcomes, r["outcome"].as_str().unwrap_or("none"), d);
        bump(&mut series, &(ts / 60_000 * 60_000).to_string(), d);
        for p in r["policies"].as_array().unwrap() {
            bump(&mut policies, p.as_str().unwrap(), d);
        }
    }
    assert!(
        through <= last_seq,
        "counted past the log: {through} > {last_seq}"
    );
    assert!(allow > 0 && deny > 0, "a test needs both decisions: {o}");
    assert_eq!(c["total"], json!({ "allow": allow, "deny": deny }), "{o}");
    assert_eq!(rows(&c["by_kind"]), kinds, "{o}");
    assert_eq!(rows(&c["by_caller"]), callers, "{o}");
    assert_eq!(rows(&c["by_policy"]), policies, "{o}");
    assert_eq!(rows(&c["by_outcome"]), outcomes, "{o}");
    let points: Tallies = c["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["allow"].as_u64().unwrap() + p["deny"].as_u64().unwrap() > 0)
        .map(|p| {
            let n = |k: &str| p[k].as_u64().unwrap();
            (p["start_ms"].to_string(), (n("allow"), n("deny")))
        })
        .collect();
    assert_eq!(points, series, "{o}");
}

/// Every record of the log, page by page.
fn every_record(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = s.get(&format!(
            "/v1/audit/decisions?include_reads=true&limit=1000&after={after}"
        ));
        assert_eq!(status, 200, "{page}");
        out.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

#[test]
fn overview_counts_equal_a_scan_of_the_log_and_bad_input_names_its_field() {
    let s = Server::demo();
    make_decisions(&s);
    s.get("/v1/audit/verify");
    // Batched authorizations are durable within one writer cycle.
    wait_until("the batch is written", || {
        overview(&s, false)["counts"]["by_kind"]
            .to_string()
            .contains("authorize_batch")
    });
    assert_counts_match_the_log(&s, false);
    assert_counts_match_the_log(&s, true);

    // The chain: the head, the verification run and the checkpoint taken.
    let (_, head) = s.get("/v1/audit/checkpoint");
    let o = overview(&s, false);
    assert!(o["chain"]["head"]["seq"].as_u64().unwrap() > head["seq"].as_u64().unwrap());
    assert_eq!(o["chain"]["last_verify"]["verdict"], "ok", "{o}");
    assert_eq!(
        o["chain"]["last_checkpoint"]["checkpoint"]["seq"],
        head["seq"]
    );
    // Buckets whose edges are Beijing's: a day starts at 16:00 UTC.
    let (status, days) = s.get("/v1/audit/overview?since=3d&bucket=day");
    assert_eq!(status, 200, "{days}");
    for p in days["counts"]["series"].as_array().unwrap() {
        assert_eq!(
            (p["start_ms"].as_u64().unwrap() + 8 * 3_600_000) % 86_400_000,
            0
        );
        assert!(
            p["time"].as_str().unwrap().ends_with("T00:00:00.000+08:00"),
            "{p}"
        );
    }

    for (query, field) in [
        ("bucket=week", "bucket"),
        ("since=30d&bucket=minute", "bucket"),
        ("since=2026-01-02&until=2026-01-01", "until"),
        ("since=yesterday", "since"),
        (
            "since=18446744073709551614&until=18446744073709551615",
            "since",
        ),
        ("since=0&until=18446744073709551615", "until"),
        ("principal=x", "principal"),
    ] {
        let (status, body) = s.get(&format!("/v1/audit/overview?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
}

fn rollup_dir(data: &Path) -> std::path::PathBuf {
    etax_authz::audit::rollup::rollup_dir(&etax_authz::audit::decision_log_path(data))
}

fn chunk_files(data: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(rollup_dir(data))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A demo server's log over `data` with decisions in it, closed: its saved
/// chunk files.
fn closed_with_counts(data: &Path) -> Vec<std::path::PathBuf> {
    let s = Server::demo_in(data, &[]);
    make_decisions(&s);
    s.stop();
    let files = chunk_files(data);
    assert!(!files.is_empty(), "a clean close saves the counts");
    files
}

/// Cuts a file in half, as a crash mid-write by anything but the atomic
/// rename would.
fn tear(file: &Path) {
    let bytes = std::fs::read(file).unwrap();
    std::fs::write(file, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn rollups_are_rebuilt_from_the_log_when_deleted_torn_or_ahead_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let files = closed_with_counts(&data);
    // Kinds, API key ids and policy ids: no person.
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("210102199001015035") && !text.contains("2101**"),
            "{text}"
        );
    }
    let earlier = copy_data(&data);

    // Deleted: counted again from the log at start.
    std::fs::remove_dir_all(rollup_dir(&data)).unwrap();
    let s = Server::demo_in(&data, &[]);
    assert!(!chunk_files(&data).is_empty(), "saved again at open");
    assert_counts_match_the_log(&s, true);
    make_decisions(&s);
    s.stop();

    // Torn (a crash while the file was written by something else than the
    // atomic rename): not read, counted again.
    for f in chunk_files(&data) {
        tear(&f);
    }
    let s = Server::demo_in(&data, &[]);
    assert_counts_match_the_log(&s, true);
    s.stop();

    // Ahead: counts of a longer log copied onto an earlier one name a
    // record the earlier log does not hold.
    std::fs::remove_dir_all(rollup_dir(earlier.path())).unwrap();
    copy_dir(&rollup_dir(&data), &rollup_dir(earlier.path()));
    let s = Server::demo_in(earlier.path(), &[]);
    assert_counts_match_the_log(&s, true);
}

#[test]
fn rollups_catch_up_after_a_crash_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A clean stop saves the counts of the first start's records.
    Server::demo_in(&data, &[]).stop();
    let saved = chunk_files(&data);
    assert_eq!(saved.len(), 1);
    let before = std::fs::read(&saved[0]).unwrap();
    let mut s = Server::demo_in(&data, &[]);
    make_decisions(&s);
    s.get("/v1/audit/checkpoint");
    // SIGKILL: the open chunk was last saved before these records (every
    // 30 s); the journal holds them.
    s.kill();
    assert_eq!(
        std::fs::read(&saved[0]).unwrap(),
        before,
        "saved before the crash"
    );
    let s = Server::demo_in(&data, &[]);
    assert_counts_match_the_log(&s, true);
    assert_counts_match_the_log(&s, false);
}

/// Red team: a chunk file whose first and last records agree with the log
/// but whose counts are forged — a count near 2^64 (additions overflowed:
/// a panic in the writer, then at every start) or inflated denials — is
/// not believed: it is counted again from the log, and the server starts.
#[test]
fn forged_rollup_counts_are_counted_again_not_shown_or_overflowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::demo_in(&data, &[]);
    make_decisions(&s);
    s.stop();
    for forged in [u64::MAX, 1_000_000] {
        for f in chunk_files(&data) {
            let mut chunk: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            let minutes = chunk["minutes"].as_array_mut().unwrap();
            let cells = minutes[0][1]["cells"].as_array_mut().unwrap();
            let mut extra = cells[0].clone();
            extra[1] = serde_json::json!(forged);
            cells.push(extra.clone());
            cells.push(extra);
            std::fs::write(&f, chunk.to_string()).unwrap();
        }
        let s = Server::demo_in(&data, &[]);
        assert_counts_match_the_log(&s, true);
        // The writer keeps counting after the recount.
        make_decisions(&s);
        assert_counts_match_the_log(&s, true);
        s.stop();
    }
}

/// The console's verify view (`/v1/audit/verify`) on the log the server is
/// writing: a live log has no head.json until it closes, which is no
/// warning; the report says it is live and verified up to the last record
/// written. The command line, which cannot open a live log, says where it
/// is read; once the server closed it, nothing is live.
#[test]
fn verifying_the_live_log_says_it_is_live_not_unclosed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::demo_in(&data, &[]);
    make_decisions(&s);
    let (status, r) = s.get("/v1/audit/verify");
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["ok"], true, "{r}");
    let warnings = r["warnings"].as_array().cloned().unwrap_or_default();
    assert!(
        !warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("head.json")),
        "{r}"
    );
    let live = r["live"].as_str().unwrap_or_else(|| panic!("{r}"));
    let last = r["last_verified"]["seq"].as_u64().unwrap();
    assert!(live.starts_with("live log"), "{live}");
    assert!(
        live.contains(&format!("record {last}, the last one written")),
        "{live}"
    );

    let path = data.to_str().unwrap();
    let (code, _, err) = cli(&["audit", "verify", "--data", path]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("a live log is read through the server"),
        "{err}"
    );
    s.stop();
    let (code, out, err) = cli(&["audit", "verify", "--data", path, "--json"]);
    assert_eq!(code, 0, "{err}");
    let closed: Value = serde_json::from_str(&out).unwrap();
    assert!(closed.get("live").is_none(), "{out}");
}

/// A torn chunk is counted again from the log, and the service's own log
/// says so, naming the chunk.
#[test]
fn a_torn_rollup_chunk_is_recounted_with_a_warning_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let files = closed_with_counts(&data);
    let torn = &files[0];
    tear(torn);
    let log = dir.path().join("serve.log");
    let s = Server::start_logging(&data, &["--demo"], &log);
    assert_counts_match_the_log(&s, true);
    s.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("saved chunk is torn"))
        .unwrap_or_else(|| panic!("no warning of the torn chunk in:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    let name = torn.file_name().unwrap().to_str().unwrap();
    assert!(line.contains(name), "{line}");
}
