//! The entities one request needs, read from the store for that request only.
//!
//! A slice holds the request's principal and resource (and the entities its
//! context names), every ancestor of each (so `in` sees the whole hierarchy:
//! Staff in PermissionIdentity in Function), and the entities their
//! attributes reference, as deep as the validator lets policies dereference
//! ([`MAX_DEREF_LEVEL`]). It never reads the whole store, so the cost of a
//! decision does not grow with the number of stored identities.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Maps of one request's entities: foldhash (seeded per process) instead of
/// SipHash, which was ~4 % of a decision's CPU. HashDoS needs many keys in
/// one table; these hold one request's slice — a few dozen uids at most,
/// bounded by the hierarchy's depth and fan-out — so colliding keys cannot
/// make them expensive.
type Map<K, V> = HashMap<K, V, quick_cache::DefaultHashBuilder>;

use cedar_policy::{Entity, EntityUid, RestrictedExpression};

pub use crate::domain::NAMESPACE;
use crate::domain::{EntityKind, StaffKey};
use crate::policy::MAX_DEREF_LEVEL;
use crate::store::{
    AgencyRecord, AgentStaffRecord, EnterpriseRecord, FunctionRecord, PermissionIdentityRecord,
    PersonRecord, RecognitionRecord, StaffRecord, StoreError, StoreReader,
};

/// `Etax::<ty>::"<id>"`, for a type named by its string (what the flows
/// still use; [`EntityKind::uid`] is the typed form).
pub fn uid(ty: &str, id: &str) -> EntityUid {
    match ty.parse::<EntityKind>() {
        Ok(kind) => kind.uid(id),
        Err(_) => EntityUid::from_type_name_and_id(
            crate::domain::qualified_type(ty),
            cedar_policy::EntityId::new(id),
        ),
    }
}

#[cfg(test)]
#[path = "slice_tests.rs"]
mod tests;

/// The entities gathered for one request.
#[derive(Default)]
pub struct Slice {
    pub entities: Map<EntityUid, Entity>,
    /// Entities asked for that the store does not hold.
    pub missing: HashSet<EntityUid>,
    /// Attributes of all the entities: part of their memory estimate.
    pub attributes: usize,
}

impl Slice {
    /// Gathers `roots` (principal, resource) and `context_refs` (entities the
    /// context names, one dereference already spent) from the store.
    pub fn gather(
        reader: &StoreReader,
        roots: &[&EntityUid],
        context_refs: &[EntityUid],
    ) -> Result<Self, StoreError> {
        Self::gather_with(roots, context_refs, |uid| {
            Ok(load(reader, uid)?.map(Arc::new))
        })
    }

