//! `Engine::decide` over the demo bureau: fail-closed paths, the per-action
//! index, `actingFor`, the cache's life, and what a verdict says.

use std::sync::Arc;

use arc_swap::ArcSwap;
use cedar_policy::{Entities, EntityUid};
use serde_json::{json, Value};

use super::fixture::{self, root};
use super::{DecisionError, Engine, Query, Verdict};
use crate::domain::{Action, EntityKind};
use crate::policy::{PolicySnapshot, Sources};

const E1: &str = "91210102MA0TAX001F";
/// 张伟, a clerk holding the "filing" role.
const CLERK: &str = "91210102MA0TAX001F/resident_id:210102199001015035";
/// 陈静, a clerk without real-name collection.
const UNVERIFIED_CLERK: &str = "91210102MA0TAX001F/resident_id:210102199505052059";
/// 孙明, an agent of the recognized agency.
const AGENT: &str = "91210100MA0AGT004B/resident_id:210105199303031080";
/// A well-formed credit code the demo does not hold.
const UNKNOWN_ENTERPRISE: &str = "91210100MA0000001U";

fn use_function(principal: EntityKind, id: &str, function: &str) -> Query {
    Query {
        principal: principal.uid(id),
        action: Action::UseFunction.uid(),
        resource: EntityKind::Function.uid(function),
        context: json!({}),
        stamped: None,
    }
}

fn decide(engine: &Engine, q: &Query) -> Verdict {
    engine.decide(q).expect("a well-formed query")
}

/// The bundled schema with `policies` in place of the bundled ones.
fn snapshot_with(policies: &str) -> PolicySnapshot {
    let sources = Sources::read(
        &root().join("policies"),
        &root().join("schemas/etax.cedarschema"),
    )
    .unwrap();
    PolicySnapshot::from_sources(
        &sources.schema_file,
        &sources.schema,
        &[("test.cedar".into(), policies.into())],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn demo_with(dir: &std::path::Path, policies: &str) -> Engine {
    let store = fixture::demo_engine(dir).store().clone();
    Engine::new(
        store,
        Arc::new(ArcSwap::from_pointee(snapshot_with(policies))),
    )
}

#[test]
fn an_allow_names_its_permits_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let v = decide(
        &engine,
        &use_function(EntityKind::Staff, CLERK, "vat_filing"),
    );
    assert!(v.allowed, "{v:?}");
    assert_eq!(v.reasons, ["function.via-permission-identity"]);
    assert!(v.errors.is_empty() && v.refusal.is_none() && v.unmatched_permits.is_empty());
    assert_eq!(v.policy_version, engine.snapshot().version());
}

#[test]
fn a_principal_or_resource_the_store_lacks_denies_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let ghost = format!("{E1}/resident_id:210102199001015051");
    let v = decide(
        &engine,
        &use_function(EntityKind::Staff, &ghost, "vat_filing"),
    );
    assert!(!v.allowed);
    assert_eq!(
        v.errors,
        [format!(
            "principal Etax::Staff::\"{ghost}\" is not in the identity store"
        )]
    );
    assert!(v.reasons.is_empty() && v.unmatched_permits.is_empty());

    let v = decide(
        &engine,
        &use_function(EntityKind::Staff, CLERK, "no_such_function"),
    );
    assert!(!v.allowed);
    assert_eq!(
        v.errors,
        ["resource Etax::Function::\"no_such_function\" is not in the identity store"]
    );
}

#[test]
fn an_acting_for_enterprise_the_store_lacks_denies_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let mut q = use_function(EntityKind::AgentStaff, AGENT, "vat_filing");
    q.context = json!({ "actingFor": { "__entity": { "type": "Etax::Enterprise", "id": E1 } } });
    assert!(
        decide(&engine, &q).allowed,
        "the recognized client is served"
    );

    q.context = json!({ "actingFor": { "__entity": { "type": "Etax::Enterprise", "id": UNKNOWN_ENTERPRISE } } });
    let v = decide(&engine, &q);
    assert!(!v.allowed && v.reasons.is_empty());
    // First the missing entity; then what Cedar made of it.
    assert_eq!(
        v.errors[0],
        format!(
            "context.actingFor Etax::Enterprise::\"{UNKNOWN_ENTERPRISE}\" is not in the identity store"
        )
    );
}

