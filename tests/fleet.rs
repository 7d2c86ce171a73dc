//! Fleet mode against a real PostgreSQL (a throwaway cluster per test
//! binary run; skipped with a notice when PostgreSQL is not installed, CI
//! installs it).

use crate::common;

use common::postgres::Postgres;
use common::{try_serve, ServeAttempt, Server};

fn fleet_args<'a>(url: &'a str, host: &'a str) -> Vec<&'a str> {
    vec!["--demo", "--fleet", url, "--fleet-host", host]
}

#[test]
fn every_sidecar_reports_its_policy_version_in_the_fleet_table() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("hosts");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_in(da.path(), &fleet_args(&url, "host-a"));
    let b = Server::start_in(db.path(), &fleet_args(&url, "host-b"));
    let version = a.get("/v1/status").1["policy_version"]
        .as_str()
        .unwrap()
        .to_string();
    common::wait_until("both hosts in fleet_hosts", || {
        pg.psql(
            "hosts",
            "SELECT host || ' ' || policy_version FROM fleet_hosts ORDER BY host",
        ) == format!("host-a {version}\nhost-b {version}")
    });
    // Both ran the migrations at once: each applied exactly once.
    assert_eq!(
        pg.psql(
            "hosts",
            "SELECT count(*) FROM fleet_migrations WHERE version = 1"
        ),
        "1"
    );
    a.stop();
    b.stop();
}

#[test]
fn an_unreachable_fleet_database_stops_the_start_without_showing_the_password() {
    // A port nobody listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://etax:s3cret-pw@127.0.0.1:{port}/fleet");
    let data = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap();
    let attempt = try_serve(&[
        "--listen",
        "127.0.0.1:0",
        "--data",
        data_arg,
        "--fleet",
        &url,
    ]);
    let ServeAttempt::Exited(code, err) = attempt else {
        panic!("serve started without its fleet database")
    };
    assert_ne!(code, 0);
    assert!(err.contains("fleet database"), "{err}");
    assert!(!err.contains("s3cret-pw"), "the password is shown: {err}");
}
