//! Not a measurement: fills a data directory's decision log with N records
//! spread over the last D days, through the log's own writer (so chain,
//! blocks and the writer's per-minute counts are what a server would have
//! written), for `benches/console_overview.sh`.
//!
//!   console_overview_fill DATA N [DAYS]
//!
//! Records are made directly, not through a server: a server answers tens
//! of thousands of decisions a second, and 10 million would take longer
//! than the benchmark is worth. The mix imitates a bureau's day: mostly
//! allowed authorizations by a few calling systems, login steps, some
//! maintenance, and denials by a handful of policies.

use std::time::Instant;

use etax_authz::audit::{AuditLog, DecisionRecord, FinalOutcome};

const KINDS: &[&str] = &[
    "authorize",
    "authorize",
    "authorize",
    "authorize_batch",
    "login.password",
    "login.sms",
    "maintain.add_staff",
];
const CALLERS: &[&str] = &["etax-portal", "mobile-app", "core-sync", "hall-terminal"];
const POLICIES: &[&str] = &[
    "function.via-permission-identity",
    "login.normal",
    "function.enterprise-only-social-insurance",
    "agency.client-must-recognize",
    "maintain.officers-only",
];
const BATCH: usize = 4096;

fn record(i: u64, ts: u64) -> DecisionRecord {
    let kind = KINDS[(i % KINDS.len() as u64) as usize];
    let deny = i.is_multiple_of(9);
    let policy = POLICIES[((i / 7) % POLICIES.len() as u64) as usize].to_owned();
    let principal = format!(
        "Etax::Staff::\"91210102MA0TAX001F/resident_id:2101**********{:04}\"",
        i % 10_000
    );
    let mut r = DecisionRecord::new(
        &format!("fill-{i}"),
        kind,
        &principal,
        "Etax::Action::\"useFunction\"",
        "Etax::Function::\"vat_filing\"",
        None,
        !deny,
        &[policy],
        &[],
        "bench",
        40,
    );
    r.timestamp_ms = ts;
    r.caller = Some(CALLERS[(i % CALLERS.len() as u64) as usize].to_owned());
    r.outcome = Some(if deny {
        FinalOutcome::Refused
    } else {
        FinalOutcome::Done
    });
    r
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` runs every bench target with `--bench`: nothing to do.
    let (Some(data), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: console_overview_fill DATA N [DAYS] (see benches/console_overview.sh)");
        return;
    };
    let days: u64 = args.get(2).and_then(|d| d.parse().ok()).unwrap_or(30);
    let dir = etax_authz::audit::decision_log_path(std::path::Path::new(data));
    let log = AuditLog::open(&dir).expect("open the decision log");
    let span = days * 86_400_000;
    let start = etax_authz::now_ms() - span;
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<DecisionRecord> = (i..(i + BATCH as u64).min(n))
            .map(|j| record(j, start + j * span / n))
            .collect();
        i += batch.len() as u64;
        log.enqueue(batch).await.expect("enqueue");
        if i % 1_000_000 < BATCH as u64 {
            eprintln!("{i} records, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    log.close().await.expect("close the log");
    eprintln!(
        "filled {n} records over {days} days in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
