//! Authorization decisions: a request, the entity slice from the store, and
//! the active policy snapshot in; allow or deny with the deciding policies out.
//!
//! Fail closed: Cedar skips a policy whose evaluation errors — a `forbid`
//! included — so an evaluation error could turn a deny into an allow. Any
//! error, and any principal or resource the store does not hold, makes the
//! decision deny.

pub mod cache;
pub mod slice;

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, EvalResult, Request,
    RequestValidationError,
};

use crate::policy::PolicySnapshot;
use crate::store::{Store, StoreError};
use cache::{Built, SliceCache, SliceKey};
pub use slice::{uid, Slice, NAMESPACE};

/// One authorization question.
#[derive(Debug, Clone)]
pub struct Query {
    pub principal: EntityUid,
    pub action: EntityUid,
    pub resource: EntityUid,
    /// A JSON object, checked against the action's context type.
    pub context: serde_json::Value,
    /// Request-scoped entities in Cedar's JSON entity format. They may not
    /// stand in for an identity the store holds.
    pub entities: Vec<serde_json::Value>,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Ids of the determining policies: the permits that allowed, or the
    /// forbids that denied.
    pub reasons: Vec<String>,
    /// Evaluation errors and missing identities; non-empty means deny.
    pub errors: Vec<String>,
    pub policy_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// The request itself is wrong: `field` names where.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: impl Into<String>, message: impl ToString) -> DecisionError {
    DecisionError::Invalid {
        field: field.into(),
        message: message.to_string(),
    }
}

/// Decides queries against the store and the active policy snapshot.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    policies: Arc<ArcSwap<PolicySnapshot>>,
    authorizer: Arc<Authorizer>,
    cache: Arc<SliceCache>,
}

/// Built request entities kept by default.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

impl Engine {
    pub fn new(store: Store, policies: Arc<ArcSwap<PolicySnapshot>>) -> Self {
        Self {
            store,
            policies,
            authorizer: Arc::new(Authorizer::new()),
            cache: Arc::new(SliceCache::new(DEFAULT_CACHE_ENTRIES)),
        }
    }

    /// Keeps at most `entries` built request entities (0: build every
    /// request's afresh).
    pub fn with_cache_entries(mut self, entries: usize) -> Self {
        self.cache = Arc::new(SliceCache::new(entries));
        self
    }

    /// (hits, misses) of the built-entities cache since start.
    pub fn cache_counts(&self) -> (u64, u64) {
        self.cache.counts()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The active snapshot. A decision holds one snapshot from start to end,
    /// so a reload never gives it a mix of old and new rules.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.policies.load_full()
    }

    pub fn decide(&self, q: &Query) -> Result<Verdict, DecisionError> {
        let snap = self.snapshot();
        let schema = snap.schema();
        let policies = snap.policies_for(&q.action).ok_or_else(|| {
            invalid(
                "action",
                format!("{} is not an action of the schema", q.action),
            )
        })?;
        for (field, uid) in [("principal", &q.principal), ("resource", &q.resource)] {
            if !schema.entity_types().any(|t| t == uid.type_name()) {
                return Err(invalid(
                    field,
                    format!("unknown entity type {}", uid.type_name()),
                ));
            }
        }

        let context = Context::from_json_value(q.context.clone(), Some((schema, &q.action)))
            .map_err(|e| invalid("context", e))?;
        let request = Request::new(
            q.principal.clone(),
            q.action.clone(),
            q.resource.clone(),
            context.clone(),
            Some(schema),
        )
        .map_err(request_error)?;

        let scoped = self.request_entities(q, &snap)?;
        let context_refs = context_entities(&context, q.context.as_object());
        // Request-scoped entities make a request one of a kind: not cached.
        let built = if scoped.is_empty() {
            let key = SliceKey {
                principal: q.principal.clone(),
                action: q.action.clone(),
                resource: q.resource.clone(),
                context_refs,
            };
            let generation = self.store.generation();
            match self.cache.get(&key, generation, snap.version()) {
                Some(built) => built,
                None => {
                    let built = Arc::new(self.build(q, &snap, vec![], key.context_refs.clone())?);
                    self.cache
                        .insert(key, generation, snap.version(), built.clone());
                    built
                }
            }
        } else {
            Arc::new(self.build(q, &snap, scoped, context_refs)?)
        };
        let mut errors = built.missing.clone();
        let entities = &built.entities;

        let response = self.authorizer.is_authorized(&request, policies, entities);
        errors.extend(response.diagnostics().errors().map(|e| e.to_string()));
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        reasons.sort();
        Ok(Verdict {
            allowed: response.decision() == Decision::Allow && errors.is_empty(),
            reasons,
            errors,
            policy_version: snap.version().to_owned(),
        })
    }

