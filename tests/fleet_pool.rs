//! The fleet's database connections under attack (issue 15's red team):
//! exports by clients that never read must not take the connections the
//! applier, the heartbeat, the keys watcher and the shipper need, or the
//! replica goes stale and every decision fails closed. Skipped with a
//! notice when PostgreSQL is not installed (CI installs it).

use crate::common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::*;
use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};

/// More rows than any socket buffers hold, so an export to a client that
/// never reads stalls midway.
const ROWS: u32 = 150_000;
/// More clients than the fleet's request pool has connections (16).
const CLIENTS: usize = 20;
const MAX_STALE_MS: u64 = 1500;

/// A client that connects with a tiny receive buffer, asks for `path` and
/// never reads a byte of the answer.
fn never_reading(addr: SocketAddr, path: &str) -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // Before connecting, so the window the peer sees is small.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    (&socket).write_all(request.as_bytes()).unwrap();
    socket
}

/// For `ms` (some multiples of the staleness bound), `/readyz` and a
/// clerk's decision answer 200 every 200 ms, `while` what the test does.
fn stays_in_service(a: &Server, ms: u64, while_: &str) {
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        let (s, body) = a.get("/readyz");
        assert_eq!(s, 200, "readyz while {while_}: {body}");
        let (s, v) = clerk_decides(a);
        assert_eq!(s, 200, "a decision while {while_}: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn clerk_decides(server: &Server) -> (u16, Value) {
    server.post(
        "/v1/authorize",
        &json!({ "principal": staff(E_SYNCED, P_CLERK), "action": action("useFunction"),
                 "resource": "Function::\"vat_filing\"", "context": {} }),
    )
}

/// Whether an export at `path` is refused because every slot is taken
/// (and says when to retry); any other answer is false.
fn busy(addr: SocketAddr, path: &str) -> bool {
    let (s, head, body) = exchange_tcp(addr, "GET", path, &[], "");
    if s != 503 {
        assert_eq!(s, 200, "{path}: {body}");
        return false;
    }
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "exports_busy", "{path}: {body}");
    assert!(header(&head, "retry-after").is_some(), "{path}: {head}");
    true
}

/// A fake host's chain of [`ROWS`] copies of one real shipped record: each
/// line parses, so an export writes every one.
fn fill_fleet_log(pg: &Postgres, db: &str) {
    pg.psql(
        db,
        &format!(
            "INSERT INTO fleet_decisions
               (host, seq, timestamp_ms, chain_hash, prev_hash, hash, canonical)
             SELECT 'bulk', g, r.timestamp_ms, r.chain_hash, r.prev_hash, r.hash, r.canonical
             FROM (SELECT * FROM fleet_decisions ORDER BY id LIMIT 1) r,
                  generate_series(1, {ROWS}) g"
        ),
    );
}

/// A demo sidecar named `a` over `url`, stale after [`MAX_STALE_MS`].
fn sidecar(dir: &std::path::Path, url: &str, extra: &[&str]) -> Server {
    let stale = MAX_STALE_MS.to_string();
    let mut args = vec!["--fleet-max-stale-ms", &stale];
    args.extend_from_slice(extra);
    common::fleet::sidecar_with(dir, url, "a", &args)
}

/// Locks `fleet_decisions` from another session (held until [`unlock`]),
/// so every read of it hangs.
fn lock_fleet_decisions(pg: &Postgres, db: &str) -> std::process::Child {
    let locker = pg.spawn_psql(
        db,
        "BEGIN; LOCK TABLE fleet_decisions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
    );
    wait_until("the table is locked", || {
        pg.psql(
            db,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relname = 'fleet_decisions' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        ) == "1"
    });
    locker
}

/// Ends [`lock_fleet_decisions`]'s session.
fn unlock(pg: &Postgres, db: &str, mut locker: std::process::Child) {
    pg.psql(
        db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query LIKE '%LOCK TABLE fleet_decisions%' AND pid <> pg_backend_pid()",
    );
    let _ = locker.wait();
}

#[test]
fn exports_that_never_read_leave_the_replica_fresh_and_decisions_answered() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("pool");
    let dir = tempfile::tempdir().unwrap();
    let slots = CLIENTS.to_string();
    // A long write timeout: the stuck clients stay for the whole test. As
    // many export slots as clients: the slots must not be what saves it.
    let a = sidecar(
        dir.path(),
        &url,
        &["--write-timeout-ms", "120000", "--max-exports", &slots],
    );
    assert_eq!(clerk_decides(&a).0, 200);
    wait_until("a record shipped", || {
        pg.psql("pool", "SELECT count(*) FROM fleet_decisions") != "0"
    });
    fill_fleet_log(&pg, "pool");

    // One after another: the old export held a connection from its first
    // page on, however its clients arrived.
    let mut hanging: Vec<Socket> = (0..CLIENTS)
        .map(|_| {
            let client = never_reading(a.addr, "/v1/fleet/decisions/export");
            std::thread::sleep(Duration::from_millis(100));
            client
        })
        .collect();
    // Every slot streams to a client that does not read: one export more,
    // fleet or local, is refused at once, with when to retry. (Filters
    // that match nothing: a probe that is let through ends at once.) On a
    // loaded machine an export may wait out the request pool for its first
    // pages and end, freeing its slot (a 503 to its client): another client
    // that never reads takes it.
    wait_until("every export slot taken", || {
        if busy(a.addr, "/v1/fleet/decisions/export?host=none") {
            return true;
        }
        hanging.push(never_reading(a.addr, "/v1/fleet/decisions/export"));
        false
    });
    assert!(busy(a.addr, "/v1/audit/export?kind=none"));
    // Past the staleness bound several times over, while they hang.
    stays_in_service(&a, 3 * MAX_STALE_MS, "exports hang");
    // The fleet's own reads still get a connection.
    let (s, v) = a.get("/v1/fleet/status");
    assert_eq!(s, 200, "{v}");
    drop(hanging);
    // Their slots come back once they are gone.
    wait_until("an export slot is free again", || {
        !busy(a.addr, "/v1/fleet/decisions/export?host=none")
    });
}

