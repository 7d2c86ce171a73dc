//! `GET /v1/status` and `GET /metrics`: which policy set is active, since
//! when, how reloads went, and what the login-state sweeper removed.

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
    })
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
