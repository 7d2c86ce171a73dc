//! Fleet mode's shared store against a real PostgreSQL and three real
//! sidecars on loopback ports, each with its own data directory: sessions,
//! grants and lockouts across hosts, a sidecar killed while writing, and a
//! database outage (answers from the replica, then fail closed, then
//! recovery). Skipped with a notice when PostgreSQL is not installed.

use crate::common;

use common::postgres::Postgres;
use common::*;
use serde_json::{json, Value};

const LEGAL_REP: &str = "**国";

/// Three sidecars of one fleet, each over its own data directory, each
/// started with `--demo` (the demo is seeded once, by whichever host takes
/// the job lock first).
struct Fleet {
    hosts: Vec<Server>,
    dirs: Vec<tempfile::TempDir>,
    url: String,
}

impl Fleet {
    fn start(pg: &Postgres, db: &str, extra: &[&str]) -> Self {
        let url = pg.database(db);
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let hosts = std::thread::scope(|s| {
            let started: Vec<_> = dirs
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let url = &url;
                    s.spawn(move || Self::host(d.path(), url, i, extra))
                })
                .collect();
            started.into_iter().map(|h| h.join().unwrap()).collect()
        });
        Self { hosts, dirs, url }
    }

    fn host(data: &std::path::Path, url: &str, i: usize, extra: &[&str]) -> Server {
        let name = format!("host-{}", ["a", "b", "c"][i]);
        let mut args = vec!["--demo", "--fleet", url, "--fleet-host", &name];
        args.extend_from_slice(extra);
        Server::start_in(data, &args)
    }

    fn restart(&mut self, i: usize, extra: &[&str]) {
        let server = Self::host(self.dirs[i].path(), &self.url, i, extra);
        self.hosts[i] = server;
    }
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn use_function(server: &Server, session: &str, function: &str) -> (u16, Value) {
    server.post(
        "/v1/authorize",
        &json!({ "session": session, "action": action("useFunction"),
                 "resource": format!("Function::{function:?}") }),
    )
}

/// Whether the demo clerk may issue invoices (a role the tests grant and
/// withdraw), asked with the principal named: no session, no catch-up.
fn ask_clerk_invoices(server: &Server) -> (u16, Value) {
    server.post(
        "/v1/authorize",
        &json!({ "principal": staff(E_SYNCED, P_CLERK), "action": action("useFunction"),
                 "resource": "Function::\"invoice_issue\"", "context": {} }),
    )
}

fn clerk_may_issue_invoices(server: &Server) -> Value {
    let (s, v) = ask_clerk_invoices(server);
    assert_eq!(s, 200, "{v}");
    v["decision"].clone()
}

#[test]
fn a_session_from_one_host_works_on_another_and_a_logout_on_a_third_ends_it_on_all() {
    let Some(pg) = Postgres::start() else { return };
    let fleet = Fleet::start(&pg, "sessions", &[]);
    let [a, b, c] = &fleet.hosts[..] else {
        unreachable!()
    };
    // Seeded once, though three hosts started with --demo at once.
    assert_eq!(
        pg.psql(
            "sessions",
            "SELECT count(*) FROM fleet_changes WHERE changes @> '[{\"table\":\"enterprises\"}]'"
        ),
        "1"
    );
    let (session, _) = login_by_sms(a, LEGAL_REP);
    common::wait_until("the session reaches B", || {
        use_function(b, &session, "vat_filing").0 == 200
    });
    assert_eq!(
        use_function(b, &session, "vat_filing").1["decision"],
        "allow"
    );
    let (s, v) = with_session(b, &session, "GET", "/v1/maintenance/staff", None);
    assert_eq!(s, 200, "{v}");

    let (s, v) = c.post("/v1/logout", &json!({ "session": session }));
    assert_eq!(s, 200, "{v}");
    // No waiting: the next use on any host sees the logout.
    for host in [a, b, c] {
        let (s, v) = use_function(host, &session, "vat_filing");
        assert_eq!((s, error_code(&v)), (401, "session_invalid"), "{v}");
    }
}

