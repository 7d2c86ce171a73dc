//! Builds the engine, the decision path, sessions, login flows and metrics
//! from what was opened: the state every handler reaches.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::background::Background;
use super::open::Opened;
use super::policy_hooks::{on_policy_load, on_proof_refusal};
use super::{ServeError, ServeOptions};
use crate::audit::AuditLog;
use crate::decision::Engine;
use crate::http::AppState;
use crate::metrics::{Live, Metrics};
use crate::policy::archive::PolicyArchive;
use crate::policy::reload::{Guard, Reloader};
use crate::policy::PolicySnapshot;

/// Builds the engine, the decision path, sessions, login flows, metrics and
/// the state every handler reaches, and what runs beside them.
pub(super) fn wire(
    opts: &ServeOptions,
    o: Opened,
) -> Result<(Arc<AppState>, Background), ServeError> {
    let active = Arc::new(ArcSwap::from_pointee(o.snapshot));
    let engine =
        Engine::new(o.store, active.clone()).with_cache_bytes(opts.caches.decision_cache_bytes);
    let pseudonyms = crate::audit::pseudonym::Pseudonyms::load_or_create(
        &crate::audit::pseudonym::key_path(&opts.data_dir, opts.pseudonym_key.as_deref()),
    )?;
    let decider = crate::flows::decide::Decider::new(engine.clone(), o.audit.clone(), pseudonyms);
    let authn = o.authn;
    let sessions =
        crate::authn::sessions::Sessions::new(engine.store().clone(), authn.config.clone());
    let sweeper = crate::flows::sweep::Sweeper::new(
        engine.store().clone(),
        authn.config.clone(),
        sessions.touches().clone(),
    );
    let login = crate::flows::Login::new(decider.clone(), authn.clone(), sessions.clone());
    let reloader = reloader(opts, active, &engine, (&o.archive, &o.audit), o.guard);
    // Fleet mode: this host's decision log is shipped to the fleet's table.
    let shipper = o
        .fleet
        .as_ref()
        .map(|f| crate::fleet::ship::Shipper::new(f.clone(), o.audit.clone()));
    let mut metrics = Metrics::new(
        &decider.metrics,
        Live {
            engine: engine.clone(),
            audit: o.audit.clone(),
            authn: authn.clone(),
            sessions: sessions.clone(),
            sweep: sweeper.stats().clone(),
            reload: reloader.status().clone(),
        },
    );
    if let Some(s) = &shipper {
        metrics.register_collector(Box::new(s.clone()));
    }
    let state = Arc::new(AppState {
        engine,
        audit: o.audit,
        decider,
        sessions,
        authn,
        login,
        sweep: sweeper.stats().clone(),
        callers: o.callers,
        body_limit: opts.body_limit,
        started_at_ms: crate::now_ms(),
        reload: reloader.status().clone(),
        connections: Arc::new(tokio::sync::Semaphore::new(opts.limits.max_connections)),
        peers: crate::http::limits::Peers::new(opts.limits.max_per_peer),
        limits: opts.limits.clone(),
        time_offset: opts.time_offset,
        policy_archive: o.archive,
        ops: opts.ops.to_ops(),
        metrics: Arc::new(metrics),
        fleet: shipper,
    });
    Ok((
        state,
        Background {
            reloader,
            sweeper,
            fleet: o.fleet,
        },
    ))
}

/// The policy reloader: records each load, and with `--strict-reload` and
/// `--require-proofs` refuses what those refuse.
fn reloader(
    opts: &ServeOptions,
    active: Arc<ArcSwap<PolicySnapshot>>,
    engine: &Engine,
    (archive, audit): (&PolicyArchive, &AuditLog),
    guard: Option<Guard>,
) -> Reloader {
    let reloader = Reloader::new(
        opts.policies_dir.clone(),
        opts.schema.clone(),
        active,
        Arc::default(),
    )
    .on_load(on_policy_load(archive.clone(), audit.clone()));
    let mut reloader = if opts.strict_reload {
        let store = engine.store().clone();
        reloader.strict(Arc::new(move || {
            crate::authoring::known_ids_in_store(&store).unwrap_or_default()
        }))
    } else {
        reloader
    };
    if let Some(guard) = guard {
        reloader = reloader.guarded(guard, Some(on_proof_refusal(audit.clone())));
    }
    reloader
}