#[test]
fn acting_for_is_refused_for_anyone_but_agent_staff() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let mut q = use_function(EntityKind::Staff, CLERK, "vat_filing");
    q.context = json!({ "actingFor": { "__entity": { "type": "Etax::Enterprise", "id": E1 } } });
    match engine.decide(&q) {
        Err(DecisionError::Invalid { field, message }) => {
            assert_eq!(field, "context.actingFor");
            assert!(message.contains("Etax::Staff"), "{message}");
        }
        other => panic!("expected a request error, got {other:?}"),
    }
}

/// Contexts built without Cedar's JSON reader (empty, booleans, extension
/// values) are still checked against the schema: an undeclared attribute
/// or a value of the wrong type is refused, naming the context.
#[test]
fn directly_built_contexts_are_still_checked_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let mut q = use_function(EntityKind::Staff, CLERK, "vat_filing");
    q.context = json!({ "workday": true });
    assert!(decide(&engine, &q).allowed);
    for bad in [
        json!({ "bogus": true }),
        json!({ "workday": { "__extn": { "fn": "duration", "arg": "1ms" } } }),
        json!({ "localTime": true }),
        json!({ "workday": true, "bogus": 1 }),
        json!({ "now": { "__extn": { "fn": "datetime", "arg": "2026-10-01T09:30:00.000+0800" } },
                "bogus": true }),
    ] {
        q.context = bad.clone();
        match engine.decide(&q) {
            Err(DecisionError::Invalid { field, .. }) => assert_eq!(field, "context", "{bad}"),
            other => panic!("{bad}: expected a context error, got {other:?}"),
        }
    }
}

