//! What the decision log costs a decision.
//!
//! `cargo bench --bench decision_log [-- SECONDS]`
//!
//! In one process, on the demo identities and the real policies: worker tasks
//! decide `useFunction` questions as `/v1/authorize` does (Cedar decision +
//! its `DecisionRecord`) for SECONDS (default 5) per run, first without the
//! log, then with `AuditLog::enqueue` (group-committed by the writer thread,
//! fsync per transaction). Runs alternate to even out a shared machine. HTTP
//! is left out, so the overhead is measured against the cheapest possible
//! decision: the share of a full request is smaller. Also measures the
//! latency of `AuditLog::commit` (login/maintenance path), alone and under
//! concurrency.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use cedar_policy::EntityUid;
use etax_authz::audit::{decision_log_path, AuditLog, DecisionRecord};
use etax_authz::authn::{PasswordHasher, PasswordRule};
use etax_authz::decision::{Engine, Query};
use etax_authz::policy::PolicySnapshot;
use etax_authz::store::{self, ImportDocument, Store};

const TASKS: usize = 16;

fn query(principal: &str, function: &str) -> Query {
    Query {
        principal: EntityUid::from_str(&format!("Etax::Staff::\"{principal}\"")).unwrap(),
        action: EntityUid::from_str("Etax::Action::\"useFunction\"").unwrap(),
        resource: EntityUid::from_str(&format!("Etax::Function::\"{function}\"")).unwrap(),
        context: serde_json::json!({}),
        entities: Vec::new(),
    }
}

fn decide(engine: &Engine, q: &Query) -> DecisionRecord {
    let started = Instant::now();
    let v = engine.decide(q).unwrap();
    DecisionRecord::new(
        &etax_authz::random_id(),
        "authorize",
        &q.principal.to_string(),
        &q.action.to_string(),
        &q.resource.to_string(),
        None,
        v.allowed,
        &v.reasons,
        &v.errors,
        &v.policy_version,
        started.elapsed().as_micros() as u64,
    )
}

async fn run(engine: &Engine, queries: &Arc<Vec<Query>>, log: Option<&AuditLog>, secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (engine, queries, log) = (engine.clone(), queries.clone(), log.cloned());
        let (stop, count) = (stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let record = decide(&engine, &queries[i % queries.len()]);
                match &log {
                    Some(log) => log.enqueue(vec![record]).await.unwrap(),
                    None => {
                        std::hint::black_box(record);
                        tokio::task::yield_now().await;
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = count.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for t in tasks {
        t.await.unwrap();
    }
    if let Some(log) = log {
        log.flush().await.unwrap();
    }
    n as f64 / elapsed
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("etax-bench-{}", etax_authz::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot = PolicySnapshot::load(
        &root.join("policies"),
        &root.join("schemas/etax.cedarschema"),
    )
    .unwrap();
    let store = Store::open(&store::identity_store_path(&dir)).unwrap();
    let doc: ImportDocument =
        serde_json::from_str(&std::fs::read_to_string(root.join("examples/demo.json")).unwrap())
            .unwrap();
    store::import_document(
        &store,
        &doc,
        &PasswordHasher::default(),
        &PasswordRule::default(),
    )
    .unwrap();
    let engine = Engine::new(store, Arc::new(ArcSwap::from_pointee(snapshot)));
    let clerk = "91210102MA0TAX001F/resident_id:210102199001015035";
    let rep = "91210102MA0TAX001F/resident_id:210102198003124011";
    let queries = Arc::new(vec![
        query(clerk, "vat_filing"),
        query(clerk, "invoice_issue"),
        query(rep, "cit_filing"),
        query(rep, "tax_certificate"),
    ]);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = AuditLog::open(&decision_log_path(&dir)).unwrap();
        println!("decision log benchmark: {TASKS} tasks, {secs} s per run, {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for round in 1..=3 {
            let a = run(&engine, &queries, None, secs).await;
            let b = run(&engine, &queries, Some(&log), secs).await;
            println!("round {round}: without log {a:>8.0} decisions/s   with log {b:>8.0} decisions/s   cost {:>5.1}%", (1.0 - b / a) * 100.0);
            without.push(a);
            with.push(b);
        }
        let (a, b) = (
            without.iter().sum::<f64>() / without.len() as f64,
            with.iter().sum::<f64>() / with.len() as f64,
        );
        println!("mean:    without log {a:>8.0} decisions/s   with log {b:>8.0} decisions/s   cost {:>5.1}%", (1.0 - b / a) * 100.0);
        let records = log.all().unwrap().len();
        println!("records written: {records}");

        // Synchronous commits, one at a time: one fsync each.
        let mut lat = Vec::new();
        for _ in 0..200 {
            let r = decide(&engine, &queries[0]);
            let t = Instant::now();
            log.commit(r).await.unwrap();
            lat.push(t.elapsed());
        }
        lat.sort();
        println!("commit alone:      p50 {:?}  p99 {:?}  max {:?}", percentile(&lat, 0.5), percentile(&lat, 0.99), lat[lat.len() - 1]);

        // Synchronous commits from 32 tasks while authorize records stream in.
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (engine, queries, log) = (engine.clone(), queries.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in 0..50 {
                    log.enqueue((0..10).map(|_| decide(&engine, &queries[i % 4])).collect()).await.unwrap();
                    let r = decide(&engine, &queries[1]);
                    let t = Instant::now();
                    log.commit(r).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed();
        lat.sort();
        println!(
            "commit under load: p50 {:?}  p99 {:?}  max {:?}  ({} commits + {} queued records in {:?})",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat[lat.len() - 1],
            lat.len(),
            lat.len() * 10,
            elapsed
        );
        let t = Instant::now();
        let report = log.verify(None).unwrap();
        assert!(report.ok);
        println!("verify: {} records in {:?}", report.records, t.elapsed());
    });
    let _ = std::fs::remove_dir_all(&dir);
}
