//! What the one decision path ([`super::decide`]) observes as each record
//! becomes final: decisions by kind, action, decision and outcome, the
//! policies that determined them, how long deciding took, and the login
//! steps that failed or met a lock — plus the codes the login flows issue.
//!
//! The families are prometheus-client metrics; `crate::metrics` registers
//! them (the same `Arc`s, cloned) and renders them on `/metrics`. They live
//! here rather than there because `flows` must not reach up to the HTTP
//! layer's registry, and the record is the one place every decision passes.
//! Kinds, actions, steps and policy ids are the service's own (an unknown
//! action is refused before a record is made), so the label sets stay
//! bounded whatever callers send.

use std::borrow::{Borrow, Cow};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::audit::{DecisionRecord, FinalOutcome};
use crate::domain::Action;
use crate::flows::decide::{AUTHORIZE_BATCH_KIND, AUTHORIZE_KIND};

/// The wire code of a login step refused because the account is locked
/// (`http::error` maps `FlowError::Locked` to it).
const LOCKED_CODE: &str = "account_locked";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    kind: Cow<'static, str>,
    action: Cow<'static, str>,
    decision: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PurposeLabels {
    purpose: String,
}

type Histograms<S> = Family<S, Histogram, fn() -> Histogram>;

/// Decision latency buckets: 10 µs to ~0.33 s, doubling. A decision is tens
/// of µs; a login step's record is timed on Cedar alone too.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 16))
}

/// The decision path's metric families. Cheap to clone (each family is an
/// `Arc`); `Default` starts every count at zero.
#[derive(Clone)]
pub struct DecisionMetrics {
    decisions: Family<DecisionLabels, Counter>,
    policies: Family<PolicyLabels, Counter>,
    latency: Histograms<KindLabels>,
    login_failures: Family<StepLabels, Counter>,
    lockouts: Family<StepLabels, Counter>,
    challenges: Family<PurposeLabels, Counter>,
}

impl Default for DecisionMetrics {
    fn default() -> Self {
        Self {
            decisions: Family::default(),
            policies: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            login_failures: Family::default(),
            lockouts: Family::default(),
            challenges: Family::default(),
        }
    }
}

impl DecisionMetrics {
    /// Counts a final record.
    pub fn observe(&self, r: &DecisionRecord) {
        self.decisions.get_or_create(&decision_labels(r)).inc();
        for policy in &r.policies {
            self.policies
                .get_or_create(&PolicyLabels {
                    policy: policy.clone(),
                })
                .inc();
        }
        self.latency
            .get_or_create(&KindLabels {
                kind: kind_label(&r.kind),
            })
            .observe(latency_seconds(r));
        if let Some(step) = r.kind.strip_prefix("login.") {
            self.observe_login(step, r);
        }
    }

