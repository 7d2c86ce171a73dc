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
mod packed;
pub mod request_check;
pub mod slice;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arc_swap::ArcSwap;
use cedar_policy::{Context, Entities, EntityUid, Request, RequestValidationError};
use cedar_policy_core::ast;
use cedar_policy_core::entities::TCComputation;

use crate::domain::EntityKind;
use crate::policy::PolicySnapshot;
use crate::store::{Store, StoreError};
use cache::{Built, SliceCache, SliceKey};
pub use context::{CedarValue, Stamped, CLOCK_ATTRIBUTES};
use memo::EntityMemo;
use packed::{Packed, PackedKey};
pub use slice::{uid, Slice, NAMESPACE};

/// One authorization question.
#[derive(Debug, Clone)]
pub struct Query {
    pub principal: EntityUid,
    pub action: EntityUid,
    pub resource: EntityUid,
    /// A JSON object, checked against the action's context type: what the
    /// caller sent.
    pub context: serde_json::Value,
    /// The attributes the sidecar sets itself (`flows::clock::stamp`),
    /// already evaluated, added to `context`'s for Cedar.
    pub stamped: Option<Stamped>,
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
        // Named after what the caller sent (`context.<attribute>`).
        field: bounded_to(&field.into(), 100),
        message: bounded(&message.to_string()),
    }
}

/// At most the first 300 bytes of `message` (Cedar's errors quote what
/// they could not read): a refusal is answered and recorded, and a value
/// of kilobytes must not be carried into either.
pub fn bounded(message: &str) -> String {
    bounded_to(message, 300)
}

fn bounded_to(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_owned();
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes more)", &message[..end], message.len() - end)
}

/// Decides queries against the store and the active policy snapshot.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    policies: Arc<ArcSwap<PolicySnapshot>>,
    cache: Arc<SliceCache>,
    packed: Arc<SliceCache<PackedKey, Packed>>,
    memo: Arc<EntityMemo>,
    calendar: Arc<calendar::CalendarCache>,
}

pub use config::{CacheArgs, DEFAULT_DECISION_CACHE_BYTES};

impl Engine {
    pub fn new(store: Store, policies: Arc<ArcSwap<PolicySnapshot>>) -> Self {
        Self {
            store,
            policies,
            cache: Arc::new(SliceCache::new(0, 1)),
            packed: Arc::new(SliceCache::new(0, 1)),
            memo: Arc::new(EntityMemo::new(0)),
            calendar: Arc::default(),
        }
        .with_cache_bytes(DEFAULT_DECISION_CACHE_BYTES)
    }

    /// Keeps at most about `bytes` of built entities (0: build every
    /// request's afresh from the store): five sixteenths for whole
    /// requests' entities as Cedar's (a thousand-staff bureau's principals:
    /// ~1,100 at ~8.6 kB), ten for the same packed (a fifteenth of the size
    /// each: a million-staff bureau's ~29,000 at ~0.56 kB, with a quarter to
    /// spare), one for single identities shared between requests (used
    /// only when both tiers lack a question's set).
    pub fn with_cache_bytes(self, bytes: u64) -> Self {
        let entities = bytes / 16;
        let packed = bytes / 16 * 10;
        self.with_caches(bytes - entities - packed, packed, entities)
    }

    /// Keeps at most about `built` bytes of whole requests' entities as
    /// Cedar's ([`cache`]), `packed` bytes of them packed ([`packed`]) and
    /// `entities` bytes of single identities' ([`memo`]).
    pub fn with_caches(mut self, built: u64, packed: u64, entities: u64) -> Self {
        self.cache = Arc::new(SliceCache::new(built, 16 << 10));
        self.packed = Arc::new(SliceCache::new(packed, 1 << 10));
        self.memo = Arc::new(EntityMemo::new(entities));
        self
    }

    /// (hits, misses) of the built-entities cache since start, its two
    /// tiers together.
    pub fn cache_counts(&self) -> (u64, u64) {
        // A question meets the packed tier only after missing Cedar's, so
        // read the packed tier's hits first: each of them is then among
        // the misses read after.
        let (packed_hits, _) = self.packed.counts();
        let (hits, misses) = self.cache.counts();
        (hits + packed_hits, misses.saturating_sub(packed_hits))
    }

