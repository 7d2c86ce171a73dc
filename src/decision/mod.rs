//! Authorization decisions: a request, the entity slice from the store, and
//! the active policy snapshot in; allow or deny with the deciding policies out.
//!
//! Fail closed: Cedar skips a policy whose evaluation errors — a `forbid`
//! included — so an evaluation error could turn a deny into an allow. Any
//! error, and any principal, resource or context entity the store does not
//! hold, makes the decision deny.
//!
//! Every entity comes from the store: every type of the schema is a stored
//! identity (or an enum or action the schema itself defines), so nothing a
//! caller sends may stand in for one — a made-up uid with real parents would
//! otherwise inherit their grants.

pub mod batch;
pub mod cache;
pub mod calendar;
pub mod config;
mod context;
#[doc(hidden)]
pub mod fixture;
mod memo;
pub mod slice;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arc_swap::ArcSwap;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityUid, Request, RequestValidationError,
};

use crate::domain::EntityKind;
use crate::policy::PolicySnapshot;
use crate::store::{Store, StoreError};
use cache::{Built, SliceCache, SliceKey};
use memo::EntityMemo;
pub use slice::{uid, Slice, NAMESPACE};

/// One authorization question.
#[derive(Debug, Clone)]
pub struct Query {
    pub principal: EntityUid,
    pub action: EntityUid,
    pub resource: EntityUid,
    /// A JSON object, checked against the action's context type.
    pub context: serde_json::Value,
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
    /// For a deny a forbid decided: that forbid's `@code` and `@message`,
    /// from the same snapshot that decided (see [`PolicySnapshot::refusal`]).
    pub refusal: Option<Arc<crate::policy::Refusal>>,
    /// A default deny (no permit matched, no forbid, no error): the ids of
    /// the permits the action's index held, so the record can say what was
    /// considered and did not apply. Empty otherwise.
    pub unmatched_permits: Vec<String>,
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
    memo: Arc<EntityMemo>,
    calendar: Arc<calendar::CalendarCache>,
}

pub use config::{CacheArgs, DEFAULT_DECISION_CACHE_BYTES};

impl Engine {
    pub fn new(store: Store, policies: Arc<ArcSwap<PolicySnapshot>>) -> Self {
        Self {
            store,
            policies,
            authorizer: Arc::new(Authorizer::new()),
            cache: Arc::new(SliceCache::new(0)),
            memo: Arc::new(EntityMemo::new(0)),
            calendar: Arc::default(),
        }
        .with_cache_bytes(DEFAULT_DECISION_CACHE_BYTES)
    }

    /// Keeps at most about `bytes` of built entities (0: build every
    /// request's afresh from the store): three quarters for whole requests'
    /// entities, a quarter for single identities shared between requests.
    pub fn with_cache_bytes(self, bytes: u64) -> Self {
        let entities = bytes / 4;
        self.with_caches(bytes - entities, entities)
    }

    /// Keeps at most about `requests` bytes of whole requests' built
    /// entities ([`cache`]) and `entities` bytes of single identities'
    /// ([`memo`]).
    pub fn with_caches(mut self, requests: u64, entities: u64) -> Self {
        self.cache = Arc::new(SliceCache::new(requests));
        self.memo = Arc::new(EntityMemo::new(entities));
        self
    }

    /// (hits, misses) of the built-entities cache since start.
    pub fn cache_counts(&self) -> (u64, u64) {
        self.cache.counts()
    }

    /// Entries the built-entities cache holds, and their estimated bytes.
    pub fn cache_usage(&self) -> (usize, u64) {
        self.cache.usage()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `year`'s workday calendar (`YYYY`; empty when none was fed), read
    /// again only after a store commit ([`calendar`]).
    pub fn calendar_year(
        &self,
        year: &str,
    ) -> Result<Arc<crate::store::CalendarYearRecord>, StoreError> {
        self.calendar.year(&self.store, year)
    }

    /// The active snapshot. A decision holds one snapshot from start to end,
    /// so a reload never gives it a mix of old and new rules.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.policies.load_full()
    }

    pub fn decide(&self, q: &Query) -> Result<Verdict, DecisionError> {
        let snap = self.snapshot();
        let policies = snap.policies_for(&q.action).ok_or_else(|| {
            invalid(
                "action",
                format!("{} is not an action of the schema", q.action),
            )
        })?;
        let (request, built) = self.request_and_entities(q, &snap)?;
        let response = self
            .authorizer
            .is_authorized(&request, policies, &built.entities);
        Ok(verdict(&snap, policies, &response, built.missing.clone()))
    }

