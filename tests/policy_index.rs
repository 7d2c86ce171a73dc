//! The per-action index changes nothing but speed: for random policy sets
//! over a schema with nested action groups and two principal types, and
//! random requests, evaluating only `policies_for(action)`, or only
//! `policies_for_principal(action, principal type)`, gives the same
//! decision, the same determining policies and the same evaluation errors
//! as evaluating every policy; and the engine's own loop over an entry's
//! prepared conditions (`policy::evaluate`) answers as Cedar's authorizer
//! does over the entry's set.

use std::collections::BTreeSet;
use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, Request, Response};
use etax_authz::policy::evaluate::evaluate;
use etax_authz::policy::PolicySnapshot;
use proptest::prelude::*;

const SCHEMA: &str = r#"
entity Group;
entity User in [Group] { level: Long };
entity Bot in [Group] { level: Long };
entity Folder;
entity Doc in [Folder] { owner: User, secret: Bool };
type Ctx = { flag: Bool, n: Long };
action all;
action readOnly in [all];
action mutate in [all];
action read, list in [readOnly] appliesTo { principal: [User, Bot], resource: Doc, context: Ctx };
action write, delete in [mutate] appliesTo { principal: [User, Bot], resource: Doc, context: Ctx };
action share in [readOnly, mutate] appliesTo { principal: [User, Bot], resource: Doc, context: Ctx };
action audit appliesTo { principal: [User, Bot], resource: Doc, context: Ctx };
"#;

static LEAVES: [&str; 6] = ["read", "list", "write", "delete", "share", "audit"];
static ALL: [&str; 9] = [
    "read", "list", "write", "delete", "share", "audit", "all", "readOnly", "mutate",
];
static GROUPS: [&str; 3] = ["all", "readOnly", "mutate"];

fn principal_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("principal".to_owned()),
        (0..4u8).prop_map(|k| format!("principal == User::\"u{k}\"")),
        (0..3u8).prop_map(|k| format!("principal in Group::\"g{k}\"")),
        Just("principal is User".to_owned()),
        (0..3u8).prop_map(|k| format!("principal is User in Group::\"g{k}\"")),
        (0..4u8).prop_map(|k| format!("principal == Bot::\"b{k}\"")),
        Just("principal is Bot".to_owned()),
        (0..3u8).prop_map(|k| format!("principal is Bot in Group::\"g{k}\"")),
    ]
}

fn action_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("action".to_owned()),
        prop::sample::select(&LEAVES[..]).prop_map(|a| format!("action == Action::\"{a}\"")),
        prop::sample::select(&GROUPS[..]).prop_map(|a| format!("action in Action::\"{a}\"")),
        prop::collection::btree_set(prop::sample::select(&ALL[..]), 1..4).prop_map(|set| {
            let list: Vec<String> = set.iter().map(|a| format!("Action::\"{a}\"")).collect();
            format!("action in [{}]", list.join(", "))
        }),
    ]
}

fn resource_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("resource".to_owned()),
        (0..4u8).prop_map(|k| format!("resource == Doc::\"d{k}\"")),
        (0..2u8).prop_map(|k| format!("resource in Folder::\"f{k}\"")),
        Just("resource is Doc".to_owned()),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (0..6i64).prop_map(|n| format!("when {{ principal.level > {n} }}")),
        Just("when { context.flag }".to_owned()),
        Just("unless { resource.secret }".to_owned()),
        Just("when { resource.owner == principal }".to_owned()),
        // Overflows for |n| >= 2: an evaluation error, which both paths
        // must report for the same policy.
        Just("when { context.n * 4611686018427387904 > 0 }".to_owned()),
    ]
}

fn policy() -> impl Strategy<Value = (bool, String, String, String, String)> {
    (
        any::<bool>(),
        principal_scope(),
        action_scope(),
        resource_scope(),
        condition(),
    )
}

#[derive(Debug, Clone)]
struct World {
    user_levels: Vec<i64>,
    user_groups: Vec<Vec<u8>>,
    doc_owner: Vec<u8>,
    doc_secret: Vec<bool>,
    doc_folder: Vec<u8>,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(0..6i64, 4),
        prop::collection::vec(prop::collection::vec(0..3u8, 0..3), 4),
        prop::collection::vec(0..4u8, 4),
        prop::collection::vec(any::<bool>(), 4),
        prop::collection::vec(0..2u8, 4),
    )
        .prop_map(
            |(user_levels, user_groups, doc_owner, doc_secret, doc_folder)| World {
                user_levels,
                user_groups,
                doc_owner,
                doc_secret,
                doc_folder,
            },
        )
}

