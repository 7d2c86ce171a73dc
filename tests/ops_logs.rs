//! Request ids, log formats, the access log and the Unix socket, against
//! the real binary.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[test]
fn a_sane_request_id_is_echoed_and_recorded_and_others_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo_in(&dir.path().join("data"), &[]);
    let login = json!({ "account": E_SYNCED, "password": "Etax@2026" }).to_string();
    let id = [("X-Request-Id", "ticket-7781.a")];
    let (status, head, _) = exchange_tcp(server.addr, "POST", "/v1/login/enterprise", &id, &login);
    assert_eq!(status, 200);
    assert_eq!(header(&head, "x-request-id"), Some("ticket-7781.a"));
    // An ID number in the header would reach every log line unmasked:
    // replaced, like an over-long or non-printable one.
    for bad in [
        "id 210102199001015035",
        "210102199001015035",
        &"a".repeat(129),
    ] {
        let (_, head, _) =
            exchange_tcp(server.addr, "GET", "/healthz", &[("X-Request-Id", bad)], "");
        let got = header(&head, "x-request-id").unwrap();
        assert_eq!(got.len(), 32, "{bad:?} → {got}");
        assert!(got.bytes().all(|b| b.is_ascii_lowercase()), "{got}");
    }
    let (_, head, _) = exchange_tcp(server.addr, "GET", "/healthz", &[], "");
    assert_eq!(header(&head, "x-request-id").unwrap().len(), 32);
    let data = server.data.clone();
    server.stop();
    let log = String::from_utf8_lossy(&decision_log_contents(&data)).into_owned();
    let line = log
        .lines()
        .find(|l| l.contains("\"kind\":\"login.") && l.contains("\"request_id\":\"ticket-7781.a\""))
        .unwrap_or_else(|| panic!("no login record names the request id in {log}"));
    assert!(!line.contains("Etax@2026"));
    // Records of requests that named none carry a generated one; records
    // not made by a request (the policy load) carry none.
    let load = log
        .lines()
        .find(|l| l.contains("\"kind\":\"policy.load\""))
        .unwrap();
    assert!(!load.contains("request_id"), "{load}");
    let (code, out, err) = cli(&["audit", "verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Lines of the service's log that are access-log lines.
fn request_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("\"request\"") || l.contains(" request "))
        .collect()
}

#[test]
fn json_log_lines_carry_the_request_id_and_mask_persons() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let extra = ["--demo", "--log-format", "json", "--access-log", "all"];
    let server = Server::start_logging(&dir.path().join("data"), &extra, &log);
    let person = "/v1/maintenance/staff/resident_id:210102199001015035";
    let (status, _, _) = exchange_tcp(
        server.addr,
        "DELETE",
        person,
        &[("X-Request-Id", "rq-1")],
        "",
    );
    assert_eq!(status, 401);
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let mut seen = false;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["fields"]["message"] == "request" && v["span"]["request_id"] == "rq-1" {
            assert_eq!(v["fields"]["status"], 401);
            seen = true;
        }
    }
    assert!(seen, "no access-log line of rq-1 in {text}");
    assert!(!text.contains("210102199001015035"), "{text}");
}

#[test]
fn the_access_log_keeps_errors_and_slow_requests_by_default_and_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("errors.log");
    let server = Server::start_logging(&data, &["--demo"], &log);
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.get("/no-such-route").0, 404);
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = request_lines(&text);
    assert!(lines.iter().any(|l| l.contains("status=404")), "{text}");
    assert!(!lines.iter().any(|l| l.contains("/healthz")), "{text}");

    let log = dir.path().join("slow.log");
    let server = Server::start_logging(&data, &["--slow-request-ms", "0"], &log);
    assert_eq!(server.get("/healthz").0, 200);
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        request_lines(&text).iter().any(|l| l.contains("/healthz")),
        "{text}"
    );

    let log = dir.path().join("off.log");
    let server = Server::start_logging(&data, &["--access-log", "off"], &log);
    assert_eq!(server.get("/no-such-route").0, 404);
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(request_lines(&text).is_empty(), "{text}");
}

fn over_unix(path: &std::path::Path, method: &str, uri: &str, body: &str) -> (u16, String, String) {
    let mut stream = UnixStream::connect(path).expect("connect to the socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    exchange(&mut stream, &raw_request(method, uri, &[], body))
}

#[test]
fn serves_on_a_unix_socket_beside_tcp_and_removes_it_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("authz.sock");
    let server = Server::start_with(&["--listen-unix", sock.to_str().unwrap()]);
    // The TCP address is announced before the socket is bound.
    common::wait_until("the socket", || UnixStream::connect(&sock).is_ok());
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let (status, _, body) = over_unix(&sock, "GET", "/readyz", "");
    assert_eq!(status, 200, "{body}");
    let ask = json!({
        "principal": staff(E_SYNCED, P_CLERK), "action": action("useFunction"),
        "resource": "Function::\"no-such-function\"", "context": {}
    });
    let (status, _, body) = over_unix(&sock, "POST", "/v1/authorize", &ask.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.get("/healthz").0, 200, "TCP still serves");
    assert!(server.terminate().success());
    assert!(!sock.exists(), "the socket file outlives a clean exit");
}

#[test]
fn a_unix_socket_alone_runs_open_as_loopback_even_with_a_public_tcp_address() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("only.sock");
    let mut child = std::process::Command::new(BIN)
        .current_dir(CRATE_ROOT)
        .args([
            "serve",
            "--demo",
            "--no-tcp",
            "--listen",
            "0.0.0.0:1",
            "--listen-unix",
        ])
        .arg(&sock)
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--argon2-memory-kib", "256", "--argon2-iterations", "1"])
        .env("ETAX_LOG", "warn")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "no socket within 60 s");
        assert!(child.try_wait().unwrap().is_none(), "serve exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _, body) = over_unix(&sock, "GET", "/v1/status", "");
    assert_eq!(status, 200, "{body}");
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
    assert!(!sock.exists());
}