/// An agent's client, built without Cedar's reader beside the clock's
/// values, is still checked against the schema: naming an entity of
/// another kind is refused however often the right kind was accepted, an
/// attribute the schema does not declare is refused by name, and the
/// decision is the one Cedar's reader would have led to.
#[test]
fn an_acting_for_of_the_wrong_kind_is_refused_after_the_right_kind_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let context = |ty: &str, id: &str| {
        json!({
            "now": { "__extn": { "fn": "datetime", "arg": "2026-10-01T09:30:00.000+0800" } },
            "localTime": { "__extn": { "fn": "duration", "arg": "34200000ms" } },
            "workday": true,
            "actingFor": { "__entity": { "type": ty, "id": id } },
        })
    };
    let mut q = use_function(EntityKind::AgentStaff, AGENT, "vat_filing");
    q.context = context("Etax::Enterprise", E1);
    for _ in 0..2 {
        assert!(
            decide(&engine, &q).allowed,
            "the recognized client is served"
        );
    }
    let agency = AGENT.split('/').next().unwrap();
    for (ty, id) in [
        ("Etax::Agency", agency),
        ("Etax::Staff", CLERK),
        ("Etax::PayerCategory", "ordinary"),
    ] {
        q.context = context(ty, id);
        for _ in 0..2 {
            match engine.decide(&q) {
                Err(DecisionError::Invalid { field, .. }) => assert_eq!(field, "context", "{ty}"),
                other => panic!("{ty}: expected a refusal, got {other:?}"),
            }
        }
    }
    // An attribute the schema does not declare is named, as Cedar's reader
    // names it, and the refusal does not repeat the caller's context.
    q.context = context("Etax::Enterprise", E1);
    q.context["client"] =
        json!({ "__entity": { "type": "Etax::Enterprise", "id": "Secret@2026" } });
    match engine.decide(&q) {
        Err(DecisionError::Invalid { field, message }) => {
            assert_eq!(field, "context");
            assert!(message.contains("`client`"), "{message}");
            assert!(!message.contains("Secret@2026"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    q.context = context("Etax::Enterprise", UNKNOWN_ENTERPRISE);
    let v = decide(&engine, &q);
    assert!(!v.allowed, "an unknown client is denied");
    assert!(
        v.errors[0].starts_with("context.actingFor "),
        "{:?}",
        v.errors
    );
}

/// A question of a shape the schema accepted skips the check; a question
/// of any other shape — another principal type, another attribute, another
/// type for the same attribute, a type the JSON does not show — is checked
/// (and refused) every time, and a reload forgets what was accepted.
#[test]
fn only_shapes_the_schema_accepted_skip_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let clock = json!({
        "now": { "__extn": { "fn": "datetime", "arg": "2026-10-01T09:30:00.000+0800" } },
        "localTime": { "__extn": { "fn": "duration", "arg": "34200000ms" } },
        "workday": true,
    });
    let mut q = use_function(EntityKind::Staff, CLERK, "vat_filing");
    q.context = clock.clone();
    for _ in 0..2 {
        assert!(decide(&engine, &q).allowed);
    }
    let accepted = engine.snapshot();
    let shape = |q: &Query| {
        super::request_check::Shape::of(&q.action, &q.principal, &q.resource, &q.context, &[])
            .unwrap()
    };
    assert!(accepted.accepted_requests().contains(&shape(&q)));
    let mut refused = Vec::new();
    let mut swapped = clock.clone();
    swapped["now"] = clock["localTime"].clone();
    let mut extra = clock.clone();
    extra["bogus"] = json!(true);
    let mut numeric = clock.clone();
    numeric["workday"] = json!(1);
    for context in [swapped, extra, numeric] {
        refused.push(Query {
            context,
            ..q.clone()
        });
    }
    // A principal type useFunction does not apply to, with the same context.
    refused.push(Query {
        principal: EntityKind::Person.uid("resident_id:210102199001015035"),
        ..q.clone()
    });
    for _ in 0..2 {
        for bad in &refused {
            match engine.decide(bad) {
                Err(DecisionError::Invalid { field, .. }) => {
                    assert!(
                        field == "context" || field == "principal",
                        "{bad:?}: {field}"
                    )
                }
                other => panic!("{bad:?}: expected a refusal, got {other:?}"),
            }
        }
    }
    // Held by the snapshot: a reload starts with none.
    let reloaded = fixture::bundled_policies();
    assert!(!reloaded.accepted_requests().contains(&shape(&q)));
}

/// Cedar checks an enum entity's id against the declared values, which
/// its reader of the context does not: an enum-typed attribute's shape
/// holds the id, so a value the schema does not declare is refused after a
/// declared one was accepted (red team: a primed shape let `"bogus"` by).
#[test]
fn an_enum_value_the_schema_does_not_declare_is_refused_after_a_declared_one() {
    let dir = tempfile::tempdir().unwrap();
    let schema = std::fs::read_to_string(root().join("schemas/etax.cedarschema"))
        .unwrap()
        .replace(
            "    workday?: Bool,",
            "    workday?: Bool,\n    category?: PayerCategory,",
        );
    let snap = PolicySnapshot::from_sources(
        "etax.cedarschema",
        &schema,
        &[(
            "test.cedar".into(),
            r#"@id("use.always") permit(principal, action, resource);"#.into(),
        )],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(
        fixture::demo_engine(dir.path()).store().clone(),
        Arc::new(ArcSwap::from_pointee(snap)),
    );
    let with_category = |id: &str| Query {
        context: json!({ "category": { "__entity": { "type": "Etax::PayerCategory", "id": id } } }),
        ..use_function(EntityKind::Staff, CLERK, "vat_filing")
    };
    for _ in 0..2 {
        assert!(decide(&engine, &with_category("ordinary")).allowed);
        assert!(matches!(
            engine.decide(&with_category("bogus")),
            Err(DecisionError::Invalid { .. })
        ));
    }
}

#[test]
fn an_evaluation_error_denies_without_naming_the_permits_that_matched() {
    let dir = tempfile::tempdir().unwrap();
    // The forbid overflows (an evaluation error Cedar answers by skipping
    // it), so Cedar alone would allow by the permit.
    let engine = demo_with(
        dir.path(),
        r#"@id("use.always") permit(principal, action == Etax::Action::"useFunction", resource);
           @id("use.overflow") @code("overflow") @message("never said")
           forbid(principal, action == Etax::Action::"useFunction", resource)
           when { 9223372036854775807 + 1 > 0 };"#,
    );
    let v = decide(
        &engine,
        &use_function(EntityKind::Staff, CLERK, "vat_filing"),
    );
    assert!(!v.allowed, "{v:?}");
    assert!(v.reasons.is_empty(), "{v:?}");
    assert!(v.errors.iter().any(|e| e.contains("use.overflow")), "{v:?}");
    assert!(v.refusal.is_none() && v.unmatched_permits.is_empty());
}

#[test]
fn only_the_actions_indexed_policies_are_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let engine = demo_with(
        dir.path(),
        r#"@id("view.never") permit(principal, action == Etax::Action::"viewStaff", resource)
           when { principal.enterprise.staffSynced && !principal.enterprise.staffSynced };
           @id("maintain.never") permit(principal, action in Etax::Action::"maintainStaff", resource)
           when { principal.enterprise.staffSynced && !principal.enterprise.staffSynced };
           @id("use.always") permit(principal, action == Etax::Action::"useFunction", resource);
           @id("recognize.no") @code("no") @message("no")
           forbid(principal, action == Etax::Action::"recognizeAgency", resource);"#,
    );
    let view = Query {
        principal: EntityKind::Staff.uid(CLERK),
        action: Action::ViewStaff.uid(),
        resource: EntityKind::Enterprise.uid(E1),
        context: json!({}),
        stamped: None,
    };
    let v = decide(&engine, &view);
    // A default deny lists what the index held for the action: the action's
    // own permit and its group's, not useFunction's.
    assert!(!v.allowed && v.reasons.is_empty() && v.refusal.is_none());
    assert_eq!(v.unmatched_permits, ["maintain.never", "view.never"]);

    let v = decide(
        &engine,
        &use_function(EntityKind::Staff, CLERK, "vat_filing"),
    );
    assert_eq!(
        (v.allowed, v.reasons),
        (true, vec!["use.always".to_owned()])
    );
}

#[test]
fn a_forbid_deny_carries_its_refusal_and_a_default_deny_its_unmatched_permits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let login = Query {
        principal: EntityKind::Staff.uid(UNVERIFIED_CLERK),
        action: Action::LoginNormal.uid(),
        resource: EntityKind::Enterprise.uid(E1),
        context: json!({ "factors": ["enterprise_password", "sms_otp"] }),
        stamped: None,
    };
    let v = decide(&engine, &login);
    assert!(!v.allowed);
    assert_eq!(v.reasons, ["login.realname-required"]);
    let refusal = v.refusal.expect("a forbid decided");
    assert_eq!(
        (refusal.policy.as_str(), refusal.code.as_str()),
        ("login.realname-required", "real_name_required")
    );
    assert!(v.unmatched_permits.is_empty());

    // The clerk's role does not reach invoicing: nothing permits, nothing forbids.
    let v = decide(
        &engine,
        &use_function(EntityKind::Staff, CLERK, "invoice_issue"),
    );
    assert!(!v.allowed && v.reasons.is_empty() && v.errors.is_empty());
    assert!(v.refusal.is_none());
    let snap = engine.snapshot();
    let mut indexed: Vec<String> = snap
        .policies_for(&Action::UseFunction.uid())
        .unwrap()
        .policies()
        .filter(|p| p.effect() == cedar_policy::Effect::Permit)
        .map(|p| p.id().to_string())
        .collect();
    indexed.sort();
    assert!(!indexed.is_empty());
    assert_eq!(v.unmatched_permits, indexed);
}

/// An engine with one tier of the cache only.
type Tier = fn(Engine) -> Engine;

/// Both tiers of the cache, each alone: Cedar's entities, and the same
/// packed.
fn each_tier() -> [(&'static str, Tier); 2] {
    [
        ("cedar", |e| e.with_caches(1 << 20, 0, 0)),
        ("packed", |e| e.with_caches(0, 1 << 20, 0)),
    ]
}

/// A set Cedar's tier evicted is unpacked from the packed tier, and is
/// filed in Cedar's tier again only once in a while, not on each
/// unpacking (which evicted another, as likely to be asked, on every
/// question once the questions outnumber what Cedar's tier holds); a set
/// asked again and again does get back in.
#[test]
fn a_set_unpacked_again_and_again_gets_back_into_cedars_tier() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path()).with_caches(1 << 20, 1 << 20, 0);
    let q = use_function(EntityKind::Staff, CLERK, "vat_filing");
    assert!(decide(&engine, &q).allowed, "built, filed in both tiers");
    engine.cache.clear();
    let asks = 2 * u64::from(super::ADMIT_UNPACKED_EVERY);
    for _ in 0..asks {
        assert!(decide(&engine, &q).allowed);
    }
    let (cedar_hits, _) = engine.cache.counts();
    let (packed_hits, _) = engine.packed.counts();
    assert_eq!(cedar_hits + packed_hits, asks);
    assert!(packed_hits > 1, "not filed on its first unpacking");
    assert!(
        packed_hits <= u64::from(super::ADMIT_UNPACKED_EVERY),
        "filed after at most {} unpackings: {packed_hits}",
        super::ADMIT_UNPACKED_EVERY
    );
    assert!(cedar_hits >= u64::from(super::ADMIT_UNPACKED_EVERY));
}