/// A multi-step login whose steps reach different hosts (a load balancer
/// does not keep a login's requests together): each step finds the flow
/// the step before wrote on another host a moment ago, with no waiting.
/// Red team, session 7: the second step answered `login_flow_expired` on a
/// host that had not applied the first step's flow yet.
#[test]
fn each_step_of_a_login_may_reach_another_host() {
    let Some(pg) = Postgres::start() else { return };
    let fleet = Fleet::start(&pg, "steps", &[]);
    let [a, b, c] = &fleet.hosts[..] else {
        unreachable!()
    };
    // Fewer rounds than the phone's code quota (5 in 600 s).
    for round in 0..4 {
        let (s, r) = a.post(
            "/v1/login/enterprise",
            &json!({ "account": E_SYNCED, "password": "Etax@2026" }),
        );
        assert_eq!(s, 200, "{r}");
        let staff = r["staff"].as_array().unwrap().iter();
        let member = staff.clone().find(|m| m["name"] == LEGAL_REP).unwrap();
        let body = json!({ "flow": r["flow"], "staff": member["staff_id"] });
        let (s, code) = b.post("/v1/login/enterprise/code", &body);
        assert_eq!(s, 200, "round {round}, the code step on B: {code}");
        let mut done = body.clone();
        done["challenge"] = code["challenge"].clone();
        done["code"] = code["code"].clone();
        let (s, v) = c.post("/v1/login/enterprise/complete", &done);
        assert_eq!(s, 200, "round {round}, the last step on C: {v}");
    }
}

#[test]
fn a_grant_withdrawal_or_removal_made_on_one_host_reaches_the_others() {
    let Some(pg) = Postgres::start() else { return };
    let fleet = Fleet::start(&pg, "grants", &[]);
    let [a, b, c] = &fleet.hosts[..] else {
        unreachable!()
    };
    assert_eq!(clerk_may_issue_invoices(a), "deny");
    let (lr, _) = login_by_sms(b, LEGAL_REP);
    let clerk = format!("/v1/maintenance/staff/{P_CLERK}");
    let grant = json!({ "add_permission_identities": ["invoicing"] });
    let (s, v) = with_session(b, &lr, "PATCH", &clerk, Some(grant));
    assert_eq!(s, 200, "{v}");
    // B wrote it: B answers from it at once.
    assert_eq!(clerk_may_issue_invoices(b), "allow");
    common::wait_until("the grant reaches A and C", || {
        clerk_may_issue_invoices(a) == "allow" && clerk_may_issue_invoices(c) == "allow"
    });
    let withdraw = json!({ "remove_permission_identities": ["invoicing"] });
    let (s, v) = with_session(c, &lr, "PATCH", &clerk, Some(withdraw));
    assert_eq!(s, 200, "{v}");
    common::wait_until("the withdrawal reaches A and B", || {
        clerk_may_issue_invoices(a) == "deny" && clerk_may_issue_invoices(b) == "deny"
    });

    // Removing the clerk on C ends the session he opened on A, at its next
    // use there: no waiting.
    let (clerk_session, _) = login_by_sms(a, "*伟");
    assert_eq!(use_function(a, &clerk_session, "vat_filing").0, 200);
    let (s, v) = with_session(c, &lr, "DELETE", &clerk, None);
    assert_eq!(s, 200, "{v}");
    let (s, v) = use_function(a, &clerk_session, "vat_filing");
    assert_eq!(s, 401, "{v}");
}