    /// Entries the built-entities cache holds, and their estimated bytes.
    pub fn cache_usage(&self) -> (usize, u64) {
        let (a, b) = (self.cache.usage(), self.packed.usage());
        (a.0 + b.0, a.1 + b.1)
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
        self.decide_and(q, |_, _, _| ())
            .map(|(verdict, ())| verdict)
    }

    /// The decision of `q` and its trace over the action's policies
    /// (`policy::explain`), both of one policy snapshot and one set of
    /// entities: a reload or a store write between them would otherwise
    /// give a trace that did not make the decision.
    pub fn decide_explained(
        &self,
        q: &Query,
    ) -> Result<(Verdict, crate::policy::explain::Explanation), DecisionError> {
        self.decide_and(q, crate::policy::explain::explain)
    }

    /// Decides `q`, handing `also` the snapshot, request and entities the
    /// decision was made on.
    fn decide_and<T>(
        &self,
        q: &Query,
        also: impl FnOnce(&PolicySnapshot, &Request, &Entities) -> T,
    ) -> Result<(Verdict, T), DecisionError> {
        let snap = self.snapshot();
        let considered = considered(&snap, q)?;
        let (request, built, missing) =
            self.request_and_entities(q, &snap, considered.only_roots)?;
        let evaluated =
            crate::policy::evaluate::evaluate(&request, considered.prepared, &built.entities);
        let also = also(&snap, &request, &built.entities);
        Ok((verdict(&snap, considered.all, evaluated, missing), also))
    }

    /// The checked request, the entities it is decided with, and what it
    /// names that the store does not hold — all of one state of the store.
    ///
    /// A bare resource (a business function: [`EntityKind::is_bare`]) is
    /// not among the entities, so one principal's entities serve every
    /// function it asks about; whether the store holds it is looked up
    /// apart, at the same store generation.
    ///
    /// With `only_roots` (the policies to evaluate read no other entity's
    /// data: [`crate::policy::Considered`]) the entities are the principal
    /// and resource alone. The policy version decides it, so it is the same
    /// for every question of one key the cache tiers hold.
    fn request_and_entities(
        &self,
        q: &Query,
        snap: &PolicySnapshot,
        only_roots: bool,
    ) -> Result<(Request, Arc<Built>, Vec<String>), DecisionError> {
        let (request, context) = checked_request(q, snap)?;
        let bare = EntityKind::of(&q.resource).is_some_and(EntityKind::is_bare);
        let key = SliceKey {
            principal: q.principal.clone(),
            action: q.action.clone(),
            resource: (!bare).then(|| q.resource.clone()),
            context_refs: context::entities(&context, q.context.as_object()),
        };
        let follow = !only_roots;
        let generation = self.store.generation();
        let version = snap.version();
        let mut source = Memoized::new(self, generation);
        let (built, filed) = match self.cache.get(&key, generation, version) {
            Some(built) => {
                source.used_memo = true;
                (built, Filed::Everywhere)
            }
            None => {
                let packed_key = self.packed.is_on().then(|| packed::key(&key)).flatten();
                let unpacked = packed_key.as_ref().and_then(|k| {
                    let packed = self.packed.get(k, generation, version)?;
                    packed.unpack(action_entity(snap, &key.action))
                });
                match unpacked {
                    Some(built) => {
                        source.used_memo = true;
                        (Arc::new(built), Filed::Packed)
                    }
                    None => {
                        let slice = self.gather(&key, follow, &mut source)?;
                        let built = Arc::new(assemble(slice, snap, &key.action)?);
                        (built, Filed::Nowhere(packed_key))
                    }
                }
            }
        };
        let resource_stored = !bare || slice::find(&mut source, &q.resource)?.is_some();
        if source.mixed() {
            // A write committed while this question used what was built
            // at `generation`: its entities and the rest may be of
            // different states, and a slice mixing a grant from before a
            // write with a membership from after it can allow what neither
            // state allows. Everything from one snapshot instead.
            let whole = SliceKey {
                resource: Some(q.resource.clone()),
                ..key
            };
            let reader = self.store.read()?;
            let built = assemble(
                Slice::gather(&reader, &whole.roots(), &whole.refs(), follow)?,
                snap,
                &q.action,
            )?;
            let missing = not_stored(q, &whole.context_refs, |uid| built.missing.contains(uid));
            return Ok((request, Arc::new(built), missing));
        }
        let missing = if built.missing.is_empty() && resource_stored {
            Vec::new()
        } else {
            not_stored(q, &key.context_refs, |uid| {
                built.missing.contains(uid) || (uid == &q.resource && !resource_stored)
            })
        };
        if source.exact() {
            match filed {
                Filed::Everywhere => {}
                Filed::Packed if !admit_unpacked() => {}
                Filed::Packed | Filed::Nowhere(None) => {
                    self.cache.insert(key, generation, version, built.clone());
                }
                Filed::Nowhere(Some(packed_key)) => {
                    if let Some(packed) = packed::pack(&built) {
                        let packed = Arc::new(packed);
                        self.packed.insert(packed_key, generation, version, packed);
                    }
                    self.cache.insert(key, generation, version, built.clone());
                }
            }
        }
        Ok((request, built, missing))
    }

