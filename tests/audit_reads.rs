//! Reading the decision log as an auditor does, against the real binary:
//! times at an offset (Beijing by default) in and out, summaries, streamed
//! JSONL/CSV export, the auditors' own reads left out unless asked for,
//! command-line reads logged, and the archive of every policy set loaded.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{cli, copy_dir, Server, CRATE_ROOT};
use serde_json::{json, Value};

const CLERK: &str = "Staff::\"91210102MA0TAX001F/resident_id:210102199001015035\"";

fn ask(function: &str) -> Value {
    json!({
        "principal": CLERK,
        "action": "Action::\"useFunction\"",
        "resource": format!("Function::\"{function}\""),
    })
}

/// A GET answered in full: status, head (lower-cased) and the body's bytes
/// with chunked transfer decoded.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

fn get_raw(server: &Server, path: &str) -> Raw {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Raw { status, head, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Records of a page of `/v1/audit/decisions?{query}`.
fn records(server: &Server, query: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/v1/audit/decisions?{query}"));
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().unwrap().clone()
}

/// Waits until the batched authorize records are on disk.
fn wait_for_records(server: &Server, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = records(server, query);
        if r.len() >= n || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// RFC 4180 rows (quoted fields may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

/// The `time` column of the CSV export of `query`.
fn csv_times(server: &Server, query: &str) -> Vec<String> {
    let raw = get_raw(server, &format!("/v1/audit/export?format=csv&{query}"));
    assert_eq!(raw.status, 200, "{}", String::from_utf8_lossy(&raw.body));
    let rows = parse_csv(std::str::from_utf8(&raw.body).unwrap());
    let col = rows[0].iter().position(|c| c == "time").unwrap();
    rows[1..].iter().map(|r| r[col].clone()).collect()
}

#[test]
fn times_are_read_and_shown_at_beijing_time_or_the_offset_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo_in(dir.path(), &[]);
    let (status, _) = server.post("/v1/authorize", &ask("vat_filing"));
    assert_eq!(status, 200);
    assert_eq!(wait_for_records(&server, "kind=authorize", 1).len(), 1);

    // Shown at +08:00 by default, at UTC when asked.
    let beijing = csv_times(&server, "kind=authorize").remove(0);
    assert!(beijing.ends_with("+08:00"), "{beijing}");
    let utc = csv_times(&server, "kind=authorize&tz=Z").remove(0);
    assert!(utc.ends_with('Z'), "{utc}");
    let hour = |t: &str| t[11..13].parse::<i32>().unwrap();
    assert_eq!((hour(&utc) + 8) % 24, hour(&beijing), "{utc} vs {beijing}");

    // A time with its own offset means that instant, whatever tz says.
    let enc = |t: &str| t.replace('+', "%2B");
    let at = |q: String| records(&server, &format!("kind=authorize&{q}")).len();
    assert_eq!(at(format!("since={}", enc(&beijing))), 1);
    assert_eq!(at(format!("since={}&tz=-05:00", enc(&beijing))), 1);
    assert_eq!(at(format!("until={}", enc(&utc))), 0);
    // Without an offset the clock time is read at the server's offset
    // (+08:00), or at the request's `tz`.
    let local = &beijing[..beijing.len() - 6];
    assert_eq!(at(format!("since={local}")), 1);
    assert_eq!(at(format!("since={local}&tz=Z")), 0, "8 hours later in UTC");
    assert_eq!(
        at(format!("since={local}&offset=%2B09:00")),
        1,
        "an hour earlier"
    );
    // A date is midnight at the offset: the record's Beijing date holds it.
    let date = &beijing[..10];
    assert_eq!(at(format!("since={date}")), 1);
    assert_eq!(at(format!("until={date}")), 0);
    // A bad offset is a 400 naming the parameter.
    let (status, err) = server.get("/v1/audit/decisions?tz=Mars");
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "tz", "{err}");
    let (status, err) = server.get("/v1/audit/decisions?since=2026-11-27T09:00:00%2B8");
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "since", "{err}");
    server.stop();

    // The command line reads and shows times the same way.
    let data = dir.path().to_str().unwrap();
    let query = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            "query",
            "--data",
            data,
            "--kind",
            "authorize",
            "--format",
            "csv",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = cli(&args);
        assert_eq!(code, 0, "{err}");
        parse_csv(&out)
    };
    let rows = query(&[]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][1], beijing);
    assert_eq!(query(&["--time-offset", "Z"])[1][1], utc);
    assert_eq!(query(&["--since", local]).len(), 2);
    assert_eq!(
        query(&["--since", local, "--time-offset", "+00:00"]).len(),
        1
    );
    assert_eq!(query(&["--until", &beijing]).len(), 1);
    let (code, out, _) = cli(&["audit", "query", "--data", data, "--kind", "authorize"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("TIME (+08:00)") && out.contains(&beijing),
        "{out}"
    );
    let (code, _, err) = cli(&["audit", "query", "--data", data, "--time-offset", "+25:00"]);
    assert_ne!(code, 0);
    assert!(err.contains("time-offset"), "{err}");
}