fn entities(w: &World, snap: &PolicySnapshot) -> Entities {
    let mut list = Vec::new();
    for g in 0..3 {
        list.push(serde_json::json!({ "uid": { "type": "Group", "id": format!("g{g}") }, "attrs": {}, "parents": [] }));
    }
    for f in 0..2 {
        list.push(serde_json::json!({ "uid": { "type": "Folder", "id": format!("f{f}") }, "attrs": {}, "parents": [] }));
    }
    for u in 0..4 {
        let parents: BTreeSet<u8> = w.user_groups[u].iter().copied().collect();
        // A bot of each user's level and groups, under another type.
        for (kind, prefix) in [("User", "u"), ("Bot", "b")] {
            list.push(serde_json::json!({
                "uid": { "type": kind, "id": format!("{prefix}{u}") },
                "attrs": { "level": w.user_levels[u] },
                "parents": parents.iter().map(|g| serde_json::json!({ "type": "Group", "id": format!("g{g}") })).collect::<Vec<_>>(),
            }));
        }
    }
    for d in 0..4 {
        list.push(serde_json::json!({
            "uid": { "type": "Doc", "id": format!("d{d}") },
            "attrs": {
                "owner": { "__entity": { "type": "User", "id": format!("u{}", w.doc_owner[d]) } },
                "secret": w.doc_secret[d],
            },
            "parents": [{ "type": "Folder", "id": format!("f{}", w.doc_folder[d]) }],
        }));
    }
    Entities::from_json_value(serde_json::Value::Array(list), Some(snap.schema())).unwrap()
}

fn request() -> impl Strategy<Value = (&'static str, u8, &'static str, u8, bool, i64)> {
    (
        prop::sample::select(&["User", "Bot"][..]),
        0..4u8,
        prop::sample::select(&LEAVES[..]),
        0..4u8,
        any::<bool>(),
        -3..4i64,
    )
}

/// Decision, determining policies, erroring policies.
fn summary(r: &Response) -> (bool, BTreeSet<String>, BTreeSet<String>) {
    (
        r.decision() == cedar_policy::Decision::Allow,
        r.diagnostics().reason().map(|p| p.to_string()).collect(),
        r.diagnostics().errors().map(|e| e.to_string()).collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn index_and_full_set_agree(
        policies in prop::collection::vec(policy(), 0..40),
        world in world(),
        requests in prop::collection::vec(request(), 1..25),
    ) {
        let text: String = policies
            .iter()
            .enumerate()
            .map(|(i, (permit, p, a, r, c))| {
                let effect = if *permit { "permit" } else { "forbid" };
                // Every forbid says why it refuses, or the set does not load.
                format!("@id(\"p{i}\") @code(\"p{i}\") @message(\"p{i}\")\n{effect} ({p}, {a}, {r}) {c};\n")
            })
            .collect();
        let snap = PolicySnapshot::from_sources("s.cedarschema", SCHEMA, &[("p.cedar".into(), text.clone())])
            .unwrap_or_else(|e| panic!("generated policies must validate: {e:?}\n{text}"));
        let entities = entities(&world, &snap);
        let authorizer = Authorizer::new();
        for (kind, u, a, d, flag, n) in requests {
            let action = EntityUid::from_str(&format!("Action::\"{a}\"")).unwrap();
            let context = Context::from_json_value(
                serde_json::json!({ "flag": flag, "n": n }),
                Some((snap.schema(), &action)),
            )
            .unwrap();
            let req = Request::new(
                EntityUid::from_str(&format!("{kind}::\"{}{u}\"", &kind[..1].to_lowercase())).unwrap(),
                action.clone(),
                EntityUid::from_str(&format!("Doc::\"d{d}\"")).unwrap(),
                context,
                Some(snap.schema()),
            )
            .unwrap();
            let full = authorizer.is_authorized(&req, snap.policies(), &entities);
            let indexed = authorizer.is_authorized(&req, snap.policies_for(&action).unwrap(), &entities);
            prop_assert_eq!(summary(&full), summary(&indexed), "request {}{} {} d{}\n{}", kind, u, a, d, text);
            let of_type = snap
                .policies_for_principal(&action, req.principal().unwrap().type_name())
                .unwrap();
            let narrowed = authorizer.is_authorized(&req, of_type, &entities);
            prop_assert_eq!(summary(&full), summary(&narrowed), "request {}{} {} d{}\n{}", kind, u, a, d, text);
            // What the engine decides with: Cedar's evaluator over the
            // entry's prepared conditions, not its authorizer.
            let considered = snap
                .considered(&action, req.principal().unwrap().type_name())
                .unwrap();
            let evaluated = evaluate(&req, considered.prepared, &entities);
            let ours = (
                evaluated.allowed,
                evaluated.reasons.iter().map(|p| p.to_string()).collect(),
                evaluated.errors.iter().cloned().collect(),
            );
            prop_assert_eq!(summary(&narrowed), ours, "request {}{} {} d{}\n{}", kind, u, a, d, text);
            let cedar_errors: Vec<String> = narrowed.diagnostics().errors().map(|e| e.to_string()).collect();
            prop_assert_eq!(cedar_errors, evaluated.errors, "errors in the set's order");
        }
    }
}
