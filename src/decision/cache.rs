//! Built request entities, reused while nothing they were built from changed.
//!
//! Building a request's `Entities` (reading the slice from redb, decoding the
//! records, computing the ancestor closure) is most of a decision's cost, and
//! a tax system asks the same few questions for the same user over and over.
//! An entry is filed under the identity store's generation and the policy
//! version (the action entity carries the schema's action groups); any write
//! to an identity or grant, or a policy reload, makes every entry stale, and
//! the first lookup after it empties the cache. A full cache is emptied too:
//! simpler than an LRU, and the next requests refill it from the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cedar_policy::{Entities, EntityUid};

/// The entities one request was decided with, and the stored identities it
/// named that the store does not hold.
pub struct Built {
    pub entities: Entities,
    pub missing: Vec<String>,
}

/// What a request's entities depend on besides the store: the principal,
/// action and resource, and the entities the context names.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SliceKey {
    pub principal: EntityUid,
    pub action: EntityUid,
    pub resource: EntityUid,
    /// By context attribute name (`actingFor`).
    pub context_refs: Vec<(String, EntityUid)>,
}

pub struct SliceCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    policy_version: String,
    entries: HashMap<SliceKey, Arc<Built>>,
}

impl Inner {
    /// Moves to (`generation`, `version`) if it is newer, dropping every
    /// entry; whether the entries are now of exactly that generation.
    fn advance(&mut self, generation: u64, version: &str) -> bool {
        if generation > self.generation || version != self.policy_version {
            if generation < self.generation {
                // A policy reload seen by a request that started before a
                // store write: keep the newer generation's entries out.
                return false;
            }
            self.generation = generation;
            self.policy_version = version.to_owned();
            self.entries.clear();
        }
        generation == self.generation
    }
}

impl SliceCache {
    /// A cache of at most `capacity` entries; 0 turns caching off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The entities built for `key` at `generation` under `version`.
    pub fn get(&self, key: &SliceKey, generation: u64, version: &str) -> Option<Arc<Built>> {
        if self.capacity == 0 {
            return None;
        }
        let found = {
            let mut inner = self.inner.lock().expect("cache lock not poisoned");
            if inner.advance(generation, version) {
                inner.entries.get(key).cloned()
            } else {
                None
            }
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Files `built`, made from a store snapshot taken at `generation` or
    /// later, under `key`. An older generation's work is not kept.
    pub fn insert(&self, key: SliceKey, generation: u64, version: &str, built: Arc<Built>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock().expect("cache lock not poisoned");
        if !inner.advance(generation, version) {
            return;
        }
        if inner.entries.len() >= self.capacity {
            inner.entries.clear();
        }
        inner.entries.insert(key, built);
    }

    /// (hits, misses) since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Action, EntityKind};

    fn key(principal: &str) -> SliceKey {
        SliceKey {
            principal: EntityKind::Staff.uid(principal),
            action: Action::UseFunction.uid(),
            resource: EntityKind::Function.uid("vat_filing"),
            context_refs: vec![],
        }
    }

    fn built() -> Arc<Built> {
        Arc::new(Built {
            entities: Entities::empty(),
            missing: vec![],
        })
    }

    #[test]
    fn entries_live_for_one_generation_and_policy_version() {
        let cache = SliceCache::new(10);
        assert!(cache.get(&key("a"), 0, "v1").is_none());
        cache.insert(key("a"), 0, "v1", built());
        assert!(cache.get(&key("a"), 0, "v1").is_some());
        assert!(cache.get(&key("b"), 0, "v1").is_none());
        // A store write: everything built before is gone.
        assert!(cache.get(&key("a"), 1, "v1").is_none());
        // Work started before the write is not filed.
        cache.insert(key("a"), 0, "v1", built());
        assert!(cache.get(&key("a"), 1, "v1").is_none());
        cache.insert(key("a"), 1, "v1", built());
        assert!(cache.get(&key("a"), 1, "v1").is_some());
        // A policy reload: likewise.
        assert!(cache.get(&key("a"), 1, "v2").is_none());
        cache.insert(key("a"), 1, "v2", built());
        assert!(cache.get(&key("a"), 1, "v2").is_some());
        assert_eq!(cache.counts(), (3, 5));
    }

    #[test]
    fn a_full_cache_starts_over_and_zero_capacity_caches_nothing() {
        let cache = SliceCache::new(2);
        cache.insert(key("a"), 0, "v", built());
        cache.insert(key("b"), 0, "v", built());
        cache.insert(key("c"), 0, "v", built());
        assert!(cache.get(&key("a"), 0, "v").is_none());
        assert!(cache.get(&key("c"), 0, "v").is_some());
        let off = SliceCache::new(0);
        off.insert(key("a"), 0, "v", built());
        assert!(off.get(&key("a"), 0, "v").is_none());
    }
}
