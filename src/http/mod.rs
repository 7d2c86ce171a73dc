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
pub mod console;
pub mod error;
pub mod export;
pub mod fleet;
pub mod keys_file;
pub mod limits;
pub mod listen;
pub mod login;
pub mod maintenance;
pub mod openapi;
pub mod options;
pub mod policies;
mod query_params;
pub mod request_id;
pub mod routes;
pub mod status;
pub mod stream;
mod uri;
mod write_timeout;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::audit::AuditLog;
use crate::decision::Engine;
use crate::flows::decide::RequestScope;
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
    /// Access log, readiness bounds, shutdown grace.
    pub ops: options::Ops,
    /// `/metrics`: request latency and open connections are recorded here.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Fleet mode (`--fleet`): the shipper of this host's decision log, and
    /// the fleet's database it reads status and the fleet's log from.
    pub fleet: Option<crate::fleet::ship::Shipper>,
}

/// Serves HTTP/1.1 on every listener until `shutdown` completes. Then the
/// listeners close at once (new connections are refused), connections
/// finish the request they are serving and close, and requests under way
/// (whose clients may have hung up) finish their writes and decision
/// records, for at most the shutdown grace.
pub async fn serve(
    listeners: Vec<listen::Listener>,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    // Each request's task holds a sender; all are gone when every request
    // has finished.
    let (in_flight, mut all_done) = mpsc::channel::<()>(1);
    let mut loops = tokio::task::JoinSet::new();
    for listener in listeners {
        let accepting = accept_loop(listener, state.clone(), stopped.clone(), in_flight.clone());
        loops.spawn(accepting);
    }
    drop(in_flight);
    shutdown.await;
    tracing::info!("shutting down: no new connections");
    let _ = stop.send(true);
    let grace = state.ops.shutdown_grace;
    let finished = tokio::time::timeout(grace, async {
        while loops.join_next().await.is_some() {}
        let _ = all_done.recv().await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            ?grace,
            "requests still in flight at the end of the shutdown grace"
        );
    }
    Ok(())
}

/// Completes once the server is told to stop.
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the server is stopping too.
    let _ = stopped.wait_for(|s| *s).await;
}

