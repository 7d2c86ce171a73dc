//! The HTTP/JSON API: routing, body limits, and the one place where errors
//! become responses.
//!
//! Decisions run on the async workers: a decision is tens of microseconds of
//! CPU and a redb read snapshot, which never waits for a writer. Anything that
//! blocks (argon2, durable commits) goes to the blocking pool.

pub mod admin;
pub mod audit;
pub mod authorize;
pub mod callers;
pub mod error;
pub mod limits;
pub mod login;
pub mod maintenance;
pub mod policies;
pub mod status;
pub mod stream;
mod uri;
mod write_timeout;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::audit::AuditLog;
use crate::decision::Engine;
use crate::flows::decide::RequestScope;
use crate::store::FunctionRecord;
use error::ApiError;

/// Default request body limit.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How long a client may take to send a request's body (its headers are
/// bounded by the idle timeout).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A response body: whole (every JSON answer) or streamed (exports).
pub type Body = http_body_util::Either<Full<Bytes>, stream::ChannelBody>;

/// What every handler can reach.
pub struct AppState {
    pub engine: Engine,
    pub audit: AuditLog,
    /// API keys and their scopes, or open mode.
    pub callers: callers::Callers,
    pub body_limit: usize,
    pub started_at_ms: u64,
    /// The one decision path every decision takes (and its counts, shown
    /// on `/metrics`).
    pub decider: crate::flows::decide::Decider,
    /// The session authority: `/v1/authorize`, maintenance and logout
    /// resolve and end sessions here.
    pub sessions: crate::authn::sessions::Sessions,
    /// The credential machinery (maintenance hashes one-time passwords;
    /// `/metrics` counts verifications).
    pub authn: Arc<crate::authn::Authn>,
    /// Login flows and passwords (R1–R11).
    pub login: crate::flows::Login,
    /// What the sweeper removed (`/metrics`).
    pub sweep: Arc<crate::flows::sweep::SweepStats>,
    /// How policy reloads went (`/v1/status`, `/metrics`).
    pub reload: Arc<crate::policy::reload::ReloadStatus>,
    /// One permit per connection served at once: past the limit, new
    /// connections wait in the kernel's accept queue instead of each
    /// taking a file descriptor and memory.
    pub connections: Arc<tokio::sync::Semaphore>,
    /// Connections at once (the semaphore's size), per-peer cap, idle and
    /// write timeouts, requests per connection.
    pub limits: limits::ConnectionLimits,
    /// Open connections per peer address.
    pub peers: Arc<limits::Peers>,
    /// The offset audit times are read at (when they name none) and shown
    /// at, unless a request says otherwise.
    pub time_offset: crate::audit::time::Offset,
    /// Every policy set loaded, for `GET /v1/audit/policy/{version}`.
    pub policy_archive: crate::policy::archive::PolicyArchive,
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes; connections in
/// flight are then allowed to finish their current request, and requests
/// under way to finish their writes and decision records.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    // Each request's task holds a sender; all are gone when every request
    // has finished.
    let (in_flight, mut all_done) = mpsc::channel::<()>(1);
    loop {
        let permit = tokio::select! {
            permit = state.connections.clone().acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
            () = &mut shutdown => break,
        };
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
        let Some(slot) = state.peers.admit(peer.ip()) else {
            // Closed at once: one peer's connections must not take the
            // slots every other caller needs.
            tracing::debug!(%peer, "peer at its connection cap; connection closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let in_flight = in_flight.clone();
        connections.spawn(async move {
            let _held = (permit, slot);
            connection(state, stream, peer, in_flight).await;
        });
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    tracing::info!("shutting down: no new connections");
    drop(in_flight);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while connections.join_next().await.is_some() {}
        // Requests whose clients hung up may still be writing.
        let _ = all_done.recv().await;
    })
    .await;
    Ok(())
}

/// Serves one connection under the configured limits. `in_flight` is held
/// by each request's task until it ends.
async fn connection(
    state: Arc<AppState>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    in_flight: mpsc::Sender<()>,
) {
    let limits = state.limits.clone();
    let max_requests = limits.max_requests;
    let served = Arc::new(AtomicU64::new(0));
    let service = service_fn(move |req| {
        let state = state.clone();
        let in_flight = in_flight.clone();
        let nth = served.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            // Its own task: hyper drops this future when the client hangs
            // up, and a write must never be cut off between its store
            // commit and its decision record.
            let handler = tokio::spawn(async move {
                let _in_flight = in_flight;
                handle(&state, req, peer).await
            });
            let mut response = match handler.await {
                Ok(response) => response,
                Err(e) => whole(ApiError::from(e).into_response()),
            };
            if nth >= max_requests {
                // hyper closes the connection after this answer and drops
                // whatever was pipelined behind it.
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    // hyper starts the header-read clock whenever the connection waits for a
    // request's head, so it bounds both an idle keep-alive connection and a
    // client sending its headers slowly.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    let io = write_timeout::WriteTimeout::new(stream, limits.write_timeout);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn handle(state: &AppState, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    // Paths can name a person (`/v1/maintenance/staff/resident_id:…`),
    // percent-encoded or not.
    let path = uri::log_path(req.uri().path());
    let response = match route(state, req).await {
        Ok(r) => r,
        Err(e) => whole(e.into_response()),
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

async fn route(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let asked = format!("{} {}", req.method(), uri::log_path(&path));
    let caller = state
        .callers
        .authenticate(req.headers(), callers::scope_for(&path));
    // Every decision record made while answering names this caller, and
    // waits for the answer to learn its outcome (`flows::decide`).
    let scope = RequestScope::new(caller.as_ref().ok().cloned().flatten());
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return finish(state, &scope, &asked, Err(e)).await,
    };
    // The one answer streamed rather than built whole.
    if req.method() == Method::GET && path == "/v1/audit/export" {
        let answer = scope
            .run(audit::export(state, query.as_deref(), caller.as_deref()))
            .await;
        return finish(state, &scope, &asked, answer).await;
    }
    let answer = scope
        .run(dispatch(state, req, path, query, caller.as_deref()))
        .await
        .map(whole);
    finish(state, &scope, &asked, answer).await
}

/// Commits the request's waiting decision records with its final status,
/// before the answer leaves: a decision that cannot be logged is not
/// answered. A refusal that recorded nothing is recorded as such, unless
/// it only says the route does not exist.
async fn finish(
    state: &AppState,
    scope: &RequestScope,
    asked: &str,
    answer: Result<Response<Body>, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let (status, code) = match &answer {
        Ok(response) => (response.status().as_u16(), None),
        Err(e) => (e.status.as_u16(), Some(e.code.as_ref())),
    };
    let recorded = scope.has_records();
    state.decider.finish(scope, status, code).await?;
    if let Err(e) = &answer {
        if !recorded && !matches!(e.code.as_ref(), "not_found" | "method_not_allowed") {
            let d = &state.decider;
            d.reject(scope, asked, status, &e.code, &e.message).await?;
        }
    }
    answer
}

/// A whole (not streamed) answer, in the body type streamed ones share.
fn whole(r: Response<Full<Bytes>>) -> Response<Body> {
    r.map(http_body_util::Either::Left)
}

async fn dispatch(
    state: &AppState,
    req: Request<Incoming>,
    path: String,
    query: Option<String>,
    caller: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    match (req.method(), path.as_str()) {
        (&Method::POST, "/v1/authorize") => {
            let body = read_json(state, req).await?;
            if policies::explain_wanted(query.as_deref())? {
                return ok(&policies::authorize_explained(state, body).await?);
            }
            ok(&authorize::authorize(state, body).await?)
        }
        (&Method::POST, "/v1/authorize/batch") => {
            let body = read_json(state, req).await?;
            ok(&authorize::authorize_batch(state, body).await?)
        }
        (&Method::POST, p) if login::PATHS.contains(&p) => login::handle(state, p, req).await,
        (&Method::POST, "/v1/admin/real-name") => {
            let body = read_json(state, req).await?;
            ok(&admin::real_name(state, body).await?)
        }
        (&Method::PUT, p) if core_officers_path(p).is_some() => {
            let enterprise = core_officers_path(p).unwrap_or_default().to_owned();
            let body = read_json(state, req).await?;
            ok(&admin::core_officers(state, &enterprise, body).await?)
        }
        (&Method::PUT, p) if p.starts_with("/v1/admin/calendar/") => {
            let year = p["/v1/admin/calendar/".len()..].to_owned();
            let body = read_json(state, req).await?;
            ok(&admin::calendar(state, &year, body).await?)
        }
        (&Method::GET, "/v1/functions") => ok(&functions(state)?),
        (_, p) if p.starts_with("/v1/maintenance/") => {
            let rest = p["/v1/maintenance".len()..].to_owned();
            maintenance::route(state, req, &rest).await
        }
        (&Method::GET, "/v1/audit/decisions") => {
            ok(&audit::decisions(state, query.as_deref(), caller).await?)
        }
        (&Method::GET, "/v1/audit/verify") => {
            ok(&audit::verify(state, query.as_deref(), caller).await?)
        }
        (&Method::GET, "/v1/audit/checkpoint") => ok(&audit::checkpoint(state, caller).await?),
        (&Method::GET, "/v1/audit/summary") => {
            ok(&audit::summary(state, query.as_deref(), caller).await?)
        }
        (&Method::GET, p) if p.starts_with("/v1/audit/policy/") => {
            let version = &p["/v1/audit/policy/".len()..];
            ok(&audit::policy(state, version, caller).await?)
        }
        (&Method::GET, "/v1/policies") => ok(&policies::list(state, query.as_deref())?),
        (&Method::GET, "/v1/status") => ok(&status::status(state)),
        (&Method::GET, "/metrics") => Ok(status::metrics(state)),
        (&Method::GET, "/healthz") => ok(&json!({ "status": "ok" })),
        (
            m,
            "/v1/authorize"
            | "/v1/authorize/batch"
            | "/v1/status"
            | "/v1/policies"
            | "/metrics"
            | "/healthz"
            | "/v1/functions"
            | "/v1/admin/real-name"
            | "/v1/audit/decisions"
            | "/v1/audit/verify"
            | "/v1/audit/checkpoint"
            | "/v1/audit/summary"
            | "/v1/audit/export",
        ) => Err(ApiError::method_not_allowed(m, &path)),
        (m, p) if login::PATHS.contains(&p) => Err(ApiError::method_not_allowed(m, p)),
        _ => Err(ApiError::not_found(&path)),
    }
}

/// The business-function catalogue (业务功能), from which permission
/// identities are built.
fn functions(state: &AppState) -> Result<serde_json::Value, ApiError> {
    let all = state.engine.store().read()?.all::<FunctionRecord>()?;
    let list: Vec<_> = all
        .into_iter()
        .map(|(code, f)| json!({ "code": code, "name": f.name, "description": f.description }))
        .collect();
    Ok(json!({ "functions": list }))
}

/// `/v1/admin/enterprises/{credit_code}/core-officers`
fn core_officers_path(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/admin/enterprises/")?
        .strip_suffix("/core-officers")
        .filter(|c| !c.contains('/'))
}

/// Reads the body within the limit and parses it as `T`.
pub(crate) async fn read_json<T: DeserializeOwned>(
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
    let collected =
        tokio::time::timeout(READ_TIMEOUT, Limited::new(req.into_body(), limit).collect())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body did not arrive in time",
                )
            })?;
    let bytes = match collected {
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
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| error::from_json_error(&e.path().to_string(), e.inner()))?;
    // Trailing characters after the value, as serde_json::from_slice refuses.
    de.end().map_err(|e| error::from_json_error(".", &e))?;
    Ok(value)
}

pub(crate) fn ok<T: Serialize>(body: &T) -> Result<Response<Full<Bytes>>, ApiError> {
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

/// The principal and acting-for enterprise behind a live session.
#[derive(Debug, Clone)]
pub(crate) struct SessionPrincipal {
    pub principal: cedar_policy::EntityUid,
    pub acting_for: Option<cedar_policy::EntityUid>,
}

/// For `/v1/authorize` and maintenance: the principal and acting-for
/// enterprise of the live session behind `token`, resolved by the session
/// service.
pub(crate) fn session_principal(
    state: &AppState,
    token: &str,
) -> Result<SessionPrincipal, ApiError> {
    let (_, rec) = state
        .sessions
        .resolve(token, false)
        .map_err(crate::flows::FlowError::from)?;
    Ok(SessionPrincipal {
        principal: crate::decision::uid(&rec.principal_type, &rec.principal_id),
        acting_for: rec
            .acting_for
            .map(|c| crate::decision::uid("Enterprise", &c)),
    })
}
