//! The service's metrics: one prometheus-client registry, rendered on
//! `GET /metrics` in the Prometheus text format (0.0.4).
//!
//! Three kinds of source, so nothing is counted twice:
//! - what only exists as an observation of the HTTP layer — request latency
//!   per route and the connections open — is recorded here, through
//!   [`Metrics::observe_request`] and [`Metrics::connection_open`];
//! - what the decision path observes is in `flows::metrics` (registered
//!   here), and the decision log's commit latency in its writer;
//! - counts the components already keep for their own use (cache hits,
//!   store commits, sweeps, reloads, argon2 runs, the log's queue) are read
//!   when scraped, by [`Live`].

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::audit::AuditLog;
use crate::authn::sessions::Sessions;
use crate::authn::Authn;
use crate::decision::Engine;
use crate::flows::decide::DecisionMetrics;
use crate::flows::sweep::SweepStats;
use crate::policy::reload::ReloadStatus;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// A route-table pattern or `unmatched` (`http::routes::Lookup::label`):
    /// the table bounds the label set, whatever paths callers send.
    route: &'static str,
    status: u16,
}

/// Every metric the service shows, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    connections: Gauge,
}

/// Request latency buckets: 100 µs to ~6.5 s, doubling (a login step with
/// argon2 takes tens of ms, an export seconds).
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

impl Metrics {
    /// Registers the decision path's families, the decision log's commit
    /// histogram and the counts `live` reads when scraped.
    pub fn new(decisions: &DecisionMetrics, live: Live) -> Self {
        let mut registry = Registry::default();
        let requests = Family::new_with_constructor(request_histogram as fn() -> Histogram);
        let connections = Gauge::default();
        registry.register(
            "etax_http_request_duration_seconds",
            "Time to answer a request, by route (its route-table pattern, or unmatched) and status",
            requests.clone(),
        );
        registry.register(
            "etax_http_connections_open",
            "Connections being served (at most --max-connections; more wait to be accepted)",
            connections.clone(),
        );
        registry.register(
            "etax_decision_log_commit_seconds",
            "Time the decision log's writer took to append and fsync one group commit",
            live.audit.commit_latency(),
        );
        decisions.register(&mut registry);
        registry.register_collector(Box::new(live));
        Self {
            registry,
            requests,
            connections,
        }
    }

    /// Adds a collector read at scrape time (fleet mode's shipping lag).
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// Records one answered request under `route`, the pattern of its
    /// route-table row or `unmatched`.
    pub fn observe_request(&self, route: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .observe(took.as_secs_f64());
    }

    /// Counts a connection open until the guard is dropped.
    pub fn connection_open(&self) -> ConnectionGuard {
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
    }

    /// The exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// One open connection on `etax_http_connections_open`.
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The components whose own counts are shown as they are when scraped.
pub struct Live {
    pub engine: Engine,
    pub audit: AuditLog,
    pub authn: Arc<Authn>,
    pub sessions: Sessions,
    pub sweep: Arc<SweepStats>,
    pub reload: Arc<ReloadStatus>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.policies(&mut encoder)?;
        self.serving(&mut encoder)?;
        self.login_state(&mut encoder)
    }
}

/// Writes one family of constant samples: counters as [`ConstCounter`],
/// everything else as [`ConstGauge`].
fn family<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[(S, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*value).encode(sample)?,
            _ => ConstGauge::new(*value as i64).encode(sample)?,
        }
    }
    Ok(())
}

/// One unlabelled sample.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: u64,
) -> Result<(), std::fmt::Error> {
    family::<[(&str, &str); 0]>(encoder, name, help, kind, &[([], value)])
}

impl Live {
    /// Reloads and the active set.
    fn policies(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let snap = self.engine.snapshot();
        let reload = &self.reload;
        family(
            e,
            "etax_policy_reloads",
            "Policy reloads since start, by outcome",
            Counter,
            &[
                ([("outcome", "success")], reload.successes()),
                ([("outcome", "failure")], reload.failures()),
            ],
        )?;
        let failed = u64::from(reload.last_error().is_some());
        single(
            e,
            "etax_policy_last_reload_failed",
            "1 when the most recent reload was rejected and the previous policies still serve",
            Gauge,
            failed,
        )?;
        let count = snap.policies().policies().count() as u64;
        single(
            e,
            "etax_policy_active_policies",
            "Policies in the active set",
            Gauge,
            count,
        )?;
        single(
            e,
            "etax_policy_loaded_timestamp_seconds",
            "When the active set was loaded (Unix time)",
            Gauge,
            snap.loaded_at_ms() / 1000,
        )?;
        family(
            e,
            "etax_policy_active_info",
            "The active policy version (SHA-256 of schema and policy texts)",
            Gauge,
            &[([("version", snap.version())], 1)],
        )
    }

    /// What serving costs and how far the decision log is behind.
    fn serving(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let (hits, misses) = self.engine.cache_counts();
        family(
            e,
            "etax_decision_cache",
            "Decisions whose request entities were reused (hit) or built from the store (miss)",
            Counter,
            &[([("result", "hit")], hits), ([("result", "miss")], misses)],
        )?;
        single(
            e,
            "etax_password_verifications",
            "argon2id password verifications since start, including those against the dummy \
             hash for unknown accounts",
            Counter,
            self.authn.verifications(),
        )?;
        single(
            e,
            "etax_store_commits",
            "Write transactions committed to the identity store (each one an fsync)",
            Counter,
            self.engine.store().commits(),
        )?;
        single(
            e,
            "etax_decision_log_queue_depth",
            "Messages (a record, or a batch of /v1/authorize records) waiting for the decision log's writer",
            Gauge,
            self.audit.queue_depth() as u64,
        )
    }

    /// The sweeper's work and the sessions' last uses waiting for it.
    fn login_state(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let swept = self
            .sweep
            .swept()
            .by_kind()
            .map(|(k, n)| ([("kind", k)], n));
        family(
            e,
            "etax_swept",
            "Expired login state removed by the sweeper, by kind",
            Counter,
            &swept,
        )?;
        single(
            e,
            "etax_sweep_failures",
            "Sweeps that failed on a store error (retried at the next tick)",
            Counter,
            self.sweep.failures(),
        )?;
        single(
            e,
            "etax_session_touches_pending",
            "Sessions used since their last use was written to the store",
            Gauge,
            self.sessions.touches().len() as u64,
        )?;
        single(
            e,
            "etax_session_touches_written",
            "Session records whose in-memory last use was written to the store",
            Counter,
            self.sweep.touches_written(),
        )
    }
}
