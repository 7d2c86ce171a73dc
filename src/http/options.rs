//! The `serve` flags of operating the HTTP layer: log format, the access
//! log, readiness bounds, the shutdown grace and the Unix socket.

use std::path::PathBuf;
use std::time::Duration;

/// How the service's own log lines are written (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line, the request's span (its id) included.
    Json,
}

/// Which requests get an access-log line (`request`, at info level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AccessLog {
    /// None.
    Off,
    /// Answers with a status of 400 or more, and slow requests.
    #[default]
    Errors,
    /// As `errors`, plus a random share (`--access-log-sample-rate`) of
    /// the rest.
    Sampled,
    /// Every request.
    All,
}

/// The flags; flattened into `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct OpsArgs {
    /// Log lines as `text` or `json` (one object a line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "ETAX_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Which requests are logged: off, errors (status >= 400, and slow
    /// ones), sampled (errors plus a share of the rest), all.
    #[arg(long, value_enum, default_value_t = AccessLog::Errors, env = "ETAX_ACCESS_LOG")]
    pub access_log: AccessLog,
    /// A request taking at least this long is logged as slow, in
    /// milliseconds (under `errors` and `sampled`).
    #[arg(long, default_value_t = 100, env = "ETAX_SLOW_REQUEST_MS")]
    pub slow_request_ms: u64,
    /// Under `--access-log sampled`: the share of other requests logged,
    /// from 0 to 1.
    #[arg(long, default_value_t = 0.01, value_parser = parse_rate, env = "ETAX_ACCESS_LOG_SAMPLE_RATE")]
    pub access_log_sample_rate: f64,
    /// `/readyz` answers 503 when more decision records than this wait for
    /// the log writer.
    #[arg(long, default_value_t = 10_000, env = "ETAX_READY_MAX_PENDING")]
    pub ready_max_pending: u64,
    /// `/readyz` answers 503 when records have waited this long without a
    /// commit, in milliseconds (a stalled disk).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..), env = "ETAX_READY_MAX_WAIT_MS")]
    pub ready_max_wait_ms: u64,
    /// After SIGTERM or SIGINT: how long requests in flight may take to
    /// finish before the log is flushed and the process exits, in seconds.
    #[arg(long, default_value_t = 10, env = "ETAX_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: u64,
    /// Also listen on this Unix domain socket (created 0660, removed at a
    /// clean exit). Its peers count as loopback for open mode.
    #[arg(long, env = "ETAX_LISTEN_UNIX")]
    pub listen_unix: Option<PathBuf>,
    /// With --listen-unix: do not listen on TCP at all.
    #[arg(long, requires = "listen_unix", env = "ETAX_NO_TCP")]
    pub no_tcp: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a rate from 0 to 1")),
    }
}

/// The flags as the HTTP layer uses them.
#[derive(Debug, Clone)]
pub struct Ops {
    pub access_log: AccessLog,
    pub slow_request: Duration,
    pub sample_rate: f64,
    pub ready_max_pending: u64,
    pub ready_max_wait_ms: u64,
    pub shutdown_grace: Duration,
}

impl Default for Ops {
    fn default() -> Self {
        Self {
            access_log: AccessLog::Errors,
            slow_request: Duration::from_millis(100),
            sample_rate: 0.01,
            ready_max_pending: 10_000,
            ready_max_wait_ms: 5_000,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl OpsArgs {
    pub fn to_ops(&self) -> Ops {
        Ops {
            access_log: self.access_log,
            slow_request: Duration::from_millis(self.slow_request_ms),
            sample_rate: self.access_log_sample_rate,
            ready_max_pending: self.ready_max_pending,
            ready_max_wait_ms: self.ready_max_wait_ms,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }
}

impl Ops {
    /// Whether a request answered `status` after `took` gets a log line.
    pub fn logs(&self, status: u16, took: Duration) -> bool {
        let notable = status >= 400 || took >= self.slow_request;
        match self.access_log {
            AccessLog::Off => false,
            AccessLog::Errors => notable,
            AccessLog::Sampled => notable || rand::random::<f64>() < self.sample_rate,
            AccessLog::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_modes() {
        let fast = Duration::from_millis(1);
        let slow = Duration::from_millis(100);
        let mut ops = Ops::default();
        assert!(!ops.logs(200, fast));
        assert!(ops.logs(200, slow));
        assert!(ops.logs(404, fast));
        ops.access_log = AccessLog::Off;
        assert!(!ops.logs(500, slow));
        ops.access_log = AccessLog::All;
        assert!(ops.logs(200, fast));
        ops.access_log = AccessLog::Sampled;
        ops.sample_rate = 0.0;
        assert!(!ops.logs(200, fast));
        assert!(ops.logs(503, fast));
        ops.sample_rate = 1.0;
        assert!(ops.logs(200, fast));
        assert!(parse_rate("1.5").is_err() && parse_rate("0.25") == Ok(0.25));
    }
}