#[test]
fn a_store_write_or_a_reload_empties_the_cache() {
    for (tier, with_tier) in each_tier() {
        println!("{tier}");
        a_store_write_or_a_reload_empties(with_tier);
    }
}

fn a_store_write_or_a_reload_empties(with_tier: Tier) {
    let dir = tempfile::tempdir().unwrap();
    let engine = with_tier(fixture::demo_engine(dir.path()));
    let q = use_function(EntityKind::Staff, CLERK, "vat_filing");
    assert!(decide(&engine, &q).allowed);
    assert!(decide(&engine, &q).allowed);
    assert_eq!(
        engine.cache_counts(),
        (1, 1),
        "the repeat was served cached"
    );

    // Revoking the clerk's roles: a cached slice would still allow.
    fixture::revoke_roles(&engine, CLERK);
    assert!(!decide(&engine, &q).allowed, "decided on the new roles");
    assert_eq!(engine.cache_counts(), (1, 2));
    assert!(!decide(&engine, &q).allowed);
    assert_eq!(engine.cache_counts(), (2, 2));

    // A reload to another policy version: built afresh under it.
    let reloaded = snapshot_with(
        r#"@id("use.always") permit(principal, action == Etax::Action::"useFunction", resource);"#,
    );
    let engine_policies = with_tier(Engine::new(
        engine.store().clone(),
        Arc::new(ArcSwap::from_pointee(fixture::bundled_policies())),
    ));
    assert!(!decide(&engine_policies, &q).allowed);
    engine_policies.policies.store(Arc::new(reloaded));
    let v = decide(&engine_policies, &q);
    assert_eq!(v.reasons, ["use.always"]);
    assert_eq!(engine_policies.cache_counts(), (0, 2));
}

