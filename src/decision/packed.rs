//! A request's built entities packed into one byte string: the second tier
//! of the decision cache ([`super::cache`]).
//!
//! Cedar's `Entities` for one clerk's question hold about 11 kB (its three
//! entities' hash maps, and a type name with source locations in every
//! uid), so the cache's budget held 3,000 of them while a million-staff
//! bureau's mix asks about 30,000 principals: most questions read the
//! store again, ~5 random pages each. Packed — each uid once, as its
//! kind's index and its id's bytes, each attribute's value tagged — the
//! same entities take a few hundred bytes, and unpacking them (making Cedar's
//! entities from the values, already closed: `super::slice::core_entity`)
//! costs a fraction of reading and decoding the records again.
//!
//! Packing is exact or refused: any entity, attribute or value outside
//! what the bureau's identities use (a uid of another namespace, tags, a
//! record, an extension value, an id or set too long for its length
//! field) packs to `None`, and that request is simply not kept in this
//! tier. `tests` holds unpacking to give back entities equal to those
//! packed, for every kind of stored identity.

use cedar_policy::{Entity, EntityUid, EvalResult};
use cedar_policy_core::ast;

use super::cache::{Built, SliceKey};
use super::slice::{core_entity, uid_value, Map};
use crate::domain::EntityKind;

/// A [`SliceKey`] packed: the key of the packed tier.
pub(crate) type PackedKey = Box<[u8]>;

/// One request's entities (the action's aside: it comes from the policy
/// snapshot when unpacked), and what the store lacked, packed.
pub(crate) struct Packed {
    bytes: Box<[u8]>,
}

impl Packed {
    /// Heap bytes held.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// `key` packed; `None` if a uid in it cannot be.
pub(crate) fn key(key: &SliceKey) -> Option<PackedKey> {
    let mut w = Writer::default();
    w.uid(&key.principal)?;
    w.uid(&key.action)?;
    match &key.resource {
        None => w.u8(0),
        Some(r) => {
            w.u8(1);
            w.uid(r)?;
        }
    }
    w.u8(u8::try_from(key.context_refs.len()).ok()?);
    for (name, uid) in &key.context_refs {
        w.short(name)?;
        w.uid(uid)?;
    }
    Some(w.0.into_boxed_slice())
}

/// `built` packed, leaving out the action entity; `None` if something in
/// it cannot be.
///
/// Each uid is written once, in a table at the front, and named by its
/// index everywhere else: a clerk's functions are the ancestors of the
/// clerk and of each of its permission identities, and the enterprise and
/// person are both attributes and entities. Attribute names the stored
/// identities use are one byte ([`NAMES`]). Both halve an entry, so that a
/// million-staff bureau's ~30,000 principals fit the tier's budget.
pub(crate) fn pack(built: &Built) -> Option<Packed> {
    let mut uids = UidTable::default();
    let mut body = Writer::default();
    let entities: Vec<&Entity> = built
        .entities
        .iter()
        .filter(|e| EntityKind::of(&e.uid()) != Some(EntityKind::Action))
        .collect();
    body.u16(u16::try_from(entities.len()).ok()?);
    for entity in entities {
        if entity.tags().next().is_some() {
            return None;
        }
        let uid = entity.uid();
        body.u16(uids.index(&uid)?);
        let attrs: Vec<_> = entity.attrs().collect();
        body.u8(u8::try_from(attrs.len()).ok()?);
        for (name, value) in attrs {
            body.name(name)?;
            body.value(&value.ok()?, &mut uids)?;
        }
        let ancestors: Vec<&EntityUid> = built.entities.ancestors(&uid)?.collect();
        body.u16(u16::try_from(ancestors.len()).ok()?);
        for a in ancestors {
            body.u16(uids.index(a)?);
        }
    }
    body.u16(u16::try_from(built.missing.len()).ok()?);
    for uid in &built.missing {
        body.u16(uids.index(uid)?);
    }
    let mut w = Writer::default();
    w.u32(u32::try_from(built.bytes).ok()?);
    w.u16(u16::try_from(uids.order.len()).ok()?);
    for uid in &uids.order {
        w.uid(uid)?;
    }
    w.0.extend_from_slice(&body.0);
    Some(Packed {
        bytes: w.0.into_boxed_slice(),
    })
}

/// The uids of one packed entry, each given an index when first met.
/// Hashed as the slice's maps are ([`Map`]): SipHash over each uid's type
/// name and id was most of packing a first question's entities.
#[derive(Default)]
struct UidTable {
    order: Vec<EntityUid>,
    index: Map<EntityUid, u16>,
}

impl UidTable {
    fn index(&mut self, uid: &EntityUid) -> Option<u16> {
        if let Some(i) = self.index.get(uid) {
            return Some(*i);
        }
        let i = u16::try_from(self.order.len()).ok()?;
        self.order.push(uid.clone());
        self.index.insert(uid.clone(), i);
        Some(i)
    }
}

/// The attribute names stored identities are built with
/// (`decision::slice`), each packed as its index; any other name is
/// packed in full after [`NAMED`].
const NAMES: [&str; 11] = [
    "name",
    "category",
    "staffSynced",
    "recognizedAgencies",
    "realNameVerified",
    "hasRealNamePhone",
    "person",
    "enterprise",
    "identityType",
    "passwordChangeRequired",
    "agency",
];
const NAMED: u8 = 0xFF;

impl Packed {
    /// The entities packed, with `action` (the request's action entity);
    /// `None` if Cedar refuses them, which it did not when they were
    /// packed.
    pub(crate) fn unpack(&self, action: std::sync::Arc<ast::Entity>) -> Option<Built> {
        let mut r = Reader(&self.bytes);
        let bytes = r.u32()? as usize;
        let uids = (0..r.u16()?)
            .map(|_| r.uid())
            .collect::<Option<Vec<EntityUid>>>()?;
        let uid = |r: &mut Reader| uids.get(usize::from(r.u16()?)).cloned();
        let count = r.u16()?;
        let mut entities = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let this = uid(&mut r)?;
            let attrs = (0..r.u8()?)
                .map(|_| Some((r.name()?, r.value(&uids)?)))
                .collect::<Option<Vec<_>>>()?;
            let ancestors = (0..r.u16()?)
                .map(|_| uid(&mut r))
                .collect::<Option<Vec<_>>>()?;
            entities.push(core_entity(this, attrs, ancestors));
        }
        let missing = (0..r.u16()?)
            .map(|_| uid(&mut r))
            .collect::<Option<std::collections::HashSet<_>>>()?;
        let entities = super::cedar_entities(entities, [action]).ok()?;
        Some(Built {
            entities,
            missing,
            bytes,
        })
    }
}

