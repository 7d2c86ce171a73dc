//! Sweeping login state that can no longer be used. Every login step writes
//! codes, login flows, sessions, lockout records or rate windows; nothing
//! else deletes them once they are dead, so without the sweep the login
//! tables grow with every code sent and every account ever mistyped, at
//! whatever pace a caller chooses.
//!
//! One task, spawned by `serve`, ticks every `--sweep-interval-secs`. Each
//! tick first writes the sessions' in-memory last uses to the store
//! ([`crate::authn::touches`]; `serve` does the same once more at shutdown),
//! then sweeps. A record is dead by the same rule the login steps apply —
//! for a session, with its in-memory last use — so nothing a step would
//! still accept is removed and a busy session is never swept as idle.
//! Both run on the blocking pool in write transactions of at most [`BATCH`]
//! records, so the single redb writer is never held long and login steps
//! interleave with a large sweep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::login::flow_expired;
use crate::authn::touches::Touches;
use crate::authn::{challenge, lockout, rate, session, AuthnConfig};
use crate::store::{
    ChallengeRecord, CodeRateRecord, LockoutRecord, LoginFlowRecord, SessionRecord, Store,
    StoreError,
};

/// Most records removed or written in one write transaction: many records
/// share one fsync, yet a login step waiting for the writer waits for one
/// batch, not for the whole backlog.
pub const BATCH: usize = 2000;

/// What a sweep removed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub challenges: u64,
    pub login_flows: u64,
    pub sessions: u64,
    pub lockouts: u64,
    pub rate_windows: u64,
}

impl Swept {
    pub fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }

    /// The counts under the `kind` labels `/metrics` uses.
    pub fn by_kind(&self) -> [(&'static str, u64); 5] {
        [
            ("challenge", self.challenges),
            ("login_flow", self.login_flows),
            ("session", self.sessions),
            ("lockout", self.lockouts),
            ("rate_window", self.rate_windows),
        ]
    }

    fn add(&mut self, other: &Swept) {
        self.challenges += other.challenges;
        self.login_flows += other.login_flows;
        self.sessions += other.sessions;
        self.lockouts += other.lockouts;
        self.rate_windows += other.rate_windows;
    }
}

/// Totals since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct SweepStats {
    swept: Mutex<Swept>,
    failures: AtomicU64,
    touches_written: AtomicU64,
}

impl SweepStats {
    /// Everything removed since start.
    pub fn swept(&self) -> Swept {
        *lock(&self.swept)
    }

    /// Sweeps that failed (a store error); the next tick tries again.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Session records whose last use was written from memory.
    pub fn touches_written(&self) -> u64 {
        self.touches_written.load(Ordering::Relaxed)
    }
}

/// A poisoned lock still holds whole counts: an update is one statement.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A session that no step would accept any more: past its absolute expiry,
/// or idle since its last use, stored or `touched` in memory.
pub(crate) fn session_dead(
    rec: &SessionRecord,
    touched: Option<u64>,
    cfg: &AuthnConfig,
    now_ms: u64,
) -> bool {
    session::check(rec, touched, cfg, now_ms).is_err()
}

/// Removes every dead record of each kind as of `now_ms`.
fn sweep_store(
    store: &Store,
    cfg: &AuthnConfig,
    touches: &Touches,
    now_ms: u64,
) -> Result<Swept, StoreError> {
    let quiet = |_: &str| {};
    Ok(Swept {
        challenges: store.remove_where::<ChallengeRecord>(
            BATCH,
            |_, c| challenge::expired(c, now_ms),
            quiet,
        )?,
        login_flows: store.remove_where::<LoginFlowRecord>(
            BATCH,
            |_, f| flow_expired(f, now_ms),
            quiet,
        )?,
        sessions: store.remove_where::<SessionRecord>(
            BATCH,
            |k, s| session_dead(s, touches.last_used(k), cfg, now_ms),
            |k| touches.forget(k),
        )?,
        lockouts: store.remove_where::<LockoutRecord>(
            BATCH,
            |_, l| lockout::forgettable(l, cfg, now_ms),
            quiet,
        )?,
        rate_windows: store.remove_where::<CodeRateRecord>(
            BATCH,
            |_, r| rate::window_over(r, cfg.code_rate_window_secs, now_ms),
            quiet,
        )?,
    })
}

/// Writes `pending` last uses into the stored sessions; answers how many
/// records changed. Only sessions still stored: a write never brings back
/// one that logged out or was swept.
fn write_touches(store: &Store, pending: &[(String, u64)]) -> Result<u64, StoreError> {
    store.write(|w| {
        let mut changed = 0;
        for (key, t) in pending {
            if let Some(mut s) = w.get::<SessionRecord>(key)? {
                if s.last_used_ms < *t {
                    s.last_used_ms = *t;
                    w.put(key, &s)?;
                    changed += 1;
                }
            }
        }
        Ok(changed)
    })
}

