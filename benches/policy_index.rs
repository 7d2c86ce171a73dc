//! What the per-action index buys: one decision with 20 policies, and with
//! 2,000 policies over 100 actions evaluated in full or through
//! `PolicySnapshot::policies_for`. Target: indexed 2,000 ≤ 2× full 20.
//!
//! Run: `cargo bench --bench policy_index`

use std::str::FromStr;
use std::time::Duration;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, Request};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use etax_authz::policy::PolicySnapshot;

const ACTIONS: usize = 100;

fn schema() -> String {
    let mut s = String::from(
        "entity Group;\nentity User in [Group] { level: Long, dept: String };\n\
         entity Doc { owner: User, secret: Bool };\n",
    );
    for a in 0..ACTIONS {
        s.push_str(&format!(
            "action a{a} appliesTo {{ principal: User, resource: Doc, context: {{ mfa: Bool }} }};\n"
        ));
    }
    s
}

/// `n` policies, 20 per action, over `n / 20` actions starting at the
/// request's action `a42`: 20 policies all apply to the request (the
/// baseline: what a small deployment evaluates), 2,000 spread over all 100
/// actions. The same mix of permits and forbids, with conditions that read
/// attributes, in both.
fn policies(n: usize) -> String {
    let spread = (n / 20).max(1);
    (0..n)
        .map(|i| {
            let a = (i % spread + 42) % ACTIONS;
            let k = i / spread;
            match k % 4 {
                0 => format!(
                    "@id(\"p{i}\") permit (principal in Group::\"g{}\", action == Action::\"a{a}\", resource) when {{ principal.level >= {} && context.mfa }};\n",
                    k % 5,
                    k % 3
                ),
                1 => format!(
                    "@id(\"p{i}\") permit (principal, action == Action::\"a{a}\", resource) when {{ resource.owner == principal && principal.dept == \"d{k}\" }};\n"
                ),
                2 => format!(
                    "@id(\"p{i}\") @code(\"p{i}\") @message(\"p{i}\") forbid (principal, action == Action::\"a{a}\", resource) when {{ resource.secret && principal.level < {k} }};\n"
                ),
                _ => format!(
                    "@id(\"p{i}\") permit (principal is User, action in [Action::\"a{a}\", Action::\"a{}\"], resource) unless {{ resource.secret }};\n",
                    (a + 1) % ACTIONS
                ),
            }
        })
        .collect()
}

fn setup(n: usize) -> (PolicySnapshot, Entities, Request) {
    let snap = PolicySnapshot::from_sources(
        "bench.cedarschema",
        &schema(),
        &[("bench.cedar".into(), policies(n))],
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let entities = Entities::from_json_value(
        serde_json::json!([
            { "uid": { "type": "Group", "id": "g1" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "User", "id": "alice" }, "attrs": { "level": 2, "dept": "d3" },
              "parents": [{ "type": "Group", "id": "g1" }] },
            { "uid": { "type": "Doc", "id": "doc" },
              "attrs": { "owner": { "__entity": { "type": "User", "id": "alice" } }, "secret": false },
              "parents": [] }
        ]),
        Some(snap.schema()),
    )
    .unwrap();
    let action = EntityUid::from_str("Action::\"a42\"").unwrap();
    let context = Context::from_json_value(
        serde_json::json!({ "mfa": true }),
        Some((snap.schema(), &action)),
    )
    .unwrap();
    let request = Request::new(
        EntityUid::from_str("User::\"alice\"").unwrap(),
        action,
        EntityUid::from_str("Doc::\"doc\"").unwrap(),
        context,
        Some(snap.schema()),
    )
    .unwrap();
    (snap, entities, request)
}

fn bench(c: &mut Criterion) {
    let authorizer = Authorizer::new();
    let mut group = c.benchmark_group("policy_index");
    for n in [20, 2_000] {
        let (snap, entities, request) = setup(n);
        let action = request.action().unwrap().clone();
        let indexed = snap.policies_for(&action).unwrap();
        // Same answer both ways.
        let full = authorizer.is_authorized(&request, snap.policies(), &entities);
        let idx = authorizer.is_authorized(&request, indexed, &entities);
        assert_eq!(full.decision(), idx.decision());
        println!(
            "{n} policies: {} evaluated for {action} through the index",
            indexed.policies().count()
        );
        group.bench_function(format!("full/{n}"), |b| {
            b.iter(|| authorizer.is_authorized(black_box(&request), snap.policies(), &entities))
        });
        group.bench_function(format!("indexed/{n}"), |b| {
            b.iter(|| authorizer.is_authorized(black_box(&request), indexed, &entities))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
