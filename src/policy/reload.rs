//! Hot reload while serving: on SIGHUP, and when the policy files or the
//! schema change, load and validate them together and swap the active
//! [`PolicySnapshot`] in one atomic store.
//!
//! Why this is safe: a decision takes one `Arc<PolicySnapshot>` at its start
//! (`Engine::snapshot`) and keeps it to the end, so requests in flight finish
//! on the old set, new ones see the new set, and none sees a mix. An invalid
//! set is never swapped in: the old one keeps serving, and the diagnostics
//! are logged and kept for `/v1/status` and `/metrics`.
//!
//! Change detection polls: every interval it hashes the texts a snapshot
//! would be built from (the same SHA-256 as the snapshot version). That
//! needs no dependency, works on every filesystem (including bind mounts
//! where inotify is silent), and costs a few file reads per interval. A
//! change is acted on only once the texts hold still for one more interval
//! (debounce), so an editor's write-then-rename or a `cp -r` of several
//! files is loaded once, whole.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::changes::PolicyChanges;
use super::lint::KnownIds;
use super::{LoadError, PolicySnapshot, Sources};

/// What set off a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The set the server started with.
    Start,
    Signal,
    FileChange,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Signal => "sighup",
            Trigger::FileChange => "file_change",
        }
    }
}

/// The last failed reload, as `/v1/status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadFailure {
    pub at_ms: u64,
    pub trigger: &'static str,
    /// `file:line:col: message` lines, or the I/O error.
    pub diagnostics: Vec<String>,
    /// Version of the rejected texts (empty when they could not be read).
    pub rejected_version: String,
    /// For a set refused by the reload guard (`serve --require-proofs`):
    /// each failed property with its counterexample.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_properties: Vec<serde_json::Value>,
}

/// Reload outcomes, shared between the reloader and the HTTP handlers.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    successes: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<ReloadFailure>>,
    last_change: Mutex<Option<ReloadChange>>,
}

/// What the last successful reload changed, as `/v1/status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadChange {
    pub at_ms: u64,
    pub trigger: &'static str,
    pub old_version: String,
    pub policy_version: String,
    #[serde(flatten)]
    pub policies: PolicyChanges,
}

impl ReloadStatus {
    pub fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The failure of the most recent reload; `None` once a later reload
    /// succeeds.
    pub fn last_error(&self) -> Option<ReloadFailure> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The policy ids the most recent successful reload added, removed or
    /// changed; `None` before the first reload.
    pub fn last_change(&self) -> Option<ReloadChange> {
        self.last_change
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_error(&self, e: Option<ReloadFailure>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }
}

/// A valid policy set about to be made active, with the texts it was built
/// from.
pub struct Loaded<'a> {
    pub sources: &'a Sources,
    pub snapshot: &'a PolicySnapshot,
    /// The version it replaced; `None` at start.
    pub old_version: Option<&'a str>,
    pub trigger: Trigger,
}

