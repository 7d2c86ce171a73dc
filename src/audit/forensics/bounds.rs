//! What the walk proves about the log as a whole once every frame has been
//! read: that an anchor's prune was a retention prune, that the log starts
//! where the latest anchor says, that it ends at the head recorded at the
//! last close, and that it still extends a checkpoint.

use super::{Walk, SKEW_MS};
use crate::audit::chain::{CheckpointCheck, TamperKind};
use crate::audit::record::PrunedRange;
use crate::audit::{stored, time, DecisionRecord};

impl Walk<'_> {
    /// An anchor must prove what it pruned (the last record's stored line,
    /// re-hashed) and may not have pruned it within the minimum retention,
    /// measured from its own time, which may not be in the future. Without
    /// the line (anchors older than it) the claim cannot be checked: a
    /// warning, not a verdict.
    pub(super) fn check_anchor(&mut self, rec: &DecisionRecord, p: &PrunedRange) {
        let (seq, at) = (rec.seq, Some(rec.timestamp_ms));
        if rec.timestamp_ms > self.rules.now_ms.saturating_add(SKEW_MS) {
            let now = time::format_utc(self.rules.now_ms);
            self.found(TamperKind::Altered, seq, at, format!("anchor {seq} is dated after this verifier's clock ({now}): forged, or the clock is wrong"));
        }
        // Without the last pruned record nothing shows the removal was a
        // retention prune: anyone can write such an anchor over a deleted
        // prefix. It fails the log; a log migrated with older anchors, or a
        // damage accepted with --accept-damaged-log, shows here for an
        // auditor to judge (the damaged files are kept aside).
        let Some(line) = &p.last_record else {
            return self.found(
                TamperKind::Removed,
                seq,
                at,
                format!(
                    "unverifiable anchor: record {seq} says records {}..={} were pruned but does not carry the last of them, so their removal cannot be shown to be a retention prune",
                    p.first_seq, p.last_seq
                ),
            );
        };
        let own = stored::own_seq_time(line.as_bytes()).ok();
        if self.chain_hash.hex(line.as_bytes()) != p.last_hash
            || own.map(|o| o.0) != Some(p.last_seq)
        {
            return self.found(
                TamperKind::Altered,
                seq,
                at,
                format!(
                    "anchor {seq}: the pruned record it carries is not record {} with hash {}",
                    p.last_seq, p.last_hash
                ),
            );
        }
        let written = own.map_or(0, |o| o.1);
        if written.saturating_add(self.rules.min_retention_ms) > rec.timestamp_ms {
            let days = self.rules.min_retention_ms / 86_400_000;
            self.found(TamperKind::Altered, seq, at, format!(
                "anchor {seq} pruned record {} written {}, within the minimum retention of {days} days before the anchor: records were removed (or pruned with a lower minimum: verify with --min-retention-days)",
                p.last_seq, time::format_utc(written)
            ));
        }
    }

    /// A log that does not start at record 1 must have been pruned, and the
    /// latest anchor must account for exactly the records before it.
    pub(super) fn prefix(&mut self) {
        let Some((seq, prev)) = self.first else {
            return;
        };
        let prev = hex::encode(prev);
        if seq == 1 {
            if prev != crate::audit::chain::GENESIS {
                self.found(
                    TamperKind::Altered,
                    1,
                    None,
                    "record 1 does not start the chain".to_owned(),
                );
            }
            return;
        }
        match self.anchor.clone() {
            None => self.found(
                TamperKind::Removed,
                1,
                None,
                format!(
                    "records 1..={} are missing and no anchor accounts for them",
                    seq - 1
                ),
            ),
            Some(a) if a.last_seq + 1 != seq => self.found(
                TamperKind::Removed,
                a.last_seq + 1,
                None,
                format!(
                    "retention pruned through record {}, but records {}..={} are missing too",
                    a.last_seq,
                    a.last_seq + 1,
                    seq - 1
                ),
            ),
            Some(a) if a.last_hash != prev => self.found(
                TamperKind::Altered,
                seq,
                None,
                format!("record {seq} does not link to the pruned record the anchor names"),
            ),
            Some(_) => {}
        }
    }

    /// The head recorded at a clean close (or the writer's, while it runs)
    /// says how far the log went: a cut tail shows here.
    pub(super) fn head(&mut self) {
        let last = self.prev;
        let Some(h) = self.report.head.clone() else {
            self.report.head = self.report.last_verified.clone();
            return;
        };
        match last {
            None => self.found(
                TamperKind::Removed,
                self.report.first_seq.unwrap_or(1),
                None,
                format!("the log is empty but its head is record {}", h.seq),
            ),
            // Damage already found explains a short log; else it was cut.
            Some(p) if h.seq > p.seq => {
                let kind = if self.damaged() {
                    TamperKind::Unreadable
                } else {
                    TamperKind::Removed
                };
                self.found(
                    kind,
                    p.seq + 1,
                    Some(p.timestamp_ms),
                    format!(
                "records {}..={} are missing: the log was closed with record {} as its head",
                p.seq + 1, h.seq, h.seq
            ),
                )
            }
            Some(p) if h.seq < p.seq => self.found(
                TamperKind::Altered,
                h.seq + 1,
                None,
                format!(
                    "records {}..={} were added outside the writer (head is {})",
                    h.seq + 1,
                    p.seq,
                    h.seq
                ),
            ),
            Some(p) if h.hash != hex::encode(p.hash) => self.found(
                TamperKind::Altered,
                p.seq,
                Some(p.timestamp_ms),
                format!("record {} is not the record the head names", p.seq),
            ),
            Some(_) => {}
        }
    }

    /// With a checkpoint: whether the log still extends it (the record
    /// it names still has its hash, or an anchor carries it).
    pub(super) fn checkpoint(&mut self) {
        let Some(cp) = self.checkpoint else {
            return;
        };
        let last = self.prev.map_or(0, |p| p.seq);
        let result = |extended, detail: String| CheckpointCheck {
            seq: cp.seq,
            hash: cp.hash.clone(),
            extended,
            unprovable: false,
            detail,
        };
        let check = if cp.seq > last {
            result(false, format!("the log ends at record {last}, before the checkpoint's record {}: records were removed", cp.seq))
        } else if let Some(hash) = &self.at_checkpoint {
            if *hash == cp.hash {
                result(true, format!("record {} still has the checkpoint's hash and the chain to the head is intact", cp.seq))
            } else {
                result(false, format!("record {} no longer has the checkpoint's hash: the log was rewritten (a record at or before it was removed or changed)", cp.seq))
            }
        } else {
            match &self.anchor {
                Some(r) if r.last_seq == cp.seq && r.last_hash == cp.hash => result(true, format!("record {} was pruned; the anchor carries its hash", cp.seq)),
                Some(r) if r.last_seq == cp.seq => result(false, format!("the anchor's hash for pruned record {} differs from the checkpoint", cp.seq)),
                Some(r) if cp.seq <= r.last_seq => CheckpointCheck {
                    unprovable: true,
                    ..result(false, format!(
                        "record {} was pruned (the anchor covers records {}..={}); this checkpoint can no longer be proven: use a checkpoint taken after the prune",
                        cp.seq, r.first_seq, r.last_seq
                    ))
                },
                _ => result(false, format!(
                    "record {} is not in the log (it starts at {}) and no anchor accounts for it: records were removed",
                    cp.seq,
                    self.report.first_seq.unwrap_or(0)
                )),
            }
        };
        self.report.checkpoint = Some(check);
    }
}
