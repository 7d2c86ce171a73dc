//! The `serve` flags that size the memory decisions read through: the
//! built-entities cache and redb's page cache, both in bytes, so resident
//! memory has a bound whatever the number of stored identities.

/// Default budget of the built-entities cache ([`super::cache`]). Measured
/// resident memory grows by about 1.4× the estimated bytes (mimalloc's
/// free pages, hash tables' slack): 96 MiB left 300 MB resident after
/// `benches/load.sh` at a million staff, 64 MiB 265 MB, 48 MiB 233 MB —
/// the issue's bound is 250 MB (BENCHMARKS.md, "The decision hot path,
/// session 7"). Once its login storm hashed for many accounts at once
/// (session 8), 48 MiB left 258 MB and 32 MiB 217 MB, at 5 % of the
/// million-staff mix's throughput; a thousand staff need a few MiB since
/// one principal's entities serve all its functions.
pub const DEFAULT_DECISION_CACHE_BYTES: u64 = 32 << 20;
/// Default budget of redb's page cache for the identity store: enough for
/// the B-tree's upper levels at a million staff; random leaves come from
/// the OS page cache, which a bigger redb cache only duplicates.
pub const DEFAULT_STORE_CACHE_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, clap::Args)]
pub struct CacheArgs {
    /// Bytes of built entities kept: five sixteenths for repeated questions'
    /// whole entity sets as Cedar's (an estimate per entry, ~9 kB: one per
    /// principal, action and context entities, whatever function is asked),
    /// ten sixteenths for the same sets packed (~0.6 kB each; unpacked again
    /// when asked), a sixteenth for single identities shared between
    /// questions (functions, enterprises, permission identities); least recently
    /// useful evicted first; stale after any identity write or policy
    /// reload; 0 builds every one afresh. The caches are split in shards of
    /// an equal share, so a budget under a few MiB holds little.
    #[arg(long, default_value_t = DEFAULT_DECISION_CACHE_BYTES, env = "ETAX_DECISION_CACHE_BYTES")]
    pub decision_cache_bytes: u64,
    /// Bytes of identity-store pages redb keeps in memory (read and write
    /// cache); a store larger than this is read from the OS page cache.
    #[arg(long, default_value_t = DEFAULT_STORE_CACHE_BYTES, env = "ETAX_STORE_CACHE_BYTES")]
    pub store_cache_bytes: usize,
}

impl Default for CacheArgs {
    fn default() -> Self {
        Self {
            decision_cache_bytes: DEFAULT_DECISION_CACHE_BYTES,
            store_cache_bytes: DEFAULT_STORE_CACHE_BYTES,
        }
    }
}