#[test]
fn summaries_count_who_was_denied_what() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo_in(dir.path(), &[]);
    for function in [
        "vat_filing",
        "vat_filing",
        "vat_filing",
        "invoice_issue",
        "invoice_issue",
    ] {
        let (status, _) = server.post("/v1/authorize", &ask(function));
        assert_eq!(status, 200);
    }
    assert_eq!(wait_for_records(&server, "kind=authorize", 5).len(), 5);

    let (status, body) = server.get("/v1/audit/summary?by=decision,principal&kind=authorize");
    assert_eq!(status, 200, "{body}");
    let clerk = "Etax::Staff::\"91210102MA0TAX001F/resident_id:2101**********5035\"";
    assert_eq!(body["records"], 5);
    assert_eq!(
        body["groups"],
        json!([
            { "key": { "decision": "allow", "principal": clerk }, "count": 3 },
            { "key": { "decision": "deny", "principal": clerk }, "count": 2 },
        ]),
        "{body}"
    );
    let (_, body) = server.get("/v1/audit/summary?by=policy&kind=authorize&decision=allow");
    assert_eq!(
        body["groups"],
        json!([{ "key": { "policy": "function.via-permission-identity" }, "count": 3 }])
    );

    // The reads just made are not counted unless asked for.
    let kinds = |query: &str| -> Vec<String> {
        let (status, body) = server.get(&format!("/v1/audit/summary?by=kind{query}"));
        assert_eq!(status, 200, "{body}");
        body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["key"]["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(!kinds("").contains(&"audit.read".to_owned()));
    assert!(kinds("&include_reads=true").contains(&"audit.read".to_owned()));
    assert_eq!(kinds("&kind=audit.read"), vec!["audit.read"]);

    for (query, field) in [
        ("", "by"),
        ("by=password", "by"),
        ("by=kind&bogus=1", "bogus"),
    ] {
        let (status, err) = server.get(&format!("/v1/audit/summary?{query}"));
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    server.stop();

    let data = dir.path().to_str().unwrap();
    let (code, out, err) = cli(&[
        "audit",
        "summary",
        "--data",
        data,
        "--by",
        "decision",
        "--kind",
        "authorize",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        summary["groups"],
        json!([
            { "key": { "decision": "allow" }, "count": 3 },
            { "key": { "decision": "deny" }, "count": 2 },
        ])
    );
    let (code, out, _) = cli(&[
        "audit",
        "summary",
        "--data",
        data,
        "--by",
        "decision,action",
        "--kind",
        "authorize",
    ]);
    assert_eq!(code, 0);
    let first = out.lines().nth(1).unwrap();
    assert!(first.trim_start().starts_with("3  allow"), "{out}");
}

#[test]
fn exports_stream_the_stored_lines_and_excel_ready_csv() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo_in(dir.path(), &[]);
    let (status, _) = server.post("/v1/authorize", &ask("vat_filing"));
    assert_eq!(status, 200);
    assert_eq!(wait_for_records(&server, "kind=authorize", 1).len(), 1);
    // A read whose filter names a person in Chinese: its record carries the
    // name (and a comma, which CSV must quote).
    let (status, _) = server.get("/v1/audit/decisions?principal=%E5%BC%A0%E4%BC%9F,%E6%9D%8E");
    assert_eq!(status, 200);

    let jsonl = get_raw(&server, "/v1/audit/export?include_reads=true");
    assert_eq!(jsonl.status, 200);
    assert!(
        jsonl.head.contains("transfer-encoding: chunked"),
        "{}",
        jsonl.head
    );
    assert!(
        jsonl.head.contains("content-type: application/x-ndjson"),
        "{}",
        jsonl.head
    );
    let text = String::from_utf8(jsonl.body).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.windows(2).all(|w| w[1]["prev_hash"] == w[0]["hash"]),
        "{text}"
    );
    assert!(lines.iter().any(|r| r["kind"] == "audit.read"));
    // Without include_reads the auditors' reads are left out.
    let plain = String::from_utf8(get_raw(&server, "/v1/audit/export").body).unwrap();
    assert!(
        !plain.is_empty() && !plain.contains("\"audit.read\""),
        "{plain}"
    );

    let csv = get_raw(
        &server,
        "/v1/audit/export?format=csv&bom=true&include_reads=true",
    );
    assert_eq!(csv.status, 200);
    assert!(
        csv.head.contains("content-type: text/csv; charset=utf-8"),
        "{}",
        csv.head
    );
    assert!(csv.body.starts_with(b"\xEF\xBB\xBF"), "no BOM");
    let csv_text = std::str::from_utf8(&csv.body[3..]).unwrap();
    let rows = parse_csv(csv_text);
    assert_eq!(rows[0][0], "seq");
    assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{rows:?}");
    let resource = rows[0].iter().position(|c| c == "resource").unwrap();
    assert!(
        rows.iter()
            .any(|r| r[resource].contains("principal=张伟,李")),
        "{csv_text}"
    );
    assert!(
        csv_text.contains("\"DecisionLog?principal=张伟,李\""),
        "quoted: {csv_text}"
    );
    let no_bom = get_raw(&server, "/v1/audit/export?format=csv");
    assert!(no_bom.body.starts_with(b"seq,"));
    for (query, field) in [
        ("format=xml", "format"),
        ("bom=maybe", "bom"),
        ("limit=3", "limit"),
    ] {
        let raw = get_raw(&server, &format!("/v1/audit/export?{query}"));
        assert_eq!(raw.status, 400);
        let err: Value = serde_json::from_slice(&raw.body).unwrap();
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    server.stop();

    // Exactly the stored lines: the command line's export (after the
    // server stopped) begins with what HTTP streamed.
    let data = dir.path().to_str().unwrap();
    let (code, out, err) = cli(&["audit", "export", "--data", data, "--include-reads"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&text),
        "HTTP export differs from the stored lines"
    );
    let (code, out, _) = cli(&[
        "audit", "export", "--data", data, "--format", "csv", "--bom",
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with('\u{feff}'), "{out}");
}

#[test]
fn command_line_reads_are_logged_and_shown_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo_in(dir.path(), &[]);
    let (status, _) = server.post("/v1/authorize", &ask("vat_filing"));
    assert_eq!(status, 200);
    server.stop();
    let data = dir.path().to_str().unwrap();
    for args in [
        &["query", "--kind", "authorize"][..],
        &["summary", "--by", "decision"][..],
        &["export"][..],
    ] {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data", data]);
        let (code, out, err) = cli(&all);
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains("audit.read"), "{args:?} showed reads: {out}");
    }
    let (code, out, _) = cli(&[
        "audit",
        "query",
        "--data",
        data,
        "--include-reads",
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 0);
    let reads: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "audit.read")
        .collect();
    let actions: Vec<&str> = reads
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    // Each read is recorded before it shows anything, so this query's own
    // read is there too.
    assert_eq!(
        actions,
        [
            "audit.query",
            "audit.summary",
            "audit.export",
            "audit.query"
        ],
        "{out}"
    );
    for r in &reads {
        assert_eq!(r["caller"], "cli", "{r}");
        assert!(
            r["principal"].as_str().unwrap().starts_with("Operator::"),
            "{r}"
        );
    }
    assert_eq!(reads[0]["resource"], "DecisionLog?kind=authorize");
    assert_eq!(reads[3]["resource"], "DecisionLog?include_reads=true");
    let (code, out, _) = cli(&["audit", "verify", "--data", data]);
    assert_eq!(code, 0, "{out}");
}

fn policy_version(server: &Server) -> String {
    let (_, status) = server.get("/v1/status");
    status["policy_version"].as_str().unwrap().to_owned()
}

#[test]
fn every_policy_set_loaded_is_archived_and_its_load_is_in_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(CRATE_ROOT);
    let policies = tmp.path().join("policies");
    copy_dir(&root.join("policies"), &policies);
    let schema = tmp.path().join("etax.cedarschema");
    std::fs::copy(root.join("schemas/etax.cedarschema"), &schema).unwrap();
    let data = tmp.path().join("data");
    let flags = [
        "--policies",
        policies.to_str().unwrap(),
        "--schema",
        schema.to_str().unwrap(),
        "--reload-poll-ms",
        "0",
    ];
    let server = Server::demo_in(&data, &flags);
    let v0 = policy_version(&server);
    assert!(data.join(format!("policy-archive/{v0}.json")).is_file());

    // `audit policy` prints the exact texts while the server runs.
    let d = data.to_str().unwrap();
    let (code, out, err) = cli(&["audit", "policy", &v0[..8], "--data", d]);
    assert_eq!(code, 0, "{err}");
    let login = std::fs::read_to_string(policies.join("login.cedar")).unwrap();
    assert!(
        out.contains("login.cedar <==") && out.contains(&login),
        "{out}"
    );
    assert!(
        out.contains("(schema) <==") && out.contains("entity Enterprise"),
        "{out}"
    );
    assert!(out.contains(&v0), "{out}");

    // A reload by SIGHUP: archived, and its event names both versions.
    let marker = "// reviewed by the audit office, 2026-11-27\n";
    std::fs::write(policies.join("login.cedar"), format!("{marker}{login}")).unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while policy_version(&server) == v0 {
        assert!(Instant::now() < deadline, "no reload");
        std::thread::sleep(Duration::from_millis(20));
    }
    let v1 = policy_version(&server);
    let loads = records(&server, "kind=policy.");
    assert_eq!(loads.len(), 2, "{loads:?}");
    assert_eq!(loads[0]["kind"], "policy.load");
    assert_eq!(loads[0]["principal"], "PolicyLoader::\"start\"");
    assert_eq!(loads[0]["policy_version"], v0.as_str());
    assert_eq!(loads[1]["kind"], "policy.reload");
    assert_eq!(loads[1]["principal"], "PolicyLoader::\"sighup\"");
    assert_eq!(loads[1]["resource"], format!("PolicySet::\"{v1}\""));
    let reason = loads[1]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&v1) && reason.contains(&format!("replaces {v0}")),
        "{reason}"
    );

    let (status, set) = server.get(&format!("/v1/audit/policy/{v1}"));
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["version"], v1.as_str());
    let files = set["policy_files"].as_array().unwrap();
    let file = files
        .iter()
        .find(|f| f["file"].as_str().unwrap().ends_with("login.cedar"))
        .unwrap();
    assert!(file["text"].as_str().unwrap().starts_with(marker));
    let (status, err) = server.get("/v1/audit/policy/deadbeefdeadbeef");
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["error"]["code"], "unknown_policy_version", "{err}");
    let (status, err) = server.get("/v1/audit/policy/abc");
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "version", "{err}");
    server.stop();

    // Restarting on the same texts archives nothing new.
    let server = Server::demo_in(&data, &flags);
    server.stop();
    let archived = std::fs::read_dir(data.join("policy-archive"))
        .unwrap()
        .count();
    assert_eq!(archived, 2);

    let (code, _, err) = cli(&["audit", "policy", "deadbeefdeadbeef", "--data", d]);
    assert_ne!(code, 0);
    assert!(err.contains("no archived policy set"), "{err}");
    // An archive edited after the fact no longer hashes to its version.
    let path = data.join(format!("policy-archive/{v0}.json"));
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("permit", "forbid", 1);
    std::fs::write(&path, edited).unwrap();
    let (code, _, err) = cli(&["audit", "policy", &v0, "--data", d]);
    assert_ne!(code, 0);
    assert!(err.contains("altered"), "{err}");
}

