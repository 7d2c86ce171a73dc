//! The last use of each session, kept in memory. A session's idle clock
//! restarts on every use, and every `/v1/authorize` with a session is a use:
//! writing that to the store would be a durable commit (an fsync) on the
//! hot path. Instead each use is noted here, the idle check takes the later
//! of this and the stored time, and the sweeper writes the notes to the
//! store once per interval and at shutdown.
//!
//! The trade-off: a crash loses the uses noted since the last write, so
//! after a restart a session may idle-expire up to one sweep interval
//! early. Nothing else depends on the stored time.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Last-use times (ms since the Unix epoch) not yet in the store, by
/// session key. The lock is held for one map operation at a time, never
/// across an await or a store access.
#[derive(Debug, Default)]
pub struct Touches {
    last_used: Mutex<HashMap<String, u64>>,
}

impl Touches {
    fn map(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // Every update is one map operation: a panic elsewhere while the
        // lock was held cannot have left a half-made change.
        self.last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a use of session `key` at `now_ms`.
    pub fn touch(&self, key: &str, now_ms: u64) {
        let mut map = self.map();
        match map.get_mut(key) {
            Some(t) => *t = (*t).max(now_ms),
            None => {
                map.insert(key.to_owned(), now_ms);
            }
        }
    }

    /// The last use noted and not yet written, if any.
    pub fn last_used(&self, key: &str) -> Option<u64> {
        self.map().get(key).copied()
    }

    /// Drops the note of a session that ended (logout, swept).
    pub fn forget(&self, key: &str) {
        self.map().remove(key);
    }

    /// The notes to write to the store, as of now. They stay here until
    /// [`Touches::written`], so an idle check during the write still sees
    /// them.
    pub fn pending(&self) -> Vec<(String, u64)> {
        self.map().iter().map(|(k, t)| (k.clone(), *t)).collect()
    }

    /// Drops the notes that `written` put in the store (or found no session
    /// for); a note touched again since is kept for the next write.
    pub fn written(&self, written: &[(String, u64)]) {
        let mut map = self.map();
        for (key, t) in written {
            if map.get(key).is_some_and(|now| now <= t) {
                map.remove(key);
            }
        }
    }

    /// Sessions with a note not yet written.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_use_until_written() {
        let t = Touches::default();
        t.touch("a", 5);
        t.touch("a", 3);
        t.touch("b", 7);
        assert_eq!(t.last_used("a"), Some(5));
        let pending = t.pending();
        assert_eq!(pending.len(), 2);
        // Used again while the write was under way: kept for the next one.
        t.touch("b", 9);
        t.written(&pending);
        assert_eq!((t.last_used("a"), t.last_used("b")), (None, Some(9)));
        t.forget("b");
        assert!(t.is_empty());
    }
}