    /// The trace of `q` over the action's policies (`policy::explain`), on
    /// the entities its decision is built from. It decides nothing: the
    /// decision still goes through [`Engine::decide`].
    pub fn explain(&self, q: &Query) -> Result<crate::policy::explain::Explanation, DecisionError> {
        let snap = self.snapshot();
        let (request, built) = self.request_and_entities(q, &snap)?;
        Ok(crate::policy::explain::explain(
            &snap,
            &request,
            &built.entities,
        ))
    }

    /// The checked request and the entities it is decided with.
    fn request_and_entities(
        &self,
        q: &Query,
        snap: &PolicySnapshot,
    ) -> Result<(Request, Arc<Built>), DecisionError> {
        let (request, context) = checked_request(q, snap)?;
        let key = SliceKey {
            principal: q.principal.clone(),
            action: q.action.clone(),
            resource: q.resource.clone(),
            context_refs: context::entities(&context, q.context.as_object()),
        };
        Ok((request, self.entities(key, snap)?))
    }

    /// The request's entities: from the cache when nothing they were built
    /// from changed, else built and filed.
    fn entities(&self, key: SliceKey, snap: &PolicySnapshot) -> Result<Arc<Built>, DecisionError> {
        let generation = self.store.generation();
        if let Some(built) = self.cache.get(&key, generation, snap.version()) {
            return Ok(built);
        }
        let built = Arc::new(self.build(&key, generation, snap)?);
        self.cache
            .insert(key, generation, snap.version(), built.clone());
        Ok(built)
    }

    /// The entities a request is decided with: its slice of the store and
    /// the action.
    fn build(
        &self,
        key: &SliceKey,
        generation: u64,
        snap: &PolicySnapshot,
    ) -> Result<Built, DecisionError> {
        let context_refs: Vec<EntityUid> = key
            .context_refs
            .iter()
            .map(|(_, uid)| uid.clone())
            .collect();
        let roots = [&key.principal, &key.resource];
        let slice = match self.gather_memoized(&roots, &context_refs, generation)? {
            Some(slice) => slice,
            // A write committed while the memo was in use: its entities and
            // the snapshot's may be of different states, and a slice mixing
            // a grant from before a write with a membership from after it
            // can allow what neither state allows. Everything from one
            // snapshot instead.
            None => {
                let reader = self.store.read()?;
                Slice::gather_with(&roots, &context_refs, |uid| {
                    Ok(slice::load(&reader, uid)?.map(Arc::new))
                })?
            }
        };

        let mut missing = Vec::new();
        for (role, uid) in [("principal", &key.principal), ("resource", &key.resource)] {
            if slice.missing.contains(uid) {
                missing.push(format!("{role} {uid} is not in the identity store"));
            }
        }
        for (name, uid) in &key.context_refs {
            if slice.missing.contains(uid) {
                missing.push(format!("context.{name} {uid} is not in the identity store"));
            }
        }
        // Without the schema: stored entities are built to it by
        // construction (tests/slices.rs checks every kind against it), while
        // conformance checking every slice was a third of a decision's cost.
        // The schema would have added the action entities; the request's
        // one, with its groups, is all that evaluation reads.
        let action = snap
            .action_entity(&key.action)
            .expect("an action with an index entry has an entity")
            .clone();
        let attributes = slice.attributes;
        let entities = Entities::from_entities(
            slice.entities.into_values().chain(std::iter::once(action)),
            None,
        )
        .map_err(|e| invalid("request", e))?;
        let bytes = estimated_bytes(&entities, attributes);
        Ok(Built {
            entities,
            missing,
            bytes,
        })
    }
}

