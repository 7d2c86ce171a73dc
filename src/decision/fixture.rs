//! The demo bureau behind an [`Engine`]: the setup integration tests and
//! benches share (a store in a directory they own, the demo identities,
//! the bundled policies).
//!
//! A `#[doc(hidden)] pub` module rather than a `testing` cargo feature:
//! integration tests and benches link the library as any user does, so a
//! feature would need `required-features` on each of them (or `--features`
//! on every cargo command) for a few functions that cost nothing to compile
//! and that production code never calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Engine;
use crate::authn::password::HashCost;
use crate::authn::{PasswordHasher, PasswordPolicy};
use crate::import;
use crate::policy::PolicySnapshot;
use crate::store::{StaffRecord, Store, StoreError};

/// The crate's root: where `policies/`, `schemas/` and `examples/` are.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `examples/demo.json`.
pub fn demo_document_path() -> PathBuf {
    root().join("examples/demo.json")
}

/// The bundled policies and schema, loaded and validated.
pub fn bundled_policies() -> PolicySnapshot {
    PolicySnapshot::load(
        &root().join("policies"),
        &root().join("schemas/etax.cedarschema"),
    )
    .expect("the bundled policies load")
}

/// An argon2 cost far below production's, so importing the demo's
/// passwords does not dominate a test.
pub fn light_hasher() -> PasswordHasher {
    PasswordHasher::new(HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    })
    .expect("a valid argon2 cost")
}

/// `DIR/identities.redb` with the demo bureau imported, its passwords
/// hashed by `hasher` under `passwords`.
pub fn demo_store(dir: &Path, hasher: &PasswordHasher, passwords: &PasswordPolicy) -> Store {
    let store = Store::open(&dir.join("identities.redb")).expect("the store opens");
    import::import_file(&store, &demo_document_path(), hasher, passwords)
        .expect("the demo imports");
    store
}

/// An engine deciding over `store` with the bundled policies.
pub fn engine_over(store: Store) -> Engine {
    Engine::new(store, Arc::new(ArcSwap::from_pointee(bundled_policies())))
}

/// The demo bureau (light password hashes) in `DIR/identities.redb`,
/// decided with the bundled policies.
pub fn demo_engine(dir: &Path) -> Engine {
    engine_over(demo_store(dir, &light_hasher(), &PasswordPolicy::default()))
}

/// Takes every permission identity from the staff member under `key`, in
/// one committed write: the revoke that cache tests race decisions against.
pub fn revoke_roles(engine: &Engine, key: &str) {
    engine
        .store()
        .write(|w| {
            let mut staff: StaffRecord = w.get(key)?.expect("the staff member is stored");
            staff.permission_identities.clear();
            w.put(key, &staff)?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
}
