//! Decision counts and latency, observed by the one decision path
//! ([`super::decide`]) as each record becomes final, shown on `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::audit::{DecisionRecord, FinalOutcome};

/// Counts by (kind, action, outcome) and latency by kind. Kinds and
/// actions are the service's own (a fixed set), so the label sets stay
/// bounded whatever callers send: an unknown action is refused before a
/// record is made.
#[derive(Default)]
pub struct DecisionMetrics {
    inner: Mutex<Counts>,
}

#[derive(Default, Clone)]
pub struct Counts {
    /// kind → action → decisions by outcome (`done`, `refused`, `failed`,
    /// `unknown`). Nested so that counting a known label set allocates
    /// nothing: this runs for every `/v1/authorize` decision.
    pub by_outcome: BTreeMap<String, BTreeMap<String, [u64; 4]>>,
    /// kind → (count, sum of latency in µs).
    pub latency: BTreeMap<String, (u64, u64)>,
}

/// The outcome labels, in the order of [`Counts::by_outcome`]'s arrays.
pub const OUTCOMES: [&str; 4] = ["done", "refused", "failed", "unknown"];

impl DecisionMetrics {
    pub fn observe(&self, r: &DecisionRecord) {
        let slot = match r.outcome {
            Some(FinalOutcome::Done) => 0,
            Some(FinalOutcome::Refused) => 1,
            Some(FinalOutcome::Failed) => 2,
            None => 3,
        };
        let action = short_action(&r.action);
        let mut c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let actions = entry(&mut c.by_outcome, &r.kind);
        entry(actions, action)[slot] += 1;
        let l = entry(&mut c.latency, &r.kind);
        l.0 += 1;
        l.1 += r.latency_us;
    }

    /// A copy of the counts, for exposition.
    pub fn snapshot(&self) -> Counts {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The value under `key`, inserted (and its key allocated) only the first time.
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("just inserted")
}

/// `Etax::Action::"useFunction"` → `useFunction`.
fn short_action(action: &str) -> &str {
    action
        .rsplit_once("::\"")
        .map_or(action, |(_, a)| a.trim_end_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_action_and_outcome() {
        let m = DecisionMetrics::default();
        let mut r = DecisionRecord::new(
            "d",
            "authorize",
            "p",
            "Etax::Action::\"useFunction\"",
            "r",
            None,
            true,
            &[],
            &[],
            "v",
            7,
        );
        r.outcome = Some(crate::audit::FinalOutcome::Done);
        m.observe(&r);
        m.observe(&r);
        let c = m.snapshot();
        assert_eq!(c.by_outcome["authorize"]["useFunction"], [2, 0, 0, 0]);
        assert_eq!(c.latency["authorize"], (2, 14));
    }
}