#[test]
fn wrong_passwords_spread_over_three_hosts_lock_the_account() {
    let Some(pg) = Postgres::start() else { return };
    let fleet = Fleet::start(&pg, "lockouts", &[]);
    for i in 0..5 {
        let host = &fleet.hosts[i % 3];
        let (s, v) = host.post(
            "/v1/login/enterprise",
            &json!({ "account": E_SYNCED, "password": format!("Wrong@{i}x") }),
        );
        assert_eq!(s, 401, "attempt {i}: {v}");
    }
    for host in &fleet.hosts {
        let (s, v) = host.post(
            "/v1/login/enterprise",
            &json!({ "account": E_SYNCED, "password": "Etax@2026" }),
        );
        assert_eq!((s, error_code(&v)), (423, "account_locked"), "{v}");
    }
}

/// Creates permission identities `kill-N` on `addr` until a request fails
/// (the host was killed); answers the ids whose creation was acknowledged.
fn create_until_killed(addr: std::net::SocketAddr, session: &str) -> Vec<String> {
    let mut acked = Vec::new();
    for i in 0.. {
        let id = format!("kill-{i}");
        let body = json!({ "id": id, "name": "岗位", "functions": ["vat_filing"] }).to_string();
        let answer = try_http_with(
            addr,
            "POST",
            "/v1/maintenance/permission-identities",
            &[("X-Etax-Session", session)],
            Some(body.as_bytes()),
        );
        match answer {
            Ok((200, _)) => acked.push(id),
            Ok((status, text)) => panic!("{status}: {text}"),
            Err(_) => return acked,
        }
    }
    unreachable!()
}

fn listed_identities(server: &Server, session: &str) -> String {
    let path = "/v1/maintenance/permission-identities";
    let (s, v) = with_session(server, session, "GET", path, None);
    assert_eq!(s, 200, "{v}");
    v.to_string()
}

#[test]
fn a_sidecar_killed_while_writing_loses_nothing_acknowledged_and_converges() {
    let Some(pg) = Postgres::start() else { return };
    let mut fleet = Fleet::start(&pg, "crash", &[]);
    let (lr, _) = login_by_sms(&fleet.hosts[0], LEGAL_REP);
    let writer = {
        let (addr, lr) = (fleet.hosts[0].addr, lr.clone());
        std::thread::spawn(move || create_until_killed(addr, &lr))
    };
    common::wait_until("some writes acknowledged", || {
        pg.psql(
            "crash",
            "SELECT count(*) FROM fleet_changes WHERE changes::text LIKE '%kill-%'",
        )
        .parse::<u32>()
        .unwrap()
            >= 5
    });
    fleet.hosts[0].kill();
    let acked = writer.join().unwrap();
    assert!(!acked.is_empty());
    fleet.restart(0, &[]);
    for host in &fleet.hosts {
        common::wait_until("every acknowledged write on every host", || {
            let listed = listed_identities(host, &lr);
            acked.iter().all(|id| listed.contains(&format!("\"{id}\"")))
        });
    }
    // The replicas agree on everything, the unacknowledged last write too.
    let lists: Vec<String> = fleet
        .hosts
        .iter()
        .map(|h| listed_identities(h, &lr))
        .collect();
    assert!(lists.windows(2).all(|w| w[0] == w[1]), "{lists:?}");
    // And so do their files, record for record (a session's last use is
    // written by the host that saw it, possibly after another stopped).
    for host in &mut fleet.hosts {
        host.kill();
    }
    let stores: Vec<String> = fleet
        .dirs
        .iter()
        .map(|d| store_contents(d.path()))
        .collect();
    assert_eq!(stores[0], stores[1]);
    assert_eq!(stores[0], stores[2]);
}