    /// [`Self::gather`] with each entity from `load` (the store, or
    /// entities already built: [`super::memo`]).
    pub(crate) fn gather_with(
        roots: &[&EntityUid],
        context_refs: &[EntityUid],
        mut load: impl FnMut(&EntityUid) -> Result<Option<Arc<Loaded>>, StoreError>,
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
        let mut expanded: Map<EntityUid, u32> = Map::default();
        let mut loaded: Map<EntityUid, Arc<Loaded>> = Map::default();
        while let Some((uid, hops)) = queue.pop() {
            if expanded.get(&uid).is_some_and(|&done| done >= hops) {
                continue;
            }
            expanded.insert(uid.clone(), hops);
            if !loaded.contains_key(&uid) {
                match load(&uid)? {
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
        slice.attributes = loaded.values().map(|l| l.attributes).sum();
        slice.entities = loaded
            .into_iter()
            .map(|(uid, l)| {
                let entity = Arc::try_unwrap(l).map_or_else(|l| l.entity.clone(), |l| l.entity);
                (uid, entity)
            })
            .collect();
        Ok(slice)
    }
}

/// Enum entities and actions come from the schema, not the store.
fn is_implicit(uid: &EntityUid) -> bool {
    uid.type_name()
        .basename()
        .parse::<EntityKind>()
        .is_ok_and(EntityKind::is_schema_defined)
}

/// One stored identity as a Cedar entity, with what the slice follows from it.
pub(crate) struct Loaded {
    entity: Entity,
    attributes: usize,
    parents: Vec<EntityUid>,
    /// Entities named by (non-set) attributes.
    refs: Vec<EntityUid>,
}

impl Loaded {
    /// Estimated heap bytes, as [`super::cache::estimate_bytes`] counts them.
    pub(crate) fn bytes(&self, uid: &EntityUid) -> usize {
        super::cache::estimate_bytes(
            1,
            uid.id().unescaped().len(),
            self.attributes,
            self.parents.len(),
        )
    }
}

/// What one stored record makes of its entity: attributes, parents, and
/// the entities its attributes name.
#[derive(Default)]
struct Parts {
    attrs: Vec<(&'static str, RestrictedExpression)>,
    parents: Vec<EntityUid>,
    refs: Vec<EntityUid>,
}

impl Parts {
    /// An attribute naming `uid`, which the slice then follows.
    fn entity_attr(&mut self, name: &'static str, uid: &EntityUid) {
        self.attrs
            .push((name, RestrictedExpression::new_entity_uid(uid.clone())));
        self.refs.push(uid.clone());
    }

    fn bool_attr(&mut self, name: &'static str, value: bool) {
        self.attrs
            .push((name, RestrictedExpression::new_bool(value)));
    }

    fn string_attr(&mut self, name: &'static str, value: String) {
        self.attrs
            .push((name, RestrictedExpression::new_string(value)));
    }
}

/// The entity `uid` names, built from its stored record; `None` when the
/// store does not hold it (or it is no stored kind).
pub(crate) fn load(reader: &StoreReader, uid: &EntityUid) -> Result<Option<Loaded>, StoreError> {
    let Some(kind) = EntityKind::of(uid) else {
        return Ok(None);
    };
    let id: &str = uid.id().unescaped();
    let parts = match kind {
        EntityKind::Enterprise => enterprise(reader, id)?,
        EntityKind::Person => person(reader, id)?,
        EntityKind::Staff => staff(reader, id)?,
        EntityKind::PermissionIdentity => permission_identity(reader, id)?,
        EntityKind::Function => reader.get::<FunctionRecord>(id)?.map(|_| Parts::default()),
        EntityKind::Agency => agency(reader, id)?,
        EntityKind::AgentStaff => agent_staff(reader, id)?,
        EntityKind::Action | EntityKind::IdentityType | EntityKind::PayerCategory => None,
    };
    let Some(Parts {
        attrs,
        parents,
        refs,
    }) = parts
    else {
        return Ok(None);
    };
    let attributes = attrs.len();
    let attrs = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let entity = Entity::new(uid.clone(), attrs, parents.iter().cloned().collect())
        .expect("attributes built from literals always evaluate");
    Ok(Some(Loaded {
        entity,
        attributes,
        parents,
        refs,
    }))
}

fn enterprise(reader: &StoreReader, id: &str) -> Result<Option<Parts>, StoreError> {
    let Some(e) = reader.get::<EnterpriseRecord>(id)? else {
        return Ok(None);
    };
    // Recognitions are keyed `enterprise/agency`.
    let agencies = reader
        .children::<RecognitionRecord>(id)?
        .into_iter()
        .map(|(key, _)| {
            let agency = key.rsplit('/').next().unwrap_or_default();
            RestrictedExpression::new_entity_uid(EntityKind::Agency.uid(agency))
        })
        .collect::<Vec<_>>();
    let mut p = Parts::default();
    p.string_attr("name", e.name);
    p.attrs.push((
        "category",
        enum_value(EntityKind::PayerCategory, e.category.code()),
    ));
    p.bool_attr("staffSynced", e.staff_synced);
    p.attrs.push((
        "recognizedAgencies",
        RestrictedExpression::new_set(agencies),
    ));
    Ok(Some(p))
}

fn person(reader: &StoreReader, id: &str) -> Result<Option<Parts>, StoreError> {
    let Some(person) = reader.get::<PersonRecord>(id)? else {
        return Ok(None);
    };
    let mut p = Parts::default();
    p.bool_attr("realNameVerified", person.real_name_verified);
    p.bool_attr("hasRealNamePhone", person.phone.is_some());
    Ok(Some(p))
}

fn staff(reader: &StoreReader, id: &str) -> Result<Option<Parts>, StoreError> {
    let Some(s) = reader.get::<StaffRecord>(id)? else {
        return Ok(None);
    };
    let Ok(key) = id.parse::<StaffKey>() else {
        return Ok(None);
    };
    let enterprise = key.enterprise.as_str();
    let enterprise_uid = EntityKind::Enterprise.uid(enterprise);
    let mut p = Parts::default();
    p.entity_attr("person", &EntityKind::Person.uid(&key.person.key()));
    p.entity_attr("enterprise", &enterprise_uid);
    p.attrs.push((
        "identityType",
        enum_value(EntityKind::IdentityType, s.identity_type.code()),
    ));
    p.bool_attr("passwordChangeRequired", s.password_change_required);
    p.parents.push(enterprise_uid);
    for role in &s.permission_identities {
        p.parents
            .push(EntityKind::PermissionIdentity.uid(&crate::store::owned_key(enterprise, role)));
    }
    Ok(Some(p))
}

fn permission_identity(reader: &StoreReader, id: &str) -> Result<Option<Parts>, StoreError> {
    let Some(r) = reader.get::<PermissionIdentityRecord>(id)? else {
        return Ok(None);
    };
    // Keyed `enterprise/id`.
    let Some((enterprise, _)) = id.split_once('/') else {
        return Ok(None);
    };
    let mut p = Parts::default();
    p.entity_attr("enterprise", &EntityKind::Enterprise.uid(enterprise));
    p.string_attr("name", r.name);
    p.parents
        .extend(r.functions.iter().map(|f| EntityKind::Function.uid(f)));
    Ok(Some(p))
}

fn agency(reader: &StoreReader, id: &str) -> Result<Option<Parts>, StoreError> {
    let Some(a) = reader.get::<AgencyRecord>(id)? else {
        return Ok(None);
    };
    let mut p = Parts::default();
    p.string_attr("name", a.name);
    Ok(Some(p))
}

fn agent_staff(reader: &StoreReader, id: &str) -> Result<Option<Parts>, StoreError> {
    let Some(s) = reader.get::<AgentStaffRecord>(id)? else {
        return Ok(None);
    };
    let Ok(key) = id.parse::<StaffKey>() else {
        return Ok(None);
    };
    let agency_uid = EntityKind::Agency.uid(key.enterprise.as_str());
    let mut p = Parts::default();
    p.entity_attr("person", &EntityKind::Person.uid(&key.person.key()));
    p.entity_attr("agency", &agency_uid);
    p.bool_attr("passwordChangeRequired", s.password_change_required);
    p.parents.push(agency_uid);
    Ok(Some(p))
}

fn enum_value(kind: EntityKind, value: &str) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(kind.uid(value))
}
