//! Credentials: password hashing and the password rule, one-time codes,
//! issuance quotas, lockout, sessions and their in-memory idle clock. Pure
//! logic and configuration; the login steps that use them are in
//! [`crate::flows`].

pub mod acceptance;
pub mod challenge;
pub mod common_passwords;
pub mod config;
pub mod lockout;
pub mod password;
pub mod rate;
pub mod session;
pub mod touches;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

pub use acceptance::{NewPasswordError, PasswordPolicy};
pub use config::{AuthnArgs, AuthnConfig, PasswordArgs};
pub use password::{HashCost, PasswordHasher, PasswordRule, PasswordRuleError};

/// The credential machinery a running service shares: configuration, the
/// argon2id hasher, and the semaphore that bounds concurrent hashing.
pub struct Authn {
    pub config: AuthnConfig,
    hasher: PasswordHasher,
    /// Hashing holds ~19 MiB and tens of ms of CPU: at most one per core at a
    /// time, so a login storm queues here instead of starving the runtime.
    permits: Arc<Semaphore>,
    /// Verified against when an account does not exist, so the answer takes
    /// as long as for a real account.
    dummy_hash: String,
    /// argon2 verifications run, real and dummy alike: what an unknown
    /// account costs is observable as the same one verification.
    verifications: AtomicU64,
}

impl Authn {
    pub fn new(config: AuthnConfig) -> Result<Self, password::HashCostError> {
        let hasher = PasswordHasher::new(config.cost)?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let dummy_hash = hasher.hash(&crate::random_id());
        Ok(Self {
            config,
            hasher,
            permits: Arc::new(Semaphore::new(cores)),
            dummy_hash,
            verifications: AtomicU64::new(0),
        })
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Verifies `password` against `phc` on the blocking pool; with no stored
    /// hash (unknown account, no personal password) it verifies against a
    /// dummy hash and answers false, taking the same time.
    pub async fn verify(&self, password: String, phc: Option<String>) -> bool {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.clone());
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let ok = self
            .on_blocking_pool(move |h| h.verify(&password, &phc))
            .await;
        ok && known
    }

    /// argon2 verifications since start (for `/metrics`).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Hashes a new password on the blocking pool.
    pub async fn hash(&self, password: String) -> String {
        self.on_blocking_pool(move |h| h.hash(&password)).await
    }

    /// Runs argon2 work on the blocking pool, at most one job per core.
    async fn on_blocking_pool<T: Send + 'static>(
        &self,
        job: impl FnOnce(&PasswordHasher) -> T + Send + 'static,
    ) -> T {
        let hasher = self.hasher.clone();
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        tokio::task::spawn_blocking(move || job(&hasher))
            .await
            .expect("argon2 work does not panic")
    }

    /// Checks a password someone wants to store: the one acceptance
    /// function (`--password-*` flags).
    pub fn check_new_password(&self, password: &str) -> Result<(), NewPasswordError> {
        self.config.passwords.accept(password)
    }
}