    /// Counts final records as [`Self::observe`] counts each, looking each
    /// label set up once however many of them share it: a batch's hundred
    /// records share a few, and a lookup per record (a hash of the labels,
    /// then an increment of a counter the other core increments too) was
    /// 2 % of a batch's CPU.
    pub fn observe_all<R: Borrow<DecisionRecord>>(&self, records: &[R]) {
        if let [one] = records {
            return self.observe(one.borrow());
        }
        let mut decisions: Vec<(DecisionLabels, u64)> = Vec::new();
        let mut policies: Vec<(&str, u64)> = Vec::new();
        let mut latencies: Vec<(&str, Vec<f64>)> = Vec::new();
        for r in records.iter().map(Borrow::borrow) {
            let labels = decision_labels(r);
            match decisions.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, n)) => *n += 1,
                None => decisions.push((labels, 1)),
            }
            for policy in &r.policies {
                match policies.iter_mut().find(|(p, _)| p == policy) {
                    Some((_, n)) => *n += 1,
                    None => policies.push((policy, 1)),
                }
            }
            match latencies.iter_mut().find(|(kind, _)| *kind == r.kind) {
                Some((_, seconds)) => seconds.push(latency_seconds(r)),
                None => latencies.push((&r.kind, vec![latency_seconds(r)])),
            }
            if let Some(step) = r.kind.strip_prefix("login.") {
                self.observe_login(step, r);
            }
        }
        for (labels, n) in decisions {
            self.decisions.get_or_create(&labels).inc_by(n);
        }
        for (policy, n) in policies {
            self.policies
                .get_or_create(&PolicyLabels {
                    policy: policy.to_owned(),
                })
                .inc_by(n);
        }
        for (kind, seconds) in latencies {
            let histogram = self.latency.get_or_create(&KindLabels {
                kind: kind_label(kind),
            });
            seconds.into_iter().for_each(|s| histogram.observe(s));
        }
    }

    /// A login step that did not end `done` is a failure; one refused for a
    /// lock is also a lockout.
    fn observe_login(&self, step: &str, r: &DecisionRecord) {
        if matches!(r.outcome, Some(FinalOutcome::Done) | None) {
            return;
        }
        let labels = StepLabels {
            step: step.to_owned(),
        };
        self.login_failures.get_or_create(&labels).inc();
        if r.code.as_deref() == Some(LOCKED_CODE) {
            self.lockouts.get_or_create(&labels).inc();
        }
    }

    /// Counts a code issued by the login flows (`login`, `captcha`,
    /// `reset`), decoys included: a decoy must look like any other code,
    /// on `/metrics` too.
    pub fn challenge_issued(&self, purpose: &str) {
        self.challenges
            .get_or_create(&PurposeLabels {
                purpose: purpose.to_owned(),
            })
            .inc();
    }

    /// Registers every family (the counters get their `_total` suffix from
    /// the encoder).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "etax_decisions",
            "Recorded decisions since start, by record kind, action, Cedar's decision and the final outcome",
            self.decisions.clone(),
        );
        registry.register(
            "etax_decision_policies",
            "Decisions each policy determined (a decision names every determining policy)",
            self.policies.clone(),
        );
        registry.register(
            "etax_decision_latency_seconds",
            "Time Cedar took to decide, by record kind",
            self.latency.clone(),
        );
        registry.register(
            "etax_login_failures",
            "Login and password steps that did not succeed, by step",
            self.login_failures.clone(),
        );
        registry.register(
            "etax_login_lockouts",
            "Login steps refused because the account or agreement password is locked, by step",
            self.lockouts.clone(),
        );
        registry.register(
            "etax_login_challenges",
            "SMS codes and captchas issued, by purpose (login, captcha, reset)",
            self.challenges.clone(),
        );
    }
}

fn decision_labels(r: &DecisionRecord) -> DecisionLabels {
    DecisionLabels {
        kind: kind_label(&r.kind),
        action: action_label(short_action(&r.action)),
        decision: r.decision.as_str(),
        outcome: match r.outcome {
            Some(FinalOutcome::Done) => "done",
            Some(FinalOutcome::Refused) => "refused",
            Some(FinalOutcome::Failed) => "failed",
            None => "unknown",
        },
    }
}

fn latency_seconds(r: &DecisionRecord) -> f64 {
    r.latency_us as f64 / 1e6
}

/// A record kind's label, borrowed for the kinds every `/v1/authorize`
/// record has: counting a question then allocates no label.
fn kind_label(kind: &str) -> Cow<'static, str> {
    match kind {
        AUTHORIZE_KIND => Cow::Borrowed(AUTHORIZE_KIND),
        AUTHORIZE_BATCH_KIND => Cow::Borrowed(AUTHORIZE_BATCH_KIND),
        other => Cow::Owned(other.to_owned()),
    }
}