    /// The slice of `key` from the memo and, for what it lacks, the
    /// snapshot `source` opens.
    fn gather(
        &self,
        key: &SliceKey,
        follow: bool,
        source: &mut Memoized,
    ) -> Result<Slice, StoreError> {
        Slice::gather_with(&key.roots(), &key.refs(), follow, source)
    }
}

/// The index entry `q` is decided with: only the policies a principal of
/// its type can match (the record still lists the action's permits when
/// none applied).
fn considered<'s>(
    snap: &'s PolicySnapshot,
    q: &Query,
) -> Result<crate::policy::Considered<'s>, DecisionError> {
    snap.considered(&q.action, q.principal.type_name())
        .ok_or_else(|| {
            invalid(
                "action",
                format!("{} is not an action of the schema", q.action),
            )
        })
}

/// The entities a request is decided with: `slice` and the action's.
fn assemble(
    slice: Slice,
    snap: &PolicySnapshot,
    action: &EntityUid,
) -> Result<Built, DecisionError> {
    // Without the schema: stored entities are built to it by construction
    // (tests/slices.rs checks every kind against it), while conformance
    // checking every slice was a third of a decision's cost. The schema
    // would have added the action entities; the request's one, with its
    // groups, is all that evaluation reads.
    let action = action_entity(snap, action);
    let (attributes, slice_missing) = (slice.attributes, slice.missing);
    let entities = cedar_entities(slice.entities.into_values(), [action])?;
    // What the store lacks is named by the caller, ids of any length.
    let missing_bytes: usize = slice_missing
        .iter()
        .map(|uid| cache::UID_BYTES + uid.id().unescaped().len())
        .sum();
    let bytes = estimated_bytes(&entities, attributes) + missing_bytes;
    Ok(Built {
        entities,
        missing: slice_missing,
        bytes,
    })
}

/// The entity of `action` with its groups, as `snap`'s schema has it.
fn action_entity(snap: &PolicySnapshot, action: &EntityUid) -> Arc<ast::Entity> {
    snap.action_entity(action)
        .expect("an action with an index entry has an entity")
        .clone()
}

/// Where a request's entities were found, so they are filed in the tiers
/// that lack them.
enum Filed {
    /// In Cedar's form: nothing to file.
    Everywhere,
    /// Packed only.
    Packed,
    /// Built from the store: both tiers lack them (the packed one under
    /// this key; `None` when the key does not pack).
    Nowhere(Option<PackedKey>),
}

/// One in this many sets unpacked from the packed tier is filed in
/// Cedar's tier as well.
const ADMIT_UNPACKED_EVERY: u32 = 16;

