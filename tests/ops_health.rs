//! `/readyz` against the real binary, its decision-log writer stalled as
//! behind a hung disk (the debug-build hook `ETAX_TEST_STALL_LOG_WRITER`:
//! while the named file exists the writer waits before each commit).
//! One test in this file: the environment variable is process-wide.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Polls `/readyz` until its status is `want` (at most 60 s): the answer.
fn readyz_until(server: &Server, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = server.get("/readyz");
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {status}: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn readyz_names_a_stalled_decision_log_writer_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let stall = dir.path().join("stall");
    let data = dir.path().join("data");
    // The switch goes to this server alone: every integration test shares
    // this process, and a process-wide variable would stall their writers too.
    let server = Server::start_with_env(
        &data,
        &["--demo", "--ready-max-wait-ms", "200"],
        &[("ETAX_TEST_STALL_LOG_WRITER", stall.to_str().unwrap())],
    );
    let body = readyz_until(&server, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["failing"], json!([]));

    std::fs::write(&stall, b"").unwrap();
    // An authorization is answered once its record is queued; the stalled
    // writer holds it.
    let ask = json!({
        "principal": staff(E_SYNCED, P_CLERK), "action": action("useFunction"),
        "resource": "Function::\"vat_filing\"", "context": {}
    });
    assert_eq!(server.post("/v1/authorize", &ask).0, 200);
    let body = readyz_until(&server, 503);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failing"], json!(["decision_log"]), "{body}");
    let log = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "decision_log");
    let detail = log.unwrap()["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("writer stalled: 1 records waiting"),
        "{detail}"
    );
    // Liveness is not readiness: the process still answers.
    assert_eq!(server.get("/healthz").0, 200);

    std::fs::remove_file(&stall).unwrap();
    let body = readyz_until(&server, 200);
    assert_eq!(body["checks"][2]["ok"], true, "{body}");
    assert!(server.terminate().success());
    assert_eq!(count_records(&data, "authorize"), 1);
}
