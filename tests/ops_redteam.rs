//! The outside review's attacks on the operations features, each against
//! the real binary: caller text in metric labels and the access log,
//! `--listen-unix` over files that are not a stale socket, ID numbers and
//! phones smuggled in `X-Request-Id`, hand-written key ids, key-file edits
//! the poll missed, oversized key files and a lowercase `bearer`.

use crate::common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{cli, exchange_tcp, header, try_serve, ServeAttempt, Server, E_SYNCED, P_CLERK};
use serde_json::Value;

/// The status of `/v1/authorize` asked with `auth` as the whole
/// `Authorization` header.
fn ask(s: &Server, auth: &str) -> u16 {
    let body = serde_json::json!({"principal": common::staff(E_SYNCED, P_CLERK),
        "action": "Action::\"useFunction\"", "resource": "Function::\"vat_filing\""});
    let (status, _) = s.request_with(
        "POST",
        "/v1/authorize",
        &[("Authorization", auth)],
        Some(body.to_string().as_bytes()),
    );
    status
}

/// The `route` label of every request-duration sample in a scrape.
fn route_labels(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("etax_http_request_duration_seconds_count{"))
        .filter_map(|l| l.split("route=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn caller_paths_never_become_metric_labels_or_long_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys_file(
        dir.path(),
        &[
            ("ops", "k-admin", &["admin"]),
            ("app", "k-auth", &["authorize"]),
        ],
    );
    let log = dir.path().join("serve.log");
    let args = [
        "--demo",
        "--api-keys",
        keys.to_str().unwrap(),
        "--log-format",
        "json",
        "--access-log",
        "all",
    ];
    let s = Server::start_logging(&dir.path().join("data"), &args, &log);
    let long = "q".repeat(8000);
    for i in 0..5 {
        let (status, _) = s.get(&format!("/{long}{}", "z".repeat(i)));
        assert_eq!(status, 404);
    }
    for i in 0..70 {
        let word: String = (0..3)
            .map(|k| (b'a' + ((i / 26usize.pow(k)) % 26) as u8) as char)
            .collect();
        assert_eq!(s.get(&format!("/made-up/{word}")).0, 404);
    }
    // A real route whose identifier segment is caller text.
    let (status, _) = s.request("DELETE", &format!("/v1/maintenance/staff/{long}"), None);
    assert_eq!(status, 401);
    assert_eq!(ask(&s, "Bearer k-auth"), 200);

    let (status, _, metrics) = common::get_with_head(s.addr, "k-admin", "/metrics");
    assert_eq!(status, 200);
    let (_, openapi) = s.get("/openapi.json");
    let patterns: Vec<&String> = openapi["paths"].as_object().unwrap().keys().collect();
    let labels = route_labels(&metrics);
    for label in &labels {
        assert!(
            label == "unmatched" || patterns.contains(&label),
            "{} is no route's pattern",
            &label[..label.len().min(80)]
        );
    }
    assert!(labels.iter().any(|l| l == "/v1/authorize"), "{labels:?}");
    assert!(
        labels.iter().any(|l| l == "/v1/maintenance/staff/{person}"),
        "{labels:?}"
    );
    assert!(
        metrics.len() < 200_000,
        "the scrape is {} bytes",
        metrics.len()
    );
    s.stop();

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("\"status\":401")),
        "no access lines"
    );
    for line in lines {
        assert!(line.len() < 2000, "a {}-byte log line", line.len());
    }
    assert!(!text.contains(&"q".repeat(100)), "the path was echoed");
}

