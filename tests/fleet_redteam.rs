//! Fleet mode attacked from outside (issue 15's red team): each test is an
//! attack that once worked against real sidecars over a real PostgreSQL,
//! kept so it cannot work again. Skipped with a notice when PostgreSQL is
//! not installed (CI installs it).

use crate::common;

use common::fleet::sidecar_with;
use common::postgres::Postgres;
use common::*;
use serde_json::{json, Value};

/// The demo clerk may issue invoices only once granted `invoicing`: the
/// question the forged-allow attacks aim at, asked by principal (no
/// session, so no catch-up on the way).
fn clerk_invoices(server: &Server) -> (u16, Value) {
    server.post(
        "/v1/authorize",
        &json!({ "principal": staff(E_SYNCED, P_CLERK), "action": action("useFunction"),
                 "resource": "Function::\"invoice_issue\"", "context": {} }),
    )
}

/// Grants the clerk invoicing on `server`, which then allows it.
fn grant_clerk_invoicing(server: &Server) {
    let (legal_rep, _) = login_by_sms(server, "**国");
    let clerk = format!("/v1/maintenance/staff/{P_CLERK}");
    let grant = json!({ "add_permission_identities": ["invoicing"] });
    let (s, v) = with_session(server, &legal_rep, "PATCH", &clerk, Some(grant));
    assert_eq!(s, 200, "{v}");
    let (s, v) = clerk_invoices(server);
    assert_eq!((s, &v["decision"]), (200, &json!("allow")), "{v}");
}

fn head(pg: &Postgres, db: &str) -> u64 {
    pg.psql(db, "SELECT coalesce(max(id), 0) FROM fleet_changes")
        .parse()
        .unwrap()
}

#[test]
fn a_replica_of_another_fleet_database_is_refused_at_start() {
    let Some(pg) = Postgres::start() else { return };
    // Bureau two: its replica holds a grant bureau one never made.
    let two = pg.database("bureau_two");
    let dir = tempfile::tempdir().unwrap();
    let x = sidecar_with(dir.path(), &two, "x1", &[]);
    grant_clerk_invoicing(&x);
    x.stop();
    // Bureau one: the same demo, never that grant, and a longer log.
    let one = pg.database("bureau_one");
    let one_dir = tempfile::tempdir().unwrap();
    let h1 = sidecar_with(one_dir.path(), &one, "h1", &[]);
    for i in 0.. {
        if head(&pg, "bureau_one") > head(&pg, "bureau_two") {
            break;
        }
        let wrong = json!({ "account": E_UNSYNCED, "password": format!("Wrong@{i}x") });
        h1.post("/v1/login/enterprise", &wrong);
    }
    assert_eq!(clerk_invoices(&h1).1["decision"], "deny");

    let data = dir.path().to_str().unwrap();
    let attempt = try_serve(&[
        "--listen",
        "127.0.0.1:0",
        "--data",
        data,
        "--fleet",
        &one,
        "--fleet-host",
        "x1",
    ]);
    match attempt {
        ServeAttempt::Exited(code, err) => {
            assert_ne!(code, 0);
            assert!(err.contains("not the fleet's change"), "{err}");
        }
        ServeAttempt::Listening(forged) => panic!(
            "bureau two's replica joined bureau one's fleet; clerk invoices: {}",
            clerk_invoices(&forged).1
        ),
    }
}

#[test]
fn a_replica_that_cannot_apply_the_log_fails_closed_after_the_bound() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("stuck");
    let dir = tempfile::tempdir().unwrap();
    let a = sidecar_with(dir.path(), &url, "a", &["--fleet-max-stale-ms", "1000"]);
    grant_clerk_invoicing(&a);
    // A table this binary does not know, then the grant's withdrawal, in
    // one change.
    let unknown = json!({ "op": "put", "table": "tax_stamps_v2", "key": "k", "value": "{}" });
    insert_withdrawal(&pg, "stuck", Some(unknown), 2);
    // The database answers, the replica cannot follow it: past the bound
    // it must not answer from what it holds.
    wait_until("the stuck replica fails closed", || {
        let (s, v) = clerk_invoices(&a);
        s == 503 && v["error"]["code"] == "fleet_unavailable"
    });
    let (s, body) = a.get("/readyz");
    assert_eq!(s, 503, "{body}");
}