/// Every record of a stopped sidecar's store, as JSON, sessions by key.
fn store_contents(data: &std::path::Path) -> String {
    use etax_authz::store::*;
    let store = Store::open(&identity_store_path(data)).unwrap();
    let r = store.read().unwrap();
    fn all<R: Record>(r: &StoreReader) -> String {
        serde_json::to_string(&r.all::<R>().unwrap()).unwrap()
    }
    let sessions: Vec<String> = r
        .all::<SessionRecord>()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    [
        all::<EnterpriseRecord>(&r),
        all::<CoreOfficersRecord>(&r),
        all::<PersonRecord>(&r),
        all::<StaffRecord>(&r),
        all::<PermissionIdentityRecord>(&r),
        all::<FunctionRecord>(&r),
        all::<AgencyRecord>(&r),
        all::<AgentStaffRecord>(&r),
        all::<RecognitionRecord>(&r),
        all::<ClientOfRecord>(&r),
        all::<CalendarYearRecord>(&r),
        all::<ChallengeRecord>(&r),
        all::<LoginFlowRecord>(&r),
        all::<LockoutRecord>(&r),
        all::<CodeRateRecord>(&r),
        format!("{sessions:?}"),
    ]
    .join("\n")
}

#[test]
fn without_the_database_sidecars_answer_from_the_replica_then_fail_closed_and_recover() {
    let Some(pg) = Postgres::start() else { return };
    let fleet = Fleet::start(&pg, "outage", &["--fleet-max-stale-ms", "3000"]);
    let a = &fleet.hosts[0];
    let (session, _) = login_by_sms(a, LEGAL_REP);
    pg.stop();
    // Within the bound: decisions from the replica; writes fail closed.
    let (s, v) = use_function(a, &session, "vat_filing");
    assert_eq!((s, &v["decision"]), (200, &json!("allow")), "{v}");
    let (s, v) = a.post("/v1/logout", &json!({ "session": session }));
    assert_eq!((s, error_code(&v)), (503, "fleet_unavailable"), "{v}");
    // Past it: not ready, naming the fleet, and decisions refused.
    common::wait_until("readyz names the stale fleet replica", || {
        let (s, v) = a.get("/readyz");
        s == 503 && v["failing"].as_array().unwrap().contains(&json!("fleet"))
    });
    let (s, v) = ask_clerk_invoices(a);
    assert_eq!((s, error_code(&v)), (503, "fleet_unavailable"), "{v}");
    let (s, v) = use_function(a, &session, "vat_filing");
    assert_eq!((s, error_code(&v)), (503, "fleet_unavailable"), "{v}");

    pg.restart();
    common::wait_until("the sidecar recovers", || a.get("/readyz").0 == 200);
    assert_eq!(clerk_may_issue_invoices(a), "deny");
    assert_eq!(
        use_function(a, &session, "vat_filing").1["decision"],
        "allow"
    );
}

#[test]
fn an_import_into_the_fleet_reaches_a_sidecar_started_later_on_an_empty_directory() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("import");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("bureau.json");
    std::fs::write(&file, demo_with(|_| {}).to_string()).unwrap();
    let importer = work.path().join("importer");
    let (code, out, err) = cli(&[
        "import",
        file.to_str().unwrap(),
        "--data",
        importer.to_str().unwrap(),
        "--fleet",
        &url,
        "--fleet-host",
        "importer",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // An embedded store's data cannot join a fleet: it would reach no one.
    let embedded = work.path().join("embedded");
    let (code, _, err) = cli(&[
        "import",
        file.to_str().unwrap(),
        "--data",
        embedded.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let attempt = try_serve(&[
        "--listen",
        "127.0.0.1:0",
        "--data",
        embedded.to_str().unwrap(),
        "--fleet",
        &url,
    ]);
    let ServeAttempt::Exited(code, err) = attempt else {
        panic!("an embedded store joined the fleet")
    };
    assert!(
        code != 0 && err.contains("cannot be a fleet replica"),
        "{err}"
    );

    let fresh = tempfile::tempdir().unwrap();
    let sidecar = Server::start_in(fresh.path(), &["--fleet", &url, "--fleet-host", "later"]);
    let (session, _) = login_by_sms(&sidecar, LEGAL_REP);
    assert_eq!(
        use_function(&sidecar, &session, "vat_filing").1["decision"],
        "allow"
    );
}