impl Engine {
    /// The slice from the memo and, for what it lacks, one snapshot opened
    /// at the first such identity (a slice made of shared identities reads
    /// nothing). `None` when that snapshot is not exactly of `generation`
    /// after memo entries were used: the caller rebuilds from one snapshot.
    fn gather_memoized(
        &self,
        roots: &[&EntityUid],
        context_refs: &[EntityUid],
        generation: u64,
    ) -> Result<Option<Slice>, StoreError> {
        let mut reader: Option<(crate::store::StoreReader, bool)> = None;
        let mut used_memo = false;
        let slice = Slice::gather_with(roots, context_refs, |uid| {
            let exact = reader.as_ref().is_none_or(|(_, exact)| *exact);
            if exact {
                if let Some(built) = self.memo.get(uid, generation) {
                    used_memo = true;
                    return Ok(Some(built));
                }
            }
            if reader.is_none() {
                reader = Some(self.store.read_exact(generation)?);
            }
            let (snapshot, exact) = reader.as_ref().expect("just opened");
            let loaded = slice::load(snapshot, uid)?.map(Arc::new);
            if let (Some(l), true) = (&loaded, *exact) {
                self.memo.insert(uid, generation, l.clone());
            }
            Ok(loaded)
        })?;
        let mixed = used_memo && reader.as_ref().is_some_and(|(_, exact)| !exact);
        Ok((!mixed).then_some(slice))
    }
}

/// The heap a request's entities hold, estimated from their ids, their
/// `attributes` in all and each one's ancestor closure.
fn estimated_bytes(entities: &Entities, attributes: usize) -> usize {
    let (mut id_bytes, mut ancestors) = (0, 0);
    for e in entities.iter() {
        let uid = e.uid();
        id_bytes += uid.id().unescaped().len();
        ancestors += entities.ancestors(&uid).map_or(0, Iterator::count);
    }
    cache::estimate_bytes(entities.len(), id_bytes, attributes, ancestors)
}

/// The query as a Cedar request checked against the schema, and its
/// context; a request error names the field that is wrong.
fn checked_request(q: &Query, snap: &PolicySnapshot) -> Result<(Request, Context), DecisionError> {
    let schema = snap.schema();
    for (field, uid) in [("principal", &q.principal), ("resource", &q.resource)] {
        if !schema.entity_types().any(|t| t == uid.type_name()) {
            return Err(invalid(
                field,
                format!("unknown entity type {}", uid.type_name()),
            ));
        }
    }
    let context = context::of_json(&q.context, schema, &q.action)?;
    let request = Request::new(
        q.principal.clone(),
        q.action.clone(),
        q.resource.clone(),
        context.clone(),
        Some(schema),
    )
    .map_err(request_error)?;

    // `actingFor` says whose business an agent does (R8); for anyone
    // else it would only be recorded, as if they had acted for that
    // enterprise.
    if q.context.get(ACTING_FOR).is_some()
        && q.principal.type_name().basename() != EntityKind::AgentStaff.as_str()
    {
        return Err(invalid(
            format!("context.{ACTING_FOR}"),
            format!(
                "only agent staff act for a client; {} may not",
                q.principal.type_name()
            ),
        ));
    }
    Ok((request, context))
}

/// What Cedar's answer means, failing closed: `errors` (the identities the
/// store lacks) and any evaluation error make it a deny.
fn verdict(
    snap: &PolicySnapshot,
    policies: &cedar_policy::PolicySet,
    response: &cedar_policy::Response,
    mut errors: Vec<String>,
) -> Verdict {
    errors.extend(response.diagnostics().errors().map(|e| e.to_string()));
    let mut reasons: Vec<String> = response
        .diagnostics()
        .reason()
        .map(|id| id.to_string())
        .collect();
    reasons.sort();
    let allowed = response.decision() == Decision::Allow && errors.is_empty();
    if !allowed && response.decision() == Decision::Allow {
        // Denied by an error, not by a rule: the permits Cedar matched
        // did not decide, and naming them would read as the refusal.
        reasons.clear();
    }
    let refusal = (!allowed).then(|| snap.refusal(&reasons)).flatten();
    let unmatched_permits = if allowed || !reasons.is_empty() || !errors.is_empty() {
        Vec::new()
    } else {
        permit_ids(policies)
    };
    Verdict {
        allowed,
        reasons,
        errors,
        policy_version: snap.version().to_owned(),
        refusal,
        unmatched_permits,
    }
}

/// The ids of the permits in an action's index, sorted.
fn permit_ids(policies: &cedar_policy::PolicySet) -> Vec<String> {
    let mut ids: Vec<String> = policies
        .policies()
        .filter(|p| p.effect() == cedar_policy::Effect::Permit)
        .map(|p| p.id().to_string())
        .collect();
    ids.sort();
    ids
}

/// The context attribute naming the client an agent acts for (R8).
pub const ACTING_FOR: &str = "actingFor";

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