/// Inserts, as another host would, the withdrawal of the clerk's grant
/// (after `first`, if given) stated in writer format `format`.
fn insert_withdrawal(pg: &Postgres, db: &str, first: Option<Value>, format: i32) {
    let staff_row = pg.psql(
        db,
        &format!(
            "SELECT c->>'value' FROM fleet_changes, jsonb_array_elements(changes) c \
             WHERE c->>'table' = 'staff' AND c->>'key' = '{E_SYNCED}/{P_CLERK}' \
             ORDER BY id DESC LIMIT 1"
        ),
    );
    let withdrawn = staff_row.replace(r#""filing","invoicing""#, r#""filing""#);
    assert_ne!(withdrawn, staff_row);
    let put = json!({ "op": "put", "table": "staff", "key": format!("{E_SYNCED}/{P_CLERK}"), "value": withdrawn });
    let change: Vec<Value> = first.into_iter().chain([put]).collect();
    let change = Value::from(change);
    pg.psql(
        db,
        &format!(
            "INSERT INTO fleet_changes (host, changes, writer_format) \
             VALUES ('other', $j${change}$j$, {format})"
        ),
    );
}

/// Red team, session 7: a change of a newer release whose records this
/// binary can read (unknown fields are ignored) was applied, and the
/// host's next write of that record dropped what it did not know. A
/// change stated in a newer format is never applied: the replica goes
/// stale and fails closed, naming the newer format in its log.
#[test]
fn a_change_of_a_newer_release_is_never_applied() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("newer");
    let dir = tempfile::tempdir().unwrap();
    let a = sidecar_with(dir.path(), &url, "a", &["--fleet-max-stale-ms", "1000"]);
    grant_clerk_invoicing(&a);
    insert_withdrawal(&pg, "newer", None, 3);
    wait_until("the replica that cannot follow fails closed", || {
        let (s, v) = clerk_invoices(&a);
        assert_ne!(
            v["decision"], "deny",
            "a newer release's change was applied: {v}"
        );
        s == 503 && v["error"]["code"] == "fleet_unavailable"
    });
}

/// The clock shim's offset, in ms, read from `SKEW_FILE` on every call so
/// a test can move a running sidecar's clock.
fn set_skew(file: &std::path::Path, ms: i64) {
    std::fs::write(file, ms.to_string()).unwrap();
}

/// Red team, session 7: a wall clock an hour fast for two seconds left
/// the replica "heard from" an hour in the future, so when the fleet was
/// cut off afterwards the host kept answering from a frozen replica; and a
/// clock set between two heartbeats decided on for up to two seconds.
/// Freshness is now measured on the monotonic clock, and a wall clock that
/// moves against it since the last heartbeat counts as skew at once.
#[test]
fn a_clock_set_between_heartbeats_fails_closed_at_once_and_never_stretches_the_bound() {
    let Some(pg) = Postgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(shim) = clock_shim(dir.path()) else {
        return;
    };
    let skew = dir.path().join("skew-ms");
    set_skew(&skew, 0);
    let url = pg.database("jumps");
    let a = Server::start_with_env(
        &dir.path().join("a"),
        &[
            "--demo",
            "--fleet",
            &url,
            "--fleet-host",
            "a",
            "--fleet-max-stale-ms",
            "1500",
        ],
        &[
            ("LD_PRELOAD", shim.to_str().unwrap()),
            ("SKEW_FILE", skew.to_str().unwrap()),
        ],
    );
    grant_clerk_invoicing(&a);
    // Set an hour fast: the very next question is refused, not the one
    // after the next heartbeat.
    set_skew(&skew, 3_600_000);
    let (s, v) = clerk_invoices(&a);
    assert_eq!(s, 503, "a question right after the clock was set: {v}");
    // Back to the right time: decided again once a heartbeat measured it.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    set_skew(&skew, 0);
    wait_until("the host decides again", || clerk_invoices(&a).0 == 200);
    // Cut off from the log: stale after the bound, as if the clock had
    // never moved.
    insert_withdrawal(&pg, "jumps", None, 3);
    wait_until("the cut-off host fails closed within the bound", || {
        clerk_invoices(&a).0 == 503
    });
}

#[test]
fn the_fleet_url_password_is_hidden_by_config_in_every_form() {
    for (url, secret) in [
        ("postgres://etax:s3cret-pw@db:5432/etax", "s3cret-pw"),
        ("postgresql://etax:pw%40x@db/etax?sslmode=disable", "pw%40x"),
        (
            "postgres://etax@db/etax?password=qry-secret&x=1",
            "qry-secret",
        ),
        (
            "host=db user=etax password=kv-secret dbname=etax",
            "kv-secret",
        ),
    ] {
        let (code, out, err) = cli(&["config", "--fleet", url]);
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains(secret), "{url}: {out}");
        assert!(out.contains("fleet = "), "{out}");
        let (code, out, _) = cli_with_env(&["config"], &[("ETAX_FLEET", url)]);
        assert_eq!(code, 0);
        assert!(!out.contains(secret), "{url} from the environment: {out}");
    }
    // The rest of the URL stays, so an operator sees where it points.
    let (_, out, _) = cli(&["config", "--fleet", "postgres://etax:pw@db.internal/etax"]);
    assert!(out.contains("db.internal"), "{out}");
}