/// The sweeper: owned by `serve`, which spawns [`run`] and flushes the
/// last uses once more at shutdown. It shares the session service's
/// in-memory last uses; its counts are shown on `/metrics`.
#[derive(Clone)]
pub struct Sweeper {
    store: Store,
    config: AuthnConfig,
    touches: Arc<Touches>,
    stats: Arc<SweepStats>,
}

impl Sweeper {
    pub fn new(store: Store, config: AuthnConfig, touches: Arc<Touches>) -> Self {
        Self {
            store,
            config,
            touches,
            stats: Arc::default(),
        }
    }

    /// What the sweeper did since start (`/metrics`).
    pub fn stats(&self) -> &Arc<SweepStats> {
        &self.stats
    }

    /// Writes the sessions' in-memory last uses to the store, at most
    /// [`BATCH`] per transaction; answers how many session records changed.
    pub async fn flush_touches(&self) -> Result<u64, StoreError> {
        let mut changed = 0;
        for chunk in self.touches.pending().chunks(BATCH) {
            let store = self.store.clone();
            let chunk = chunk.to_vec();
            let (chunk, n) = tokio::task::spawn_blocking(move || {
                write_touches(&store, &chunk).map(|n| (chunk, n))
            })
            .await
            .expect("session touch write does not panic")?;
            self.touches.written(&chunk);
            changed += n;
        }
        self.stats
            .touches_written
            .fetch_add(changed, Ordering::Relaxed);
        Ok(changed)
    }

    /// One sweep of every kind, counted in the stats.
    pub async fn sweep(&self) -> Result<Swept, StoreError> {
        let store = self.store.clone();
        let cfg = self.config.clone();
        let touches = self.touches.clone();
        let now = crate::now_ms();
        let swept = tokio::task::spawn_blocking(move || sweep_store(&store, &cfg, &touches, now))
            .await
            .expect("sweep task does not panic")?;
        lock(&self.stats.swept).add(&swept);
        Ok(swept)
    }

    /// What the sweeper does on each tick; failures are logged and counted,
    /// and the next tick tries again.
    async fn housekeeping(&self) {
        // A failed write loses nothing: the notes stay in memory, and the
        // sweep below still sees them.
        if let Err(e) = self.flush_touches().await {
            self.failed("writing session last uses", &e);
        }
        match self.sweep().await {
            Ok(s) if s.total() > 0 => tracing::info!(
                challenges = s.challenges,
                login_flows = s.login_flows,
                sessions = s.sessions,
                lockouts = s.lockouts,
                rate_windows = s.rate_windows,
                "swept expired login state"
            ),
            Ok(_) => {}
            Err(e) => self.failed("sweeping expired login state", &e),
        }
    }

    fn failed(&self, what: &str, e: &StoreError) {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        // A corrupt lockout record's key names a person.
        let error = crate::ids::mask_text(&e.to_string());
        tracing::error!(%error, "{what} failed");
    }
}

