//! How far the writer is behind: records sent but not yet durable, and
//! since when the oldest of them has waited. `/readyz` reads it to tell a
//! writer keeping up from a stalled one (a hung disk, a full one retrying).

use std::sync::atomic::{AtomicU64, Ordering};

/// Shared by the senders (who count records in) and the writer thread (who
/// counts them out after each durable commit).
#[derive(Debug, Default)]
pub struct Backlog {
    pending: AtomicU64,
    /// When the writer last made records durable, or when the backlog last
    /// went from empty to non-empty: while records wait, the time the
    /// oldest of them has waited at most.
    clock_ms: AtomicU64,
}

/// What `/readyz` reports of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogState {
    /// Records sent to the writer and not yet durable.
    pub pending: u64,
    /// While records are pending: how long since the writer last committed
    /// (or since they started waiting, if it was idle before). 0 when none.
    pub waiting_ms: u64,
}

impl Backlog {
    /// `n` records were handed to the writer.
    pub(super) fn sent(&self, n: usize) {
        if self.pending.fetch_add(n as u64, Ordering::AcqRel) == 0 {
            // An idle writer's last commit may be hours old; the wait
            // starts now.
            self.clock_ms.store(crate::now_ms(), Ordering::Release);
        }
    }

    /// `n` records are durable (or were refused back to a waiting caller).
    pub(super) fn done(&self, n: usize) {
        self.clock_ms.store(crate::now_ms(), Ordering::Release);
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n as u64))
            });
    }

    pub fn state(&self) -> BacklogState {
        let pending = self.pending.load(Ordering::Acquire);
        let waiting_ms = if pending == 0 {
            0
        } else {
            crate::now_ms().saturating_sub(self.clock_ms.load(Ordering::Acquire))
        };
        BacklogState {
            pending,
            waiting_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_records_in_and_out() {
        let b = Backlog::default();
        assert_eq!(b.state().pending, 0);
        b.sent(3);
        b.sent(1);
        assert_eq!(b.state().pending, 4);
        b.done(3);
        assert_eq!(b.state().pending, 1);
        b.done(5);
        assert_eq!(
            b.state(),
            BacklogState {
                pending: 0,
                waiting_ms: 0
            }
        );
    }
}