/// A question that read the generation before a write, found part of its
/// slice in the memo and opened its snapshot after the write must not
/// combine the two: a grant from before with a membership from after can
/// allow what neither state allows. It rebuilds from one snapshot instead.
#[test]
fn a_question_racing_a_write_never_mixes_memo_entries_with_a_newer_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    // Memoizes the enterprise and the function, not CLERK.
    decide(
        &engine,
        &use_function(EntityKind::Staff, UNVERIFIED_CLERK, "vat_filing"),
    );
    let racing = engine.store().generation();
    assert!(racing.is_multiple_of(2), "no write under way");
    fixture::revoke_roles(&engine, CLERK);
    let q = use_function(EntityKind::Staff, CLERK, "vat_filing");
    let roots = [&q.principal, &q.resource];
    let mut racer = super::Memoized::new(&engine, racing);
    super::Slice::gather_with(&roots, &[], true, &mut racer).unwrap();
    assert!(
        racer.mixed(),
        "memo entries of the old state combined with a snapshot of the new"
    );
    // A question starting now uses the memo (exact snapshot) and is denied.
    let mut now = super::Memoized::new(&engine, engine.store().generation());
    super::Slice::gather_with(&roots, &[], true, &mut now).unwrap();
    assert!(!now.mixed());
    assert!(!decide(&engine, &q).allowed);
}

