//! Many questions about the same identities, decided over one read snapshot
//! of the store and any policy snapshot: what impact analysis needs (every
//! function of one principal, under the active and a candidate set). The
//! entities are gathered once for all the questions, and each is decided
//! exactly as [`super::Engine::decide`] decides it — same request checks,
//! same per-action index, same fail-closed verdict — but without the cache,
//! which is filed under the live store's generation, not a snapshot.

use std::collections::HashSet;

use cedar_policy::{Entities, EntityUid};

use crate::policy::PolicySnapshot;
use crate::store::StoreReader;

use super::slice::Slice;
use super::{checked_request, context, not_stored, verdict, DecisionError, Query, Verdict};

/// Entities gathered for a batch of questions.
pub struct Batch {
    entities: Entities,
    missing: HashSet<EntityUid>,
}

impl Batch {
    /// Gathers `roots` (every principal, resource and context entity the
    /// questions will name) from `reader`, with the entities of `actions`
    /// (and their groups) from `snap`.
    pub fn gather(
        reader: &StoreReader,
        snap: &PolicySnapshot,
        roots: &[&EntityUid],
        actions: &[EntityUid],
    ) -> Result<Self, DecisionError> {
        let slice = Slice::gather(reader, roots, &[], true)?;
        let action_entities = actions
            .iter()
            .filter_map(|a| snap.action_entity(a).cloned())
            .collect::<Vec<_>>();
        let entities = super::cedar_entities(slice.entities.into_values(), action_entities)?;
        Ok(Self {
            entities,
            missing: slice.missing,
        })
    }

    /// Decides `q` with `snap` over the gathered entities.
    pub fn decide(&self, snap: &PolicySnapshot, q: &Query) -> Result<Verdict, DecisionError> {
        let considered = super::considered(snap, q)?;
        let (request, ctx) = checked_request(q, snap)?;
        let refs = context::entities(&ctx, q.context.as_object());
        let missing = not_stored(q, &refs, |uid| self.missing.contains(uid));
        let evaluated =
            crate::policy::evaluate::evaluate(&request, considered.prepared, &self.entities);
        Ok(verdict(snap, considered.all, evaluated, missing))
    }
}
