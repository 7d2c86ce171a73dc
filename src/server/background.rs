//! What runs beside the server until it stops: the policy reloader, the
//! sweeper, the keys watcher and the decision log's retention.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::ServeOptions;
use crate::audit::AuditLog;
use crate::http::callers::LiveKeys;
use crate::http::AppState;
use crate::policy::reload::Reloader;

/// What runs beside the server until it stops.
pub(super) struct Background {
    pub(super) reloader: Reloader,
    pub(super) sweeper: crate::flows::sweep::Sweeper,
    pub(super) fleet: Option<crate::fleet::Fleet>,
}

/// The background tasks while serving.
pub(super) struct Running {
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) sweeper: crate::flows::sweep::Sweeper,
}

impl Background {
    /// Starts the policy reloader (SIGHUP and file changes), the sweeper,
    /// retention and the keys file watcher.
    pub(super) fn spawn(self, opts: &ServeOptions, state: &AppState) -> Running {
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
            let store = state.engine.store().clone();
            let skew = move |sample: &_| store.note_clock(sample);
            let beat = crate::fleet::hosts::heartbeat(fleet, version, state.started_at_ms, skew);
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
    pub(super) async fn stop(self, audit: &AuditLog) {
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

/// Reads the API keys file again on SIGHUP and, like the policies, when it
/// changes (looked at every `poll`; `None`: on SIGHUP only). A file that
/// does not read or check is logged and the keys before it keep serving.
pub(super) async fn watch_keys(keys: Arc<LiveKeys>, poll: Option<std::time::Duration>) {
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

/// Hourly, prunes decision-log records older than `days`; the writer leaves
/// an anchor record so the rest of the chain still verifies.
pub(super) async fn retention(log: AuditLog, days: u64, min_days: u64) {
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