/// A question whose entities came from the cache at one generation looks
/// its bare resource up at that generation too: after a write it finds the
/// snapshot is of another state and is rebuilt from one snapshot.
#[test]
fn a_bare_resource_is_looked_up_in_the_state_the_cached_entities_are_of() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let racing = engine.store().generation();
    fixture::revoke_roles(&engine, CLERK);
    // As a cache hit at `racing` marks it.
    let mut source = super::Memoized::new(&engine, racing);
    source.used_memo = true;
    let found = super::slice::find(&mut source, &EntityKind::Function.uid("vat_filing")).unwrap();
    assert!(found.is_some());
    assert!(source.mixed());
    // Unraced, the same lookup is of the cached state.
    let mut source = super::Memoized::new(&engine, engine.store().generation());
    source.used_memo = true;
    super::slice::find(&mut source, &EntityKind::Function.uid("vat_filing")).unwrap();
    assert!(!source.mixed());
}

/// The context `action` takes, in the forms worth asking with: factor sets
/// for logins, both answers for a password change, no other holders for a
/// role's definition, the business context as is (and, for an agent, acting
/// for each enterprise).
fn contexts_for(action: &str, principal: &EntityUid, enterprises: &[EntityUid]) -> Vec<Value> {
    let factor_sets = [
        json!([]),
        json!(["personal_password", "captcha"]),
        json!(["personal_password", "sms_otp"]),
        json!(["enterprise_password", "sms_otp"]),
        json!(["agency_password", "agreement_password"]),
        json!(["session"]),
    ];
    match action {
        "setOwnPassword" => factor_sets
            .iter()
            .flat_map(|f| [true, false].map(|has| json!({"factors": f, "hasPassword": has})))
            .collect(),
        "definePermissionIdentity" => vec![json!({"otherHolders": []})],
        "useFunction" if EntityKind::of(principal) == Some(EntityKind::AgentStaff) => {
            std::iter::once(json!({}))
                .chain(enterprises.iter().map(|e| {
                    json!({"actingFor": {"__entity": {"type": e.type_name().to_string(), "id": e.id().unescaped()}}})
                }))
                .collect()
        }
        "useFunction" => vec![json!({})],
        _ if action.starts_with("login")
            || action.ends_with("Login")
            || ["actForClient", "recoverPassword"].contains(&action) =>
        {
            factor_sets.iter().map(|f| json!({"factors": f})).collect()
        }
        _ => vec![json!({})],
    }
}

/// A slice holds only the roots and what their attributes name, each with
/// its whole ancestry as parents ([`super::slice`]). Every question the
/// demo bureau can ask — each action of the schema with every stored
/// principal and resource it applies to — is decided by the engine over
/// its slice exactly as Cedar decides it over the whole store, every
/// identity with its direct parents and the closure Cedar's own.
#[test]
fn a_slice_decides_every_question_as_the_whole_store_does() {
    let dir = tempfile::tempdir().unwrap();
    decides_every_question_as_the_whole_store(&fixture::demo_engine(dir.path()));
}