/// Accepts connections on `listener` until told to stop; then drops it (so
/// new connections are refused) and waits for its connections.
async fn accept_loop(
    listener: listen::Listener,
    state: Arc<AppState>,
    mut stopped: watch::Receiver<bool>,
    in_flight: mpsc::Sender<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = state.connections.clone().acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
            () = stopping(&mut stopped) => break,
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
            () = stopping(&mut stopped) => break,
        };
        let Some(slot) = state.peers.admit(peer.ip()) else {
            // Closed at once: one peer's connections must not take the
            // slots every other caller needs.
            tracing::debug!(%peer, "peer at its connection cap; connection closed");
            continue;
        };
        let state = state.clone();
        let in_flight = in_flight.clone();
        let stopped = stopped.clone();
        connections.spawn(async move {
            let _held = (permit, slot);
            connection(state, stream, peer, in_flight, stopped).await;
        });
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection under the configured limits. `in_flight` is held
/// by each request's task until it ends. When `stopped` turns, the
/// connection finishes the request it is serving and closes.
async fn connection(
    state: Arc<AppState>,
    stream: Box<dyn listen::Stream>,
    peer: listen::Peer,
    in_flight: mpsc::Sender<()>,
    mut stopped: watch::Receiver<bool>,
) {
    let _open = state.metrics.connection_open();
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
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stopping(&mut stopped) => {
            // An idle keep-alive connection closes now; a busy one after
            // its answer.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Answers one request inside its span (which carries its id into every log
/// line), echoes the id, and writes the access-log line if `--access-log`
/// asks for it.
async fn handle(state: &AppState, req: Request<Incoming>, peer: listen::Peer) -> Response<Body> {
    let started = Instant::now();
    let id = request_id::of(req.headers());
    let span = tracing::info_span!("request", request_id = %id);
    // The table is looked up once; the label and the path as shown come
    // from that one answer. Paths can name a person
    // (`/v1/maintenance/staff/resident_id:…`), percent-encoded or not, or
    // carry anything a caller likes: only the route's pattern, or a short
    // prefix of an unmatched path's route words, is logged or counted.
    let found = routes::lookup(req.method(), req.uri().path());
    let line = RequestLine {
        method: req.method().clone(),
        // The URI's parts are shared bytes: a clone copies no text.
        uri: req.uri().clone(),
        label: found.label(),
    };
    // Boxed: the route's future (a few kB) is then written once, where
    // moved inline it was copied by every wrapper and by the spawn of the
    // request's task (BENCHMARKS.md, session 14).
    let mut response = match Box::pin(route(state, req, &id, &line, found))
        .instrument(span.clone())
        .await
    {
        Ok(r) => r,
        Err(e) => whole(span.in_scope(|| e.into_response())),
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
    let took = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe_request(line.label, status, took);
    if state.ops.logs(status, took) {
        let path = uri::shown_path(line.label, line.uri.path());
        span.in_scope(|| {
            tracing::info!(
                %peer,
                method = %line.method,
                path,
                status,
                micros = took.as_micros() as u64,
                "request"
            )
        });
    }
    response
}

/// A request's method and URI (its request line), kept beside the request
/// the handler takes.
struct RequestLine {
    method: Method,
    uri: hyper::Uri,
    /// The route's pattern ([`routes::Lookup::label`]).
    label: &'static str,
}

impl RequestLine {
    /// `METHOD path` as a refusal's decision record shows it
    /// ([`uri::shown_path`]): made only for a refusal.
    fn shown(&self) -> String {
        format!(
            "{} {}",
            self.method,
            uri::shown_path(self.label, self.uri.path())
        )
    }
}

async fn route(
    state: &AppState,
    req: Request<Incoming>,
    request_id: &str,
    line: &RequestLine,
    found: routes::Lookup,
) -> Result<Response<Body>, ApiError> {
    let (path, query) = (line.uri.path(), line.uri.query());
    let caller = state.callers.authenticate(req.headers(), found.scope());
    // Every decision record made while answering names this caller and
    // request, and waits for the answer to learn its outcome
    // (`flows::decide`).
    let scope = RequestScope::for_request(caller.as_ref().ok().cloned().flatten(), request_id);
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return finish(state, &scope, line, Err(e)).await,
    };
    let route = match found {
        routes::Lookup::Found(route) => route,
        routes::Lookup::WrongMethod { allow, .. } => {
            let refused = method_not_allowed(req.method(), path, &allow);
            return finish(state, &scope, line, Ok(refused)).await;
        }
        routes::Lookup::NotFound => {
            return finish(state, &scope, line, Err(ApiError::not_found(path))).await
        }
    };
    // The answers streamed rather than built whole.
    let (q, who) = (query, caller.as_deref());
    let streamed = match route.handler {
        routes::Handler::AuditExport => {
            Some(scope.run(Box::pin(export::local(state, q, who))).await)
        }
        routes::Handler::FleetExport => {
            Some(scope.run(Box::pin(fleet::export(state, q, who))).await)
        }
        _ => None,
    };
    if let Some(answer) = streamed {
        return finish(state, &scope, line, answer).await;
    }
    let call = Call {
        state,
        req,
        path,
        query,
        caller: caller.as_deref(),
    };
    // `/v1/authorize` inline, every other handler boxed: each request is a
    // task of its own, and with every handler's state inline that task's
    // future was 15 KB, copied on every spawn (memmove was 7.5 % of the
    // server under the bureau-scale mix; BENCHMARKS.md, session 8).
    let answer = match route.handler {
        routes::Handler::Authorize => scope.run(authorize_call(call)).await,
        handler => scope.run(Box::pin(dispatch(handler, call))).await,
    };
    finish(state, &scope, line, answer.map(whole)).await
}

/// `POST /v1/authorize`, with `?explain=true` or without.
async fn authorize_call(c: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    let body = read_json(c.state, c.req).await?;
    if policies::explain_wanted(c.query)? {
        return ok(&policies::authorize_explained(c.state, body).await?);
    }
    ok(&authorize::authorize(c.state, body).await?)
}

/// 405 with the path's methods in `Allow`.
fn method_not_allowed(method: &Method, path: &str, allow: &[&Method]) -> Response<Body> {
    let mut response = whole(ApiError::method_not_allowed(method, path).into_response());
    let allow: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
    if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}

/// Commits the request's waiting decision records with its final status,
/// before the answer leaves: a decision that cannot be logged is not
/// answered. A refusal that recorded nothing is recorded as such, unless
/// it only says the route does not exist.
async fn finish(
    state: &AppState,
    scope: &RequestScope,
    line: &RequestLine,
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
            d.reject(scope, &line.shown(), status, &e.code, &e.message)
                .await?;
        }
    }
    answer
}

