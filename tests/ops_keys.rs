//! `etax-authz keys create|list|revoke` and a running server that follows
//! the keys file without restart: a created key works, a revoked one is
//! refused, a broken file keeps the keys before it.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{cli, staff, Server, E_SYNCED, P_CLERK};

/// `keys create`: the key printed on stdout.
fn create(keys: &Path, id: &str, scope: &str) -> String {
    let (code, out, err) = cli(&[
        "keys",
        "create",
        "--id",
        id,
        "--scope",
        scope,
        "--keys",
        keys.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("shown only this once"), "{err}");
    out.trim().to_owned()
}

fn revoke(keys: &Path, id: &str) -> (i32, String) {
    let (code, _, err) = cli(&[
        "keys",
        "revoke",
        "--id",
        id,
        "--keys",
        keys.to_str().unwrap(),
    ]);
    (code, err)
}

/// The status of `/v1/authorize` asked with `key`.
fn ask(s: &Server, key: &str) -> u16 {
    let body = serde_json::json!({"principal": staff(E_SYNCED, P_CLERK),
        "action": "Action::\"useFunction\"", "resource": "Function::\"vat_filing\""});
    let auth = format!("Bearer {key}");
    let (status, _) = s.request_with(
        "POST",
        "/v1/authorize",
        &[("Authorization", auth.as_str())],
        Some(body.to_string().as_bytes()),
    );
    status
}

/// Asks until the answer is `want`, for at most 30 s (the server looks at
/// the file on its own schedule); the last status seen.
fn until(s: &Server, key: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = ask(s, key);
        if status == want || Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keys_created_and_revoked_count_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let first = create(&keys, "tax-core", "authorize,admin");
    assert!(first.starts_with("etax_") && first.len() == 69, "{first}");

    let (code, list, _) = cli(&["keys", "list", "--keys", keys.to_str().unwrap()]);
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&keys).unwrap();
    let hash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let hash = hash[0]["key_sha256"].as_str().unwrap();
    assert!(
        list.contains("tax-core") && list.contains("authorize,admin"),
        "{list}"
    );
    assert!(
        list.contains(&hash[..8]) && !list.contains(hash),
        "never the hash in full: {list}"
    );
    assert!(
        !text.contains(&first) && !list.contains(&first),
        "the key is not stored"
    );

    let s = Server::start(&[
        "--demo",
        "--api-keys",
        keys.to_str().unwrap(),
        "--reload-poll-ms",
        "100",
    ]);
    assert_eq!(ask(&s, &first), 200);
    assert_eq!(ask(&s, "etax_not-a-key"), 401);

    let second = create(&keys, "portal", "authorize");
    assert_eq!(
        until(&s, &second, 200),
        200,
        "a new key works without restart"
    );
    let (code, err) = revoke(&keys, "tax-core");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        until(&s, &first, 401),
        401,
        "a revoked key is refused without restart"
    );
    assert_eq!(ask(&s, &second), 200);

    let (code, err) = revoke(&keys, "tax-core");
    assert_eq!(code, 1);
    assert!(err.contains("no key with id"), "{err}");
    let (code, _, err) = cli(&[
        "keys",
        "create",
        "--id",
        "portal",
        "--scope",
        "audit",
        "--keys",
        keys.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = cli(&[
        "keys",
        "create",
        "--id",
        "x",
        "--scope",
        "root",
        "--keys",
        keys.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown scope \"root\""), "{err}");
}

#[test]
fn a_broken_file_keeps_the_keys_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let key = create(&keys, "tax-core", "authorize");
    let log = dir.path().join("serve.log");
    let data = dir.path().join("data");
    let args = [
        "--demo",
        "--api-keys",
        keys.to_str().unwrap(),
        "--reload-poll-ms",
        "100",
    ];
    let s = Server::start_logging(&data, &args, &log);
    assert_eq!(ask(&s, &key), 200);

    std::fs::write(&keys, "[{\"id\": \"half").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("API keys not reloaded")
    {
        assert!(Instant::now() < deadline, "the broken file was not noticed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ask(&s, &key), 200, "the previous keys still serve");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains(&key), "the key is never logged");

    // A fixed file is read again; this one no longer holds the key.
    std::fs::remove_file(&keys).unwrap();
    let other = create(&keys, "portal", "authorize");
    assert_eq!(until(&s, &other, 200), 200);
    assert_eq!(ask(&s, &key), 401);
}

#[test]
fn sighup_reloads_the_keys_when_polling_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let key = create(&keys, "tax-core", "authorize");
    let s = Server::start(&[
        "--demo",
        "--api-keys",
        keys.to_str().unwrap(),
        "--reload-poll-ms",
        "0",
    ]);
    assert_eq!(ask(&s, &key), 200);
    revoke(&keys, "tax-core");
    s.signal("HUP");
    assert_eq!(until(&s, &key, 401), 401);
}

#[test]
fn demo_with_keys_still_requires_them() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let key = create(&keys, "portal", "login");
    let s = Server::start(&["--demo", "--api-keys", keys.to_str().unwrap()]);
    let login = serde_json::json!({"account": common::E_SOCIAL, "password": "Shebao@2026"});
    let (status, _) = s.post("/v1/login/enterprise", &login);
    assert_eq!(
        status, 401,
        "--demo seeds identities; it does not open the service"
    );
    let auth = format!("Bearer {key}");
    let (status, v) = s.request_with(
        "POST",
        "/v1/login/enterprise",
        &[("Authorization", auth.as_str())],
        Some(login.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{v}");
}

/// An empty or padded scope name is refused by name, and nothing is
/// written: a key is minted from exactly what the operator wrote.
#[test]
fn empty_or_padded_scope_names_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    for (scope, named) in [
        ("admin,,audit", "scope 2 of \"admin,,audit\" is empty"),
        (" admin", "scope \" admin\" has blanks"),
        ("audit, admin", "scope \" admin\" has blanks"),
    ] {
        let (code, out, err) = cli(&[
            "keys",
            "create",
            "--id",
            "x",
            "--scope",
            scope,
            "--keys",
            keys.to_str().unwrap(),
        ]);
        assert_eq!((code, out.as_str()), (1, ""), "{scope:?}: {err}");
        assert!(err.contains(named), "{scope:?}: {err}");
        assert!(!keys.exists(), "{scope:?} wrote the keys file");
    }
}