    /// The entities a request is decided with: its slice of the store, the
    /// request-scoped entities, and the action.
    fn build(
        &self,
        q: &Query,
        snap: &PolicySnapshot,
        scoped: Vec<Entity>,
        mut attr_refs: Vec<EntityUid>,
    ) -> Result<Built, DecisionError> {
        let scoped_uids: HashSet<EntityUid> = scoped.iter().map(Entity::uid).collect();
        let mut roots: Vec<EntityUid> = [&q.principal, &q.resource]
            .into_iter()
            .filter(|u| !scoped_uids.contains(u))
            .cloned()
            .collect();
        // What a request-scoped entity names is one dereference from a root,
        // like what the context names.
        for e in &scoped {
            let (_, attrs, parents) = e.clone().into_inner();
            roots.extend(parents.into_iter().filter(|p| !scoped_uids.contains(p)));
            for name in attrs.keys() {
                if let Some(Ok(EvalResult::EntityUid(uid))) = e.attr(name) {
                    if !scoped_uids.contains(&uid) {
                        attr_refs.push(uid);
                    }
                }
            }
        }

        let reader = self.store.read()?;
        let root_refs: Vec<&EntityUid> = roots.iter().collect();
        let slice = Slice::gather(&reader, &root_refs, &attr_refs)?;
        drop(reader);

        let mut missing = Vec::new();
        for (role, uid) in [("principal", &q.principal), ("resource", &q.resource)] {
            if slice.missing.contains(uid) {
                missing.push(format!("{role} {uid} is not in the identity store"));
            }
        }
        // Without the schema: stored entities are built to it by
        // construction (tests/slices.rs checks every kind against it) and
        // request-scoped ones were checked on parsing, while conformance
        // checking every slice was a third of a decision's cost. The schema
        // would have added the action entities; the request's one, with its
        // groups, is all that evaluation reads.
        let action = snap
            .action_entity(&q.action)
            .expect("an action with an index entry has an entity")
            .clone();
        let entities = Entities::from_entities(
            slice
                .entities
                .into_values()
                .chain(scoped)
                .chain(std::iter::once(action)),
            None,
        )
        .map_err(|e| invalid("entities", e))?;
        Ok(Built { entities, missing })
    }

    /// Parses the caller's request-scoped entities against the schema and
    /// refuses any that would replace a stored identity.
    fn request_entities(
        &self,
        q: &Query,
        snap: &PolicySnapshot,
    ) -> Result<Vec<Entity>, DecisionError> {
        if q.entities.is_empty() {
            return Ok(Vec::new());
        }
        let reader = self.store.read()?;
        let mut out = Vec::with_capacity(q.entities.len());
        let mut seen = HashSet::new();
        for (i, json) in q.entities.iter().enumerate() {
            let field = format!("entities[{i}]");
            let entity = Entity::from_json_value(json.clone(), Some(snap.schema()))
                .map_err(|e| invalid(&field, e))?;
            let uid = entity.uid();
            if uid.type_name().basename() == "Action" {
                return Err(invalid(
                    &field,
                    "actions come from the schema and may not be sent",
                ));
            }
            let stored = Slice::gather(&reader, &[&uid], &[])?;
            if stored.entities.contains_key(&uid) {
                return Err(invalid(
                    &field,
                    format!(
                        "{uid} is a stored identity; request-scoped entities may not replace it"
                    ),
                ));
            }
            if !seen.insert(uid.clone()) {
                return Err(invalid(&field, format!("{uid} is sent twice")));
            }
            out.push(entity);
        }
        Ok(out)
    }
}

/// Entities named by the context's top-level attributes (`actingFor`).
fn context_entities(
    context: &Context,
    json: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Vec<EntityUid> {
    let Some(json) = json else { return Vec::new() };
    json.keys()
        .filter_map(|k| match context.get(k) {
            Some(EvalResult::EntityUid(uid)) => Some(uid),
            _ => None,
        })
        .collect()
}

fn request_error(e: RequestValidationError) -> DecisionError {
    let field =
        match &e {
            RequestValidationError::UndeclaredAction(_)
            | RequestValidationError::ExternalAction(_) => "action",
            RequestValidationError::UndeclaredPrincipalType(_)
            | RequestValidationError::InvalidPrincipalType(_) => "principal",
            RequestValidationError::UndeclaredResourceType(_)
            | RequestValidationError::InvalidResourceType(_) => "resource",
            RequestValidationError::InvalidContext(_)
            | RequestValidationError::TypeOfContext(_) => "context",
            _ => "request",
        };
    invalid(field, e)
}
