//! The entities one request needs, read from the store for that request only.
//!
//! A slice holds the request's principal and resource (and the entities its
//! context names), every ancestor of each (so `in` sees the whole hierarchy:
//! Staff in PermissionIdentity in Function), and the entities their
//! attributes reference, as deep as the validator lets policies dereference
//! ([`MAX_DEREF_LEVEL`]). It never reads the whole store, so the cost of a
//! decision does not grow with the number of stored identities.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};

use crate::policy::MAX_DEREF_LEVEL;
use crate::store::{
    AgencyRecord, AgentStaffRecord, EnterpriseRecord, FunctionRecord, PermissionIdentityRecord,
    PersonRecord, RecognitionRecord, StaffRecord, StoreError, StoreReader,
};

/// The Cedar namespace of the bureau's model.
pub const NAMESPACE: &str = "Etax";

/// The entity types of the model, parsed once: parsing a name runs Cedar's
/// parser, and a decision names a few dozen entities.
static TYPES: LazyLock<HashMap<&'static str, EntityTypeName>> = LazyLock::new(|| {
    [
        "Action",
        "Agency",
        "AgentStaff",
        "Enterprise",
        "Function",
        "IdentityType",
        "PayerCategory",
        "PermissionIdentity",
        "Person",
        "Staff",
    ]
    .into_iter()
    .map(|t| (t, parse_type(t)))
    .collect()
});

fn parse_type(ty: &str) -> EntityTypeName {
    EntityTypeName::from_str(&format!("{NAMESPACE}::{ty}")).expect("static entity type names parse")
}

/// `Etax::<ty>::"<id>"`.
pub fn uid(ty: &str, id: &str) -> EntityUid {
    let ty = TYPES.get(ty).cloned().unwrap_or_else(|| parse_type(ty));
    EntityUid::from_type_name_and_id(ty, EntityId::new(id))
}

/// The entities gathered for one request.
#[derive(Default)]
pub struct Slice {
    pub entities: HashMap<EntityUid, Entity>,
    /// Entities asked for that the store does not hold.
    pub missing: HashSet<EntityUid>,
}

impl Slice {
    /// Gathers `roots` (principal, resource) and `context_refs` (entities the
    /// context names, one dereference already spent) from the store.
    pub fn gather(
        reader: &StoreReader,
        roots: &[&EntityUid],
        context_refs: &[EntityUid],
    ) -> Result<Self, StoreError> {
        let mut slice = Slice::default();
        let mut queue: Vec<(EntityUid, u32)> = Vec::new();
        // An attribute of a root is one dereference; what that names is a second.
        for r in roots {
            queue.push(((*r).clone(), MAX_DEREF_LEVEL - 1));
        }
        for r in context_refs {
            queue.push((r.clone(), MAX_DEREF_LEVEL - 2));
        }
        // The most hops each entity was expanded with; expanding again with
        // fewer hops adds nothing.
        let mut expanded: HashMap<EntityUid, u32> = HashMap::new();
        let mut loaded: HashMap<EntityUid, Loaded> = HashMap::new();
        while let Some((uid, hops)) = queue.pop() {
            if expanded.get(&uid).is_some_and(|&done| done >= hops) {
                continue;
            }
            expanded.insert(uid.clone(), hops);
            if !loaded.contains_key(&uid) {
                match load(reader, &uid)? {
                    Some(l) => {
                        loaded.insert(uid.clone(), l);
                    }
                    None => {
                        if !is_implicit(&uid) {
                            slice.missing.insert(uid);
                        }
                        continue;
                    }
                }
            }
            let l = &loaded[&uid];
            // Ancestors are always needed, whatever the depth: `in` walks them.
            queue.extend(l.parents.iter().map(|p| (p.clone(), 0)));
            if hops > 0 {
                queue.extend(l.refs.iter().map(|r| (r.clone(), hops - 1)));
            }
        }
        slice.entities = loaded.into_iter().map(|(uid, l)| (uid, l.entity)).collect();
        Ok(slice)
    }
}

/// Enum entities and actions come from the schema, not the store.
fn is_implicit(uid: &EntityUid) -> bool {
    let basename = uid.type_name().basename();
    matches!(basename, "Action" | "IdentityType" | "PayerCategory")
}

struct Loaded {
    entity: Entity,
    parents: Vec<EntityUid>,
    /// Entities named by (non-set) attributes.
    refs: Vec<EntityUid>,
}