fn verify(url: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["audit", "verify", "--fleet", url, "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = cli(&args);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, report)
}

#[test]
fn fleet_verify_names_a_host_whose_records_are_gone_and_never_calls_an_unknown_host_ok() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("erased");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let h1 = sidecar_with(dirs[0].path(), &url, "h1", &[]);
    let h2 = sidecar_with(dirs[1].path(), &url, "h2", &[]);
    for h in ["h1", "h2"] {
        wait_until("both hosts shipped", || {
            pg.psql(
                "erased",
                &format!("SELECT count(*) FROM fleet_decisions WHERE host = '{h}'"),
            ) != "0"
        });
    }
    h2.stop();
    // As superuser: every record of h2 removed.
    pg.psql(
        "erased",
        "ALTER TABLE fleet_decisions DISABLE TRIGGER USER; \
         DELETE FROM fleet_decisions WHERE host = 'h2'; \
         ALTER TABLE fleet_decisions ENABLE TRIGGER USER",
    );
    // Past the start-up grace (a host just started may not have shipped).
    std::thread::sleep(std::time::Duration::from_secs(7));
    let (code, report) = verify(&url, &[]);
    assert_eq!(code, 3, "{report}");
    let hosts = report["hosts"].as_array().unwrap();
    let h2_report = &hosts.iter().find(|h| h["host"] == "h2").expect("h2 named")["report"];
    assert_eq!(h2_report["verdict"], "tampered", "{report}");
    assert!(
        h2_report["problem"]["detail"]
            .as_str()
            .unwrap()
            .contains("no record"),
        "{report}"
    );
    let h1_report = &hosts.iter().find(|h| h["host"] == "h1").unwrap()["report"];
    assert_eq!(h1_report["verdict"], "ok", "{report}");

    // A host nobody knows is not "ok", from the CLI or over HTTP.
    let (code, report) = verify(&url, &["--host", "nosuch"]);
    assert_ne!(code, 0, "{report}");
    let (s, v) = h1.get("/v1/fleet/verify?host=nosuch");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
}

#[test]
fn hostile_fleet_query_parameters_are_refused_by_name() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("params");
    let dir = tempfile::tempdir().unwrap();
    let a = sidecar_with(dir.path(), &url, "a", &[]);
    for (path, field) in [
        ("/v1/fleet/decisions?host=%00", "host"),
        ("/v1/fleet/verify?host=a%00b", "host"),
        ("/v1/fleet/decisions?host=%1b%5b31m", "host"),
        ("/v1/fleet/decisions?after=9223372036854775808", "after"),
    ] {
        let (s, v) = a.get(path);
        assert_eq!(s, 400, "{path}: {v}");
        assert_eq!(v["error"]["field"], field, "{path}: {v}");
    }
    // The largest cursor the table can hold is still a cursor.
    let (s, v) = a.get("/v1/fleet/decisions?after=9223372036854775807");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["records"], json!([]), "{v}");
}

#[test]
fn a_second_sidecar_under_a_running_hosts_name_is_refused_at_start() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("twins");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let first = sidecar_with(dirs[0].path(), &url, "h1", &[]);
    let second_dir = dirs[1].path().to_str().unwrap();
    let twin = [
        "--listen",
        "127.0.0.1:0",
        "--data",
        second_dir,
        "--fleet",
        &url,
        "--fleet-host",
        "h1",
    ];
    match try_serve(&twin) {
        ServeAttempt::Exited(code, err) => {
            assert_ne!(code, 0);
            assert!(err.contains("h1") && err.contains("already"), "{err}");
        }
        ServeAttempt::Listening(_) => panic!("two running sidecars share the name h1"),
    }
    // The name is free again once its sidecar stopped, even by kill -9.
    let mut first = first;
    first.kill();
    match try_serve(&twin) {
        ServeAttempt::Listening(second) => second.stop(),
        ServeAttempt::Exited(_, err) => panic!("the name stayed taken: {err}"),
    }
}

