//! The HTTP/JSON API: routing, body limits, and the one place where errors
//! become responses.
//!
//! Decisions run on the async workers: a decision is tens of microseconds of
//! CPU and a redb read snapshot, which never waits for a writer. Anything that
//! blocks (argon2, durable commits) goes to the blocking pool.

pub mod authorize;
pub mod error;
pub mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::audit::AuditLog;
use crate::decision::Engine;
use error::ApiError;

/// Default request body limit.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
pub struct AppState {
    pub engine: Engine,
    pub audit: AuditLog,
    pub body_limit: usize,
    pub started_at_ms: u64,
    /// How policy reloads went (`/v1/status`, `/metrics`).
    pub reload: Arc<crate::policy::reload::ReloadStatus>,
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes; connections in
/// flight are then allowed to finish their current request.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req, peer).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    tracing::info!("shutting down: no new connections");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

async fn handle(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = match route(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::info!(
        %peer,
        %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn route(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/v1/authorize") => {
            let body = read_json(state, req).await?;
            ok(&authorize::authorize(state, body).await?)
        }
        (&Method::POST, "/v1/authorize/batch") => {
            let body = read_json(state, req).await?;
            ok(&authorize::authorize_batch(state, body).await?)
        }
        (&Method::GET, "/v1/status") => ok(&status::status(state)),
        (&Method::GET, "/metrics") => Ok(status::metrics(state)),
        (&Method::GET, "/healthz") => ok(&json!({ "status": "ok" })),
        (m, "/v1/authorize" | "/v1/authorize/batch" | "/v1/status" | "/metrics" | "/healthz") => {
            Err(ApiError::method_not_allowed(m, &path))
        }
        _ => Err(ApiError::not_found(&path)),
    }
}

/// Reads the body within the limit and parses it as `T`.
async fn read_json<T: DeserializeOwned>(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    let limit = state.body_limit;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::body_too_large(limit))
        }
        Err(e) => {
            return Err(ApiError::invalid(
                "body",
                format!("could not read the request body: {e}"),
            ))
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| error::from_json_error(&e))
}

fn ok<T: Serialize>(body: &T) -> Result<Response<Full<Bytes>>, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

pub(crate) fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize to JSON");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("static response parts are valid")
}
