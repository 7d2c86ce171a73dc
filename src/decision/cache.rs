//! Built request entities, reused while nothing they were built from changed.
//!
//! Building a request's `Entities` (reading the slice from redb, decoding the
//! records, computing the ancestor closure) is most of a decision's cost, and
//! a tax system asks the same few questions for the same user over and over.
//!
//! **Staleness.** Every entry carries the identity store's generation and the
//! policy version it was built under (the action entity carries the schema's
//! action groups), and is served only to a request of exactly that pair: any
//! write to an identity or grant, or a policy reload, makes every entry
//! stale at once, whatever the order in which racing requests file their
//! work. The check is on the entry itself, not on a cache-wide stamp, so an
//! entry filed by a request that started before a write can never be served
//! after it (a stale allow after a revoke would be a security bug). The
//! first request that meets a stale entry empties the cache, so stale
//! entries do not sit on memory until evicted.
//!
//! **Bounds.** `quick_cache` (S3-FIFO eviction) bounded by an estimate of
//! each entry's heap bytes, so a million distinct principals cannot grow it
//! past its budget and a full cache evicts the coldest entries instead of
//! starting over (which made the hit rate collapse at scale).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cedar_policy::{Entities, EntityUid};
use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// The entities one request was decided with, and the stored identities it
/// named that the store does not hold.
pub struct Built {
    pub entities: Entities,
    /// Of the entities the slice was gathered for, those the store lacks.
    pub missing: std::collections::HashSet<EntityUid>,
    /// Estimated heap bytes of `entities` (see [`estimate_bytes`]) and
    /// of `missing`.
    pub bytes: usize,
}

/// What a request's entities depend on besides the store: the principal,
/// action and resource, and the entities the context names.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SliceKey {
    pub principal: EntityUid,
    pub action: EntityUid,
    /// `None`: a bare resource ([`crate::domain::EntityKind::is_bare`]),
    /// which the entities do not hold, so they serve every such resource.
    pub resource: Option<EntityUid>,
    /// By context attribute name (`actingFor`).
    pub context_refs: Vec<(String, EntityUid)>,
}

impl SliceKey {
    /// The slice's roots: the principal and the resource.
    pub fn roots(&self) -> Vec<&EntityUid> {
        std::iter::once(&self.principal)
            .chain(self.resource.as_ref())
            .collect()
    }

    /// The entities the context names.
    pub fn refs(&self) -> Vec<EntityUid> {
        self.context_refs
            .iter()
            .map(|(_, uid)| uid.clone())
            .collect()
    }
}

/// Estimated heap bytes of `entities` Cedar entities whose ids total
/// `id_bytes`, with `attributes` attributes and `ancestors` ancestors in
/// all. Cedar keeps each uid as a type name and an id with source
/// locations, each entity's attributes in a map of evaluated values and its
/// ancestors (the closure) in a hash set, a uid repeated per set it is in.
/// Calibrated against resident memory (`cargo bench --bench decision --
/// cache_bytes`: 11.3 kB resident per entry where a first set of constants
/// said 9.0 kB; these are those ×1.25, BENCHMARKS.md).
pub fn estimate_bytes(
    entities: usize,
    id_bytes: usize,
    attributes: usize,
    ancestors: usize,
) -> usize {
    const ENTITY: usize = 800;
    const ATTRIBUTE: usize = 200;
    const ANCESTOR: usize = 360;
    entities * ENTITY + 2 * id_bytes + attributes * ATTRIBUTE + ancestors * ANCESTOR
}

/// A Cedar uid without its id's bytes: type name, id and source locations.
pub const UID_BYTES: usize = 160;

/// What a tier's keys and values weigh: estimated heap bytes.
pub trait Weighed {
    fn weight(&self) -> usize;
}

impl Weighed for SliceKey {
    fn weight(&self) -> usize {
        // Three uids, and a name and uid per context entity, each with its
        // id's bytes: a caller may name ids of tens of kilobytes.
        let id = |uid: &EntityUid| uid.id().unescaped().len();
        let ids = id(&self.principal)
            + id(&self.action)
            + self.resource.as_ref().map_or(0, id)
            + self
                .context_refs
                .iter()
                .map(|(name, uid)| name.len() + id(uid))
                .sum::<usize>();
        3 * UID_BYTES + self.context_refs.len() * (UID_BYTES + 32) + ids
    }
}

impl Weighed for Built {
    fn weight(&self) -> usize {
        self.bytes
    }
}

/// A filed entry: the value and what it was built under.
struct Entry<V> {
    value: Arc<V>,
    generation: u64,
    policy_version: Arc<str>,
}

impl<V> Clone for Entry<V> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            generation: self.generation,
            policy_version: self.policy_version.clone(),
        }
    }
}

#[derive(Clone)]
struct ByBytes;

impl<K: Weighed, V: Weighed> Weighter<K, Entry<V>> for ByBytes {
    fn weight(&self, key: &K, entry: &Entry<V>) -> u64 {
        // The entry's bookkeeping in the cache's table.
        const SLOT: usize = 128;
        (key.weight() + entry.value.weight() + SLOT) as u64
    }
}

