//! The entity slices a decision builds conform to the schema. Decisions
//! build `Entities` without the schema (conformance checking was a third of
//! a decision's cost), so this is where conformance is held: every stored
//! identity of the demo bureau, with everything its slice pulls in, checked
//! against the schema; and every action's entity carries exactly the
//! schema's action groups.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use cedar_policy::{Entities, EntityUid};
use etax_authz::authn::password::HashCost;
use etax_authz::authn::{PasswordHasher, PasswordPolicy};
use etax_authz::decision::{uid, Engine, Slice};
use etax_authz::import;
use etax_authz::policy::PolicySnapshot;
use etax_authz::store::{
    AgencyRecord, AgentStaffRecord, EnterpriseRecord, FunctionRecord, PermissionIdentityRecord,
    PersonRecord, Record, StaffRecord, Store, StoreReader,
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn demo_engine(dir: &Path) -> Engine {
    let store = Store::open(&dir.join("identities.redb")).unwrap();
    let hasher = PasswordHasher::new(HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let demo = Path::new(ROOT).join("examples/demo.json");
    import::import_file(&store, &demo, &hasher, &PasswordPolicy::default()).unwrap();
    let snapshot = PolicySnapshot::load(
        &Path::new(ROOT).join("policies"),
        &Path::new(ROOT).join("schemas/etax.cedarschema"),
    )
    .unwrap();
    Engine::new(store, Arc::new(ArcSwap::from_pointee(snapshot)))
}

fn uids<R: Record>(reader: &StoreReader, ty: &str) -> Vec<EntityUid> {
    let all = reader.all::<R>().unwrap();
    assert!(!all.is_empty(), "the demo has some {ty}");
    all.into_iter().map(|(key, _)| uid(ty, &key)).collect()
}

#[test]
fn every_stored_identity_builds_a_slice_that_conforms_to_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let engine = demo_engine(dir.path());
    let snap = engine.snapshot();
    let reader = engine.store().read().unwrap();
    let roots: Vec<EntityUid> = [
        uids::<EnterpriseRecord>(&reader, "Enterprise"),
        uids::<PersonRecord>(&reader, "Person"),
        uids::<StaffRecord>(&reader, "Staff"),
        uids::<PermissionIdentityRecord>(&reader, "PermissionIdentity"),
        uids::<FunctionRecord>(&reader, "Function"),
        uids::<AgencyRecord>(&reader, "Agency"),
        uids::<AgentStaffRecord>(&reader, "AgentStaff"),
    ]
    .concat();
    for root in &roots {
        let slice = Slice::gather(&reader, &[root], &[]).unwrap();
        assert!(slice.entities.contains_key(root), "{root} is stored");
        assert!(slice.missing.is_empty(), "{root}: {:?}", slice.missing);
        Entities::from_entities(slice.entities.into_values(), Some(snap.schema()))
            .unwrap_or_else(|e| panic!("{root}: {e}"));
    }
}

#[test]
fn each_action_entity_carries_the_schema_action_groups() {
    let dir = tempfile::tempdir().unwrap();
    let engine = demo_engine(dir.path());
    let snap = engine.snapshot();
    let schema_actions = snap.schema().action_entities().unwrap();
    for action in snap.schema().actions() {
        let ours = snap.action_entity(action).expect("every action is indexed");
        assert_eq!(&ours.uid(), action);
        let mut want: Vec<String> = schema_actions
            .ancestors(action)
            .unwrap()
            .map(ToString::to_string)
            .collect();
        let mut got: Vec<String> = Entities::from_entities([ours.clone()], None)
            .unwrap()
            .ancestors(action)
            .unwrap()
            .map(ToString::to_string)
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{action}");
    }
    assert!(snap
        .action_entity(&uid("Action", "recognizeAgency"))
        .is_some_and(|e| e.to_string().contains("maintainStaff")));
}
