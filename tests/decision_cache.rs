//! The built-entities cache under the conditions that break naive caches:
//! requests racing a revoke, more distinct questions than the budget holds,
//! and the byte-budget flags on the real server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use etax_authz::decision::{fixture, Engine, Query};
use etax_authz::domain::{Action, EntityKind};
use serde_json::json;

use crate::common;

/// 张伟, a demo clerk holding the "filing" role.
const CLERK: &str = "91210102MA0TAX001F/resident_id:210102199001015035";

fn use_function(function: &str) -> Query {
    Query {
        principal: EntityKind::Staff.uid(CLERK),
        action: Action::UseFunction.uid(),
        resource: EntityKind::Function.uid(function),
        context: json!({}),
        stamped: None,
    }
}

fn allowed(engine: &Engine, q: &Query) -> bool {
    engine.decide(q).expect("a well-formed query").allowed
}

/// Requests filing entities built before the revoke while it commits: no
/// decision that starts after the commit returned may allow, whichever
/// request filed its entities last.
#[test]
fn no_decision_started_after_a_revoke_allows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let q = use_function("vat_filing");
    assert!(allowed(&engine, &q));
    let revoked = Arc::new(AtomicBool::new(false));
    let askers: Vec<_> = (0..4)
        .map(|_| {
            let (engine, q, revoked) = (engine.clone(), q.clone(), revoked.clone());
            std::thread::spawn(move || {
                let mut after = 0;
                while after < 300 {
                    let started_after_revoke = revoked.load(Ordering::Acquire);
                    let allow = allowed(&engine, &q);
                    if started_after_revoke {
                        assert!(!allow, "a stale allow after the revoke");
                        after += 1;
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(50));
    fixture::revoke_roles(&engine, CLERK);
    revoked.store(true, Ordering::Release);
    for a in askers {
        a.join().expect("no stale allow");
    }
    let (hits, _) = engine.cache_counts();
    assert!(hits > 0, "the cache served the repeated question");
}

/// More distinct questions than the budget holds: the cache stays within
/// its bytes and keeps a question asked again and again, rather than
/// emptying itself when full.
#[test]
fn a_small_budget_bounds_the_cache_and_keeps_the_hot_question() {
    let dir = tempfile::tempdir().unwrap();
    // Split into shards of an equal share each: big enough for a few
    // entries per shard, small beside 2,000 distinct questions, even
    // packed.
    let budget = 256 * 1024;
    let engine = fixture::demo_engine(dir.path()).with_cache_bytes(budget);
    let hot = use_function("vat_filing");
    for round in 0..20 {
        assert!(allowed(&engine, &hot));
        for i in 0..100 {
            // Unknown staff: denied, and their entities filed all the same.
            let unknown = Query {
                principal: EntityKind::Staff.uid(&format!("91210102MA0TAX001F/s{round}_{i}")),
                ..use_function("vat_filing")
            };
            assert!(!allowed(&engine, &unknown));
        }
    }
    let (held, bytes) = engine.cache_usage();
    assert!(
        bytes <= budget,
        "{bytes} bytes held over a {budget}-byte budget"
    );
    assert!(held > 1 && held < 2000, "{held} entries held");
    let (hits, misses) = engine.cache_counts();
    assert_eq!(hits + misses, 20 * 101);
    assert!(hits >= 15, "the hot question was evicted: {hits} hits");

    let off = fixture::demo_engine(tempfile::tempdir().unwrap().path()).with_cache_bytes(0);
    assert!(allowed(&off, &hot) && allowed(&off, &hot));
    assert_eq!(off.cache_usage(), (0, 0));
}

/// The budgets are flags of `serve`; a cache off and a tiny one answer as
/// the default does.
#[test]
fn the_byte_budgets_are_serve_flags_and_do_not_change_answers() {
    let ask = |server: &common::Server, function: &str| {
        server.authorize(
            &common::staff("91210102MA0TAX001F", "resident_id:210102199001015035"),
            &common::action("useFunction"),
            &format!("Function::\"{function}\""),
            json!({}),
        )["decision"]
            .clone()
    };
    for flags in [
        &[
            "--decision-cache-bytes",
            "0",
            "--store-cache-bytes",
            "1048576",
        ][..],
        &["--decision-cache-bytes", "20000"][..],
        &[][..],
    ] {
        let server = common::Server::start_with(flags);
        for _ in 0..3 {
            assert_eq!(ask(&server, "vat_filing"), "allow", "{flags:?}");
            assert_eq!(ask(&server, "no_such_function"), "deny", "{flags:?}");
        }
        server.stop();
    }
    let (code, _, err) = common::cli(&["serve", "--decision-cache-bytes", "lots"]);
    assert_eq!(code, 2, "a budget that is not a number is refused: {err}");
    assert!(err.contains("--decision-cache-bytes"), "{err}");
}

/// Ids a caller names are weighed with their bytes: questions naming
/// identities the store lacks, each with an id of 20 kB, cannot make the
/// cache hold more than its budget (each entry held the id at least once
/// while weighing as a short one).
#[test]
fn long_ids_count_against_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 1 << 20;
    let engine = fixture::demo_engine(dir.path()).with_cache_bytes(budget);
    let id_bytes = 20_000;
    for i in 0..300 {
        let ghost = Query {
            principal: EntityKind::Enterprise.uid(&format!("{i:04}{}", "9".repeat(id_bytes))),
            ..use_function("vat_filing")
        };
        assert!(!allowed(&engine, &ghost));
    }
    let (held, bytes) = engine.cache_usage();
    assert!(
        bytes <= budget,
        "{bytes} bytes held over a {budget}-byte budget"
    );
    assert!(
        held as u64 * id_bytes as u64 <= budget,
        "{held} entries of a {id_bytes}-byte id each held in a {budget}-byte budget"
    );
}