/// Values built from the store and the policies, each served only at the
/// store generation and policy version it was built under. The decision
/// cache is two of them: Cedar's `Entities` by [`SliceKey`], and the same
/// packed ([`super::packed`]).
pub struct SliceCache<K = SliceKey, V = Built> {
    /// `None`: caching off.
    entries: Option<Cache<K, Entry<V>, ByBytes>>,
    /// The newest (generation, policy version) the cache was emptied for,
    /// so stale entries are dropped once, by the first request to meet one.
    emptied_for: Mutex<(u64, Arc<str>)>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K: Weighed + Eq + std::hash::Hash, V: Weighed> SliceCache<K, V> {
    /// A cache of at most about `max_bytes`, sized up front for entries of
    /// `typical_bytes`; 0 turns caching off.
    pub fn new(max_bytes: u64, typical_bytes: u64) -> Self {
        let entries = (max_bytes > 0).then(|| {
            let items = (max_bytes / typical_bytes).max(16) as usize;
            Cache::with_weighter(items, max_bytes, ByBytes)
        });
        Self {
            entries,
            emptied_for: Mutex::new((0, Arc::from(""))),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether the cache keeps anything.
    pub fn is_on(&self) -> bool {
        self.entries.is_some()
    }

    /// The value built for `key` at exactly `generation` under `version`.
    pub fn get(&self, key: &K, generation: u64, version: &str) -> Option<Arc<V>> {
        // Off, every question is a miss: built from the store.
        let found = self
            .entries
            .as_ref()
            .and_then(|entries| match entries.get(key) {
                Some(e) if e.generation == generation && *e.policy_version == *version => {
                    Some(e.value)
                }
                Some(_) => {
                    self.empty_for(entries, generation, version);
                    None
                }
                None => None,
            });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Files `value`, made from a store snapshot taken at `generation` or
    /// later, under `key`.
    pub fn insert(&self, key: K, generation: u64, version: &str, value: Arc<V>) {
        let Some(entries) = &self.entries else { return };
        let entry = Entry {
            value,
            generation,
            policy_version: self.version_arc(version),
        };
        entries.insert(key, entry);
    }

    /// The policy version as the shared string of the last emptying, so
    /// entries do not each hold a copy of the same 64 characters.
    fn version_arc(&self, version: &str) -> Arc<str> {
        let emptied = self.emptied_for.lock().unwrap_or_else(|e| e.into_inner());
        if *emptied.1 == *version {
            emptied.1.clone()
        } else {
            Arc::from(version)
        }
    }

    /// A stale entry was met: empties the cache if (`generation`,
    /// `version`) is newer than the last emptying. A request that started
    /// before a write (an older generation) empties nothing.
    fn empty_for(&self, entries: &Cache<K, Entry<V>, ByBytes>, generation: u64, version: &str) {
        let mut emptied = self.emptied_for.lock().unwrap_or_else(|e| e.into_inner());
        let newer = generation > emptied.0 || (generation == emptied.0 && *emptied.1 != *version);
        if newer {
            *emptied = (generation, Arc::from(version));
            entries.clear();
        }
    }

    /// Forgets every entry, as an eviction would.
    #[cfg(test)]
    pub fn clear(&self) {
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    /// (hits, misses) since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Entries held and their estimated bytes.
    pub fn usage(&self) -> (usize, u64) {
        self.entries
            .as_ref()
            .map_or((0, 0), |e| (e.len(), e.weight()))
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
            resource: Some(EntityKind::Function.uid("vat_filing")),
            context_refs: vec![],
        }
    }

    fn built() -> Arc<Built> {
        Arc::new(Built {
            entities: Entities::empty(),
            missing: Default::default(),
            bytes: 10_000,
        })
    }

    #[test]
    fn entries_live_for_one_generation_and_policy_version() {
        let cache = SliceCache::<SliceKey, Built>::new(1 << 20, 16 << 10);
        assert!(cache.get(&key("a"), 0, "v1").is_none());
        cache.insert(key("a"), 0, "v1", built());
        assert!(cache.get(&key("a"), 0, "v1").is_some());
        assert!(cache.get(&key("b"), 0, "v1").is_none());
        // A store write: everything built before is gone.
        assert!(cache.get(&key("a"), 1, "v1").is_none());
        // Work started before the write, filed after it, is never served
        // at the new generation.
        cache.insert(key("a"), 0, "v1", built());
        assert!(cache.get(&key("a"), 1, "v1").is_none());
        cache.insert(key("a"), 1, "v1", built());
        assert!(cache.get(&key("a"), 1, "v1").is_some());
        // A request that started before the write does not get the newer
        // generation's entry either.
        assert!(cache.get(&key("a"), 0, "v1").is_none());
        // A policy reload: likewise.
        assert!(cache.get(&key("a"), 1, "v2").is_none());
        cache.insert(key("a"), 1, "v2", built());
        assert!(cache.get(&key("a"), 1, "v2").is_some());
        assert_eq!(cache.counts(), (3, 6));
    }

    #[test]
    fn meeting_a_stale_entry_empties_the_cache() {
        let cache = SliceCache::<SliceKey, Built>::new(1 << 20, 16 << 10);
        cache.insert(key("a"), 0, "v", built());
        cache.insert(key("b"), 0, "v", built());
        assert_eq!(cache.usage().0, 2);
        assert!(cache.get(&key("a"), 1, "v").is_none());
        assert_eq!(cache.usage(), (0, 0));
    }

    #[test]
    fn a_full_cache_evicts_within_its_bytes_and_zero_caches_nothing() {
        let budget = 200_000;
        let cache = SliceCache::<SliceKey, Built>::new(budget, 16 << 10);
        for i in 0..1000 {
            cache.insert(key(&i.to_string()), 0, "v", built());
        }
        let (held, bytes) = cache.usage();
        assert!(bytes <= budget, "{bytes} bytes held over a {budget} budget");
        assert!(held > 0 && held < 1000, "{held} entries held");
        // Eviction, not starting over: the latest entry is there.
        assert!(cache.get(&key("999"), 0, "v").is_some());
        let off = SliceCache::<SliceKey, Built>::new(0, 16 << 10);
        off.insert(key("a"), 0, "v", built());
        assert!(off.get(&key("a"), 0, "v").is_none());
        assert_eq!(off.usage(), (0, 0));
    }
}