const FALSE: u8 = 0;
const TRUE: u8 = 1;
const LONG: u8 = 2;
const STRING: u8 = 3;
const ENTITY: u8 = 4;
const SET: u8 = 5;

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// A name: at most 255 bytes.
    fn short(&mut self, s: &str) -> Option<()> {
        self.u8(u8::try_from(s.len()).ok()?);
        self.0.extend_from_slice(s.as_bytes());
        Some(())
    }

    /// An attribute name: its index in [`NAMES`], or [`NAMED`] and the name.
    fn name(&mut self, name: &str) -> Option<()> {
        match NAMES.iter().position(|n| *n == name) {
            Some(i) => self.u8(i as u8),
            None => {
                self.u8(NAMED);
                self.short(name)?;
            }
        }
        Some(())
    }

    fn long_str(&mut self, s: &str) -> Option<()> {
        self.u32(u32::try_from(s.len()).ok()?);
        self.0.extend_from_slice(s.as_bytes());
        Some(())
    }

    /// A uid of the bureau's namespace: its kind's index and its id.
    fn uid(&mut self, uid: &EntityUid) -> Option<()> {
        let kind = EntityKind::of(uid)?;
        self.u8(kind as u8);
        let id = uid.id().unescaped();
        self.u16(u16::try_from(id.len()).ok()?);
        self.0.extend_from_slice(id.as_bytes());
        Some(())
    }

    fn value(&mut self, v: &EvalResult, uids: &mut UidTable) -> Option<()> {
        match v {
            EvalResult::Bool(b) => self.u8(if *b { TRUE } else { FALSE }),
            EvalResult::Long(n) => {
                self.u8(LONG);
                self.0.extend_from_slice(&n.to_le_bytes());
            }
            EvalResult::String(s) => {
                self.u8(STRING);
                self.long_str(s)?;
            }
            EvalResult::EntityUid(uid) => {
                self.u8(ENTITY);
                self.u16(uids.index(uid)?);
            }
            EvalResult::Set(set) => {
                self.u8(SET);
                self.u16(u16::try_from(set.len()).ok()?);
                for member in set.iter() {
                    self.value(member, uids)?;
                }
            }
            EvalResult::Record(_) | EvalResult::ExtensionValue(_) => return None,
        }
        Some(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn str(&mut self, len: usize) -> Option<&'a str> {
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn short(&mut self) -> Option<&'a str> {
        let len = self.u8()?;
        self.str(usize::from(len))
    }

    fn name(&mut self) -> Option<&'a str> {
        match self.u8()? {
            NAMED => self.short(),
            i => NAMES.get(usize::from(i)).copied(),
        }
    }

    fn uid(&mut self) -> Option<EntityUid> {
        let kind = *EntityKind::ALL.get(usize::from(self.u8()?))?;
        let len = self.u16()?;
        Some(kind.uid(self.str(usize::from(len))?))
    }

    fn value(&mut self, uids: &[EntityUid]) -> Option<ast::Value> {
        Some(match self.u8()? {
            FALSE => ast::Value::from(false),
            TRUE => ast::Value::from(true),
            LONG => ast::Value::from(i64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            STRING => {
                let len = self.u32()? as usize;
                ast::Value::from(self.str(len)?)
            }
            ENTITY => uid_value(uids.get(usize::from(self.u16()?))?),
            SET => {
                let n = self.u16()?;
                ast::Value::set(
                    (0..n)
                        .map(|_| self.value(uids))
                        .collect::<Option<Vec<_>>>()?,
                    None,
                )
            }
            _ => return None,
        })
    }
}

