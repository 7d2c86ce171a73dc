//! `etax-authz serve`: opens the store, loads the policies, optionally seeds
//! the demo identities, and serves HTTP until SIGINT or SIGTERM, reloading
//! the policies on SIGHUP and when their files change.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::audit::{self, AuditError, AuditLog};
use crate::authn::{PasswordHasher, PasswordRule};
use crate::decision::Engine;
use crate::http::{self, AppState};
use crate::policy::reload::Reloader;
use crate::policy::{LoadError, PolicySnapshot};
use crate::store::{self, ImportDocument, ImportError, Store, StoreError};

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub policies_dir: PathBuf,
    pub schema: PathBuf,
    /// Seed these identities when the store is empty.
    pub demo: Option<PathBuf>,
    pub body_limit: usize,
    /// How often to look for changed policy files; `None` reloads on
    /// SIGHUP only.
    pub reload_poll: Option<std::time::Duration>,
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
    Policies(#[from] LoadError),
    #[error("demo identities {path}: {source}")]
    Demo { path: String, source: ImportError },
    #[error("cannot read demo identities {path}: {source}")]
    DemoFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn run(opts: ServeOptions) -> Result<(), ServeError> {
    std::fs::create_dir_all(&opts.data_dir).map_err(|source| ServeError::DataDir {
        path: opts.data_dir.display().to_string(),
        source,
    })?;
    let snapshot = PolicySnapshot::load(&opts.policies_dir, &opts.schema)?;
    for w in snapshot.warnings() {
        tracing::warn!("{w}");
    }
    let store = Store::open(&store::identity_store_path(&opts.data_dir))?;
    if let Some(demo) = &opts.demo {
        seed_demo(&store, demo).await?;
    }
    tracing::info!(policy_version = snapshot.version(), "policies loaded");

    let audit = AuditLog::open(&audit::decision_log_path(&opts.data_dir))?;
    let active = Arc::new(ArcSwap::from_pointee(snapshot));
    let engine = Engine::new(store, active.clone());
    let reloader = Reloader::new(
        opts.policies_dir.clone(),
        opts.schema.clone(),
        active,
        Arc::default(),
    );
    let state = Arc::new(AppState {
        engine,
        audit,
        body_limit: opts.body_limit,
        started_at_ms: crate::now_ms(),
        reload: reloader.status().clone(),
    });
    // SIGHUP and file changes load, validate and swap the policies.
    let reload_task = reloader.spawn(opts.reload_poll);
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
    let served = http::serve(listener, state, shutdown_signal()).await;
    reload_task.abort();
    served?;
    Ok(())
}

/// Imports the demo identities, but only into an empty store: a restart
/// never overwrites what users changed.
async fn seed_demo(store: &Store, path: &PathBuf) -> Result<(), ServeError> {
    if !store.is_empty()? {
        tracing::info!("store is not empty; demo identities not imported");
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|source| ServeError::DemoFile {
        path: path.display().to_string(),
        source,
    })?;
    let store = store.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let doc: ImportDocument = serde_json::from_str(&text)?;
        store::import_document(
            &store,
            &doc,
            &PasswordHasher::default(),
            &PasswordRule::default(),
        )
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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