/// Every read of the log (the console's overview included) refuses a
/// parameter given twice, and a time later than the log's i64 ms can
/// hold, each a 400 naming the parameter: neither is an empty 200, and a
/// repeated one is not decided by whichever comes last.
#[test]
fn repeated_parameters_and_times_past_the_logs_range_are_refused_by_name() {
    let server = Server::demo();
    let huge = "9999999999999999999";
    for (query, field) in [
        ("decisions?kind=login&kind=authorize", "kind"),
        ("decisions?since=1&since=2", "since"),
        ("decisions?after=1&limit=5&after=2", "after"),
        ("decisions?tz=%2B08:00&offset=%2B09:00", "offset"),
        ("summary?by=kind&by=decision", "by"),
        ("export?format=csv&format=jsonl", "format"),
        ("verify?checkpoint=1:00&checkpoint=2:00", "checkpoint"),
        ("overview?bucket=hour&bucket=day", "bucket"),
        ("overview?until=1h&until=2h", "until"),
        (&format!("decisions?since={huge}"), "since"),
        (&format!("decisions?until={huge}"), "until"),
        (&format!("summary?by=kind&since={huge}"), "since"),
        (&format!("export?until={huge}"), "until"),
        (&format!("overview?since={huge}"), "since"),
        // A value no record can hold, and a signed number: refused, not an
        // empty page or a quietly read `+5`.
        ("decisions?principal=%00", "principal"),
        ("decisions?kind=%ff", "kind"),
        ("export?caller=a%00b", "caller"),
        ("overview?since=%1b", "since"),
        ("decisions?limit=%2B5", "limit"),
        ("decisions?after=%2B1", "after"),
    ] {
        let (status, err) = server.get(&format!("/v1/audit/{query}"));
        assert_eq!(status, 400, "{query}: {err}");
        assert_eq!(err["error"]["field"], field, "{query}: {err}");
    }
    // The largest time the log holds is still a time.
    let (status, page) = server.get(&format!("/v1/audit/decisions?since={}", i64::MAX));
    assert_eq!(status, 200, "{page}");
    server.stop();
}
