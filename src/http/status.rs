//! `GET /v1/status`, `GET /readyz` and `GET /metrics`: which policy set is
//! active, since when, how reloads went, whether the service can answer,
//! and what the login-state sweeper removed.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::{Response, StatusCode};
use serde::Serialize;

use super::AppState;

/// The readiness answer: `ready`, or `not_ready` with the failing parts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// The parts that fail (`store`, `policies`, `decision_log`).
    pub failing: Vec<&'static str>,
    pub checks: Vec<ReadyCheck>,
}

/// One part of readiness.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadyCheck {
    pub name: &'static str,
    pub ok: bool,
    /// What was seen, in words.
    pub detail: String,
}

/// `GET /readyz`: 200 when the store answers a read, a policy set with
/// policies is loaded, and the decision-log writer keeps up (fewer records
/// waiting than `--ready-max-pending`, none waiting longer than
/// `--ready-max-wait-ms` without a commit); 503 naming what fails.
pub fn readiness(state: &AppState) -> Response<Full<Bytes>> {
    let store = match state.engine.store().read() {
        Ok(_) => ReadyCheck::ok("store", "a read transaction opens".to_owned()),
        Err(e) => ReadyCheck::failed("store", crate::ids::mask_text(&e.to_string())),
    };
    let count = state.engine.snapshot().policies().policies().count();
    let policies = if count > 0 {
        ReadyCheck::ok("policies", format!("{count} policies active"))
    } else {
        ReadyCheck::failed("policies", "no policies are loaded".to_owned())
    };
    let backlog = state.audit.backlog();
    let ops = &state.ops;
    let detail = format!(
        "{} records waiting, the oldest for at most {} ms",
        backlog.pending, backlog.waiting_ms
    );
    let log = if !state.audit.writer_running() {
        ReadyCheck::failed("decision_log", "writer stopped".to_owned())
    } else if backlog.pending >= ops.ready_max_pending {
        ReadyCheck::failed("decision_log", format!("writer behind: {detail}"))
    } else if backlog.waiting_ms >= ops.ready_max_wait_ms {
        ReadyCheck::failed("decision_log", format!("writer stalled: {detail}"))
    } else {
        ReadyCheck::ok("decision_log", detail)
    };
    let mut checks = vec![store, policies, log];
    checks.extend(fleet_check(state));
    let failing: Vec<_> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    let (code, word) = if failing.is_empty() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    let body = Readiness {
        status: word,
        failing,
        checks,
    };
    super::json_response(code, &body)
}

/// Fleet mode: how long since the fleet database last answered this
/// sidecar, against `--fleet-max-stale-ms` (past it, decisions fail closed).
fn fleet_check(state: &AppState) -> Option<ReadyCheck> {
    let f = state.engine.store().freshness()?;
    let detail = format!(
        "fleet database last heard {} ms ago (bound {} ms)",
        f.silent_ms, f.max_stale_ms
    );
    Some(if f.is_stale() {
        ReadyCheck::failed("fleet", format!("replica stale: {detail}"))
    } else if let Err(clock) = state.engine.store().check_fresh() {
        // The clock: the store's refusal says how.
        ReadyCheck::failed("fleet", clock.to_string())
    } else {
        ReadyCheck::ok("fleet", detail)
    })
}

impl ReadyCheck {
    fn ok(name: &'static str, detail: String) -> Self {
        Self {
            name,
            ok: true,
            detail,
        }
    }

    fn failed(name: &'static str, detail: String) -> Self {
        Self {
            name,
            ok: false,
            detail,
        }
    }
}

/// `GET /healthz`: the process answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// `GET /v1/status`. Fields in the order of the `json!` object it
/// replaced (serde_json keeps keys in the order written), so the bytes
/// are as they were.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    pub service: &'static str,
    pub version: &'static str,
    pub started_at_ms: u64,
    pub policy_version: String,
    pub policies_loaded_at_ms: u64,
    pub policy_count: usize,
    pub policy_warnings: Vec<String>,
    pub reloads: Reloads,
    /// The last failed reload, with its diagnostics.
    #[schema(value_type = Option<Object>)]
    pub last_reload_error: Option<crate::policy::reload::ReloadFailure>,
    /// What the last successful reload changed (`policy::reload`).
    #[schema(value_type = Option<Object>)]
    pub last_reload_change: Option<crate::policy::reload::ReloadChange>,
    /// Fleet mode: how much of this host's decision log is not yet in the
    /// fleet's table (absent without `--fleet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet_shipping: Option<crate::fleet::ship::Lag>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reloads {
    pub succeeded: u64,
    pub failed: u64,
}

/// The status document.
pub fn status(state: &AppState) -> Status {
    let snap = state.engine.snapshot();
    let reload = &state.reload;
    Status {
        service: "etax-authz",
        version: env!("CARGO_PKG_VERSION"),
        started_at_ms: state.started_at_ms,
        policy_version: snap.version().to_owned(),
        policies_loaded_at_ms: snap.loaded_at_ms(),
        policy_count: snap.policies().policies().count(),
        policy_warnings: snap.warnings().iter().map(|w| w.to_string()).collect(),
        reloads: Reloads {
            succeeded: reload.successes(),
            failed: reload.failures(),
        },
        last_reload_error: reload.last_error(),
        last_reload_change: reload.last_change(),
        fleet_shipping: state.fleet.as_ref().map(|s| s.lag()),
    }
}

/// `GET /metrics`: the exposition of the service's registry
/// ([`crate::metrics`]).
pub fn metrics(state: &AppState) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
        .body(Full::new(Bytes::from(state.metrics.render())))
        .expect("static response parts are valid")
}
