//! The entities one request needs, read from the store for that request only.
//!
//! A slice holds the request's principal and resource (and the entities its
//! context names) and the entities their attributes reference, as deep as
//! the validator lets policies dereference ([`MAX_DEREF_LEVEL`]), each
//! built with its whole ancestry as parents (so `in` sees the whole
//! hierarchy, Staff in PermissionIdentity in Function, without the
//! ancestors being entities of the slice). It never reads the whole store,
//! so the cost of a decision does not grow with the number of stored
//! identities.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Maps of one request's entities: foldhash (seeded per process) instead of
/// SipHash, which was ~4 % of a decision's CPU. HashDoS needs many keys in
/// one table; these hold one request's slice — a few dozen uids at most,
/// bounded by the hierarchy's depth and fan-out — so colliding keys cannot
/// make them expensive.
pub(crate) type Map<K, V> = HashMap<K, V, quick_cache::DefaultHashBuilder>;

use cedar_policy::{Entity, EntityUid};
use cedar_policy_core::ast;

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

/// The entities gathered for one request, in Cedar's core form
/// ([`Loaded`]).
#[derive(Default)]
pub struct Slice {
    pub entities: Map<EntityUid, ast::Entity>,
    /// Entities asked for that the store does not hold.
    pub missing: HashSet<EntityUid>,
    /// Attributes of all the entities: part of their memory estimate.
    pub attributes: usize,
}

/// Where a slice's identities come from: entities already built (the memo
/// of [`super::memo`]) or a store snapshot.
pub(crate) trait Source {
    /// `uid` built before, if at hand.
    fn built(&mut self, uid: &EntityUid) -> Option<Arc<Loaded>>;
    /// The snapshot to read what is not at hand.
    fn reader(&mut self) -> Result<&StoreReader, StoreError>;
    /// `uid`, just built from [`Self::reader`].
    fn file(&mut self, uid: &EntityUid, loaded: &Arc<Loaded>);
}

/// Every entity read from one snapshot.
struct Snapshot<'a>(&'a StoreReader);

impl Source for Snapshot<'_> {
    fn built(&mut self, _: &EntityUid) -> Option<Arc<Loaded>> {
        None
    }
    fn reader(&mut self) -> Result<&StoreReader, StoreError> {
        Ok(self.0)
    }
    fn file(&mut self, _: &EntityUid, _: &Arc<Loaded>) {}
}

impl Slice {
    /// Gathers `roots` (principal, resource) and `context_refs` (entities the
    /// context names, one dereference already spent) from the store, and
    /// with `follow` what their attributes name, as deep as the validator
    /// lets policies dereference. Without it, the roots and the context's
    /// entities alone: for policies that read no other entity's data
    /// ([`crate::policy::reads`]); the context's are still looked up, as a
    /// question naming one the store lacks is denied.
    pub fn gather(
        reader: &StoreReader,
        roots: &[&EntityUid],
        context_refs: &[EntityUid],
        follow: bool,
    ) -> Result<Self, StoreError> {
        Self::gather_with(roots, context_refs, follow, &mut Snapshot(reader))
    }

