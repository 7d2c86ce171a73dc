//! Cost of one decision (`Engine::decide`: entity slice from redb + Cedar)
//! as the store grows: it must stay flat, because a decision reads only its
//! own slice. Measured with the request entities built from the store and
//! reused from the cache (a repeated question, store unchanged), beside
//! raw Cedar in the same run: the same question evaluated over entities
//! already built (`raw_cedar/evaluate`), and with Cedar building the
//! request's entities from decoded `Entity` values first
//! (`raw_cedar/entities_and_evaluate`: the clerk, their person, enterprise,
//! permission identity and its functions, with direct parents, as a slice
//! held them before each entity carried its whole ancestry).
//! Run: `cargo bench --bench decision`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use etax_authz::authn::PasswordPolicy;
use etax_authz::decision::{fixture, Engine, Query};
use etax_authz::domain::{Action, EntityKind};
use etax_authz::flows::clock;
use etax_authz::import;
use serde_json::json;

// The allocator the service's binary runs with (`src/main.rs`): a decision
// allocates and frees many small objects, so under glibc's malloc this
// bench would time an allocator no user runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [usize; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// A valid credit code for enterprise number `n`.
fn credit_code(n: usize) -> String {
    let body = format!("91210100MA{:07}", n);
    let sum: usize = body
        .bytes()
        .enumerate()
        .map(|(i, b)| WEIGHTS[i] * CHARS.iter().position(|&c| c == b).unwrap())
        .sum();
    format!("{body}{}", CHARS[(31 - sum % 31) % 31] as char)
}

/// A valid resident ID number for person number `n`.
fn id_number(n: usize) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let body = format!("21010219800101{:03}", n % 1000);
    let body = format!("{}{:05}{}", &body[..6], n / 1000, &body[11..]);
    let body = &body[..17];
    let sum: u32 = body
        .chars()
        .enumerate()
        .map(|(i, c)| W[i] * c.to_digit(10).unwrap())
        .sum();
    format!(
        "{body}{}",
        "10X98765432".as_bytes()[(sum % 11) as usize] as char
    )
}

/// The demo bureau plus `n` generated enterprises, each with a clerk
/// holding a filing role.
fn store_with(n: usize, dir: &Path) -> Engine {
    let hasher = fixture::light_hasher();
    let store = fixture::demo_store(dir, &hasher, &PasswordPolicy::default());
    let phc = hasher.hash("Bench@2026x");
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let mut doc =
            json!({ "persons": [], "enterprises": [], "permission_identities": [], "staff": [] });
        for &i in chunk {
            let code = credit_code(i);
            let person = id_number(i);
            doc["persons"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "id_type": "resident_id", "id_number": person,
                "name": "测试", "real_name_verified": true, "phone": "13800000000" }));
            doc["enterprises"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "credit_code": code, "name": "企业",
                "category": "ordinary", "password_hash": phc }));
            doc["permission_identities"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "enterprise": code, "id": "filing",
                "name": "申报", "functions": ["vat_filing", "cit_filing"] }));
            doc["staff"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "enterprise": code,
                "person": { "id_type": "resident_id", "id_number": person },
                "identity_type": "tax_clerk", "permission_identities": ["filing"] }));
        }
        let doc = serde_json::to_vec(&doc).unwrap();
        import::import_json(&store, &doc, &hasher, &PasswordPolicy::default()).unwrap();
    }
    fixture::engine_over(store)
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide/useFunction");
    group
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(3));
    for n in [0usize, 10_000] {
        let dir = tempfile::tempdir().unwrap();
        let engine = store_with(n, dir.path());
        let query = Query {
            principal: EntityKind::Staff.uid("91210102MA0TAX001F/resident_id:210102199001015035"),
            action: Action::UseFunction.uid(),
            resource: EntityKind::Function.uid("vat_filing"),
            context: json!({}),
            stamped: None,
        };
        assert!(engine.decide(&query).unwrap().allowed);
        // A question asked again while the store is unchanged reuses the
        // built request entities; the first one builds them from the store.
        let fresh = engine.clone().with_cache_bytes(0);
        group.bench_with_input(
            BenchmarkId::new("built/stored_enterprises", n),
            &query,
            |b, q| b.iter(|| fresh.decide(q).unwrap()),
        );
        group.bench_with_input(
            BenchmarkId::new("cached/stored_enterprises", n),
            &query,
            |b, q| b.iter(|| engine.decide(q).unwrap()),
        );
        if n == 0 {
            // A million staff's steady state: more principals asked than
            // Cedar's tier holds, so their entities come from the packed
            // tier and are unpacked for every question.
            let unpacking = engine.clone().with_caches(0, 1 << 20, 1 << 20);
            group.bench_with_input(
                BenchmarkId::new("unpacked/stored_enterprises", n),
                &query,
                |b, q| b.iter(|| unpacking.decide(q).unwrap()),
            );
            raw_cedar(&mut group, &engine, &query);
        }
    }
    group.finish();
}