/// `serve --no-tcp --listen-unix PATH` over a fresh data directory: the
/// running server once it answers on the socket, or its exit code and
/// stderr.
fn serve_on(dir: &Path, sock: &Path) -> Result<Child, (i32, String)> {
    // Another server's socket answers too: then only an exit tells.
    let answered_before = UnixStream::connect(sock).is_ok();
    let mut child = Command::new(common::BIN)
        .current_dir(common::CRATE_ROOT)
        .args(["serve", "--demo", "--no-tcp", "--listen-unix"])
        .arg(sock)
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--argon2-memory-kib", "256", "--argon2-iterations", "1"])
        .env("ETAX_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            return Err((out.status.code().unwrap_or(-1), err));
        }
        if !answered_before
            && std::fs::symlink_metadata(sock).is_ok_and(|m| m.file_type().is_socket())
            && UnixStream::connect(sock).is_ok()
        {
            return Ok(child);
        }
        assert!(Instant::now() < deadline, "neither served nor exited");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
}

fn refused(attempt: Result<Child, (i32, String)>, path: &Path) {
    match attempt {
        Err((code, err)) => {
            assert_ne!(code, 0);
            assert!(err.contains(path.to_str().unwrap()), "{err}");
        }
        Ok(child) => {
            stop(child);
            panic!("served on {}", path.display());
        }
    }
}

#[test]
fn listen_unix_replaces_only_a_dead_socket() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.json");
    std::fs::write(&precious, "{\"keep\": true}").unwrap();
    refused(serve_on(dir.path(), &precious), &precious);
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "{\"keep\": true}"
    );

    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    refused(serve_on(dir.path(), &folder), &folder);
    assert!(folder.is_dir());

    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    refused(serve_on(dir.path(), &link), &link);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "{\"keep\": true}"
    );

    let live = dir.path().join("live.sock");
    let listener = UnixListener::bind(&live).unwrap();
    refused(serve_on(dir.path(), &live), &live);
    drop(listener);

    // A socket nobody answers on (left by a crash) is replaced.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(UnixStream::connect(&stale).is_err());
    let child = serve_on(dir.path(), &stale).expect("a stale socket is replaced");
    let mode = std::fs::metadata(&stale).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    stop(child);
    assert!(!stale.exists());
    // Nothing of the socket's making left beside it.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["data", "folder", "link.sock", "live.sock", "precious.json"]
    );
}

#[test]
fn request_ids_carrying_ids_or_phones_are_replaced() {
    let s = Server::demo();
    for smuggled in [
        "138.1234.5678",
        "210102_19900101_5035",
        "110105_1949_1231_002X",
        "138:1234/5678",
        "9913812345678",
        "1381234567812345",
        "1,3,8,1,2,3,4,5,6,7,8",
    ] {
        let (_, head, _) =
            exchange_tcp(s.addr, "GET", "/healthz", &[("X-Request-Id", smuggled)], "");
        let got = header(&head, "x-request-id").unwrap().to_owned();
        assert_ne!(got, smuggled);
        let digits = got.bytes().filter(u8::is_ascii_digit).count();
        assert!(digits < 11, "generated {got}");
        // A proxy that sends the generated id back keeps it.
        let (_, head, _) = exchange_tcp(s.addr, "GET", "/healthz", &[("X-Request-Id", &got)], "");
        assert_eq!(header(&head, "x-request-id"), Some(got.as_str()));
    }
    let (_, head, _) = exchange_tcp(
        s.addr,
        "GET",
        "/healthz",
        &[("X-Request-Id", "ticket-7781.a")],
        "",
    );
    assert_eq!(header(&head, "x-request-id"), Some("ticket-7781.a"));
}

/// A keys file of `(id, key)` entries with scope `authorize`.
fn raw_keys(path: &Path, entries: &[(&str, &str)]) {
    use sha2::Digest;
    let list: Vec<Value> = entries
        .iter()
        .map(|(id, key)| {
            serde_json::json!({"id": id, "scopes": ["authorize"],
                "key_sha256": hex::encode(sha2::Sha256::digest(key.as_bytes()))})
        })
        .collect();
    std::fs::write(path, Value::from(list).to_string()).unwrap();
}

fn serve_keys(dir: &Path, keys: &Path) -> ServeAttempt {
    try_serve(&[
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--data",
        dir.join("data").to_str().unwrap(),
        "--api-keys",
        keys.to_str().unwrap(),
    ])
}