    /// [`Self::gather`] with each entity from `source`.
    ///
    /// Each entity's parents are its whole ancestry ([`Loaded`]), so the
    /// slice holds only the entities a policy may name or dereference —
    /// the roots and what their attributes name — and not the ancestors
    /// themselves: `in` reads only the left side's ancestors, and a policy
    /// can reach an entity's attributes only through an attribute or as a
    /// root. A clerk's slice is four entities instead of fifteen, and
    /// Cedar's transitive closure over it (a quarter of an uncached
    /// decision) finds nothing left to add.
    pub(crate) fn gather_with(
        roots: &[&EntityUid],
        context_refs: &[EntityUid],
        follow: bool,
        source: &mut impl Source,
    ) -> Result<Self, StoreError> {
        let mut slice = Slice::default();
        let mut queue: Vec<(EntityUid, u32)> = Vec::new();
        // An attribute of a root is one dereference; what that names is a second.
        let (root_hops, context_hops) = if follow {
            (MAX_DEREF_LEVEL - 1, MAX_DEREF_LEVEL - 2)
        } else {
            (0, 0)
        };
        for r in roots {
            queue.push(((*r).clone(), root_hops));
        }
        for r in context_refs {
            queue.push((r.clone(), context_hops));
        }
        // The most hops each entity was expanded with; expanding again with
        // fewer hops adds nothing.
        let mut expanded: Map<EntityUid, u32> = Map::default();
        let mut closed = Closed::default();
        let mut kept: Map<EntityUid, Arc<Loaded>> = Map::default();
        while let Some((uid, hops)) = queue.pop() {
            if expanded.get(&uid).is_some_and(|&done| done >= hops) {
                continue;
            }
            expanded.insert(uid.clone(), hops);
            let Some(l) = closed.get(source, &uid, 0)? else {
                if !is_implicit(&uid) {
                    slice.missing.insert(uid);
                }
                continue;
            };
            if hops > 0 {
                queue.extend(l.refs.iter().map(|r| (r.clone(), hops - 1)));
            }
            kept.insert(uid, l);
        }
        slice.attributes = kept.values().map(|l| l.attributes).sum();
        // Drop the other holders (the ancestors' own entries) first, so an
        // entity built for this slice alone is moved rather than cloned.
        drop(closed);
        slice.entities = kept
            .into_iter()
            .map(|(uid, l)| {
                let entity = Arc::try_unwrap(l).map_or_else(|l| l.entity.clone(), |l| l.entity);
                (uid, entity)
            })
            .collect();
        Ok(slice)
    }
}

/// `uid` built from `source`, alone: whether the store holds it.
pub(crate) fn find(
    source: &mut impl Source,
    uid: &EntityUid,
) -> Result<Option<Arc<Loaded>>, StoreError> {
    Closed::default().get(source, uid, 0)
}

/// The entities one gathering built or found, by uid (`None`: not stored),
/// so an ancestor many of them share is built once.
#[derive(Default)]
struct Closed(Map<EntityUid, Option<Arc<Loaded>>>);

/// Deeper than the schema's hierarchy (Staff in PermissionIdentity in
/// Function) can be: past it, parents are kept but not followed, so a
/// malformed store cannot make a closure loop.
const MAX_HIERARCHY_DEPTH: u32 = 8;

impl Closed {
    /// `uid` built with its whole ancestry as parents.
    fn get(
        &mut self,
        source: &mut impl Source,
        uid: &EntityUid,
        depth: u32,
    ) -> Result<Option<Arc<Loaded>>, StoreError> {
        if let Some(found) = self.0.get(uid) {
            return Ok(found.clone());
        }
        let found = match source.built(uid) {
            Some(built) => Some(built),
            None => match record(source.reader()?, uid)? {
                None => None,
                Some(parts) => {
                    let mut ancestors = parts.parents.clone();
                    if depth < MAX_HIERARCHY_DEPTH {
                        for parent in &parts.parents {
                            if let Some(p) = self.get(source, parent, depth + 1)? {
                                for a in &p.ancestors {
                                    if !ancestors.contains(a) {
                                        ancestors.push(a.clone());
                                    }
                                }
                            }
                        }
                    }
                    let loaded = Arc::new(Loaded::new(uid, parts, ancestors));
                    source.file(uid, &loaded);
                    Some(loaded)
                }
            },
        };
        self.0.insert(uid.clone(), found.clone());
        Ok(found)
    }
}

/// Enum entities and actions come from the schema, not the store.
fn is_implicit(uid: &EntityUid) -> bool {
    uid.type_name()
        .basename()
        .parse::<EntityKind>()
        .is_ok_and(EntityKind::is_schema_defined)
}

/// One stored identity as a Cedar entity whose parents are all its
/// ancestors (what Cedar's transitive closure would have made of them),
/// with what the slice follows from it.
///
/// Built in `cedar-policy-core`'s form, from values: Cedar's public
/// `Entity::new` takes each attribute as an expression and evaluates it,
/// and its `Entities` computes the transitive closure again, though the
/// parents given are whole ancestries already; together they were about
/// half of an uncached decision (BENCHMARKS.md, session 14). With the
/// core's types the attributes are values from the start and the set is
/// made without the closure pass (`super::cedar_entities`).
pub(crate) struct Loaded {
    entity: ast::Entity,
    attributes: usize,
    ancestors: Vec<EntityUid>,
    /// Entities named by (non-set) attributes.
    refs: Vec<EntityUid>,
}

