//! `etax-authz serve`: opens the store, loads the policies, optionally seeds
//! the demo identities, and serves HTTP until SIGINT or SIGTERM, reloading
//! the policies on SIGHUP and when their files change, and sweeping expired
//! login state.

mod background;
mod open;
mod policy_hooks;
mod wire;

use open::open;
use wire::wire;

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

use crate::audit::{self, AuditError};
use crate::authn::AuthnConfig;
use crate::http::callers::CallersError;
use crate::http::{self};
use crate::import::ImportError;
use crate::policy::LoadError;
use crate::store::StoreError;

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
