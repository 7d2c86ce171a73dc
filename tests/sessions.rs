//! End-to-end tests of sessions' lifetimes over HTTP against the real
//! binary serving the demo bureau: logout, idle and absolute expiry, the
//! sweeper, last uses kept in memory and written by the sweeper or at
//! shutdown.

use crate::common;
use crate::login_support;

use common::Server;
use login_support::*;
use serde_json::json;

#[test]
fn logged_out_session_stops_working() {
    let s = Server::demo();
    let token = li_session(&s)["session"].as_str().unwrap().to_owned();
    assert_eq!(
        use_function(&s, &token, "vat_filing").1["decision"],
        "allow"
    );
    let (status, _) = s.post("/v1/logout", &json!({"session": token}));
    assert_eq!(status, 200);
    let (status, v) = use_function(&s, &token, "vat_filing");
    assert_eq!((status, error_code(&v)), (401, "session_invalid"), "{v}");
    let (status, v) = use_function(&s, "not-a-token", "vat_filing");
    assert_eq!((status, error_code(&v)), (401, "session_invalid"));
}

#[test]
fn idle_session_expires() {
    let s = Server::start_with(&["--session-idle-secs", "1"]);
    let token = li_session(&s)["session"].as_str().unwrap().to_owned();
    assert_eq!(use_function(&s, &token, "vat_filing").0, 200);
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let (status, v) = use_function(&s, &token, "vat_filing");
    assert_eq!((status, error_code(&v)), (401, "session_invalid"), "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("inactivity"));
}

#[test]
fn session_expires_at_its_absolute_lifetime() {
    let s = Server::start_with(&["--session-max-secs", "1"]);
    let token = li_session(&s)["session"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let (status, v) = use_function(&s, &token, "vat_filing");
    assert_eq!((status, error_code(&v)), (401, "session_invalid"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("absolute"));
}

#[test]
fn sweeper_removes_expired_codes_flows_sessions_lockouts_and_rate_windows() {
    let s = Server::start_with(&[
        "--code-ttl-secs",
        "2",
        "--flow-ttl-secs",
        "2",
        "--session-idle-secs",
        "2",
        "--lockout-max-secs",
        "1",
        "--code-rate-window-secs",
        "2",
        "--sweep-interval-secs",
        "1",
    ]);
    let swept = |kind: &str| metric(&s, &format!("etax_swept_total{{kind=\"{kind}\"}}"));
    // A session by SMS (a used challenge and a rate window left behind), a
    // flow left at staff selection, a mistyped password (a lockout record
    // with one pending failure).
    let token = li_session(&s)["session"].as_str().unwrap().to_owned();
    assert_eq!(use_function(&s, &token, "vat_filing").0, 200);
    picked(&s, LI);
    let (status, _) = s.post(
        "/v1/login/enterprise",
        &json!({"account": DALIAN, "password": "Wrong@2026x"}),
    );
    assert_eq!(status, 401);
    for kind in [
        "challenge",
        "login_flow",
        "session",
        "lockout",
        "rate_window",
    ] {
        wait_for(30, &format!("{kind} swept"), || swept(kind) >= 1);
    }
    // Swept, not merely expired: the store no longer knows the session.
    let (status, v) = use_function(&s, &token, "vat_filing");
    assert_eq!((status, error_code(&v)), (401, "session_invalid"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown session"),
        "{v}"
    );
    assert_eq!(metric(&s, "etax_sweep_failures_total"), 0);
}

#[test]
fn a_session_in_use_outlives_its_idle_timeout_and_an_unused_one_expires() {
    let s = Server::start_with(&["--session-idle-secs", "2", "--sweep-interval-secs", "1"]);
    let busy = li_session(&s)["session"].as_str().unwrap().to_owned();
    let (flow, wang) = picked(&s, WANG);
    let idle = s.post_ok(
        "/v1/login/enterprise/complete",
        &json!({"flow": flow, "staff": wang, "password": "Wang@2026jg"}),
    )["session"]
        .as_str()
        .unwrap()
        .to_owned();
    // Twice the idle timeout, across several sweeps, used every 300 ms.
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(4) {
        let (status, v) = use_function(&s, &busy, "vat_filing");
        assert_eq!(status, 200, "after {:?}: {v}", started.elapsed());
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let (status, v) = use_function(&s, &idle, "vat_filing");
    assert_eq!((status, error_code(&v)), (401, "session_invalid"), "{v}");
    // The busy session's uses reached the store by the sweeper's writes.
    assert!(metric(&s, "etax_session_touches_written_total") >= 1);
    assert!(metric(&s, "etax_swept_total{kind=\"session\"}") >= 1);
}

#[test]
fn authorize_with_a_session_writes_nothing_to_the_store() {
    // The default sweep interval (60 s): no sweep during the test.
    let s = Server::demo();
    let token = li_session(&s)["session"].as_str().unwrap().to_owned();
    let commits = metric(&s, "etax_store_commits_total");
    // Spread over more than a second: the old once-a-second touch would
    // have written at least once.
    for _ in 0..12 {
        assert_eq!(use_function(&s, &token, "vat_filing").0, 200);
        std::thread::sleep(std::time::Duration::from_millis(120));
    }
    assert_eq!(metric(&s, "etax_store_commits_total"), commits);
    assert_eq!(metric(&s, "etax_session_touches_pending"), 1);
    // Logout drops the note with the session.
    s.post_ok("/v1/logout", &json!({"session": token}));
    assert_eq!(metric(&s, "etax_session_touches_pending"), 0);
}

#[test]
fn a_session_last_use_is_written_at_shutdown() {
    use etax_authz::store::{identity_store_path, SessionRecord, Store};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::demo_in(&data, &[]);
    let token = li_session(&s)["session"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(use_function(&s, &token, "vat_filing").0, 200);
    // SIGTERM: a graceful shutdown, long before the first sweep.
    s.stop();
    let store = Store::open(&identity_store_path(&data)).unwrap();
    let sessions = store.read().unwrap().all::<SessionRecord>().unwrap();
    assert_eq!(sessions.len(), 1);
    let (_, rec) = &sessions[0];
    assert!(
        rec.last_used_ms >= rec.created_ms + 50,
        "last use not written: {rec:?}"
    );
}
