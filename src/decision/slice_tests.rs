//! What a slice holds: the roots and what their attributes name as deep as
//! policies may dereference, each with its whole ancestry as parents — and
//! nothing else of the store.

use std::collections::BTreeSet;

use cedar_policy::{EntityUid, EvalResult};

use super::Slice;
use crate::decision::fixture::demo_engine;
use crate::domain::{Action, EntityKind};
use crate::store::StoreReader;

const E1: &str = "91210102MA0TAX001F";
const AGENCY: &str = "91210100MA0AGT004B";
const CLERK_PERSON: &str = "resident_id:210102199001015035";
const AGENT_PERSON: &str = "resident_id:210105199303031080";
/// The functions of E1's "filing" role.
const FILING: [&str; 5] = [
    "vat_filing",
    "cit_filing",
    "iit_withholding",
    "tax_payment",
    "taxpayer_info",
];

fn gather(reader: &StoreReader, roots: &[EntityUid], context: &[EntityUid]) -> Slice {
    let roots: Vec<&EntityUid> = roots.iter().collect();
    Slice::gather(reader, &roots, context, true).unwrap()
}

fn names(slice: &Slice) -> BTreeSet<String> {
    slice.entities.keys().map(|u| u.to_string()).collect()
}

/// The parents `uid`'s entity in `slice` was built with.
fn parents(slice: &Slice, uid: &EntityUid) -> BTreeSet<String> {
    let entity = cedar_policy::Entity::from(slice.entities[uid].clone());
    let (_, _, parents) = entity.into_inner();
    parents.iter().map(|u| u.to_string()).collect()
}

fn expected(uids: impl IntoIterator<Item = EntityUid>) -> BTreeSet<String> {
    uids.into_iter().map(|u| u.to_string()).collect()
}

#[test]
fn a_staff_slice_holds_what_its_attributes_name_with_whole_ancestries() {
    let dir = tempfile::tempdir().unwrap();
    let engine = demo_engine(dir.path());
    let reader = engine.store().read().unwrap();
    let clerk = EntityKind::Staff.uid(&format!("{E1}/{CLERK_PERSON}"));
    let slice = gather(
        &reader,
        &[clerk.clone(), EntityKind::Function.uid("vat_filing")],
        &[],
    );
    assert!(slice.missing.is_empty(), "{:?}", slice.missing);
    // Not the enterprise's other staff or roles, nor the agency its
    // `recognizedAgencies` set names (sets are only tested with `in`/`contains`),
    // nor the role and functions only the hierarchy reaches: no policy can
    // name their attributes, and `in` reads the clerk's own ancestors.
    assert_eq!(
        names(&slice),
        expected([
            clerk.clone(),
            EntityKind::Enterprise.uid(E1),
            EntityKind::Person.uid(CLERK_PERSON),
            EntityKind::Function.uid("vat_filing"),
        ])
    );
    let mut ancestry = vec![
        EntityKind::Enterprise.uid(E1),
        EntityKind::PermissionIdentity.uid(&format!("{E1}/filing")),
    ];
    ancestry.extend(FILING.iter().map(|f| EntityKind::Function.uid(f)));
    assert_eq!(parents(&slice, &clerk), expected(ancestry));

    let staff = cedar_policy::Entity::from(slice.entities[&clerk].clone());
    assert_eq!(
        staff.attr("person").unwrap().unwrap(),
        EvalResult::EntityUid(EntityKind::Person.uid(CLERK_PERSON))
    );
    assert_eq!(
        staff.attr("identityType").unwrap().unwrap(),
        EvalResult::EntityUid(EntityKind::IdentityType.uid("tax_clerk"))
    );
}

#[test]
fn an_agent_slice_follows_its_agency_and_the_client_the_context_names() {
    let dir = tempfile::tempdir().unwrap();
    let engine = demo_engine(dir.path());
    let reader = engine.store().read().unwrap();
    let agent = EntityKind::AgentStaff.uid(&format!("{AGENCY}/{AGENT_PERSON}"));
    let slice = gather(
        &reader,
        &[agent.clone(), EntityKind::Function.uid("vat_filing")],
        &[EntityKind::Enterprise.uid(E1)],
    );
    assert!(slice.missing.is_empty(), "{:?}", slice.missing);
    assert_eq!(
        names(&slice),
        expected([
            agent,
            EntityKind::Agency.uid(AGENCY),
            EntityKind::Person.uid(AGENT_PERSON),
            EntityKind::Function.uid("vat_filing"),
            EntityKind::Enterprise.uid(E1),
        ])
    );
}

#[test]
fn a_role_as_root_reaches_its_enterprise_and_has_its_functions_as_parents() {
    let dir = tempfile::tempdir().unwrap();
    let engine = demo_engine(dir.path());
    let reader = engine.store().read().unwrap();
    let role = EntityKind::PermissionIdentity.uid(&format!("{E1}/filing"));
    let slice = gather(&reader, std::slice::from_ref(&role), &[]);
    assert_eq!(
        names(&slice),
        expected([role.clone(), EntityKind::Enterprise.uid(E1)])
    );
    assert_eq!(
        parents(&slice, &role),
        expected(FILING.iter().map(|f| EntityKind::Function.uid(f)))
    );
}

#[test]
fn unknown_entities_are_missing_and_schema_defined_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let engine = demo_engine(dir.path());
    let reader = engine.store().read().unwrap();
    let ghost = EntityKind::Staff.uid(&format!("{E1}/resident_id:210102199001015051"));
    let malformed = EntityKind::Staff.uid("not a staff key");
    let slice = gather(
        &reader,
        &[
            ghost.clone(),
            malformed.clone(),
            Action::UseFunction.uid(),
            EntityKind::PayerCategory.uid("ordinary"),
        ],
        &[],
    );
    assert!(slice.entities.is_empty(), "{:?}", names(&slice));
    assert_eq!(
        slice
            .missing
            .iter()
            .map(|u| u.to_string())
            .collect::<BTreeSet<_>>(),
        expected([ghost, malformed])
    );
}
