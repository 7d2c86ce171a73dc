//! `GET /v1/status` and `GET /metrics`: which policy set is active, since
//! when, how reloads went, and what the login-state sweeper removed.

use std::fmt::Write as _;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::AppState;

/// The status document.
pub fn status(state: &AppState) -> serde_json::Value {
    let snap = state.engine.snapshot();
    let reload = &state.reload;
    json!({
        "service": "etax-authz",
        "version": env!("CARGO_PKG_VERSION"),
        "started_at_ms": state.started_at_ms,
        "policy_version": snap.version(),
        "policies_loaded_at_ms": snap.loaded_at_ms(),
        "policy_count": snap.policies().policies().count(),
        "policy_warnings": snap.warnings().iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        "reloads": {
            "succeeded": reload.successes(),
            "failed": reload.failures(),
        },
        "last_reload_error": reload.last_error(),
        "last_reload_change": reload.last_change(),
    })
}

/// One sample of a metric family: its labels (`{…}` or empty) and value.
type Sample<'a> = (&'a str, u64);

/// Prometheus text exposition (format 0.0.4).
pub fn metrics(state: &AppState) -> Response<Full<Bytes>> {
    let snap = state.engine.snapshot();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[Sample]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    policy_metrics(&mut metric, state, &snap);
    serving_metrics(&mut metric, state);
    let version_label = format!("{{version=\"{}\"}}", snap.version());
    metric(
        "etax_policy_active_info",
        "gauge",
        "The active policy version (SHA-256 of schema and policy texts).",
        &[(version_label.as_str(), 1)],
    );
    login_state_metrics(&mut metric, state);
    metric(
        "etax_store_commits_total",
        "counter",
        "Write transactions committed to the identity store (each one an fsync).",
        &[("", state.engine.store().commits())],
    );
    decision_metrics(&mut metric, &state.decider.metrics.snapshot());
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .body(Full::new(Bytes::from(out)))
        .expect("static response parts are valid")
}

/// Reloads and the active set.
fn policy_metrics(
    metric: &mut impl FnMut(&str, &str, &str, &[Sample]),
    state: &AppState,
    snap: &crate::policy::PolicySnapshot,
) {
    let reload = &state.reload;
    metric(
        "etax_policy_reloads_total",
        "counter",
        "Policy reloads since start, by outcome.",
        &[
            ("{outcome=\"success\"}", reload.successes()),
            ("{outcome=\"failure\"}", reload.failures()),
        ],
    );
    metric(
        "etax_policy_last_reload_failed",
        "gauge",
        "1 when the most recent reload was rejected and the previous policies still serve.",
        &[("", u64::from(reload.last_error().is_some()))],
    );
    metric(
        "etax_policy_active_policies",
        "gauge",
        "Policies in the active set.",
        &[("", snap.policies().policies().count() as u64)],
    );
    metric(
        "etax_policy_loaded_timestamp_seconds",
        "gauge",
        "When the active set was loaded (Unix time).",
        &[("", snap.loaded_at_ms() / 1000)],
    );
}

/// What serving costs: connections, built entities reused, argon2 runs.
fn serving_metrics(metric: &mut impl FnMut(&str, &str, &str, &[Sample]), state: &AppState) {
    metric(
        "etax_http_connections_open",
        "gauge",
        "Connections being served (at most --max-connections; more wait to be accepted).",
        &[(
            "",
            (state.limits.max_connections - state.connections.available_permits()) as u64,
        )],
    );
    let (hits, misses) = state.engine.cache_counts();
    metric(
        "etax_decision_cache_total",
        "counter",
        "Decisions whose request entities were reused (hit) or built from the store (miss).",
        &[("{result=\"hit\"}", hits), ("{result=\"miss\"}", misses)],
    );
    metric(
        "etax_password_verifications_total",
        "counter",
        "argon2id password verifications since start, including those against the dummy \
         hash for unknown accounts.",
        &[("", state.authn.verifications())],
    );
}

/// The sweeper's work and the sessions' last uses waiting for it.
fn login_state_metrics(metric: &mut impl FnMut(&str, &str, &str, &[Sample]), state: &AppState) {
    let swept = state.sweep.swept().by_kind();
    let labels = swept.map(|(kind, _)| format!("{{kind=\"{kind}\"}}"));
    let samples: Vec<Sample> = labels
        .iter()
        .zip(swept)
        .map(|(l, (_, n))| (l.as_str(), n))
        .collect();
    metric(
        "etax_swept_total",
        "counter",
        "Expired login state removed by the sweeper, by kind.",
        &samples,
    );
    metric(
        "etax_sweep_failures_total",
        "counter",
        "Sweeps that failed on a store error (retried at the next tick).",
        &[("", state.sweep.failures())],
    );
    metric(
        "etax_session_touches_pending",
        "gauge",
        "Sessions used since their last use was written to the store.",
        &[("", state.sessions.touches().len() as u64)],
    );
    metric(
        "etax_session_touches_written_total",
        "counter",
        "Session records whose in-memory last use was written to the store.",
        &[("", state.sweep.touches_written())],
    );
}

/// The decision counts (by kind, action, outcome) and latency (sum and
/// count by kind), as the one decision path observed them.
fn decision_metrics(
    metric: &mut impl FnMut(&str, &str, &str, &[Sample]),
    counts: &crate::flows::metrics::Counts,
) {
    use crate::flows::metrics::OUTCOMES;
    let labels: Vec<(String, u64)> = counts
        .by_outcome
        .iter()
        .flat_map(|(kind, actions)| {
            actions.iter().flat_map(move |(action, ns)| {
                OUTCOMES
                    .iter()
                    .zip(ns)
                    .filter(|(_, n)| **n > 0)
                    .map(move |(outcome, n)| {
                        (
                            format!(
                                "{{kind=\"{kind}\",action=\"{action}\",outcome=\"{outcome}\"}}"
                            ),
                            *n,
                        )
                    })
            })
        })
        .collect();
    let samples: Vec<(&str, u64)> = labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    metric(
        "etax_decisions_total",
        "counter",
        "Recorded decisions since start, by record kind, action and final outcome.",
        &samples,
    );
    let kinds: Vec<(String, u64, u64)> = counts
        .latency
        .iter()
        .map(|(kind, (n, sum))| (format!("{{kind=\"{kind}\"}}"), *n, *sum))
        .collect();
    let sums: Vec<(&str, u64)> = kinds.iter().map(|(l, _, s)| (l.as_str(), *s)).collect();
    let ns: Vec<(&str, u64)> = kinds.iter().map(|(l, n, _)| (l.as_str(), *n)).collect();
    metric(
        "etax_decision_latency_microseconds_sum",
        "counter",
        "Time to decide, summed, by record kind (µs).",
        &sums,
    );
    metric(
        "etax_decision_latency_microseconds_count",
        "counter",
        "Decisions timed, by record kind.",
        &ns,
    );
}