/// The baseline: Cedar alone on the question `q` asks, over the entities a
/// slice held with direct parents (read once, outside the measurement).
fn raw_cedar(
    group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    engine: &Engine,
    q: &Query,
) {
    use cedar_policy::{Authorizer, Context, Entities, Request};
    use etax_authz::decision::slice::stored_entity;
    let snap = engine.snapshot();
    let reader = engine.store().read().unwrap();
    let e1 = "91210102MA0TAX001F";
    let mut uids = vec![
        q.principal.clone(),
        EntityKind::Person.uid("resident_id:210102199001015035"),
        EntityKind::Enterprise.uid(e1),
        EntityKind::PermissionIdentity.uid(&format!("{e1}/filing")),
    ];
    uids.extend(
        [
            "vat_filing",
            "cit_filing",
            "iit_withholding",
            "tax_payment",
            "taxpayer_info",
        ]
        .map(|f| EntityKind::Function.uid(f)),
    );
    let mut decoded: Vec<cedar_policy::Entity> = uids
        .iter()
        .map(|u| stored_entity(&reader, u).unwrap().expect("stored"))
        .collect();
    decoded.push(cedar_policy::Entity::from(
        (**snap.action_entity(&q.action).unwrap()).clone(),
    ));
    let policies = snap.policies_for(&q.action).unwrap();
    let request = || {
        Request::new(
            q.principal.clone(),
            q.action.clone(),
            q.resource.clone(),
            Context::empty(),
            Some(snap.schema()),
        )
        .unwrap()
    };
    let authorizer = Authorizer::new();
    let built = Entities::from_entities(decoded.clone(), None).unwrap();
    assert_eq!(
        authorizer
            .is_authorized(&request(), policies, &built)
            .decision(),
        cedar_policy::Decision::Allow
    );
    group.bench_function("raw_cedar/evaluate", |b| {
        b.iter(|| authorizer.is_authorized(&request(), policies, &built))
    });
    group.bench_function("raw_cedar/entities_and_evaluate", |b| {
        b.iter(|| {
            let entities = Entities::from_entities(decoded.clone(), None).unwrap();
            authorizer.is_authorized(&request(), policies, &entities)
        })
    });
}

/// Resident memory of the built-entities cache against its estimate
/// (`cache::estimate_bytes`): asks 10,000 distinct clerks' questions with
/// the cache off (so redb's pages are read in), then again with it on;
/// the growth of VmRSS between is the cache's. Runs only when named:
/// `cargo bench --bench decision -- cache_bytes`. Prints, measures nothing.
fn cache_bytes(_: &mut Criterion) {
    if !std::env::args().any(|a| a == "cache_bytes") {
        return;
    }
    let n = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let engine = store_with(n, dir.path());
    let questions: Vec<Query> = (0..n)
        .map(|i| Query {
            principal: EntityKind::Staff.uid(&format!(
                "{}/resident_id:{}",
                credit_code(i),
                id_number(i)
            )),
            action: Action::UseFunction.uid(),
            resource: EntityKind::Function.uid("vat_filing"),
            context: json!({}),
            stamped: None,
        })
        .collect();
    let off = engine.clone().with_cache_bytes(0);
    for q in &questions {
        assert!(off.decide(q).unwrap().allowed);
    }
    let cached = engine.with_cache_bytes(1 << 40);
    let before = rss_bytes();
    for q in &questions {
        cached.decide(q).unwrap();
    }
    let grown = rss_bytes() - before;
    let (entries, estimate) = cached.cache_usage();
    println!(
        "cache_bytes: {entries} entries; resident growth {} B/entry, estimate {} B/entry (ratio {:.2})",
        grown / entries as u64,
        estimate / entries as u64,
        estimate as f64 / grown as f64
    );
}

/// The sidecar's clock on a business question at an instant no question
/// was asked at before (`now`, `localTime`, `workday` worked out and made
/// Cedar values): paid once a millisecond under load, by every thread.
fn clock_stamp(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock");
    group
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let engine = store_with(0, dir.path());
    let snap = engine.snapshot();
    let mut now_ms: u64 = 1_795_000_000_000;
    group.bench_function("stamp/new_instant", |b| {
        b.iter(|| {
            now_ms += 1;
            let mut query = Query {
                principal: EntityKind::Staff
                    .uid("91210102MA0TAX001F/resident_id:210102199001015035"),
                action: Action::UseFunction.uid(),
                resource: EntityKind::Function.uid("vat_filing"),
                context: json!({}),
                stamped: None,
            };
            clock::stamp(&engine, &snap, &mut query, &clock::Clock::at(now_ms)).unwrap();
            query
        })
    });
    group.finish();
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

criterion_group!(benches, decide, clock_stamp, cache_bytes);
criterion_main!(benches);