/// The sweeper: every `sweep_interval_secs`, until the task is aborted.
pub async fn run(sweeper: Sweeper) {
    let every = Duration::from_secs(sweeper.config.sweep_interval_secs.max(1));
    // Not at once: a starting server has its first requests to serve.
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    // A sweep that outlasts the interval is followed by the next one, not
    // by a burst of catching up.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sweeper.housekeeping().await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::store::{Record, StoreReader};

    const NOW: u64 = 10_000_000;

    fn cfg() -> AuthnConfig {
        AuthnConfig {
            session_idle_secs: 60,
            lockout_max_secs: 3600,
            code_rate_window_secs: 600,
            ..AuthnConfig::default()
        }
    }

    fn challenge(expires_ms: u64) -> ChallengeRecord {
        challenge::issue(
            "c",
            "123456",
            crate::store::ChallengePurpose::Login,
            "s",
            expires_ms - 300_000,
            300,
        )
    }

    fn flow(expires_ms: u64) -> LoginFlowRecord {
        LoginFlowRecord {
            kind: crate::store::FlowKind::Enterprise,
            account: "91210102MA0TAX001F".into(),
            factors: BTreeSet::new(),
            staff: None,
            generation: 0,
            staff_epoch: 0,
            expires_ms,
        }
    }

    fn session(last_used_ms: u64, expires_ms: u64) -> SessionRecord {
        SessionRecord {
            principal_type: crate::domain::PrincipalKind::Person,
            principal_id: "resident_id:210106199102140105".into(),
            acting_for: None,
            created_ms: 0,
            last_used_ms,
            expires_ms,
            password_change_required: false,
            credential_epoch: 0,
            recognition_epoch: 0,
        }
    }

    fn keys<R: Record>(r: &StoreReader) -> Vec<String> {
        r.all::<R>().unwrap().into_iter().map(|(k, _)| k).collect()
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn dead_is_what_the_login_steps_refuse() {
        let cfg = cfg();
        assert!(challenge::expired(&challenge(NOW), NOW));
        assert!(!challenge::expired(&challenge(NOW + 1), NOW));
        assert!(flow_expired(&flow(NOW), NOW));
        assert!(!flow_expired(&flow(NOW + 1), NOW));
        // Idle: last use a full idle timeout ago.
        let idle = session(NOW - 60_000, NOW + 1);
        assert!(session_dead(&idle, None, &cfg, NOW));
        assert!(!session_dead(
            &session(NOW - 59_999, NOW + 1),
            None,
            &cfg,
            NOW
        ));
        // Used since, as noted in memory: not idle.
        assert!(!session_dead(&idle, Some(NOW - 1), &cfg, NOW));
        // Absolute expiry, however recently used.
        assert!(session_dead(&session(NOW, NOW), Some(NOW), &cfg, NOW));
    }

    #[test]
    fn a_sweep_removes_the_dead_of_every_kind_and_keeps_the_rest() {
        let (_dir, store) = open();
        let cfg = cfg();
        let locked = LockoutRecord {
            consecutive_failures: 0,
            locks: 1,
            locked_until_ms: NOW + 1,
            last_failure_ms: NOW - 1,
            ..LockoutRecord::default()
        };
        let guessing = LockoutRecord {
            consecutive_failures: 3,
            locks: 0,
            locked_until_ms: 0,
            last_failure_ms: NOW - 3_599_999,
            ..LockoutRecord::default()
        };
        let quiet = LockoutRecord {
            consecutive_failures: 0,
            locks: 2,
            locked_until_ms: NOW - 3_600_000,
            last_failure_ms: NOW - 3_700_000,
            ..LockoutRecord::default()
        };
        // Quiet for long, but an attempt is being verified right now: its
        // reservation must outlive the sweep.
        let verifying = LockoutRecord {
            in_flight: vec![NOW + 1],
            ..quiet.clone()
        };
        let window = |start| CodeRateRecord {
            window_start_ms: start,
            count: 5,
        };
        store
            .write(|w| {
                w.put("c-dead", &challenge(NOW))?;
                w.put("c-live", &challenge(NOW + 1))?;
                w.put("f-dead", &flow(NOW - 5))?;
                w.put("f-live", &flow(NOW + 5))?;
                w.put("s-idle", &session(NOW - 60_000, NOW + 60_000))?;
                w.put("s-over", &session(NOW, NOW))?;
                w.put("s-live", &session(NOW - 1, NOW + 60_000))?;
                w.put("s-busy", &session(NOW - 60_000, NOW + 60_000))?;
                w.put("person:locked", &locked)?;
                w.put("person:guessing", &guessing)?;
                w.put("person:quiet", &quiet)?;
                w.put("person:verifying", &verifying)?;
                w.put("13800000001", &window(NOW - 600_000))?;
                w.put("captcha:resident_id:x", &window(NOW - 599_999))?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        // In memory: s-busy was used a moment ago; s-over, expired however
        // busy, loses its note with its record.
        let touches = Touches::default();
        touches.touch("s-busy", NOW - 1);
        touches.touch("s-over", NOW);
        let swept = sweep_store(&store, &cfg, &touches, NOW).unwrap();
        assert_eq!(
            swept,
            Swept {
                challenges: 1,
                login_flows: 1,
                sessions: 2,
                lockouts: 1,
                rate_windows: 1,
            }
        );
        let r = store.read().unwrap();
        assert_eq!(keys::<ChallengeRecord>(&r), ["c-live"]);
        assert_eq!(keys::<LoginFlowRecord>(&r), ["f-live"]);
        assert_eq!(keys::<SessionRecord>(&r), ["s-busy", "s-live"]);
        assert_eq!(touches.pending(), [("s-busy".to_owned(), NOW - 1)]);
        assert_eq!(
            keys::<LockoutRecord>(&r),
            ["person:guessing", "person:locked", "person:verifying"]
        );
        assert_eq!(keys::<CodeRateRecord>(&r), ["captcha:resident_id:x"]);
        drop(r);
        // Nothing left to remove: a second sweep writes nothing.
        let commits = store.commits();
        assert_eq!(sweep_store(&store, &cfg, &touches, NOW).unwrap().total(), 0);
        assert_eq!(store.commits(), commits);
    }

    #[test]
    fn touches_are_written_only_into_sessions_still_stored() {
        let (_dir, store) = open();
        store
            .write(|w| w.put("s", &session(NOW - 10, NOW + 60_000)))
            .unwrap();
        let pending = [("s".to_owned(), NOW), ("gone".to_owned(), NOW)];
        assert_eq!(write_touches(&store, &pending).unwrap(), 1);
        let r = store.read().unwrap();
        assert_eq!(
            r.get::<SessionRecord>("s").unwrap().unwrap().last_used_ms,
            NOW
        );
        assert!(r.get::<SessionRecord>("gone").unwrap().is_none());
        drop(r);
        // An older note than the stored time changes nothing.
        let older = [("s".to_owned(), NOW - 5)];
        assert_eq!(write_touches(&store, &older).unwrap(), 0);
    }
}
