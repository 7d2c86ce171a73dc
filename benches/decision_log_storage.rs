//! The decision log's storage, measured against baselines in the same run:
//!
//! 1. bytes on disk per `/v1/authorize` record and write throughput, for a
//!    realistic mix (many distinct enterprises and staff, agents acting for
//!    clients, allows and denies), written in group commits of 256 records
//!    with one fsync each: the old format (one redb file, each record's JSON
//!    in a table, the head beside it; the writer's code of before, below)
//!    against the segment files (`AuditLog`);
//! 2. opening a cleanly closed log of 10 million records against opening
//!    one of 10,000 (the open must not grow with the log), and the open
//!    after a crash (no clean-close head) for comparison.
//!
//! ```sh
//! cargo bench --bench decision_log_storage
//! # sizes: DLS_RECORDS (100000), DLS_OPEN_RECORDS (10000000);
//! # the big log is built once into DLS_OPEN_DIR (target/bench-decision-log)
//! ```

use std::path::Path;
use std::time::Instant;

use sha2::Digest;

use etax_authz::audit::{
    self, chain, AuditLog, ChainHash, DecisionRecord, FinalOutcome, PersonRef,
};
use redb::{Database, TableDefinition};

const BATCH: usize = 256;

/// A small deterministic generator (xorshift64*): the same mix every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FUNCTIONS: &[&str] = &[
    "vat_filing",
    "cit_filing",
    "iit_filing",
    "invoice_issue",
    "invoice_purchase",
    "invoice_red",
    "tax_payment",
    "taxpayer_info",
    "social_security",
    "export_refund",
    "stamp_duty",
    "property_tax",
];

/// Record `i` of the mix: 50,000 enterprises with 4 staff each, one in
/// five questions from an agency's staff acting for a client. Each carries
/// what a `/v1/authorize` record carries since #11: the final outcome, the
/// person named (a keyed pseudonym: 128 random-looking bits, masked ID and
/// name, identity type), and for a default deny the permits considered.
fn record(rng: &mut Rng, i: u64, base_ms: u64) -> DecisionRecord {
    let ent = rng.below(50_000);
    let code = format!("91210{ent:08}MA{}", (b'A' + (ent % 26) as u8) as char);
    let person = format!(
        "2101{:02}19{:02}{:02}{:02}{:04}",
        ent % 90,
        60 + rng.below(40),
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(10_000)
    );
    let agent = rng.below(5) == 0;
    let principal = if agent {
        format!(
            "Etax::AgentStaff::\"91210100MA0AGT{:03}B/resident_id:{person}\"",
            ent % 300
        )
    } else {
        format!("Etax::Staff::\"{code}/resident_id:{person}\"")
    };
    let acting_for = agent.then(|| format!("Etax::Enterprise::\"{code}\""));
    let allowed = rng.below(100) < 85;
    let policies = match (allowed, agent) {
        (true, false) => vec!["function.via-permission-identity".to_owned()],
        (true, true) => vec!["agent.recognized-function".to_owned()],
        (false, true) if rng.below(2) == 0 => vec!["agent.client-cancelled".to_owned()],
        (false, _) => vec![],
    };
    let mut r = DecisionRecord::new(
        &format!("{:016x}{:016x}", rng.next(), rng.next()),
        "authorize",
        &principal,
        "Etax::Action::\"useFunction\"",
        &format!("Etax::Function::\"{}\"", FUNCTIONS[rng.below(12) as usize]),
        acting_for.as_deref(),
        allowed,
        &policies,
        &[],
        "5f1c0e7a9b3d4c2e8f6a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e",
        30 + rng.below(400),
    );
    r.caller = Some("gateway-1".to_owned());
    r.timestamp_ms = base_ms + i + rng.below(3);
    r.outcome = Some(if allowed {
        FinalOutcome::Done
    } else {
        FinalOutcome::Refused
    });
    if !allowed && r.policies.is_empty() {
        r.reason = Some("no permit matched".to_owned());
        r.unmatched_permits = [
            "agency.client-business",
            "function.social-security-only-payer",
            "function.via-permission-identity",
        ]
        .map(str::to_owned)
        .to_vec();
    }
    // The pseudonym stands for the person whatever the question: the same
    // person always gets the same one, as under the service's key.
    let pseudonym = hex::encode(&sha2::Sha256::digest(person.as_bytes())[..16]);
    r.persons = vec![PersonRef {
        pseudonym,
        role: if agent { "agent" } else { "principal" }.to_owned(),
        id: format!("resident_id:{}**********{}", &person[..4], &person[14..]),
        name: Some("*伟".to_owned()),
        identity_type: Some(if agent { "agent" } else { "tax_clerk" }.to_owned()),
    }];
    r
}

fn batches(n: u64, seed: u64) -> impl Iterator<Item = Vec<DecisionRecord>> {
    let mut rng = Rng(seed);
    let base = 1_795_000_000_000;
    (0..n).step_by(BATCH).map(move |start| {
        (start..(start + BATCH as u64).min(n))
            .map(|i| record(&mut rng, i, base))
            .collect()
    })
}

fn du(path: &Path) -> u64 {
    let meta = std::fs::metadata(path).unwrap();
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| du(&e.unwrap().path()))
        .sum()
}

const DECISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("decisions");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("decisions_meta");

