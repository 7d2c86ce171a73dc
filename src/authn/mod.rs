//! Credentials: password hashing and the password rule, one-time codes,
//! issuance quotas, lockout, sessions and their in-memory idle clock. Pure
//! logic and configuration; the login steps that use them are in
//! [`crate::flows`].

pub mod acceptance;
pub mod challenge;
pub mod common_passwords;
pub mod config;
pub mod hash_pool;
pub mod lockout;
pub mod password;
pub mod rate;
pub mod session;
pub mod sessions;
pub mod touches;

use std::sync::atomic::{AtomicU64, Ordering};

use hash_pool::HashPool;
pub use hash_pool::{HashBusy, HashSlot};

pub use acceptance::{NewPasswordError, PasswordPolicy};
pub use config::{AuthnArgs, AuthnConfig, PasswordArgs};
pub use password::{HashCost, PasswordHasher, PasswordRule, PasswordRuleError};

/// Why the credential machinery could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    #[error(transparent)]
    HashCost(#[from] password::HashCostError),
    #[error("cannot start the argon2 hashing threads: {0}")]
    Threads(std::io::Error),
}

/// The credential machinery a running service shares: configuration, the
/// argon2id hasher, and the threads hashing runs on.
pub struct Authn {
    pub config: AuthnConfig,
    hasher: PasswordHasher,
    /// Hashing holds ~19 MiB and tens of ms of CPU: one thread per core,
    /// each reusing its memory, so a login storm queues here instead of
    /// starving the runtime or growing the heap.
    pool: HashPool,
    /// Verified against when an account does not exist, so the answer takes
    /// as long as for a real account.
    dummy_hash: String,
    /// argon2 verifications run, real and dummy alike: what an unknown
    /// account costs is observable as the same one verification.
    verifications: AtomicU64,
}

impl Authn {
    pub fn new(config: AuthnConfig) -> Result<Self, AuthnError> {
        let hasher = PasswordHasher::new(config.cost)?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let dummy_hash = hasher.hash(&crate::random_id());
        let pool = HashPool::new(&hasher, cores, config.hash_queue, config.hash_nice)
            .map_err(AuthnError::Threads)?;
        Ok(Self {
            config,
            hasher,
            pool,
            dummy_hash,
            verifications: AtomicU64::new(0),
        })
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// A place on the hashing threads, or [`HashBusy`] when `--hash-queue`
    /// jobs are already waiting: taken before anything else a password step
    /// does, so a refused step has changed nothing (no lockout attempt
    /// counted).
    pub fn hash_slot(&self) -> Result<HashSlot, HashBusy> {
        self.pool.slot()
    }

    /// Verifies `password` against `phc` on the hashing threads, in `slot`;
    /// with no stored hash (unknown account, no personal password) it
    /// verifies against a dummy hash and answers false, taking the same
    /// time.
    pub async fn verify(&self, slot: HashSlot, password: String, phc: Option<String>) -> bool {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.clone());
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let ok = self
            .pool
            .run(slot, move |h, memory| h.verify_in(&password, &phc, memory))
            .await;
        ok && known
    }

    /// argon2 verifications since start (for `/metrics`).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Hashes a new password on the hashing threads, or [`HashBusy`].
    pub async fn hash(&self, password: String) -> Result<String, HashBusy> {
        let slot = self.pool.slot()?;
        Ok(self
            .pool
            .run(slot, move |h, memory| h.hash_in(&password, memory))
            .await)
    }

    /// Checks a password someone wants to store: the one acceptance
    /// function (`--password-*` flags).
    pub fn check_new_password(&self, password: &str) -> Result<(), NewPasswordError> {
        self.config.passwords.accept(password)
    }
}