/// A whole (not streamed) answer, in the body type streamed ones share.
fn whole(r: Response<Full<Bytes>>) -> Response<Body> {
    r.map(http_body_util::Either::Left)
}

/// What a handler is given.
struct Call<'a> {
    state: &'a AppState,
    req: Request<Incoming>,
    path: &'a str,
    query: Option<&'a str>,
    caller: Option<&'a str>,
}

async fn dispatch(
    handler: routes::Handler,
    c: Call<'_>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    use routes::Handler as H;
    let Call {
        state,
        req,
        path,
        query,
        caller,
    } = c;
    match handler {
        H::Authorize => {
            let c = Call {
                state,
                req,
                path,
                query,
                caller,
            };
            Box::pin(authorize_call(c)).await
        }
        H::AuthorizeBatch => {
            policies::explain_refused(query)?;
            ok(&authorize::authorize_batch(state, read_json(state, req).await?).await?)
        }
        H::Login => login::handle(state, path, req).await,
        H::RealName => ok(&admin::real_name(state, read_json(state, req).await?).await?),
        H::CoreOfficers => {
            let enterprise = core_officers_path(path).unwrap_or_default().to_owned();
            let body = read_json(state, req).await?;
            ok(&admin::core_officers(state, &enterprise, body).await?)
        }
        H::Calendar => {
            let year = path["/v1/admin/calendar/".len()..].to_owned();
            let body = read_json(state, req).await?;
            ok(&admin::calendar(state, &year, body).await?)
        }
        H::Policies => ok(&policies::list(state, query)?),
        H::Functions => ok(&maintenance::functions(state)?),
        H::Maintenance => {
            let rest = path["/v1/maintenance".len()..].to_owned();
            maintenance::route(state, req, &rest).await
        }
        H::AuditDecisions => ok(&audit::decisions(state, query, caller).await?),
        H::AuditVerify => ok(&audit::verify(state, query, caller).await?),
        H::AuditCheckpoint => ok(&audit::checkpoint(state, caller).await?),
        H::AuditSummary => ok(&audit::summary(state, query, caller).await?),
        H::AuditPolicy => {
            let version = &path["/v1/audit/policy/".len()..];
            ok(&audit::policy(state, version, caller).await?)
        }
        // Streamed: answered in `route`.
        H::AuditExport | H::FleetExport => Err(ApiError::not_found(path)),
        H::FleetStatus => ok(&fleet::status(state).await?),
        H::FleetDecisions => ok(&fleet::decisions(state, query, caller).await?),
        H::FleetVerify => ok(&fleet::verify(state, query, caller).await?),
        H::Status => ok(&status::status(state)),
        H::Metrics => Ok(status::metrics(state)),
        H::Healthz => ok(&status::Health { status: "ok" }),
        H::Readyz => Ok(status::readiness(state)),
        H::OpenApi => ok(openapi::document()),
        H::AuditOverview => ok(&audit::overview(state, query, caller).await?),
        H::Console => console::serve(path),
    }
}

/// The business-function catalogue (业务功能), from which permission
/// identities are built.
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
    let mut collecting = std::pin::pin!(Limited::new(req.into_body(), limit).collect());
    // A small body has mostly arrived with its head: taken at once, it
    // needs no timer (arming one was ~1 % of a question's CPU).
    let at_once = std::future::poll_fn(|cx| Poll::Ready(collecting.as_mut().poll(cx))).await;
    let collected = match at_once {
        Poll::Ready(collected) => collected,
        Poll::Pending => tokio::time::timeout(READ_TIMEOUT, collecting)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body did not arrive in time",
                )
            })?,
    };
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
    // Tracking the path costs a question's parse about a third again, and
    // only an error reads it: a body that does not parse is parsed again
    // with it, which fails at the same place.
    if let Ok(value) = serde_json::from_slice(&bytes) {
        return Ok(value);
    }
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
    // Room for a decision's answer at once, so the writer does not grow
    // the buffer several times for every answer.
    let mut bytes = Vec::with_capacity(512);
    serde_json::to_writer(&mut bytes, body).expect("response bodies serialize to JSON");
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
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
        principal: rec.principal_type.uid(&rec.principal_id),
        acting_for: rec
            .acting_for
            .map(|c| crate::domain::EntityKind::Enterprise.uid(c.as_str())),
    })
}