/// Whether this set, unpacked from the packed tier, is filed in Cedar's
/// tier too: one in [`ADMIT_UNPACKED_EVERY`] per thread. A set unpacked
/// is one Cedar's tier could not keep; when the questions asked outnumber
/// what that tier holds (a million staff: ~29,000 principals against
/// ~1,100), filing each evicts another that is as likely to be asked
/// next, and inserting one `Entities` and dropping another cost ~6 % of
/// a question over the million-staff mix in process (BENCHMARKS.md,
/// session 12). A set asked again and again still gets in after a few
/// unpackings.
fn admit_unpacked() -> bool {
    thread_local! {
        static UNPACKED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    UNPACKED.with(|n| {
        let next = n.get().wrapping_add(1);
        n.set(next);
        next % ADMIT_UNPACKED_EVERY == 0
    })
}

/// `entities` as Cedar's. Their parents are whole ancestries already
/// ([`slice`]), so Cedar is told the transitive closure is computed and
/// does not compute it again (its single-pass repair found nothing to add
/// yet was a sixth of an uncached decision; BENCHMARKS.md, session 14).
/// The stored hierarchy has no cycles to miss: each kind's parents are of
/// kinds further down the one chain (Staff → PermissionIdentity →
/// Function, Staff → Enterprise, AgentStaff → Agency). Debug builds, and
/// so the tests, have Cedar check that the closure is whole instead.
fn cedar_entities(
    built: impl IntoIterator<Item = ast::Entity>,
    shared: impl IntoIterator<Item = Arc<ast::Entity>>,
) -> Result<Entities, DecisionError> {
    use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema};
    let closure = if cfg!(debug_assertions) {
        TCComputation::EnforceAlreadyComputed
    } else {
        TCComputation::AssumeAlreadyComputed
    };
    let extensions = cedar_policy_core::extensions::Extensions::all_available();
    // The set's own entities in one go (`add_entities` also keeps a set of
    // the uids it touched, for a closure it is told not to compute: a
    // sixth of unpacking a packed set), then the shared ones (the
    // action's) by reference; duplicates are refused alike.
    let own = CoreEntities::from_entities(built, None::<&NoEntitiesSchema>, closure, extensions)
        .map_err(|e| invalid("request", e))?;
    own.add_entities(shared, None::<&NoEntitiesSchema>, closure, extensions)
        .map(Entities::from)
        .map_err(|e| invalid("request", e))
}

/// An error for each entity `q` names — principal, resource, then the
/// context's `refs` — that the store `lacks`.
fn not_stored(
    q: &Query,
    refs: &[(String, EntityUid)],
    lacks: impl Fn(&EntityUid) -> bool,
) -> Vec<String> {
    let named = [
        ("principal".to_owned(), &q.principal),
        ("resource".to_owned(), &q.resource),
    ];
    let context = refs
        .iter()
        .map(|(name, uid)| (format!("context.{name}"), uid));
    named
        .into_iter()
        .chain(context)
        .filter(|(_, uid)| lacks(uid))
        .map(|(role, uid)| format!("{role} {uid} is not in the identity store"))
        .collect()
}

/// The memo at `generation`, and for what it lacks a snapshot opened at
/// the first such identity. Once that snapshot turns out not to be exactly
/// of `generation`, the memo is neither read nor filed.
struct Memoized<'a> {
    engine: &'a Engine,
    generation: u64,
    /// The snapshot, and whether it is exactly of `generation`.
    reader: Option<(crate::store::StoreReader, bool)>,
    /// Something built at `generation` was used: a memo entry or a cached
    /// request's entities.
    used_memo: bool,
}

impl<'a> Memoized<'a> {
    fn new(engine: &'a Engine, generation: u64) -> Self {
        Self {
            engine,
            generation,
            reader: None,
            used_memo: false,
        }
    }

    /// Everything read so far is of the state of `generation`.
    fn exact(&self) -> bool {
        self.reader.as_ref().is_none_or(|(_, exact)| *exact)
    }

    /// What was built at `generation` was used beside a snapshot of
    /// another state.
    fn mixed(&self) -> bool {
        self.used_memo && !self.exact()
    }
}

