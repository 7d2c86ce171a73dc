//! The entity slices a decision builds conform to the schema. Decisions
//! build `Entities` without the schema (conformance checking was a third of
//! a decision's cost), so this is where conformance is held: every stored
//! identity of the demo bureau, with everything its slice pulls in, checked
//! against the schema; and every action's entity carries exactly the
//! schema's action groups.

use cedar_policy::{Entities, EntityUid};
use etax_authz::decision::fixture::demo_engine;
use etax_authz::decision::Slice;
use etax_authz::domain::{Action, EntityKind};
use etax_authz::store::{
    AgencyRecord, AgentStaffRecord, EnterpriseRecord, FunctionRecord, PermissionIdentityRecord,
    PersonRecord, Record, StaffRecord, StoreReader,
};

fn keys<R: Record>(reader: &StoreReader) -> Vec<String> {
    reader
        .all::<R>()
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

/// Every stored entity of `kind`; the match makes a new kind of the model
/// a compile error here until its records are checked too.
fn stored(reader: &StoreReader, kind: EntityKind) -> Vec<EntityUid> {
    let keys = match kind {
        EntityKind::Enterprise => keys::<EnterpriseRecord>(reader),
        EntityKind::Person => keys::<PersonRecord>(reader),
        EntityKind::Staff => keys::<StaffRecord>(reader),
        EntityKind::PermissionIdentity => keys::<PermissionIdentityRecord>(reader),
        EntityKind::Function => keys::<FunctionRecord>(reader),
        EntityKind::Agency => keys::<AgencyRecord>(reader),
        EntityKind::AgentStaff => keys::<AgentStaffRecord>(reader),
        EntityKind::Action | EntityKind::IdentityType | EntityKind::PayerCategory => {
            return Vec::new()
        }
    };
    assert!(!keys.is_empty(), "the demo has some {kind}");
    keys.iter().map(|key| kind.uid(key)).collect()
}

#[test]
fn every_stored_identity_builds_a_slice_that_conforms_to_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let engine = demo_engine(dir.path());
    let snap = engine.snapshot();
    let reader = engine.store().read().unwrap();
    let roots: Vec<EntityUid> = EntityKind::ALL
        .iter()
        .filter(|k| !k.is_schema_defined())
        .flat_map(|&k| stored(&reader, k))
        .collect();
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
        .action_entity(&Action::RecognizeAgency.uid())
        .is_some_and(|e| e.to_string().contains("maintainStaff")));
}
