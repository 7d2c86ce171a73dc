//! Single stored identities as built Cedar entities, shared by every
//! request that names them while the store is unchanged.
//!
//! A request whose built entities are not cached ([`super::cache`]) still
//! names mostly entities other requests named: every clerk's slice holds
//! the business functions its roles grant, an enterprise's staff share the
//! enterprise and its permission identities. Reading and decoding each
//! record and evaluating its attributes into a Cedar entity was most of
//! building a slice; an entity built once per store generation is cloned
//! instead.
//!
//! **Consistency.** An entry is filed only when it was built from a
//! snapshot holding exactly the state of the (even) store generation read
//! before it (`Store::read_exact`: the generation is odd while a write of
//! decision inputs commits), and is served only at that generation; an
//! entry of another generation is a miss. So the entries of one generation
//! are all of one state and may be combined in one slice. A question whose
//! snapshot turns out not to be exact (a write committed meanwhile) files
//! nothing, and if it had already used entries, rebuilds its whole slice
//! from one snapshot (`Engine::gather_memoized`): mixing a grant from
//! before a write with a membership from after it could allow what neither
//! state allows. A write is visible from the first question that starts
//! after it.
//!
//! **Bounds.** `quick_cache`, weighted by each entity's estimated bytes
//! ([`super::cache::estimate_bytes`]).

use std::sync::Arc;

use cedar_policy::EntityUid;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use super::slice::Loaded;

#[derive(Clone)]
struct Filed {
    generation: u64,
    loaded: Arc<Loaded>,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<EntityUid, Filed> for ByBytes {
    fn weight(&self, uid: &EntityUid, filed: &Filed) -> u64 {
        // The key's uid and the slot.
        const KEY_AND_SLOT: usize = super::cache::UID_BYTES + 64;
        (filed.loaded.bytes(uid) + KEY_AND_SLOT) as u64
    }
}

/// Built entities of single identities, by uid.
pub struct EntityMemo {
    /// `None`: off.
    entries: Option<Cache<EntityUid, Filed, ByBytes>>,
}

/// An average entity, to size the tables up front.
const TYPICAL_ENTITY_BYTES: u64 = 1500;

impl EntityMemo {
    /// At most about `max_bytes` of entities; 0 keeps none.
    pub fn new(max_bytes: u64) -> Self {
        let entries = (max_bytes > 0).then(|| {
            let items = (max_bytes / TYPICAL_ENTITY_BYTES).max(16) as usize;
            Cache::with_weighter(items, max_bytes, ByBytes)
        });
        Self { entries }
    }

    /// The entity `uid` built at exactly `generation`.
    pub(crate) fn get(&self, uid: &EntityUid, generation: u64) -> Option<Arc<Loaded>> {
        let filed = self.entries.as_ref()?.get(uid)?;
        (filed.generation == generation).then_some(filed.loaded)
    }

    /// Files `loaded`, built from a snapshot taken at `generation` or later.
    pub(crate) fn insert(&self, uid: &EntityUid, generation: u64, loaded: Arc<Loaded>) {
        if let Some(entries) = &self.entries {
            entries.insert(uid.clone(), Filed { generation, loaded });
        }
    }
}