impl slice::Source for Memoized<'_> {
    fn built(&mut self, uid: &EntityUid) -> Option<Arc<slice::Loaded>> {
        if !self.exact() {
            return None;
        }
        let built = self.engine.memo.get(uid, self.generation)?;
        self.used_memo = true;
        Some(built)
    }

    fn reader(&mut self) -> Result<&crate::store::StoreReader, StoreError> {
        if self.reader.is_none() {
            self.reader = Some(self.engine.store.read_exact(self.generation)?);
        }
        Ok(&self.reader.as_ref().expect("just opened").0)
    }

    fn file(&mut self, uid: &EntityUid, loaded: &Arc<slice::Loaded>) {
        if self.exact() {
            self.engine
                .memo
                .insert(uid, self.generation, loaded.clone());
        }
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
    let stamped = q.stamped.as_ref().map_or(&[][..], context::Stamped::json);
    let shape = request_check::Shape::of(&q.action, &q.principal, &q.resource, &q.context, stamped);
    let accepted = snap.accepted_requests();
    let known = shape.as_ref().is_some_and(|s| accepted.contains(s));
    // A known shape's types are the schema's: it was accepted by Cedar's
    // check against this schema. The scan of every type is for the rest.
    if !known {
        for (field, uid) in [("principal", &q.principal), ("resource", &q.resource)] {
            if !schema.entity_types().any(|t| t == uid.type_name()) {
                return Err(invalid(
                    field,
                    format!("unknown entity type {}", uid.type_name()),
                ));
            }
        }
    }
    let context = context::of_json(&q.context, q.stamped.as_ref(), schema, &q.action)?;
    let request = Request::new(
        q.principal.clone(),
        q.action.clone(),
        q.resource.clone(),
        context.clone(),
        (!known).then_some(schema),
    )
    .map_err(|e| match e {
        // A context built directly (`context`) is checked here, and this
        // error names no attribute and repeats the whole context; Cedar's
        // reader says which attribute is wrong.
        RequestValidationError::InvalidContext(_) => {
            let whole = match context::as_one_json(&q.context, q.stamped.as_ref()) {
                Ok(whole) => whole,
                Err(duplicate) => return duplicate,
            };
            match Context::from_json_value(whole, Some((schema, &q.action))) {
                Err(precise) => invalid("context", precise),
                Ok(_) => request_error(e),
            }
        }
        e => request_error(e),
    })?;
    if let (false, Some(shape)) = (known, shape) {
        accepted.insert(shape);
    }

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
    evaluated: crate::policy::evaluate::Evaluated<'_>,
    missing: Vec<String>,
) -> Verdict {
    let reasons = evaluated.reasons.into_iter().map(policy_id_text).collect();
    decided(
        snap,
        policies,
        evaluated.allowed,
        reasons,
        missing,
        evaluated.errors,
    )
}

/// The verdict of Cedar's own authorizer's `response` (what tests hold
/// the engine to).
#[cfg(test)]
fn verdict_of_response(
    snap: &PolicySnapshot,
    policies: &cedar_policy::PolicySet,
    response: &cedar_policy::Response,
) -> Verdict {
    let reasons = response
        .diagnostics()
        .reason()
        .map(policy_id_text)
        .collect();
    let errors = response.diagnostics().errors().map(|e| e.to_string());
    decided(
        snap,
        policies,
        response.decision() == cedar_policy::Decision::Allow,
        reasons,
        Vec::new(),
        errors.collect(),
    )
}

/// The verdict of a question Cedar answered `cedar_allowed` with
/// `reasons` determining and `evaluation_errors`, and whose `missing`
/// identities were named before Cedar was asked.
fn decided(
    snap: &PolicySnapshot,
    policies: &cedar_policy::PolicySet,
    cedar_allowed: bool,
    mut reasons: Vec<String>,
    mut errors: Vec<String>,
    evaluation_errors: Vec<String>,
) -> Verdict {
    errors.extend(evaluation_errors);
    reasons.sort();
    let allowed = cedar_allowed && errors.is_empty();
    if !allowed && cedar_allowed {
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

/// A policy id as records name it: its `Display`, which escapes it as
/// `str::escape_debug` does. An id of printable ASCII without quotes or
/// backslashes (every id of the bundled policies) is its own escape, and
/// is copied rather than run through the formatter for every question.
fn policy_id_text(id: &cedar_policy::PolicyId) -> String {
    let text: &str = id.as_ref();
    let plain = |b: &u8| (b' '..=b'~').contains(b) && !matches!(b, b'"' | b'\\' | b'\'');
    if text.as_bytes().iter().all(plain) {
        text.to_owned()
    } else {
        id.to_string()
    }
}

/// The ids of the permits in an action's index, sorted.
fn permit_ids(policies: &cedar_policy::PolicySet) -> Vec<String> {
    let mut ids: Vec<String> = policies
        .policies()
        .filter(|p| p.effect() == cedar_policy::Effect::Permit)
        .map(|p| policy_id_text(p.id()))
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