/// The old writer: per group commit one redb transaction holding each
/// record's JSON and the head, committed durably.
fn legacy(dir: &Path, n: u64) -> (f64, u64) {
    let path = dir.join("decisions.redb");
    let db = Database::create(&path).unwrap();
    let (mut seq, mut prev) = (0u64, chain::GENESIS.to_owned());
    let mut generated = batches(n, 7).collect::<Vec<_>>().into_iter();
    let start = Instant::now();
    for mut batch in generated.by_ref() {
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(DECISIONS).unwrap();
            let mut meta = txn.open_table(META).unwrap();
            for r in &mut batch {
                seq += 1;
                r.seq = seq;
                r.prev_hash.clone_from(&prev);
                r.hash = ChainHash::Sha256.hex(&chain::canonical_bytes(r));
                let bytes = serde_json::to_vec(&*r).unwrap();
                table.insert(seq, bytes.as_slice()).unwrap();
                prev.clone_from(&r.hash);
            }
            let head = serde_json::to_vec(&chain::Checkpoint::of(batch.last().unwrap())).unwrap();
            meta.insert("head", head.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    drop(db);
    (secs, du(&path))
}

/// The segment files: the same batches, each flushed (one journal fsync).
fn segments(dir: &Path, n: u64, rt: &tokio::runtime::Runtime) -> (f64, u64) {
    let path = audit::decision_log_path(dir);
    let log = AuditLog::open(&path).unwrap();
    let generated: Vec<_> = batches(n, 7).collect();
    let start = Instant::now();
    rt.block_on(async {
        for batch in generated {
            log.enqueue(batch).await.unwrap();
            log.flush().await.unwrap();
        }
        log.close().await.unwrap();
    });
    let secs = start.elapsed().as_secs_f64();
    (secs, du(&path))
}

/// Builds a cleanly closed log of `n` records in `dir` unless one is there.
fn build_once(dir: &Path, n: u64, rt: &tokio::runtime::Runtime) {
    let path = audit::decision_log_path(dir);
    if path.join("head.json").is_file() {
        return;
    }
    let _ = std::fs::remove_dir_all(&path);
    let log = AuditLog::open(&path).unwrap();
    let start = Instant::now();
    rt.block_on(async {
        for batch in batches(n, 11) {
            for part in batch.chunks(100) {
                log.enqueue(part.to_vec()).await.unwrap();
            }
        }
        log.close().await.unwrap();
    });
    println!(
        "built a log of {n} records in {:.1} s ({:.0} records/s, {} bytes on disk)",
        start.elapsed().as_secs_f64(),
        n as f64 / start.elapsed().as_secs_f64(),
        du(&path)
    );
}

/// Seconds to open the log in `dir` (and close it again, cleanly).
fn time_open(dir: &Path, rt: &tokio::runtime::Runtime) -> (f64, u64) {
    let path = audit::decision_log_path(dir);
    let start = Instant::now();
    let log = AuditLog::open(&path).unwrap();
    let head = log.checkpoint().unwrap().map_or(0, |c| c.seq);
    let secs = start.elapsed().as_secs_f64();
    rt.block_on(log.close()).unwrap();
    (secs, head)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let n = env("DLS_RECORDS", 100_000);
    let old = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    let (old_s, old_b) = legacy(old.path(), n);
    let (new_s, new_b) = segments(new.path(), n, &rt);
    println!("{n} authorize records, group commits of {BATCH}:");
    println!(
        "  redb file (before): {:>8.0} records/s  {:>6.0} bytes/record",
        n as f64 / old_s,
        old_b as f64 / n as f64
    );
    println!(
        "  segments  (after):  {:>8.0} records/s  {:>6.0} bytes/record",
        n as f64 / new_s,
        new_b as f64 / n as f64
    );
    println!(
        "  ratio after/before: throughput {:.2}x, size {:.3}x",
        old_s / new_s,
        new_b as f64 / old_b as f64
    );

    let big = env("DLS_OPEN_RECORDS", 10_000_000);
    let big_dir =
        std::env::var("DLS_OPEN_DIR").unwrap_or_else(|_| "target/bench-decision-log".to_owned());
    let big_dir = Path::new(&big_dir);
    std::fs::create_dir_all(big_dir).unwrap();
    build_once(big_dir, big, &rt);
    let small = tempfile::tempdir().unwrap();
    build_once(small.path(), 10_000, &rt);
    let (small_s, _) = time_open(small.path(), &rt);
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(time_open(big_dir, &rt));
    }
    let (big_s, head) = runs
        .iter()
        .copied()
        .fold((f64::MAX, 0), |a, b| if b.0 < a.0 { b } else { a });
    println!("open after a clean close: {head} records {:.3} s (best of 3; runs {:?}), 10,000 records {:.3} s, ratio {:.1}x",
        big_s, runs.iter().map(|r| (r.0 * 1000.0).round() / 1000.0).collect::<Vec<_>>(), small_s, big_s / small_s);
    // A crash: no clean-close head, so the tail segment is checked.
    std::fs::remove_file(audit::decision_log_path(big_dir).join("head.json")).unwrap();
    let (crash_s, _) = time_open(big_dir, &rt);
    println!("open after a crash (tail segment checked): {crash_s:.3} s");
}