impl Loaded {
    fn new(uid: &EntityUid, parts: Parts, ancestors: Vec<EntityUid>) -> Self {
        let attributes = parts.attrs.len();
        let entity = core_entity(uid.clone(), parts.attrs, ancestors.iter().cloned());
        Self {
            entity,
            attributes,
            ancestors,
            refs: parts.refs,
        }
    }

    /// Estimated heap bytes, as [`super::cache::estimate_bytes`] counts them.
    pub(crate) fn bytes(&self, uid: &EntityUid) -> usize {
        super::cache::estimate_bytes(
            1,
            uid.id().unescaped().len(),
            self.attributes,
            self.ancestors.len(),
        )
    }
}

/// `uid` as Cedar's core entity with `attrs` and `ancestors` as its
/// parents: no attribute evaluated, nothing closed. Takes what it keeps by
/// value: a clerk's ancestors are a dozen uids, each a few allocations to
/// clone.
pub(crate) fn core_entity<'a>(
    uid: EntityUid,
    attrs: impl IntoIterator<Item = (&'a str, ast::Value)>,
    ancestors: impl IntoIterator<Item = EntityUid>,
) -> ast::Entity {
    ast::Entity::new_with_attr_partial_value(
        uid.into(),
        attrs.into_iter().map(|(k, v)| (k.into(), v.into())),
        HashSet::new(),
        ancestors.into_iter().map(Into::into).collect(),
        [],
    )
}

/// `uid` as a Cedar value.
pub(crate) fn uid_value(uid: &EntityUid) -> ast::Value {
    ast::Value::from(ast::EntityUID::from(uid.clone()))
}

/// What one stored record makes of its entity: attributes, parents, and
/// the entities its attributes name.
#[derive(Default)]
struct Parts {
    attrs: Vec<(&'static str, ast::Value)>,
    parents: Vec<EntityUid>,
    refs: Vec<EntityUid>,
}

impl Parts {
    /// An attribute naming `uid`, which the slice then follows.
    fn entity_attr(&mut self, name: &'static str, uid: &EntityUid) {
        self.attrs.push((name, uid_value(uid)));
        self.refs.push(uid.clone());
    }

    fn bool_attr(&mut self, name: &'static str, value: bool) {
        self.attrs.push((name, ast::Value::from(value)));
    }

    fn string_attr(&mut self, name: &'static str, value: String) {
        self.attrs.push((name, ast::Value::from(value)));
    }
}

/// The entity of stored `uid` with only its direct parents, as the
/// identity store relates them (Cedar computes the rest): what a fixture
/// lists, and what tests decide the whole store with.
pub fn stored_entity(reader: &StoreReader, uid: &EntityUid) -> Result<Option<Entity>, StoreError> {
    Ok(record(reader, uid)?.map(|parts| {
        let parents = parts.parents.clone();
        Entity::from(Loaded::new(uid, parts, parents).entity)
    }))
}

/// What the stored record of `uid` makes of its entity (its direct
/// parents only); `None` when the store does not hold it (or it is no
/// stored kind).
fn record(reader: &StoreReader, uid: &EntityUid) -> Result<Option<Parts>, StoreError> {
    let Some(kind) = EntityKind::of(uid) else {
        return Ok(None);
    };
    let id: &str = uid.id().unescaped();
    match kind {
        EntityKind::Enterprise => enterprise(reader, id),
        EntityKind::Person => person(reader, id),
        EntityKind::Staff => staff(reader, id),
        EntityKind::PermissionIdentity => permission_identity(reader, id),
        EntityKind::Function => Ok(reader.get::<FunctionRecord>(id)?.map(|_| Parts::default())),
        EntityKind::Agency => agency(reader, id),
        EntityKind::AgentStaff => agent_staff(reader, id),
        EntityKind::Action | EntityKind::IdentityType | EntityKind::PayerCategory => Ok(None),
    }
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
            uid_value(&EntityKind::Agency.uid(agency))
        })
        .collect::<Vec<_>>();
    let mut p = Parts::default();
    p.string_attr("name", e.name);
    p.attrs.push((
        "category",
        enum_value(EntityKind::PayerCategory, e.category.code()),
    ));
    p.bool_attr("staffSynced", e.staff_synced);
    p.attrs
        .push(("recognizedAgencies", ast::Value::set(agencies, None)));
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

fn enum_value(kind: EntityKind, value: &str) -> ast::Value {
    uid_value(&kind.uid(value))
}
