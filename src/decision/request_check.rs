//! Requests of a shape the schema accepted once are not checked again.
//!
//! `Request::new` checks a question against the schema — the principal's
//! and resource's types against the action's, every context attribute
//! against the action's context type — on every question, though a
//! business question's context is always the sidecar clock's three values
//! (and an agent's client): after the cache made the entities nearly free,
//! that check was one of the larger costs left (BENCHMARKS.md). Whether it
//! passes depends only on the action, the two types and each context
//! attribute's name and type, which [`Shape`] records — for contexts whose
//! attributes' types can be read off the JSON alone — and, for an entity
//! of a kind the store does not hold (an enum such as `PayerCategory`, an
//! action, an unknown type), on its id as well: Cedar checks such an id
//! against the values the schema declares. A shape is remembered
//! only after Cedar accepted it, only by the policy snapshot (and so the
//! schema) that accepted it, and at most [`MAX_SHAPES`] of them: a caller
//! sending made-up attributes gets them checked, and refused, every time.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::RwLock;

use cedar_policy::{EntityTypeName, EntityUid};
use serde_json::Value;

use crate::domain::{EntityKind, NAMESPACE};

/// Shapes remembered per policy snapshot; the schema allows a few dozen.
const MAX_SHAPES: usize = 1024;

/// What the schema check of a question depends on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    action: EntityUid,
    principal: (EntityTypeName, Option<String>),
    resource: (EntityTypeName, Option<String>),
    context: Vec<(Name, Tag)>,
}

/// A name in a shape: the ones every business question carries (the
/// clock's attributes, `actingFor`, Cedar's extension constructors) are
/// borrowed, so remembering and looking up the usual shape allocates none
/// (the shape of each question was 2 % of a batch's CPU).
type Name = Cow<'static, str>;

/// `s`, borrowed if it is one of the usual names; a name missing from
/// them is only allocated, never judged otherwise.
fn name(s: &str) -> Name {
    let mut known = super::CLOCK_ATTRIBUTES
        .iter()
        .chain([&super::ACTING_FOR])
        .chain(&super::context::CONSTRUCTORS);
    match known.find(|k| **k == s) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(s.to_owned()),
    }
}

/// A context attribute's type, as its JSON spells it.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Tag {
    Bool,
    /// An extension call (`{"__extn": {"fn": …}}`), by function.
    Extension(Name),
    /// An entity reference (`{"__entity": {"type": …}}`), by type, and by
    /// id when [`checked_id`] keeps it.
    Entity(String, Option<String>),
}

/// The id of an entity the schema check reads: `None` for a stored kind,
/// whose ids the schema does not constrain; the id itself for anything
/// else (an enum's, an action's, an unknown type's), which Cedar checks
/// against what the schema declares.
fn checked_id(type_name: &str, id: &str) -> Option<String> {
    let stored = type_name
        .strip_prefix(NAMESPACE)
        .and_then(|rest| rest.strip_prefix("::"))
        .and_then(|basename| basename.parse::<EntityKind>().ok())
        .is_some_and(|kind| !kind.is_schema_defined());
    (!stored).then(|| id.to_owned())
}

/// An entity's type and, as [`checked_id`] says, its id.
fn checked(uid: &EntityUid) -> (EntityTypeName, Option<String>) {
    let stored = EntityKind::of(uid).is_some_and(|kind| !kind.is_schema_defined());
    let id = (!stored).then(|| uid.id().unescaped().to_owned());
    (uid.type_name().clone(), id)
}

impl Shape {
    /// The shape of a question, when every context attribute's type can be
    /// read off its JSON (a boolean, an extension call or an entity
    /// reference in their explicit forms); `None` otherwise.
    pub fn of(
        action: &EntityUid,
        principal: &EntityUid,
        resource: &EntityUid,
        context: &Value,
        stamped: &[(String, Value)],
    ) -> Option<Self> {
        let mut attributes = Vec::new();
        let stamped = stamped.iter().map(|(name, value)| (name, value));
        for (name, value) in context.as_object()?.iter().chain(stamped) {
            attributes.push((self::name(name), tag(value)?));
        }
        Some(Self {
            action: action.clone(),
            principal: checked(principal),
            resource: checked(resource),
            context: attributes,
        })
    }
}

fn tag(value: &Value) -> Option<Tag> {
    if value.is_boolean() {
        return Some(Tag::Bool);
    }
    let outer = value.as_object().filter(|o| o.len() == 1)?;
    let (form, inner) = outer.iter().next()?;
    let inner = inner.as_object()?;
    let field = |name: &str| inner.get(name)?.as_str().map(str::to_owned);
    match form.as_str() {
        "__extn" if inner.len() == 2 && inner.get("arg").is_some_and(Value::is_string) => {
            inner.get("fn")?.as_str().map(|f| Tag::Extension(name(f)))
        }
        "__entity" if inner.len() == 2 => {
            let (type_name, id) = (field("type")?, field("id")?);
            let id = checked_id(&type_name, &id);
            Some(Tag::Entity(type_name, id))
        }
        _ => None,
    }
}

/// The shapes one policy snapshot's schema accepted (held by the
/// snapshot, so a reload starts with none).
#[derive(Default)]
pub struct Accepted(RwLock<HashSet<Shape, quick_cache::DefaultHashBuilder>>);

impl Accepted {
    pub fn contains(&self, shape: &Shape) -> bool {
        let held = self.0.read().unwrap_or_else(|e| e.into_inner());
        held.contains(shape)
    }

    /// Remembers that the schema accepted `shape`.
    pub fn insert(&self, shape: Shape) {
        let mut held = self.0.write().unwrap_or_else(|e| e.into_inner());
        if held.len() < MAX_SHAPES {
            held.insert(shape);
        }
    }
}
