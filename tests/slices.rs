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
        let slice = Slice::gather(&reader, &[root], &[], true).unwrap();
        assert!(slice.entities.contains_key(root), "{root} is stored");
        assert!(slice.missing.is_empty(), "{root}: {:?}", slice.missing);
        let entities = slice.entities.into_values().map(cedar_policy::Entity::from);
        Entities::from_entities(entities, Some(snap.schema()))
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
        let ours = cedar_policy::Entity::from(
            (**snap.action_entity(action).expect("every action is indexed")).clone(),
        );
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
        .is_some_and(|e| cedar_policy::Entity::from((**e).clone())
            .to_string()
            .contains("maintainStaff")));
}

/// A bare kind's entities are left out of a request's entities: that is
/// sound only while the schema gives the kind no attributes and no parents.
/// An entity of it with either is refused by the schema.
#[test]
fn bare_kinds_have_no_attributes_and_no_parents_in_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let engine = demo_engine(dir.path());
    let snap = engine.snapshot();
    let schema = snap.schema();
    let bare: Vec<EntityKind> = EntityKind::ALL
        .iter()
        .copied()
        .filter(|k| k.is_bare())
        .collect();
    assert!(!bare.is_empty());
    for kind in bare {
        let uid = kind.uid("x");
        let plain = cedar_policy::Entity::new_no_attrs(uid.clone(), Default::default());
        Entities::from_entities([plain], Some(schema)).unwrap_or_else(|e| panic!("{kind}: {e}"));
        for kind_of_parent in EntityKind::ALL.iter().filter(|k| !k.is_schema_defined()) {
            let parent = kind_of_parent.uid("p");
            let with_parent =
                cedar_policy::Entity::new_no_attrs(uid.clone(), [parent.clone()].into());
            assert!(
                Entities::from_entities([with_parent], Some(schema)).is_err(),
                "{kind} may be in {parent}"
            );
        }
        for value in [
            cedar_policy::RestrictedExpression::new_bool(true),
            cedar_policy::RestrictedExpression::new_string("s".into()),
        ] {
            for attr in ["name", "enterprise", "x"] {
                let with_attr = cedar_policy::Entity::new(
                    uid.clone(),
                    [(attr.to_owned(), value.clone())].into(),
                    Default::default(),
                )
                .unwrap();
                assert!(
                    Entities::from_entities([with_attr], Some(schema)).is_err(),
                    "{kind} may have {attr}"
                );
            }
        }
    }
}
