//! etax-authz: an authorization sidecar for a provincial electronic tax
//! bureau (电子税务局). Identities live in redb, credentials are argon2id
//! hashes, every rule is a Cedar policy, and callers ask over HTTP/JSON.
//!
//! Data flows one way:
//! `http` (wire format) → `decision` (entity slice + Cedar) → `store` / `policy`.
//! See ARCHITECTURE.md for what each module may depend on.

/// `From` each of redb's error types for an error enum with a
/// `Redb(redb::Error)` variant, so `?` works on every redb call. Defined
/// before the modules: the store and the decision log both use it.
macro_rules! from_redb_errors {
    ($target:ident) => {
        from_redb_errors!(
            $target: redb::TransactionError,
            redb::TableError,
            redb::StorageError,
            redb::CommitError
        );
    };
    ($target:ident: $($t:ty),*) => {$(
        impl From<$t> for $target {
            fn from(e: $t) -> Self {
                $target::Redb(e.into())
            }
        }
    )*};
}

pub mod audit;
pub mod authn;
pub mod authoring;
pub mod cli;
pub mod config;
pub mod decision;
pub mod domain;
pub mod files;
pub mod fleet;
pub mod flows;
pub mod gen;
pub mod http;
pub mod ids;
pub mod impact;
pub mod import;
pub mod metrics;
pub mod policy;
pub mod prove;
pub mod server;
pub mod store;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// 128 random bits as 32 hex digits: decision ids and the like (encoded as
/// the log encodes hashes: `hex::encode` collects a `String` a character at
/// a time, and every decision's record gets one of these).
pub fn random_id() -> String {
    audit::digest::to_hex(&rand::random::<[u8; 16]>())
}