/// Requests whose queries hang (the fleet's log table locked by another
/// session) hold every connection of the request pool: a request past
/// them waits a bounded time for a connection, then is answered 503
/// naming the fleet database's pool, never left hanging; and the
/// background pool keeps the replica fresh meanwhile.
#[test]
fn request_pool_waits_are_bounded_and_leave_the_background_alone() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("waits");
    let dir = tempfile::tempdir().unwrap();
    // Past the pool, not stopped by the cap on fleet reads.
    let a = sidecar(dir.path(), &url, &["--max-exports", "64"]);
    let locker = lock_fleet_decisions(&pg, "waits");
    let addr = a.addr;
    let readers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                let (s, _, body) = exchange_tcp(addr, "GET", "/v1/fleet/decisions?host=a", &[], "");
                (s, body)
            })
        })
        .collect();
    // The readers beyond the pool are answered while the others hang.
    wait_until("a reader beyond the pool is answered", || {
        readers.iter().any(|r| r.is_finished())
    });
    // Past the staleness bound while they hang: still fresh.
    stays_in_service(&a, 2 * MAX_STALE_MS, "the request pool is held");
    unlock(&pg, "waits", locker);
    let statuses: Vec<u16> = readers.into_iter().map(|r| r.join().unwrap().0).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&200),
        "the held readers finish: {statuses:?}"
    );
}

/// The second red team's attack: a caller with only the `audit` scope
/// looping over slow fleet reads (here: reads that hang on a locked table)
/// held every request connection, and logins waited out the pool and were
/// answered 503 `fleet_unavailable`. Fleet reads now take a slot of the
/// export cap: past it they are refused at once, and logins are answered.
#[test]
fn slow_fleet_reads_leave_the_request_pool_to_logins() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("reads");
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start_in(
        dir.path(),
        &["--demo", "--fleet", &url, "--fleet-host", "a"],
    );
    let locker = lock_fleet_decisions(&pg, "reads");
    let addr = a.addr;
    let readers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let path = if i % 2 == 0 {
                "/v1/fleet/verify"
            } else {
                "/v1/fleet/decisions"
            };
            std::thread::spawn(move || exchange_tcp(addr, "GET", path, &[], "").0)
        })
        .collect();
    // The readers the cap refuses are answered at once; the others hang.
    wait_until("the readers past the cap are refused", || {
        readers.iter().filter(|r| r.is_finished()).count() >= CLIENTS - 4
    });
    for _ in 0..3 {
        let (s, v) = a.post(
            "/v1/login/enterprise",
            &json!({ "account": E_SYNCED, "password": "Etax@2026" }),
        );
        assert_eq!(s, 200, "a login while fleet reads hang: {v}");
    }
    unlock(&pg, "reads", locker);
    let statuses: Vec<u16> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        CLIENTS - 4,
        "every reader past the cap is refused: {statuses:?}"
    );
}

/// Red team, session 7: a heartbeat stuck on this host's own row, held by
/// another session, stayed queued on its pooled connection after the beat
/// gave up, and the applier and the clock comparison queued behind it: a
/// healthy host went stale and failed closed. The beat now fails on the
/// server within its bound, and the host stays in service.
#[test]
fn a_held_host_row_leaves_the_host_in_service() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("row");
    let dir = tempfile::tempdir().unwrap();
    let a = sidecar(dir.path(), &url, &[]);
    let mut holder = pg.spawn_psql(
        "row",
        "BEGIN; SELECT 1 FROM fleet_hosts WHERE host = 'a' FOR UPDATE; SELECT pg_sleep(60);",
    );
    wait_until("the row is held", || {
        pg.psql(
            "row",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%FOR UPDATE%pg_sleep%' \
             AND state = 'active' AND pid <> pg_backend_pid()",
        ) == "1"
    });
    stays_in_service(&a, 4 * MAX_STALE_MS, "the host's row is held");
    pg.psql(
        "row",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query LIKE '%FOR UPDATE%pg_sleep%' AND pid <> pg_backend_pid()",
    );
    let _ = holder.wait();
}
