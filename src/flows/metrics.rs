//! Decision counts and latency, observed by the one decision path
//! ([`super::decide`]) as each record becomes final, shown on `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::audit::DecisionRecord;

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
    /// (kind, action, outcome) → decisions.
    pub by_outcome: BTreeMap<(String, String, &'static str), u64>,
    /// kind → (count, sum of latency in µs).
    pub latency: BTreeMap<String, (u64, u64)>,
}

impl DecisionMetrics {
    pub fn observe(&self, r: &DecisionRecord) {
        let outcome = r.outcome.map_or("unknown", |o| o.as_str());
        let action = short_action(&r.action).to_owned();
        let mut c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *c.by_outcome
            .entry((r.kind.clone(), action, outcome))
            .or_default() += 1;
        let l = c.latency.entry(r.kind.clone()).or_default();
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
        assert_eq!(
            c.by_outcome[&("authorize".into(), "useFunction".into(), "done")],
            2
        );
        assert_eq!(c.latency["authorize"], (2, 14));
    }
}