/// The same with rules for clerks and officers that read past the roots
/// (their enterprise's and person's attributes, an agency the enterprise
/// recognizes): where the bundled ones read only the roots
/// ([`crate::policy::reads`]), these questions must get every entity the
/// validator lets a policy read, and still decide as the whole store.
#[test]
fn rules_that_read_past_the_roots_get_the_entities_they_read() {
    let dir = tempfile::tempdir().unwrap();
    let sources = crate::policy::Sources::read(
        &root().join("policies"),
        &root().join("schemas/etax.cedarschema"),
    )
    .unwrap();
    let mut policies: String = sources
        .policy_files
        .iter()
        .map(|(_, t)| t.as_str())
        .collect();
    policies.push_str(PAST_THE_ROOTS);
    let engine = demo_with(dir.path(), &policies);
    let snap = engine.snapshot();
    let staff = EntityKind::Staff.type_name();
    let only_roots = |snap: &PolicySnapshot| {
        snap.considered(&Action::UseFunction.uid(), staff)
            .unwrap()
            .only_roots
    };
    assert!(!only_roots(&snap));
    assert!(only_roots(&fixture::bundled_policies()));
    decides_every_question_as_the_whole_store(&engine);
}

/// Forbids that hold for some of the demo's clerks and not others, each
/// through an entity a clerk's attributes name.
const PAST_THE_ROOTS: &str = r#"
@id("test.unverified-person")
@code("test_unverified")
@message("test")
forbid (principal is Etax::Staff, action == Etax::Action::"useFunction", resource)
unless { principal.person.realNameVerified };

@id("test.agency-recognized")
@code("test_agency")
@message("test")
forbid (principal is Etax::Staff, action == Etax::Action::"useFunction", resource == Etax::Function::"tax_certificate")
when { principal.enterprise.recognizedAgencies.contains(Etax::Agency::"91210100MA0AGT004B") };
"#;

/// A clerk's business question, asked of rules that read only the roots,
/// is decided over the clerk and the action alone: not its enterprise,
/// person or agencies.
#[test]
fn rules_that_read_only_the_roots_get_only_the_roots() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let snap = engine.snapshot();
    // As `Engine::decide` asks.
    let entities = |q: &Query| {
        let only_roots = snap
            .considered(&q.action, q.principal.type_name())
            .unwrap()
            .only_roots;
        engine.request_and_entities(q, &snap, only_roots).unwrap()
    };
    let q = use_function(EntityKind::Staff, CLERK, "vat_filing");
    let (_, built, missing) = entities(&q);
    assert!(missing.is_empty());
    let mut kinds: Vec<_> = built
        .entities
        .iter()
        .map(|e| EntityKind::of(&e.uid()).unwrap())
        .collect();
    kinds.sort_by_key(|k| k.as_str());
    assert_eq!(kinds, [EntityKind::Action, EntityKind::Staff]);
    // An agent's rules read its person and the client's agencies.
    let mut agent = use_function(EntityKind::AgentStaff, AGENT, "vat_filing");
    agent.context = json!({"actingFor": {"__entity": {"type": "Etax::Enterprise", "id": E1}}});
    let (_, built, _) = entities(&agent);
    assert!(built
        .entities
        .iter()
        .any(|e| EntityKind::of(&e.uid()) == Some(EntityKind::Person)));
}

