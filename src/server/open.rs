//! What `serve` opens before anything is wired: the policies, the store (a
//! fleet replica with `--fleet`), the demo identities, the callers and the
//! decision log.

use std::sync::Arc;

use super::policy_hooks::{policy_load_record, start_proofs};
use super::tcp_off_loopback;
use super::{ServeError, ServeOptions};
use crate::audit::{self, AuditLog};
use crate::authn::{Authn, PasswordHasher, PasswordPolicy};
use crate::http::callers::Callers;
use crate::import::{self};
use crate::policy::archive::PolicyArchive;
use crate::policy::reload::{Loaded, Trigger};
use crate::policy::{PolicySnapshot, Sources};
use crate::store::{self, Store};

/// What `serve` opens before anything is wired: the policies, the store
/// (seeded with the demo if asked and empty), the credential machinery,
/// the callers, and the decision log with the starting set's load in it.
pub(super) struct Opened {
    pub(super) snapshot: PolicySnapshot,
    pub(super) store: Store,
    pub(super) authn: Arc<Authn>,
    pub(super) callers: Callers,
    pub(super) audit: AuditLog,
    pub(super) archive: PolicyArchive,
    /// The proofs every reload must pass (`--require-proofs`).
    pub(super) guard: Option<crate::policy::reload::Guard>,
    /// The fleet's database, its schema migrated (`--fleet`).
    pub(super) fleet: Option<crate::fleet::Fleet>,
}

pub(super) async fn open(opts: &ServeOptions) -> Result<Opened, ServeError> {
    std::fs::create_dir_all(&opts.data_dir).map_err(|source| ServeError::DataDir {
        path: opts.data_dir.display().to_string(),
        source,
    })?;
    let sources = Sources::read(&opts.policies_dir, &opts.schema)?;
    let snapshot =
        PolicySnapshot::from_sources(&sources.schema_file, &sources.schema, &sources.policy_files)?;
    for w in snapshot.warnings() {
        tracing::warn!("{w}");
    }
    let guard = if opts.require_proofs {
        Some(start_proofs(&opts.policies_dir, &snapshot, opts.proof_timeout).await?)
    } else {
        None
    };
    let store = Store::open_with_cache(
        &store::identity_store_path(&opts.data_dir),
        opts.caches.store_cache_bytes,
    )?;
    let (store, fleet) = match &opts.fleet.url {
        Some(url) => {
            let fleet = crate::fleet::Fleet::connect(url, &opts.fleet.host_name())
                .await?
                .claimed()
                .await?;
            let max_stale_ms = opts.fleet.max_stale_ms;
            let replica = crate::fleet::changes::join(store, &fleet, max_stale_ms).await?;
            (replica, Some(fleet))
        }
        None => (store, None),
    };
    let authn = Arc::new(Authn::new(opts.authn.clone())?);
    if let Some(demo) = &opts.demo {
        let (hasher, passwords) = (authn.hasher().clone(), opts.authn.passwords.clone());
        let seeding = seed_demo(&store, demo, hasher, passwords);
        match &fleet {
            // One host seeds; the others find the store seeded once they
            // hold the lock and caught up.
            Some(fleet) => crate::fleet::changes::exclusively(fleet, seeding).await??,
            None => seeding.await?,
        }
    }
    tracing::info!(policy_version = snapshot.version(), "policies loaded");
    let callers = callers(opts, fleet.as_ref()).await?;
    let log_dir = audit::decision_log_path(&opts.data_dir);
    let audit = if opts.accept_damaged_log {
        AuditLog::open_accepting_damage(&log_dir, opts.log_hash)?
    } else {
        AuditLog::open_with(&log_dir, opts.log_hash)?
    };
    let archive = PolicyArchive::new(&opts.data_dir);
    // The set about to decide is archived and its load in the chain before
    // the first decision names its version.
    let started = Loaded {
        sources: &sources,
        snapshot: &snapshot,
        old_version: None,
        trigger: Trigger::Start,
    };
    audit.commit(policy_load_record(&archive, &started)).await?;
    Ok(Opened {
        snapshot,
        store,
        authn,
        callers,
        audit,
        archive,
        guard,
        fleet,
    })
}

/// The API keys file, the fleet's table (`--fleet` without a file), or
/// open mode (refused off loopback unless `--insecure-open`).
pub(super) async fn callers(
    opts: &ServeOptions,
    fleet: Option<&crate::fleet::Fleet>,
) -> Result<Callers, ServeError> {
    let callers = match (&opts.api_keys, fleet) {
        (Some(path), _) => Callers::load(path)?,
        (None, Some(fleet)) => fleet_callers(opts, fleet).await?,
        (None, None) if !tcp_off_loopback(opts) => {
            tracing::warn!("no --api-keys file: every caller is trusted (development mode)");
            Callers::open()
        }
        (None, None) => {
            tracing::warn!(
                addr = %opts.listen,
                "--insecure-open: no --api-keys file and not on loopback; every caller who \
                 reaches this address is trusted"
            );
            Callers::open()
        }
    };
    Ok(callers.with_person_lookups_per_minute(opts.person_lookups_per_minute))
}

/// The fleet's keys, read once before serving. A table without rows runs
/// open under the file-less rule (loopback, or `--insecure-open`) until
/// the first key is created; otherwise the sidecar does not start.
pub(super) async fn fleet_callers(
    opts: &ServeOptions,
    fleet: &crate::fleet::Fleet,
) -> Result<Callers, ServeError> {
    let open_allowed = !tcp_off_loopback(opts) || opts.insecure_open;
    let callers = Callers::fleet(open_allowed);
    let live = callers.key_file().expect("fleet callers have keys");
    let read = crate::fleet::keys_watch::refresh(fleet, &live).await?;
    if read.rows == 0 && !open_allowed {
        return Err(ServeError::OpenOffLoopback { addr: opts.listen });
    }
    if live.is_open() {
        tracing::warn!(
            "the fleet's API keys table is empty: every caller is trusted (development mode) \
             until `keys create --fleet` makes the first key"
        );
    }
    Ok(callers)
}

/// Imports the demo identities, but only into an empty store: a restart
/// never overwrites what users changed.
pub(super) async fn seed_demo(
    store: &Store,
    path: &std::path::Path,
    hasher: PasswordHasher,
    passwords: PasswordPolicy,
) -> Result<(), ServeError> {
    // Fleet mode: what other hosts wrote (a no-op on its own).
    let replica = store.clone();
    tokio::task::spawn_blocking(move || replica.catch_up())
        .await
        .expect("catch-up task does not panic")?;
    if !store.is_empty()? {
        tracing::info!("store is not empty; demo identities not imported");
        return Ok(());
    }
    let store = store.clone();
    let file = path.to_path_buf();
    let summary = tokio::task::spawn_blocking(move || {
        import::import_file(&store, &file, &hasher, &passwords)
    })
    .await
    .expect("import task does not panic")
    .map_err(|source| ServeError::Demo {
        path: path.display().to_string(),
        source,
    })?;
    tracing::info!(?summary, "demo identities imported");
    Ok(())
}
