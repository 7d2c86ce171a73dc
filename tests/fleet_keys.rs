//! The fleet's API keys (`fleet_api_keys`) against a real PostgreSQL and
//! real sidecars without `--api-keys`: a key created once works on every
//! host, a revocation reaches every host, scopes hold, the table never
//! holds a key in clear, an empty table runs open only on loopback, and a
//! table that stops reading keeps the last good keys. Skipped with a
//! notice when PostgreSQL is not installed (CI installs it).

use crate::common;

use common::fleet::sidecar;
use common::postgres::Postgres;
use common::{cli, try_serve, wait_until, ServeAttempt, Server};
use serde_json::json;

/// `keys create --fleet`: the key, printed once on stdout.
fn create_key(url: &str, id: &str, scopes: &str) -> String {
    let (code, out, err) = cli(&[
        "keys", "create", "--id", id, "--scope", scopes, "--fleet", url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains(out.trim()), "the key is printed once: {err}");
    out.trim().to_owned()
}

fn keys(url: &str, verb: &str, id: &str) -> (i32, String) {
    let (code, out, err) = cli(&["keys", verb, "--id", id, "--fleet", url]);
    (code, format!("{out}{err}"))
}

/// The status of an authorize question asked with `key`.
fn authorize_as(server: &Server, key: Option<&str>) -> u16 {
    let question = json!({
        "principal": "Enterprise::\"91210102MA0TAX001F\"",
        "action": "Action::\"useFunction\"",
        "resource": "Function::\"vat_filing\"",
    });
    let (status, body) = server.request_as(key, "POST", "/v1/authorize", Some(&question));
    assert!(matches!(status, 200 | 401 | 403), "{status} {body}");
    status
}

fn status_as(server: &Server, key: Option<&str>) -> u16 {
    server.request_as(key, "GET", "/v1/status", None).0
}

/// Every row of every table of the database, as text.
fn whole_database(pg: &Postgres, db: &str) -> String {
    let tables = pg.psql(
        db,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    );
    assert!(tables.contains("fleet_api_keys"), "{tables}");
    tables
        .lines()
        .map(|t| {
            pg.psql(
                db,
                &format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {t} t"),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_fleet_key_works_on_two_sidecars_its_scopes_hold_and_a_revocation_reaches_both() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("keys");
    let portal = create_key(&url, "portal", "authorize");
    let ops = create_key(&url, "ops", "admin");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = sidecar(da.path(), &url, "a");
    let b = sidecar(db.path(), &url, "b");
    for s in [&a, &b] {
        assert_eq!(authorize_as(s, Some(&portal)), 200);
        assert_eq!(authorize_as(s, None), 401, "keys are required");
        assert_eq!(authorize_as(s, Some("etax_not-a-key")), 401);
        // Each key reaches only its scope's routes.
        assert_eq!(authorize_as(s, Some(&ops)), 403);
        assert_eq!(status_as(s, Some(&ops)), 200);
        assert_eq!(status_as(s, Some(&portal)), 403);
    }
    // A key created while the sidecars run reaches both.
    let late = create_key(&url, "late", "authorize");
    for s in [&a, &b] {
        wait_until("the new key served", || authorize_as(s, Some(&late)) == 200);
    }

    let (code, out) = keys(&url, "revoke", "portal");
    assert_eq!(code, 0, "{out}");
    for s in [&a, &b] {
        wait_until("the revoked key refused", || {
            authorize_as(s, Some(&portal)) == 401
        });
        assert_eq!(authorize_as(s, Some(&late)), 200, "other keys still serve");
    }
    // Revoked ids stay listed and are not handed out again.
    let (code, list, _) = cli(&["keys", "list", "--fleet", &url]);
    assert_eq!(code, 0, "{list}");
    let line = list.lines().find(|l| l.starts_with("portal")).unwrap();
    assert_eq!(
        line.matches("+08:00").count(),
        2,
        "created and revoked: {list}"
    );
    let (code, out, err) = cli(&[
        "keys", "create", "--id", "portal", "--scope", "audit", "--fleet", &url,
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("revoked") && out.is_empty(), "{err}");
    let (code, out) = keys(&url, "revoke", "portal");
    assert!(code != 0 && out.contains("already revoked"), "{out}");
    let (code, out) = keys(&url, "revoke", "nobody");
    assert!(code != 0 && out.contains("no key"), "{out}");
    // A revoked row cannot be deleted either (an emptied table would open
    // sidecars on loopback).
    pg.psql(
        "keys",
        "DO $$ BEGIN
           DELETE FROM fleet_api_keys;
           RAISE EXCEPTION 'the delete went through';
         EXCEPTION WHEN insufficient_privilege THEN NULL; END $$",
    );
    assert_eq!(pg.psql("keys", "SELECT count(*) FROM fleet_api_keys"), "3");

    // Only hashes are stored: no key anywhere in the database in clear.
    let everything = whole_database(&pg, "keys");
    for key in [&portal, &ops, &late] {
        assert!(key.starts_with("etax_") && key.len() == 69, "{key}");
        assert!(!everything.contains(key.as_str()), "a key in clear");
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
        assert!(everything.contains(&digest), "its hash is what is stored");
    }
    a.stop();
    b.stop();
}

#[test]
fn an_empty_table_runs_open_on_loopback_only_until_the_first_key() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("open");
    let data = tempfile::tempdir().unwrap();
    // Off loopback an empty table is refused, as no keys file is.
    let off = data.path().join("off");
    let attempt = try_serve(&[
        "--listen",
        "0.0.0.0:0",
        "--data",
        off.to_str().unwrap(),
        "--fleet",
        &url,
    ]);
    let ServeAttempt::Exited(code, err) = attempt else {
        panic!("served open off loopback")
    };
    assert_ne!(code, 0);
    assert!(err.contains("keys create --fleet"), "{err}");

    let a = sidecar(&data.path().join("a"), &url, "a");
    assert_eq!(authorize_as(&a, None), 200, "open while the table is empty");
    let key = create_key(&url, "first", "authorize");
    wait_until("the first key closes open mode", || {
        authorize_as(&a, None) == 401
    });
    assert_eq!(authorize_as(&a, Some(&key)), 200);
    // Revoking every key does not reopen it: the rows stay.
    assert_eq!(keys(&url, "revoke", "first").0, 0);
    wait_until("the key refused", || authorize_as(&a, Some(&key)) == 401);
    assert_eq!(authorize_as(&a, None), 401);
    a.stop();
}

#[test]
fn a_table_that_stops_reading_keeps_the_last_good_keys() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("broken");
    let ops = create_key(&url, "ops", "admin,authorize");
    let portal = create_key(&url, "portal", "authorize");
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("serve.log");
    let a = Server::start_logging(
        &data.path().join("a"),
        &["--demo", "--fleet", &url, "--fleet-host", "a"],
        &log,
    );
    assert_eq!(authorize_as(&a, Some(&portal)), 200);
    // A row this binary cannot serve, with a revocation in the same commit:
    // the row is skipped (it grants nothing) and the revocation counts.
    // (Red team: refusing the whole table kept revoked keys working on
    // every host for as long as the row stayed.)
    pg.psql(
        "broken",
        "BEGIN;
         INSERT INTO fleet_api_keys VALUES ('future', repeat('a', 64), '{root}', 0, NULL);
         UPDATE fleet_api_keys SET revoked_ms = 1 WHERE id = 'portal';
         SELECT pg_notify('fleet_api_keys', '');
         COMMIT",
    );
    wait_until("the revocation served", || {
        authorize_as(&a, Some(&portal)) == 401
    });
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("is skipped") && logged.contains("\"future\"") && logged.contains("root"),
        "{logged}"
    );
    // A NULL among a row's scopes (red team: it panicked the watcher on
    // every host, which then never reloaded again): skipped too, and keys
    // made afterwards are served.
    pg.psql(
        "broken",
        "INSERT INTO fleet_api_keys VALUES ('nulls', repeat('b', 64), '{admin,NULL}', 0, NULL);
         SELECT pg_notify('fleet_api_keys', '')",
    );
    let later = create_key(&url, "later", "authorize");
    wait_until("a key made after the NULL row served", || {
        authorize_as(&a, Some(&later)) == 200
    });
    // The database away: the keys read last keep serving this host's own
    // routes (decisions fail closed past the staleness bound on their own).
    pg.stop();
    assert_eq!(status_as(&a, Some(&ops)), 200);
    assert_eq!(status_as(&a, Some(&portal)), 401);
    pg.restart();
    a.stop();
}

/// `keys create --fleet` refuses an empty or padded scope name by name,
/// as for a keys file, and the table stays without a row.
#[test]
fn empty_or_padded_scope_names_are_refused_by_name() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("scopes");
    for (scope, named) in [
        ("admin,,audit", "scope 2 of \"admin,,audit\" is empty"),
        (" admin", "scope \" admin\" has blanks"),
    ] {
        let (code, out, err) = cli(&[
            "keys", "create", "--id", "x", "--scope", scope, "--fleet", &url,
        ]);
        assert_eq!((code, out.as_str()), (1, ""), "{scope:?}: {err}");
        assert!(err.contains(named), "{scope:?}: {err}");
    }
    // Nothing was written: once the table exists, it holds no row.
    let (code, _, err) = cli(&["keys", "list", "--fleet", &url]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        pg.psql("scopes", "SELECT count(*) FROM fleet_api_keys"),
        "0"
    );
}