/// Every question the demo bureau can ask of `engine`'s policies, decided
/// by the engine and by Cedar over the whole store.
fn decides_every_question_as_the_whole_store(engine: &Engine) {
    let snap = engine.snapshot();
    let reader = engine.store().read().unwrap();
    let stored = crate::authoring::fixture::stored_uids(&reader).unwrap();
    let schema = snap.schema();
    let actions: Vec<EntityUid> = schema.actions().cloned().collect();
    let whole = Entities::from_entities(
        stored
            .iter()
            .map(|uid| super::slice::stored_entity(&reader, uid).unwrap().unwrap())
            .chain(
                actions
                    .iter()
                    .filter_map(|a| snap.action_entity(a))
                    .map(|e| cedar_policy::Entity::from((**e).clone())),
            ),
        None,
    )
    .unwrap();
    let of_types = |types: Vec<&cedar_policy::EntityTypeName>| -> Vec<EntityUid> {
        stored
            .iter()
            .filter(|u| types.contains(&u.type_name()))
            .cloned()
            .collect()
    };
    let enterprises = of_types(vec![EntityKind::Enterprise.type_name()]);
    let authorizer = cedar_policy::Authorizer::new();
    let (mut asked, mut allowed) = (0, 0);
    for action in &actions {
        let Some(principals) = schema.principals_for_action(action) else {
            continue;
        };
        let principals = of_types(principals.collect());
        let resources = of_types(schema.resources_for_action(action).unwrap().collect());
        let policies = snap.policies_for(action).unwrap();
        for principal in &principals {
            let name = action.id().unescaped();
            for context in contexts_for(name, principal, &enterprises) {
                for resource in &resources {
                    let q = Query {
                        principal: principal.clone(),
                        action: action.clone(),
                        resource: resource.clone(),
                        context: context.clone(),
                        stamped: None,
                    };
                    let (request, _) = match super::checked_request(&q, &snap) {
                        Ok(r) => r,
                        Err(e) => {
                            assert!(engine.decide(&q).is_err(), "{q:?}: {e}");
                            continue;
                        }
                    };
                    let response = authorizer.is_authorized(&request, policies, &whole);
                    let want = super::verdict_of_response(&snap, policies, &response);
                    // Twice: built, then from the caches.
                    for _ in 0..2 {
                        assert_eq!(decide(engine, &q), want, "{q:?}");
                    }
                    asked += 1;
                    allowed += usize::from(want.allowed);
                }
            }
        }
    }
    // Enough of both answers that a slice lacking an ancestor would show.
    assert!(
        asked > 1000 && allowed > 100,
        "{asked} asked, {allowed} allowed"
    );
}

/// A message past the bound keeps its first 300 bytes, cut on a character
/// boundary, and says how much was left out.
#[test]
fn bounded_messages_are_cut_on_a_character() {
    assert_eq!(super::bounded("short"), "short");
    let long = format!("a{}", "税".repeat(200));
    let cut = super::bounded(&long);
    assert!(cut.len() < 320, "{}", cut.len());
    assert!(cut.starts_with("a税税"));
    assert!(
        cut.ends_with(&format!("({} bytes more)", long.len() - 298)),
        "{cut}"
    );
}

/// Records name a policy by its `Display`; the copy taken for plain ids
/// is that text, and any other id still goes through the formatter.
#[test]
fn policy_ids_are_named_as_cedar_displays_them() {
    for id in [
        "staff.use_function",
        "a b-c_d.e:1",
        "quote\"d",
        "it's",
        "back\\slash",
        "new\nline",
        "增值税",
        "tab\t",
        "",
    ] {
        let id = cedar_policy::PolicyId::new(id);
        assert_eq!(super::policy_id_text(&id), id.to_string(), "{id:?}");
    }
}

/// Cedar is told a slice's entities are closed already
/// (`super::cedar_entities`), and only debug builds have it check that
/// for ancestors inside the set. So every stored identity's entity, as a
/// slice builds it, must have as parents exactly the ancestors Cedar's own
/// closure gives it over the whole store: an entity built with its direct
/// parents only would make `principal in …` false in release builds, and
/// a `forbid` written with `in` would be skipped.
#[test]
fn every_stored_entity_carries_the_ancestry_cedar_would_compute() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture::demo_engine(dir.path());
    let reader = engine.store().read().unwrap();
    let stored = crate::authoring::fixture::stored_uids(&reader).unwrap();
    let whole = Entities::from_entities(
        stored
            .iter()
            .map(|uid| super::slice::stored_entity(&reader, uid).unwrap().unwrap()),
        None,
    )
    .unwrap();
    let mut with_ancestors = 0;
    for uid in &stored {
        let slice = super::Slice::gather(&reader, &[uid], &[], true).unwrap();
        let built = cedar_policy::Entity::from(slice.entities[uid].clone());
        let (_, _, parents) = built.into_inner();
        let closed: std::collections::HashSet<EntityUid> =
            whole.ancestors(uid).unwrap().cloned().collect();
        assert_eq!(parents, closed, "{uid}");
        with_ancestors += usize::from(closed.len() > 1);
    }
    assert!(
        with_ancestors > 0,
        "the demo bureau has a hierarchy to close"
    );
}