/// An action's label, borrowed from the bureau's vocabulary when it is one
/// of its actions.
fn action_label(action: &str) -> Cow<'static, str> {
    match action.parse::<Action>() {
        Ok(a) => Cow::Borrowed(a.as_str()),
        Err(_) => Cow::Owned(action.to_owned()),
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

    fn record(kind: &str, outcome: FinalOutcome, code: Option<&str>) -> DecisionRecord {
        let mut r = DecisionRecord::new(
            "d",
            kind,
            "p",
            "Etax::Action::\"useFunction\"",
            "r",
            None,
            true,
            &["function.via-permission-identity".to_owned()],
            &[],
            "v",
            7,
        );
        r.outcome = Some(outcome);
        r.code = code.map(str::to_owned);
        r
    }

    fn text(m: &DecisionMetrics) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn counts_by_kind_action_decision_and_outcome() {
        let m = DecisionMetrics::default();
        m.observe(&record("authorize", FinalOutcome::Done, None));
        m.observe(&record("authorize", FinalOutcome::Done, None));
        let out = text(&m);
        assert!(out.contains(
            "etax_decisions_total{kind=\"authorize\",action=\"useFunction\",decision=\"allow\",outcome=\"done\"} 2"
        ), "{out}");
        assert!(out.contains(
            "etax_decision_policies_total{policy=\"function.via-permission-identity\"} 2"
        ));
        assert!(out.contains("etax_decision_latency_seconds_count{kind=\"authorize\"} 2"));
        assert!(!out.contains("etax_login_failures_total{"), "{out}");
    }

    #[test]
    fn login_failures_and_lockouts_by_step() {
        let m = DecisionMetrics::default();
        m.observe(&record(
            "login.password",
            FinalOutcome::Refused,
            Some("bad_credentials"),
        ));
        m.observe(&record(
            "login.password",
            FinalOutcome::Refused,
            Some(LOCKED_CODE),
        ));
        m.observe(&record("login.password", FinalOutcome::Done, None));
        m.challenge_issued("captcha");
        let out = text(&m);
        assert!(
            out.contains("etax_login_failures_total{step=\"password\"} 2"),
            "{out}"
        );
        assert!(out.contains("etax_login_lockouts_total{step=\"password\"} 1"));
        assert!(out.contains("etax_login_challenges_total{purpose=\"captcha\"} 1"));
    }

    /// Records counted together count as each counted alone: kinds and
    /// label sets interleaved, a policy named by some records only.
    #[test]
    fn counted_together_as_one_at_a_time() {
        let mut records = Vec::new();
        for i in 0..7 {
            let kind = if i % 3 == 0 {
                "authorize"
            } else {
                "authorize_batch"
            };
            let outcome = if i % 2 == 0 {
                FinalOutcome::Done
            } else {
                FinalOutcome::Refused
            };
            let mut r = record(kind, outcome, None);
            if i == 5 {
                r.policies
                    .push("function.password-change-pending".to_owned());
            }
            r.latency_us = 10 * i;
            records.push(r);
        }
        records.push(record(
            "login.password",
            FinalOutcome::Refused,
            Some(LOCKED_CODE),
        ));
        let (together, alone) = (DecisionMetrics::default(), DecisionMetrics::default());
        together.observe_all(&records);
        records.iter().for_each(|r| alone.observe(r));
        // Series come out in the order of a hash map: compared as sets.
        let lines = |m: &DecisionMetrics| {
            let mut lines: Vec<String> = text(m).lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        assert_eq!(lines(&together), lines(&alone));
        let out = text(&together);
        assert!(out.contains(
            "etax_decisions_total{kind=\"authorize_batch\",action=\"useFunction\",decision=\"allow\",outcome=\"refused\"} 2"
        ), "{out}");
        assert!(out.contains(
            "etax_decision_policies_total{policy=\"function.via-permission-identity\"} 8"
        ));
        assert!(out.contains(
            "etax_decision_policies_total{policy=\"function.password-change-pending\"} 1"
        ));
        assert!(out.contains("etax_decision_latency_seconds_count{kind=\"authorize_batch\"} 4"));
        assert!(out.contains("etax_login_lockouts_total{step=\"password\"} 1"));
    }
}