#[test]
fn key_ids_follow_one_rule_in_the_file_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let long = "a".repeat(3000);
    for bad in [
        "tax\ncore",
        "tax\u{1b}[31mcore",
        "resident_id:210102199001015035",
        "tel-139-1234-5678",
        long.as_str(),
        "",
    ] {
        raw_keys(&keys, &[("ok", "k-ok"), (bad, "k-bad")]);
        match serve_keys(dir.path(), &keys) {
            ServeAttempt::Exited(code, err) => {
                assert_ne!(code, 0);
                assert!(err.contains("id"), "{err}");
                assert!(!err.contains("210102199001015035"), "{err}");
            }
            ServeAttempt::Listening(s) => {
                s.stop();
                panic!("a file with id {:?} loaded", &bad[..bad.len().min(40)]);
            }
        }
    }
    raw_keys(&keys, &[("same", "k-1"), ("same", "k-2")]);
    assert!(matches!(
        serve_keys(dir.path(), &keys),
        ServeAttempt::Exited(..)
    ));

    std::fs::remove_file(&keys).unwrap();
    let path = keys.to_str().unwrap();
    for bad in ["13912345678", "139.1234.5678", "id-21010219900101503X"] {
        let (code, _, err) = cli(&[
            "keys",
            "create",
            "--id",
            bad,
            "--scope",
            "authorize",
            "--keys",
            path,
        ]);
        assert_ne!(code, 0, "--id {bad} was accepted");
        assert!(err.contains("--id"), "{err}");
    }
    assert!(!keys.exists());
}

#[test]
fn a_same_size_edit_that_keeps_the_time_is_still_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    raw_keys(&keys, &[("app", "key-aaaa")]);
    let data = dir.path().join("data");
    let args = [
        "--demo",
        "--api-keys",
        keys.to_str().unwrap(),
        "--reload-poll-ms",
        "100",
    ];
    let s = Server::start_in(&data, &args);
    assert_eq!(ask(&s, "Bearer key-aaaa"), 200);

    let before = std::fs::metadata(&keys).unwrap();
    let text = std::fs::read_to_string(&keys).unwrap();
    raw_keys(&keys, &[("app", "key-bbbb")]);
    assert_eq!(std::fs::read_to_string(&keys).unwrap().len(), text.len());
    let file = std::fs::OpenOptions::new().write(true).open(&keys).unwrap();
    file.set_modified(before.modified().unwrap()).unwrap();
    drop(file);
    let after = std::fs::metadata(&keys).unwrap();
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());

    let deadline = Instant::now() + Duration::from_secs(30);
    while ask(&s, "Bearer key-aaaa") != 401 {
        assert!(Instant::now() < deadline, "the revoked key still works");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ask(&s, "Bearer key-bbbb"), 200);
}

#[test]
fn an_oversized_keys_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let names: Vec<(String, String)> = (0..12_000)
        .map(|i| (format!("k{i}"), format!("key-{i}")))
        .collect();
    let entries: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    raw_keys(&keys, &entries);
    assert!(std::fs::metadata(&keys).unwrap().len() > 1 << 20);
    match serve_keys(dir.path(), &keys) {
        ServeAttempt::Exited(code, err) => {
            assert_ne!(code, 0);
            assert!(err.contains("keys.json"), "{err}");
        }
        ServeAttempt::Listening(s) => {
            s.stop();
            panic!("a {}-entry file loaded", entries.len());
        }
    }
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    raw_keys(&keys, &[("app", "key-aaaa")]);
    let s = Server::start_in(
        &dir.path().join("data"),
        &["--demo", "--api-keys", keys.to_str().unwrap()],
    );
    for auth in [
        "Bearer key-aaaa",
        "bearer key-aaaa",
        "BEARER key-aaaa",
        "bEaReR  key-aaaa",
    ] {
        assert_eq!(ask(&s, auth), 200, "{auth}");
    }
    assert_eq!(ask(&s, "Basic key-aaaa"), 401);
    assert_eq!(ask(&s, "Bearerkey-aaaa"), 401);
}
