//! Graceful stop of the real binary: after SIGTERM no new connection is
//! accepted, a request in flight still completes, the decision log is
//! flushed and closed cleanly, the process exits 0, and the next start
//! finds both stores closed cleanly.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[test]
fn sigterm_finishes_the_request_in_flight_refuses_new_ones_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::demo_in(&data, &["--shutdown-grace-secs", "60"]);
    let addr = server.addr;
    // A login step in flight: its head and half its body sent.
    let body = json!({ "account": E_SYNCED, "password": "Etax@2026" }).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = raw_request("POST", "/v1/login/enterprise", &[], "");
    let head = head.replace(
        "Content-Length: 0",
        &format!("Content-Length: {}", body.len()),
    );
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(first.as_bytes()).unwrap();
    // A queued authorize record must be flushed by the stop as well.
    let ask = json!({
        "principal": staff(E_SYNCED, P_CLERK), "action": action("useFunction"),
        "resource": "Function::\"vat_filing\"", "context": {}
    });
    assert_eq!(server.post("/v1/authorize", &ask).0, 200);
    // Time for the server to read the slow request's head (it then counts
    // as in flight).
    std::thread::sleep(Duration::from_secs(1));
    server.signal("TERM");
    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    slow.write_all(rest.as_bytes()).unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    let json: Value = serde_json::from_str(json).unwrap();
    assert!(json["flow"].is_string(), "{json}");

    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    // The log was closed cleanly: its head names the last record.
    let head: Value = serde_json::from_slice(
        &std::fs::read(etax_authz::audit::decision_log_path(&data).join("head.json")).unwrap(),
    )
    .unwrap();
    assert!(head["seq"].as_u64().unwrap() >= 3, "{head}");
    assert_eq!(count_records(&data, "authorize"), 1);
    assert_eq!(count_records(&data, "login."), 1);
    let (code, out, err) = cli(&["audit", "verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("not closed cleanly"), "{out}");
    // And the next start opens both stores without repair.
    let log = dir.path().join("second.log");
    let again = Server::start_logging(&data, &[], &log);
    assert_eq!(again.get("/readyz").0, 200);
    assert!(again.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("not closed cleanly") && !text.contains("repair"),
        "{text}"
    );
}