fn load(reader: &StoreReader, uid: &EntityUid) -> Result<Option<Loaded>, StoreError> {
    if uid.type_name().namespace() != NAMESPACE {
        return Ok(None);
    }
    let id: &str = uid.id().unescaped();
    let ty = uid.type_name().basename();
    let mut attrs: Vec<(&str, RestrictedExpression)> = Vec::new();
    let mut parents = Vec::new();
    let mut refs = Vec::new();
    match ty {
        "Enterprise" => {
            let Some(e) = reader.get::<EnterpriseRecord>(id)? else {
                return Ok(None);
            };
            let agencies = reader
                .children::<RecognitionRecord>(id)?
                .into_iter()
                .map(|(key, _)| {
                    let agency = key.rsplit('/').next().unwrap_or_default().to_owned();
                    RestrictedExpression::new_entity_uid(self::uid("Agency", &agency))
                })
                .collect::<Vec<_>>();
            attrs.push(("name", RestrictedExpression::new_string(e.name)));
            attrs.push(("category", enum_value("PayerCategory", e.category.code())));
            attrs.push((
                "staffSynced",
                RestrictedExpression::new_bool(e.staff_synced),
            ));
            attrs.push((
                "recognizedAgencies",
                RestrictedExpression::new_set(agencies),
            ));
        }
        "Person" => {
            let Some(p) = reader.get::<PersonRecord>(id)? else {
                return Ok(None);
            };
            attrs.push((
                "realNameVerified",
                RestrictedExpression::new_bool(p.real_name_verified),
            ));
            attrs.push((
                "hasRealNamePhone",
                RestrictedExpression::new_bool(p.phone.is_some()),
            ));
        }
        "Staff" => {
            let Some(s) = reader.get::<StaffRecord>(id)? else {
                return Ok(None);
            };
            let Some((enterprise, person)) = id.split_once('/') else {
                return Ok(None);
            };
            let enterprise_uid = self::uid("Enterprise", enterprise);
            let person_uid = self::uid("Person", person);
            attrs.push((
                "person",
                RestrictedExpression::new_entity_uid(person_uid.clone()),
            ));
            attrs.push((
                "enterprise",
                RestrictedExpression::new_entity_uid(enterprise_uid.clone()),
            ));
            attrs.push((
                "identityType",
                enum_value("IdentityType", s.identity_type.code()),
            ));
            attrs.push((
                "passwordChangeRequired",
                RestrictedExpression::new_bool(s.password_change_required),
            ));
            parents.push(enterprise_uid.clone());
            for role in &s.permission_identities {
                parents.push(self::uid(
                    "PermissionIdentity",
                    &format!("{enterprise}/{role}"),
                ));
            }
            refs.push(person_uid);
            refs.push(enterprise_uid);
        }
        "PermissionIdentity" => {
            let Some(r) = reader.get::<PermissionIdentityRecord>(id)? else {
                return Ok(None);
            };
            let Some((enterprise, _)) = id.split_once('/') else {
                return Ok(None);
            };
            let enterprise_uid = self::uid("Enterprise", enterprise);
            attrs.push((
                "enterprise",
                RestrictedExpression::new_entity_uid(enterprise_uid.clone()),
            ));
            attrs.push(("name", RestrictedExpression::new_string(r.name)));
            parents.extend(r.functions.iter().map(|f| self::uid("Function", f)));
            refs.push(enterprise_uid);
        }
        "Function" => {
            if reader.get::<FunctionRecord>(id)?.is_none() {
                return Ok(None);
            }
        }
        "Agency" => {
            let Some(a) = reader.get::<AgencyRecord>(id)? else {
                return Ok(None);
            };
            attrs.push(("name", RestrictedExpression::new_string(a.name)));
        }
        "AgentStaff" => {
            let Some(s) = reader.get::<AgentStaffRecord>(id)? else {
                return Ok(None);
            };
            let Some((agency, person)) = id.split_once('/') else {
                return Ok(None);
            };
            let agency_uid = self::uid("Agency", agency);
            let person_uid = self::uid("Person", person);
            attrs.push((
                "person",
                RestrictedExpression::new_entity_uid(person_uid.clone()),
            ));
            attrs.push((
                "agency",
                RestrictedExpression::new_entity_uid(agency_uid.clone()),
            ));
            attrs.push((
                "passwordChangeRequired",
                RestrictedExpression::new_bool(s.password_change_required),
            ));
            parents.push(agency_uid.clone());
            refs.push(person_uid);
            refs.push(agency_uid);
        }
        _ => return Ok(None),
    }
    let attrs = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let entity = Entity::new(uid.clone(), attrs, parents.iter().cloned().collect())
        .expect("attributes built from literals always evaluate");
    Ok(Some(Loaded {
        entity,
        parents,
        refs,
    }))
}

fn enum_value(ty: &str, value: &str) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(uid(ty, value))
}