/// Called (on the reloading thread) for every valid set just before it is
/// made active, so the server can archive its texts and log the change
/// first; the policy layer knows nothing of the decision log.
pub type OnLoad = Arc<dyn Fn(&Loaded<'_>) + Send + Sync>;

/// The entity ids that exist now (read at each reload), for strict mode's
/// lint; the policy layer cannot read the store itself.
pub type KnownIdsFn = Arc<dyn Fn() -> KnownIds + Send + Sync>;

/// A check every valid candidate must also pass before it is made active
/// (the proofs of `serve --require-proofs`). Runs on the reloading thread;
/// the policy layer knows nothing of what it checks.
pub type Guard = Arc<dyn Fn(&PolicySnapshot) -> Result<(), Refused> + Send + Sync>;

/// Called when the guard refuses a set, so the server can record the
/// refusal where it records loads.
pub type OnRefused = Arc<dyn Fn(&Loaded<'_>, &Refused) + Send + Sync>;

/// Why the guard refused a valid set.
#[derive(Debug, Clone)]
pub struct Refused {
    pub message: String,
    /// One line per failed check, for the log.
    pub details: Vec<String>,
    /// What `/v1/status` shows of each failed check.
    pub failed_properties: Vec<serde_json::Value>,
}

/// Why a reload did not make a set active.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("refused by the reload guard: {}", .0.message)]
    Refused(Refused),
}

/// Loads, validates and swaps in policy sets.
#[derive(Clone)]
pub struct Reloader {
    policies_dir: PathBuf,
    schema: PathBuf,
    active: Arc<ArcSwap<PolicySnapshot>>,
    status: Arc<ReloadStatus>,
    on_load: Option<OnLoad>,
    /// `serve --strict-reload`: warnings and lints reject a set.
    strict: Option<KnownIdsFn>,
    guard: Option<(Guard, Option<OnRefused>)>,
}

impl Reloader {
    pub fn new(
        policies_dir: PathBuf,
        schema: PathBuf,
        active: Arc<ArcSwap<PolicySnapshot>>,
        status: Arc<ReloadStatus>,
    ) -> Self {
        Self {
            policies_dir,
            schema,
            active,
            status,
            on_load: None,
            strict: None,
            guard: None,
        }
    }

    /// Rejects a reload whose set has validator warnings or lint findings
    /// (against the ids `known` returns then), as an invalid one is.
    pub fn strict(mut self, known: KnownIdsFn) -> Self {
        self.strict = Some(known);
        self
    }

    /// The snapshot, unless strict mode finds something wrong with it.
    fn strict_check(&self, s: &Sources, snap: PolicySnapshot) -> Result<PolicySnapshot, LoadError> {
        let Some(known) = &self.strict else {
            return Ok(snap);
        };
        let problems = super::lint::strict_problems(&snap, s, &known());
        if problems.is_empty() {
            Ok(snap)
        } else {
            Err(LoadError::Invalid(problems))
        }
    }

    /// Makes every valid set pass `guard` before it becomes active; a
    /// refusal keeps the old set, like an invalid one, and is passed to
    /// `on_refused`.
    pub fn guarded(mut self, guard: Guard, on_refused: Option<OnRefused>) -> Self {
        self.guard = Some((guard, on_refused));
        self
    }

    /// The guard's verdict on a valid candidate (`Ok` without a guard).
    fn check_guard(
        &self,
        sources: &Sources,
        snapshot: &PolicySnapshot,
        trigger: Trigger,
    ) -> Result<(), ReloadError> {
        let Some((guard, on_refused)) = &self.guard else {
            return Ok(());
        };
        let refused = match guard(snapshot) {
            Ok(()) => return Ok(()),
            Err(r) => r,
        };
        if let Some(hook) = on_refused {
            hook(
                &Loaded {
                    sources,
                    snapshot,
                    old_version: Some(self.active.load().version()),
                    trigger,
                },
                &refused,
            );
        }
        Err(ReloadError::Refused(refused))
    }

    /// Calls `hook` with each set this reloader is about to make active.
    pub fn on_load(mut self, hook: OnLoad) -> Self {
        self.on_load = Some(hook);
        self
    }

    pub fn status(&self) -> &Arc<ReloadStatus> {
        &self.status
    }

    /// Reads and validates the files and, if valid, makes them active.
    /// Blocking (file reads, validation): call from a blocking thread.
    pub fn reload(&self, trigger: Trigger) -> Result<Arc<PolicySnapshot>, ReloadError> {
        self.judge(trigger).1
    }

    /// [`Self::reload`], and the state of the disk it judged
    /// ([`Self::disk_state`]'s form) from the same read, so the watcher
    /// remembers exactly what was reported.
    fn judge(&self, trigger: Trigger) -> (String, Result<Arc<PolicySnapshot>, ReloadError>) {
        let sources = Sources::read(&self.policies_dir, &self.schema);
        let state = state_of(&sources);
        // A set that was read has its version as its state: one hash
        // serves both.
        let version = if sources.is_ok() {
            state.clone()
        } else {
            String::new()
        };
        let loaded = self.load(sources, version, trigger);
        (state, loaded)
    }

    /// Validates what was read and makes it active, or keeps the active
    /// set and reports why not. `version` is the read set's, empty when it
    /// could not be read.
    fn load(
        &self,
        sources: Result<Sources, LoadError>,
        version: String,
        trigger: Trigger,
    ) -> Result<Arc<PolicySnapshot>, ReloadError> {
        let loaded = sources
            .and_then(|s| {
                PolicySnapshot::from_sources(&s.schema_file, &s.schema, &s.policy_files)
                    .and_then(|snap| self.strict_check(&s, snap))
                    .map(|snap| (s, snap))
            })
            .map_err(ReloadError::from)
            .and_then(|(s, snap)| self.check_guard(&s, &snap, trigger).map(|()| (s, snap)));
        match loaded {
            Ok((sources, snapshot)) => Ok(self.activate(&sources, snapshot, trigger)),
            Err(e) => {
                self.reject(&e, version, trigger);
                Err(e)
            }
        }
    }

    /// Makes a validated set active and says what changed.
    fn activate(
        &self,
        sources: &Sources,
        snapshot: PolicySnapshot,
        trigger: Trigger,
    ) -> Arc<PolicySnapshot> {
        let snapshot = Arc::new(snapshot);
        // The hook runs before the swap, so the record of a load
        // precedes every decision the new set makes. Only this
        // reloader swaps, so `old` is still the active set after.
        if let Some(hook) = &self.on_load {
            hook(&Loaded {
                sources,
                snapshot: &snapshot,
                old_version: Some(self.active.load().version()),
                trigger,
            });
        }
        let old = self.active.swap(snapshot.clone());
        self.status.successes.fetch_add(1, Ordering::Relaxed);
        self.status.set_error(None);
        for w in snapshot.warnings() {
            tracing::warn!("{w}");
        }
        let change = PolicyChanges::between(&old, &snapshot);
        tracing::info!(
            trigger = trigger.as_str(),
            old_version = old.version(),
            policy_version = snapshot.version(),
            policies = snapshot.policies().policies().count(),
            added = ?change.added,
            removed = ?change.removed,
            changed = ?change.changed,
            "policies reloaded"
        );
        *self
            .status
            .last_change
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(ReloadChange {
            at_ms: crate::now_ms(),
            trigger: trigger.as_str(),
            old_version: old.version().to_owned(),
            policy_version: snapshot.version().to_owned(),
            policies: change,
        });
        snapshot
    }

    /// Keeps the active set serving and says why the candidate was refused.
    fn reject(&self, e: &ReloadError, version: String, trigger: Trigger) {
        let diagnostics = match e {
            ReloadError::Load(LoadError::Invalid(diags)) => {
                diags.iter().map(|d| d.to_string()).collect()
            }
            other => vec![other.to_string()],
        };
        let (failed_properties, details) = match e {
            ReloadError::Refused(r) => (r.failed_properties.clone(), r.details.clone()),
            ReloadError::Load(_) => (Vec::new(), Vec::new()),
        };
        for d in &diagnostics {
            tracing::error!("{d}");
        }
        for line in &details {
            tracing::error!("{}", crate::ids::mask_text(line));
        }
        tracing::error!(
            trigger = trigger.as_str(),
            active_version = self.active.load().version(),
            "policy reload rejected ({e}); still serving the previous policies"
        );
        self.status.failures.fetch_add(1, Ordering::Relaxed);
        self.status.set_error(Some(ReloadFailure {
            at_ms: crate::now_ms(),
            trigger: trigger.as_str(),
            diagnostics,
            rejected_version: version,
            failed_properties,
        }));
    }

    /// What is on disk now: the texts' version, or — when they cannot be
    /// read — why, so that a directory broken in a new way is a new state
    /// and reported, while the same breakage is not reported every tick.
    /// The two cannot be confused: a version is hex.
    fn disk_state(&self) -> String {
        state_of(&Sources::read(&self.policies_dir, &self.schema))
    }

    /// Starts watching for SIGHUP and, when `poll` is set, for file changes,
    /// until the task is aborted. The SIGHUP handler is in place when this
    /// returns (SIGHUP would otherwise end the process).
    pub fn spawn(self, poll: Option<Duration>) -> tokio::task::JoinHandle<()> {
        let hangup = hangup_stream();
        tokio::spawn(self.run(hangup, poll))
    }

    async fn run(self, mut hangup: Hangup, poll: Option<Duration>) {
        let mut ticker = poll.map(|p| {
            let mut t = tokio::time::interval(p);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        // The texts last loaded (or rejected): no point loading them again.
        let mut attempted = Some(self.active.load().version().to_owned());
        // A change seen on the last tick, waiting to hold still.
        let mut pending: Option<Option<String>> = None;
        loop {
            let trigger = tokio::select! {
                () = recv_hangup(&mut hangup) => Trigger::Signal,
                () = tick(&mut ticker) => {
                    let this = self.clone();
                    let now = tokio::task::spawn_blocking(move || this.disk_state())
                        .await
                        .ok();
                    if now == attempted {
                        pending = None;
                        continue;
                    }
                    // Debounce: act once the same texts are seen twice in a row.
                    if pending.as_ref() != Some(&now) {
                        pending = Some(now);
                        continue;
                    }
                    Trigger::FileChange
                }
            };
            pending = None;
            let this = self.clone();
            // The outcome is logged and kept in the status by `judge`.
            let version = tokio::task::spawn_blocking(move || this.judge(trigger).0)
                .await
                .ok();
            // Remember what was tried, so a broken file is reported once, not
            // every interval, and is picked up again when it changes.
            attempted = version;
        }
    }
}

/// A read of the policy files as the watcher tells states apart.
fn state_of(sources: &Result<Sources, LoadError>) -> String {
    match sources {
        Ok(s) => s.version(),
        Err(e) => format!("unreadable: {e}"),
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_stream() -> Hangup {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on file change only");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_stream() -> Hangup {}

#[cfg(unix)]
async fn recv_hangup(h: &mut Hangup) {
    match h {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn recv_hangup(_: &mut Hangup) {
    std::future::pending::<()>().await
}

async fn tick(t: &mut Option<tokio::time::Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str =
        "entity User; entity Doc; action read appliesTo { principal: User, resource: Doc };";

    fn setup() -> (tempfile::TempDir, Reloader) {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        std::fs::write(dir.path().join("s.cedarschema"), SCHEMA).unwrap();
        std::fs::write(
            policies.join("a.cedar"),
            r#"@id("a") permit(principal, action, resource);"#,
        )
        .unwrap();
        let snap = PolicySnapshot::load(&policies, &dir.path().join("s.cedarschema")).unwrap();
        let reloader = Reloader::new(
            policies,
            dir.path().join("s.cedarschema"),
            Arc::new(ArcSwap::from_pointee(snap)),
            Arc::default(),
        );
        (dir, reloader)
    }

    #[test]
    fn invalid_sets_are_rejected_and_valid_ones_swapped_in() {
        let (dir, r) = setup();
        let v0 = r.active.load().version().to_owned();
        std::fs::write(
            dir.path().join("policies/b.cedar"),
            "@id(\"b\")\npermit(principal is Nope, action, resource);",
        )
        .unwrap();
        assert!(r.reload(Trigger::Signal).is_err());
        assert_eq!(r.active.load().version(), v0, "old set keeps serving");
        let err = r.status().last_error().unwrap();
        assert!(err.diagnostics[0].contains("b.cedar:2:"), "{err:?}");
        assert_eq!(r.status().failures(), 1);

        std::fs::write(
            dir.path().join("policies/b.cedar"),
            r#"@id("b") @code("b_refused") @message("refused by b") forbid(principal, action, resource);"#,
        )
        .unwrap();
        let snap = r.reload(Trigger::FileChange).unwrap();
        assert_ne!(snap.version(), v0);
        assert_eq!(r.active.load().version(), snap.version());
        assert!(r.status().last_error().is_none());
        assert_eq!(r.status().successes(), 1);
    }

    #[test]
    fn a_guard_refusal_keeps_the_old_set_and_is_reported() {
        let (dir, r) = setup();
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = refused.clone();
        // Refuses any set with a forbid: a stand-in for a failed proof.
        let guard: Guard = Arc::new(|set: &PolicySnapshot| {
            let forbids = set
                .policies()
                .policies()
                .filter(|p| p.effect() == cedar_policy::Effect::Forbid)
                .count();
            if forbids == 0 {
                return Ok(());
            }
            Err(Refused {
                message: "a forbid".into(),
                details: vec!["property no-forbids FAILED".into()],
                failed_properties: vec![serde_json::json!({"property": "no-forbids"})],
            })
        });
        let on_refused: OnRefused = Arc::new(move |_, _| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        let r = r.guarded(guard, Some(on_refused));
        let v0 = r.active.load().version().to_owned();
        std::fs::write(
            dir.path().join("policies/b.cedar"),
            r#"@id("b") @code("b_refused") @message("refused by b") forbid(principal, action, resource);"#,
        )
        .unwrap();
        assert!(matches!(
            r.reload(Trigger::Signal),
            Err(ReloadError::Refused(_))
        ));
        assert_eq!(r.active.load().version(), v0, "old set keeps serving");
        let err = r.status().last_error().unwrap();
        assert_eq!(err.failed_properties[0]["property"], "no-forbids");
        assert_eq!(refused.load(Ordering::Relaxed), 1);

        std::fs::write(
            dir.path().join("policies/b.cedar"),
            r#"@id("b") permit(principal, action, resource);"#,
        )
        .unwrap();
        assert!(
            r.reload(Trigger::Signal).is_ok(),
            "a set the guard accepts loads"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn file_changes_are_picked_up_after_they_settle() {
        let (dir, r) = setup();
        let v0 = r.active.load().version().to_owned();
        let active = r.active.clone();
        let task = r.spawn(Some(Duration::from_millis(20)));
        std::fs::write(
            dir.path().join("policies/b.cedar"),
            r#"@id("b") @code("b_refused") @message("refused by b") forbid(principal, action, resource);"#,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while active.load().version() == v0 {
            assert!(std::time::Instant::now() < deadline, "no reload");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
    }

    /// Waits until the status holds a failure whose diagnostics name `what`.
    async fn reported(r: &Arc<ReloadStatus>, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let named = r
                .last_error()
                .is_some_and(|e| e.diagnostics.iter().any(|d| d.contains(what)));
            if named {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no failure naming {what}: {:?}",
                r.last_error()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A directory that cannot be read is a state too: when it turns into
    /// another that cannot be read, the status must say what is wrong now,
    /// not keep the first complaint (the author fixed that one).
    #[cfg(unix)]
    #[tokio::test(flavor = "current_thread")]
    async fn an_unreadable_set_that_changes_is_reported_again() {
        let (dir, r) = setup();
        let status = r.status().clone();
        let task = r.spawn(Some(Duration::from_millis(20)));
        let policies = dir.path().join("policies");
        std::os::unix::fs::symlink("nowhere.cedar", policies.join("x.cedar")).unwrap();
        reported(&status, "x.cedar").await;
        assert_eq!(status.failures(), 1);
        std::fs::remove_file(policies.join("x.cedar")).unwrap();
        std::fs::create_dir(policies.join("y.cedar")).unwrap();
        reported(&status, "y.cedar").await;
        assert_eq!(status.failures(), 2);
        // Still the same broken state: not reported again every tick.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(status.failures(), 2);
        task.abort();
    }
}