impl super::cache::Weighed for PackedKey {
    fn weight(&self) -> usize {
        // The allocation's header and rounding.
        self.len() + 16
    }
}

impl super::cache::Weighed for Packed {
    fn weight(&self) -> usize {
        self.len() + 16
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use cedar_policy::{Entities, Entity, RestrictedExpression};

    use super::super::cache::{Built, SliceKey};
    use super::super::fixture;
    use super::super::slice::Slice;
    use super::{ast, key, pack, NAMES};
    use crate::domain::{Action, EntityKind};

    /// Every stored identity of the demo bureau as a principal (and some
    /// as resources and `actingFor`, and identities the store lacks): what
    /// is unpacked equals what was packed, entity for entity.
    #[test]
    fn every_kind_of_slice_unpacks_to_the_entities_packed() {
        let dir = tempfile::tempdir().unwrap();
        let engine = fixture::demo_engine(dir.path());
        let snap = engine.snapshot();
        let reader = engine.store().read().unwrap();
        // Every stored identity, functions and permission identities too.
        let mut principals = crate::authoring::fixture::stored_uids(&reader).unwrap();
        let staff = principals
            .iter()
            .find(|uid| EntityKind::of(uid) == Some(EntityKind::Staff))
            .expect("the demo bureau has staff")
            .clone();
        let ghost = EntityKind::Staff.uid("91210102MA0TAX001F/resident_id:210102199001015051");
        principals.push(ghost.clone());
        assert!(principals.len() > 10, "{} principals", principals.len());
        let client = EntityKind::Enterprise.uid("91210102MA0TAX001F");
        let mut checked = 0;
        for principal in &principals {
            for (action, resource, refs) in [
                (Action::UseFunction, None, vec![]),
                (Action::EditStaff, Some(staff.clone()), vec![]),
                (Action::EditStaff, Some(ghost.clone()), vec![]),
                (
                    Action::UseFunction,
                    None,
                    vec![("actingFor".to_owned(), client.clone())],
                ),
            ] {
                let slice_key = SliceKey {
                    principal: principal.clone(),
                    action: action.uid(),
                    resource,
                    context_refs: refs,
                };
                let slice =
                    Slice::gather(&reader, &slice_key.roots(), &slice_key.refs(), true).unwrap();
                let built = super::super::assemble(slice, &snap, &slice_key.action).unwrap();
                assert!(key(&slice_key).is_some());
                for entity in built.entities.iter() {
                    for (name, _) in entity.attrs() {
                        assert!(NAMES.contains(&name), "{name} packs as one byte");
                    }
                }
                let packed = pack(&built).unwrap_or_else(|| panic!("{principal} packs"));
                let action_entity = snap.action_entity(&slice_key.action).unwrap().clone();
                let back = packed.unpack(action_entity).expect("unpacks");
                assert!(
                    back.entities.deep_eq(&built.entities),
                    "{principal} {action}: {:?} became {:?}",
                    built.entities.to_json_value().unwrap(),
                    back.entities.to_json_value().unwrap()
                );
                assert_eq!(back.missing, built.missing);
                assert_eq!(back.bytes, built.bytes);
                checked += 1;
            }
        }
        assert_eq!(checked, principals.len() * 4);
    }

    /// Distinct keys pack to distinct bytes: a packed key is the whole key.
    #[test]
    fn keys_differing_anywhere_pack_apart() {
        let base = SliceKey {
            principal: EntityKind::Staff.uid("E/p"),
            action: Action::UseFunction.uid(),
            resource: None,
            context_refs: vec![],
        };
        let variants = [
            SliceKey {
                principal: EntityKind::AgentStaff.uid("E/p"),
                ..base.clone()
            },
            SliceKey {
                principal: EntityKind::Staff.uid("E/q"),
                ..base.clone()
            },
            SliceKey {
                action: Action::EditStaff.uid(),
                ..base.clone()
            },
            SliceKey {
                resource: Some(EntityKind::Staff.uid("E/p")),
                ..base.clone()
            },
            SliceKey {
                resource: Some(EntityKind::Staff.uid("")),
                ..base.clone()
            },
            SliceKey {
                context_refs: vec![("actingFor".into(), EntityKind::Enterprise.uid("E"))],
                ..base.clone()
            },
            SliceKey {
                context_refs: vec![("client".into(), EntityKind::Enterprise.uid("E"))],
                ..base.clone()
            },
            base.clone(),
        ];
        let packed: HashSet<_> = variants.iter().map(|k| key(k).unwrap()).collect();
        assert_eq!(packed.len(), variants.len());
        // A uid outside the bureau's namespace does not pack.
        let foreign = SliceKey {
            principal: r#"Other::Staff::"x""#.parse().unwrap(),
            ..base
        };
        assert!(key(&foreign).is_none());
    }

    /// What the format cannot say exactly is not packed at all.
    #[test]
    fn entities_the_format_cannot_hold_are_not_packed() {
        let uid = EntityKind::Staff.uid("E/p");
        let with = |name: &str, value: RestrictedExpression| {
            let entity = Entity::new(
                uid.clone(),
                HashMap::from([(name.to_owned(), value)]),
                HashSet::new(),
            )
            .unwrap();
            Built {
                entities: Entities::from_entities([entity], None).unwrap(),
                missing: HashSet::new(),
                bytes: 1,
            }
        };
        let record = RestrictedExpression::new_record([(
            "a".to_owned(),
            RestrictedExpression::new_bool(true),
        )])
        .unwrap();
        assert!(pack(&with("r", record)).is_none());
        let decimal = RestrictedExpression::new_decimal("1.5");
        assert!(pack(&with("d", decimal)).is_none());
        let foreign = RestrictedExpression::new_entity_uid(r#"Other::T::"x""#.parse().unwrap());
        assert!(pack(&with("o", foreign)).is_none());
        assert!(pack(&with("b", RestrictedExpression::new_bool(true))).is_some());
        assert!(pack(&with("l", RestrictedExpression::new_long(-7))).is_some());
    }

    /// An attribute name the stored identities do not use is packed in
    /// full, and an entity named twice (as attribute and ancestor) once.
    #[test]
    fn names_outside_the_table_and_repeated_uids_come_back() {
        let uid = EntityKind::Staff.uid("E/p");
        let enterprise = EntityKind::Enterprise.uid("E");
        let entity = Entity::new(
            uid.clone(),
            HashMap::from([
                (
                    "somethingNew".to_owned(),
                    RestrictedExpression::new_entity_uid(enterprise.clone()),
                ),
                (
                    "enterprise".to_owned(),
                    RestrictedExpression::new_entity_uid(enterprise.clone()),
                ),
            ]),
            HashSet::from([enterprise.clone(), EntityKind::Function.uid("vat_filing")]),
        )
        .unwrap();
        let action = Entity::new_no_attrs(Action::UseFunction.uid(), HashSet::new());
        let entities = Entities::from_entities([entity, action.clone()], None).unwrap();
        let built = Built {
            entities,
            missing: HashSet::from([enterprise]),
            bytes: 3,
        };
        let back = pack(&built)
            .unwrap()
            .unpack(std::sync::Arc::new(
                AsRef::<ast::Entity>::as_ref(&action).clone(),
            ))
            .unwrap();
        assert!(back.entities.deep_eq(&built.entities));
        assert_eq!(back.missing, built.missing);
    }
}
