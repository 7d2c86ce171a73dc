//! `etax-authz serve`: opens the store, loads the policies, optionally seeds
//! the demo identities, and serves HTTP until SIGINT or SIGTERM, reloading
//! the policies on SIGHUP and when their files change, and sweeping expired
//! login state.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::audit::DecisionRecord;
use crate::audit::{self, AuditError, AuditLog};
use crate::authn::{Authn, AuthnConfig, PasswordHasher, PasswordPolicy};
use crate::decision::Engine;
use crate::http::callers::{Callers, CallersError, LiveKeys};
use crate::http::{self, AppState};
use crate::import::{self, ImportError};
use crate::metrics::{Live, Metrics};
use crate::policy::archive::PolicyArchive;
use crate::policy::reload::{Loaded, OnLoad, Reloader, Trigger};
use crate::policy::{LoadError, PolicySnapshot, Sources};
use crate::store::{self, Store, StoreError};

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub policies_dir: PathBuf,
    pub schema: PathBuf,
    /// Seed these identities when the store is empty.
    pub demo: Option<PathBuf>,
    pub body_limit: usize,
    /// Credentials, codes, lockout and sessions.
    pub authn: AuthnConfig,
    /// Scoped API keys; `None` runs open (loopback development).
    pub api_keys: Option<PathBuf>,
    /// Exact person lookups each caller may make per minute.
    pub person_lookups_per_minute: u32,
    /// Allow open mode on an address other than loopback.
    pub insecure_open: bool,
    /// Prune decision-log records older than this many days (checked
    /// hourly); `None` keeps everything.
    pub audit_retention_days: Option<u64>,
    /// Retention never removes records younger than this many days (the
    /// PRC Cybersecurity Law art. 21 asks for six months: 180).
    pub audit_min_retention_days: u64,
    /// Open a decision log whose files disagree with its `head.json` by
    /// setting them aside (kept) and starting a new segment, instead of
    /// refusing to start.
    pub accept_damaged_log: bool,
    /// The decision log's chain hash when the log is created (an existing
    /// log keeps its own).
    pub log_hash: audit::ChainHash,
    /// How often to look for changed policy files; `None` reloads on
    /// SIGHUP only.
    pub reload_poll: Option<std::time::Duration>,
    /// Reject reloads with validator warnings or lint findings too.
    pub strict_reload: bool,
    /// Byte budgets of the built-entities cache and redb's page cache.
    pub caches: crate::decision::CacheArgs,
    /// The key of the decision log's person pseudonyms; `None` keeps it in
    /// `DATA/pseudonym.key` (created on first start).
    pub pseudonym_key: Option<PathBuf>,
    /// Connections at once, per peer, timeouts, requests per connection.
    pub limits: crate::http::limits::ConnectionLimits,
    /// The offset audit queries read times at (when they name none) and
    /// show them at.
    pub time_offset: crate::audit::time::Offset,
    /// Log format, access log, readiness, shutdown grace, Unix socket.
    pub ops: crate::http::options::OpsArgs,
    /// Prove POLICIES/properties/ for the start set and every reload;
    /// refuse a set that fails one.
    pub require_proofs: bool,
    /// `--proof-timeout-ms`: how long one proof run of the guard may take.
    pub proof_timeout: std::time::Duration,
    /// Fleet mode (`--fleet`): the shared database and this host's name.
    pub fleet: crate::fleet::FleetArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Pseudonym(#[from] crate::audit::pseudonym::PseudonymError),
    #[error(transparent)]
    Policies(#[from] LoadError),
    #[error(transparent)]
    Callers(#[from] CallersError),
    #[error("demo identities {path}: {source}")]
    Demo { path: String, source: ImportError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Authn(#[from] crate::authn::AuthnError),
    #[error(
        "refusing to serve without --api-keys on {addr}, which is not a loopback address: \
         every caller would be trusted and handed SMS and reset codes; give --api-keys FILE \
         (in fleet mode: create a key with `keys create --fleet`), listen on loopback, or \
         pass --insecure-open to accept this"
    )]
    OpenOffLoopback { addr: SocketAddr },
    #[error(transparent)]
    FleetKeys(#[from] crate::fleet::keys::KeysError),
    #[error(transparent)]
    Listen(#[from] crate::http::listen::ListenError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("--require-proofs: {0}")]
    Proofs(String),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
}

pub async fn run(opts: ServeOptions) -> Result<(), ServeError> {
    // Before anything is opened: open mode answers whoever reaches the port.
    // In fleet mode the keys may be the fleet's table: decided once read.
    let keyless = opts.api_keys.is_none() && opts.fleet.url.is_none();
    if keyless && tcp_off_loopback(&opts) && !opts.insecure_open {
        return Err(ServeError::OpenOffLoopback { addr: opts.listen });
    }
    let shutdown = shutdown_signal();
    let opened = open(&opts).await?;
    let (state, background) = wire(&opts, opened)?;
    let running = background.spawn(&opts, &state);
    let listeners = listen(&opts).await?;
    let served = http::serve(listeners, state.clone(), shutdown).await;
    running.stop(&state.audit).await;
    served?;
    Ok(())
}

/// Whether open mode would answer strangers: TCP on an address other than
/// loopback. A Unix socket's peers are on this host: loopback.
fn tcp_off_loopback(opts: &ServeOptions) -> bool {
    !opts.ops.no_tcp && !opts.listen.ip().is_loopback()
}

/// Binds TCP (unless `--no-tcp`) and the Unix socket (with
/// `--listen-unix`), printing each address once bound.
async fn listen(opts: &ServeOptions) -> Result<Vec<http::listen::Listener>, ServeError> {
    let mut listeners = Vec::new();
    if !opts.ops.no_tcp {
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to learn the port.
        println!("etax-authz listening on http://{addr}");
        tracing::info!(%addr, "listening");
        listeners.push(http::listen::Listener::Tcp(listener));
    }
    if let Some(path) = &opts.ops.listen_unix {
        listeners.push(http::listen::bind_unix(path)?);
        println!("etax-authz listening on unix:{}", path.display());
        tracing::info!(path = %path.display(), "listening");
    }
    Ok(listeners)
}

/// What `serve` opens before anything is wired: the policies, the store
/// (seeded with the demo if asked and empty), the credential machinery,
/// the callers, and the decision log with the starting set's load in it.
struct Opened {
    snapshot: PolicySnapshot,
    store: Store,
    authn: Arc<Authn>,
    callers: Callers,
    audit: AuditLog,
    archive: PolicyArchive,
    /// The proofs every reload must pass (`--require-proofs`).
    guard: Option<crate::policy::reload::Guard>,
    /// The fleet's database, its schema migrated (`--fleet`).
    fleet: Option<crate::fleet::Fleet>,
}

async fn open(opts: &ServeOptions) -> Result<Opened, ServeError> {
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
async fn callers(
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
async fn fleet_callers(
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

/// What runs beside the server until it stops.
struct Background {
    reloader: Reloader,
    sweeper: crate::flows::sweep::Sweeper,
    fleet: Option<crate::fleet::Fleet>,
}

/// The background tasks while serving.
struct Running {
    tasks: Vec<JoinHandle<()>>,
    sweeper: crate::flows::sweep::Sweeper,
}

impl Background {
    /// Starts the policy reloader (SIGHUP and file changes), the sweeper,
    /// retention and the keys file watcher.
    fn spawn(self, opts: &ServeOptions, state: &AppState) -> Running {
        let mut tasks = vec![
            self.reloader.spawn(opts.reload_poll),
            tokio::spawn(crate::flows::sweep::run(self.sweeper.clone())),
        ];
        if let Some(days) = opts.audit_retention_days {
            let (log, min_days) = (state.audit.clone(), opts.audit_min_retention_days);
            tasks.push(tokio::spawn(retention(log, days, min_days)));
        }
        match (state.callers.key_file(), &self.fleet) {
            (Some(keys), _) if keys.path().is_some() => {
                tasks.push(tokio::spawn(watch_keys(keys, opts.reload_poll)));
            }
            (Some(keys), Some(fleet)) => {
                let watch = crate::fleet::keys_watch::watch(fleet.clone(), keys, opts.reload_poll);
                tasks.push(tokio::spawn(watch));
            }
            _ => {}
        }
        if let Some(fleet) = self.fleet {
            let applier = crate::fleet::applier::run(fleet.clone(), state.engine.store().clone());
            tasks.push(tokio::spawn(applier));
            let engine = state.engine.clone();
            let version = move || engine.snapshot().version().to_owned();
            let beat = crate::fleet::hosts::heartbeat(fleet, version, state.started_at_ms);
            tasks.push(tokio::spawn(beat));
        }
        if let Some(shipper) = state.fleet.clone() {
            tasks.push(tokio::spawn(shipper.run()));
        }
        Running {
            tasks,
            sweeper: self.sweeper,
        }
    }
}

impl Running {
    /// Stops the tasks, then writes what must outlive the process.
    async fn stop(self, audit: &AuditLog) {
        for task in self.tasks {
            task.abort();
        }
        // Sessions used since the last sweep keep their idle clock across
        // the restart.
        if let Err(e) = self.sweeper.flush_touches().await {
            let error = crate::ids::mask_text(&e.to_string());
            tracing::error!(%error, "writing session last uses at shutdown failed");
        }
        // Queued /v1/authorize records reach the disk before the process
        // ends, and the clean-close head spares the next start any repair.
        if let Err(e) = audit.close().await {
            tracing::error!(error = %e, "decision log close at shutdown failed");
        }
    }
}

/// Builds the engine, the decision path, sessions, login flows, metrics and
/// the state every handler reaches, and what runs beside them.
fn wire(opts: &ServeOptions, o: Opened) -> Result<(Arc<AppState>, Background), ServeError> {
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
    let reloader = Reloader::new(
        opts.policies_dir.clone(),
        opts.schema.clone(),
        active,
        Arc::default(),
    )
    .on_load(on_policy_load(o.archive.clone(), o.audit.clone()));
    let mut reloader = if opts.strict_reload {
        let store = engine.store().clone();
        reloader.strict(Arc::new(move || {
            crate::authoring::known_ids_in_store(&store).unwrap_or_default()
        }))
    } else {
        reloader
    };
    if let Some(guard) = o.guard {
        reloader = reloader.guarded(guard, Some(on_proof_refusal(o.audit.clone())));
    }
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

/// Reads the API keys file again on SIGHUP and, like the policies, when it
/// changes (looked at every `poll`; `None`: on SIGHUP only). A file that
/// does not read or check is logged and the keys before it keep serving.
async fn watch_keys(keys: Arc<LiveKeys>, poll: Option<std::time::Duration>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hup_received = async {
            match hup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup_received = std::future::pending::<Option<()>>();
        let tick = async {
            match poll {
                Some(poll) => tokio::time::sleep(poll).await,
                None => std::future::pending().await,
            }
        };
        let reloaded = tokio::select! {
            _ = hup_received => keys.reload().map(|()| true),
            () = tick => keys.reload_if_changed(),
        };
        let path = keys.path().unwrap_or(std::path::Path::new("")).display();
        match reloaded {
            Ok(true) => tracing::info!(file = %path, "API keys reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "API keys not reloaded; the previous keys still serve")
            }
        }
    }
}

/// Archives a set about to be made active and writes a record of its load
/// into the decision log, waiting until it is durable (reloads run on a
/// blocking thread), so the record precedes the set's first decision. A
/// valid set is not refused when either fails (the log being down stops
/// every decision anyway); the failure is logged loudly instead.
fn on_policy_load(archive: PolicyArchive, audit: AuditLog) -> OnLoad {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |loaded: &Loaded<'_>| {
        let record = policy_load_record(&archive, loaded);
        if let Err(e) = runtime.block_on(audit.commit(record)) {
            tracing::error!(error = %e, "policy reload not recorded in the decision log");
        }
    })
}

/// `--require-proofs` at start: reads the properties beside the policies
/// (kept for the server's life) and proves them for the start set, so a
/// server never serves an unproved set, and a missing solver stops it here
/// rather than at the first reload.
async fn start_proofs(
    policies_dir: &std::path::Path,
    snapshot: &PolicySnapshot,
    limit: std::time::Duration,
) -> Result<crate::policy::reload::Guard, ServeError> {
    use crate::prove;
    let properties =
        prove::property::load_all(&prove::properties_dir(policies_dir), snapshot.schema())
            .map_err(|e| ServeError::Proofs(e.to_string()))?;
    let checked =
        tokio::task::block_in_place(|| prove::guard::prove_set(snapshot, &properties, limit));
    if let Err(refused) = checked {
        let failed = serde_json::to_string_pretty(&refused.failed_properties).unwrap_or_default();
        return Err(ServeError::Proofs(format!(
            "the policies do not prove: {}\n{}",
            refused.message,
            crate::ids::mask_text(&failed)
        )));
    }
    Ok(prove::guard::guard(properties, limit))
}

/// Records a set the reload guard refused in the decision log: a denied
/// `policy.reload` naming the failed properties, so auditors see the
/// attempted change beside the loads.
fn on_proof_refusal(audit: AuditLog) -> crate::policy::reload::OnRefused {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |loaded: &Loaded<'_>, refused| {
        let version = loaded.snapshot.version();
        let reason = format!(
            "policy set {version} refused, {} still serves: {}",
            loaded.old_version.unwrap_or("nothing"),
            refused.message
        );
        let record = DecisionRecord::new(
            &crate::random_id(),
            "policy.reload",
            &format!("PolicyLoader::{:?}", loaded.trigger.as_str()),
            "policy.reload",
            &format!("PolicySet::{version:?}"),
            None,
            false,
            &[],
            &[],
            loaded.old_version.unwrap_or(version),
            0,
        )
        .with_reason(&reason);
        if let Err(e) = runtime.block_on(audit.commit(record)) {
            tracing::error!(error = %e, "refused policy reload not recorded in the decision log");
        }
    })
}

/// Archives the texts of `loaded` and builds the chain record of its load:
/// kind `policy.load` at start, `policy.reload` after; the principal names
/// what set it off, the resource the new version, the reason the old one.
fn policy_load_record(archive: &PolicyArchive, loaded: &Loaded<'_>) -> DecisionRecord {
    let version = loaded.snapshot.version();
    let archived = match archive.store(loaded.sources) {
        Ok((_, true)) => "archived now",
        Ok((_, false)) => "already archived",
        Err(e) => {
            tracing::error!(error = %e, policy_version = version, "policy set not archived");
            "NOT ARCHIVED"
        }
    };
    let kind = match loaded.trigger {
        Trigger::Start => "policy.load",
        _ => "policy.reload",
    };
    let reason = format!(
        "policy set {version} ({} files, {} policies; {archived}) replaces {}",
        loaded.sources.policy_files.len(),
        loaded.snapshot.policies().policies().count(),
        loaded.old_version.unwrap_or("nothing: the server started"),
    );
    DecisionRecord::new(
        &crate::random_id(),
        kind,
        &format!("PolicyLoader::{:?}", loaded.trigger.as_str()),
        kind,
        &format!("PolicySet::{version:?}"),
        None,
        true,
        &[],
        &[],
        version,
        0,
    )
    .with_reason(&reason)
}

/// Hourly, prunes decision-log records older than `days`; the writer leaves
/// an anchor record so the rest of the chain still verifies.
async fn retention(log: AuditLog, days: u64, min_days: u64) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let before = crate::now_ms().saturating_sub(days.saturating_mul(86_400_000));
        match log.prune(before, min_days, "retention").await {
            Ok(Some(r)) => {
                tracing::info!(
                    first = r.first_seq,
                    last = r.last_seq,
                    "decision log retention"
                )
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "decision log retention failed"),
        }
    }
}

/// Imports the demo identities, but only into an empty store: a restart
/// never overwrites what users changed.
async fn seed_demo(
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

/// Registers the signals the server answers and returns the future that
/// completes on SIGTERM or SIGINT. Registered first thing, before anything
/// is opened or bound, not when the future is first polled: until tokio's handler is
/// installed a signal takes its default action, so a SIGTERM sent as soon
/// as the server answered (an orchestrator stopping a pod it just probed)
/// killed it without the flush and clean close, and an early SIGHUP killed
/// it too. A handler, once installed, stays for the life of the process,
/// so registering SIGHUP here covers the reloaders that listen for it later.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let _ = signal(SignalKind::hangup());
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