/// Red team, session 7: a sidecar of the release before the lockout's
/// attempts in flight, left running beside upgraded ones, rewrote lockout
/// records without them, and the fleet verified 15-18 wrong guesses before
/// a lock instead of 5. A change that does not state the current writer
/// format (as an older release's does not) is now refused by the database,
/// so such a sidecar fails closed; the upgraded sidecars' writes go on.
#[test]
fn a_change_written_by_an_older_release_is_refused_by_the_database() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("formats");
    let dir = tempfile::tempdir().unwrap();
    let a = sidecar_with(dir.path(), &url, "a", &[]);
    for older in [
        "INSERT INTO fleet_changes (host, changes) VALUES ('older', '[]')",
        "INSERT INTO fleet_changes (host, changes, writer_format) VALUES ('older', '[]', 1)",
    ] {
        pg.psql(
            "formats",
            &format!(
                "DO $$ BEGIN {older}; \
                 RAISE EXCEPTION 'accepted as an older release would write it: {}'; \
                 EXCEPTION WHEN check_violation THEN NULL; END $$",
                older.replace('\'', "''")
            ),
        );
    }
    grant_clerk_invoicing(&a);
    let written: u64 = pg
        .psql(
            "formats",
            "SELECT count(*) FROM fleet_changes WHERE host = 'a' AND writer_format = 2",
        )
        .parse()
        .unwrap();
    assert!(written > 0, "the sidecar states its format");
}

/// A shared library that moves the wall clock (`CLOCK_REALTIME`) of the
/// process it is preloaded into by `SKEW_SECS`; `None` without a C
/// compiler.
fn clock_shim(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let c = dir.join("skew.c");
    std::fs::write(
        &c,
        r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static int (*real)(clockid_t, struct timespec *);
int clock_gettime(clockid_t id, struct timespec *ts) {
  if (!real) real = dlsym(RTLD_NEXT, "clock_gettime");
  int r = real(id, ts);
  if (r != 0 || (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE)) return r;
  const char *s = getenv("SKEW_SECS");
  if (s) ts->tv_sec += atol(s);
  const char *f = getenv("SKEW_FILE");
  FILE *in = f ? fopen(f, "r") : NULL;
  long long ms = 0;
  if (in) {
    if (fscanf(in, "%lld", &ms) != 1) ms = 0;
    fclose(in);
  }
  long long ns = ts->tv_nsec + (ms % 1000) * 1000000LL;
  ts->tv_sec += ms / 1000 + (ns >= 1000000000LL) - (ns < 0);
  ts->tv_nsec = (ns % 1000000000LL + 1000000000LL) % 1000000000LL;
  return r;
}
"#,
    )
    .unwrap();
    let so = dir.join("skew.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&c)
        .arg("-ldl")
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("skipped: no C compiler to build the clock shim");
    }
    built.then_some(so)
}

/// Red team, session 7: lockouts, sessions and codes are timed by each
/// host's own clock, so a host five minutes slow wrote locks that had
/// already ended for every other host (14 wrong guesses verified where 5
/// are promised). A sidecar whose clock is off the database's by more than
/// the bound now says so on `/readyz` and decides nothing, logins included.
#[test]
fn a_host_whose_clock_is_off_the_databases_fails_closed() {
    let Some(pg) = Postgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(shim) = clock_shim(dir.path()) else {
        return;
    };
    let url = pg.database("clocks");
    let right = sidecar_with(&dir.path().join("right"), &url, "right", &[]);
    let slow = Server::start_with_env(
        &dir.path().join("slow"),
        &["--demo", "--fleet", &url, "--fleet-host", "slow"],
        &[
            ("LD_PRELOAD", shim.to_str().unwrap()),
            ("SKEW_SECS", "-300"),
        ],
    );
    wait_until("the slow host says its clock is off", || {
        let (s, v) = slow.get("/readyz");
        s == 503 && v.to_string().contains("clock")
    });
    let (s, v) = clerk_invoices(&slow);
    assert_eq!(s, 503, "a decision on the slow host: {v}");
    let (s, v) = slow.post(
        "/v1/login/enterprise",
        &json!({ "account": E_SYNCED, "password": "Etax@2026" }),
    );
    assert_eq!(s, 503, "a login on the slow host: {v}");
    assert_eq!(v["error"]["code"], "fleet_unavailable", "{v}");
    // The host with the right time is unaffected.
    let (s, v) = right.get("/readyz");
    assert_eq!(s, 200, "{v}");
    let (s, v) = clerk_invoices(&right);
    assert_eq!(s, 200, "{v}");
}
