//! The `serve` configuration: every option a flag (`--listen`), an
//! environment variable (`ETAX_LISTEN`) and a key of the `--config` TOML
//! file (`listen = "…"`), in that order of precedence, and what `serve`
//! is given once they are merged ([`ServeArgs::into_options`]).
//!
//! `file` layers the TOML file under the flags and the environment; `show`
//! prints the merged result (`etax-authz config`). Both work from clap's own
//! description of these flags, so an option added here is a file key and
//! shown by `config` without further code.

pub mod file;
pub mod show;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::audit;
use crate::server::ServeOptions;

/// The flags of `serve` (and of `config`, which prints what they add up to).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// A TOML file of `serve` options, named as the flags without `--`
    /// (`max-connections = 100`); flags and ETAX_* variables win over it.
    #[arg(long, env = "ETAX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on; loopback by default.
    #[arg(long, default_value = "127.0.0.1:8180", env = "ETAX_LISTEN")]
    pub listen: SocketAddr,
    /// Directory of the redb files.
    #[arg(long, default_value = "data", env = "ETAX_DATA")]
    pub data: PathBuf,
    #[arg(long, default_value = "policies", env = "ETAX_POLICIES")]
    pub policies: PathBuf,
    #[arg(long, default_value = "schemas/etax.cedarschema", env = "ETAX_SCHEMA")]
    pub schema: PathBuf,
    /// Import examples/demo.json when the store is empty.
    #[arg(long)]
    pub demo: bool,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = crate::http::DEFAULT_BODY_LIMIT, env = "ETAX_BODY_LIMIT")]
    pub body_limit: usize,
    // Boxed: the credential flags would make this the largest command.
    #[command(flatten)]
    pub authn: Box<crate::authn::AuthnArgs>,
    /// JSON list of {id, key_sha256, scopes} (`etax-authz keys` writes it;
    /// changes are picked up while serving); without it the service runs
    /// open (development on loopback only).
    #[arg(long, env = "ETAX_API_KEYS")]
    pub api_keys: Option<PathBuf>,
    /// Exact person lookups (audit filters by a full ID number, scope
    /// `audit_person`) each caller may make per minute; past it, 429.
    #[arg(long, env = "ETAX_PERSON_LOOKUPS_PER_MINUTE",
          default_value_t = crate::http::callers::DEFAULT_PERSON_LOOKUPS_PER_MINUTE)]
    pub person_lookups_per_minute: u32,
    /// Run open (no --api-keys) on an address other than loopback:
    /// everyone who reaches the port is trusted and receives SMS and
    /// reset codes. Refused without this flag.
    #[arg(long, env = "ETAX_INSECURE_OPEN")]
    pub insecure_open: bool,
    /// Prune decision-log records older than this many days (hourly).
    #[arg(long, env = "ETAX_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u64>,
    /// Retention never removes records younger than this many days
    /// (PRC Cybersecurity Law art. 21: network logs kept six months).
    #[arg(long, default_value_t = audit::MIN_RETENTION_DAYS, env = "ETAX_AUDIT_MIN_RETENTION_DAYS")]
    pub audit_min_retention_days: u64,
    /// Start even if the decision log's files disagree with its
    /// head.json (cut or rewritten): they are moved, kept, into
    /// DATA/decisions/damaged-<time>/ and a new segment starts with a
    /// log.damage record. Run `audit verify` first.
    #[arg(long)]
    pub accept_damaged_log: bool,
    /// Chain hash of a decision log created now: sha256 or sm3 (GB/T
    /// 39786-2021). An existing log keeps the one it was created with.
    #[arg(long, default_value = "sha256", env = "ETAX_LOG_HASH")]
    pub log_hash: audit::ChainHash,
    /// How often to look for changed policy files, in milliseconds; 0
    /// reloads on SIGHUP only.
    #[arg(long, default_value_t = 500, env = "ETAX_RELOAD_POLL_MS")]
    pub reload_poll_ms: u64,
    /// Reject a reload whose policies have validator warnings or lint
    /// findings (as `check --strict`), not only errors.
    #[arg(long, env = "ETAX_STRICT_RELOAD")]
    pub strict_reload: bool,
    /// Prove POLICIES/properties/ (cvc5) for the start set and refuse a
    /// reload whose set fails a property.
    #[arg(long, env = "ETAX_REQUIRE_PROOFS")]
    pub require_proofs: bool,
    /// With --require-proofs: refuse a set whose proofs take longer (the
    /// start set included), so a hard condition cannot stall a reload.
    #[arg(long, default_value_t = crate::prove::GUARD_TIMEOUT_MS, env = "ETAX_PROOF_TIMEOUT_MS")]
    pub proof_timeout_ms: u64,
    #[command(flatten)]
    pub caches: crate::decision::CacheArgs,
    /// Key file of the decision log's person pseudonyms (default
    /// DATA/pseudonym.key, created 0600 on first start).
    #[arg(long, env = "ETAX_PSEUDONYM_KEY")]
    pub pseudonym_key: Option<PathBuf>,
    #[command(flatten)]
    pub limits: crate::http::limits::LimitArgs,
    /// Offset audit queries read times at (when they name none) and show
    /// them at; a request's tz= overrides it.
    #[arg(long, default_value = "+08:00", env = "ETAX_TIME_OFFSET")]
    pub time_offset: audit::time::Offset,
    #[command(flatten)]
    pub ops: crate::http::options::OpsArgs,
    #[command(flatten)]
    pub fleet: crate::fleet::FleetArgs,
}

impl ServeArgs {
    /// What `serve` runs with.
    pub fn into_options(self) -> ServeOptions {
        ServeOptions {
            listen: self.listen,
            data_dir: self.data,
            policies_dir: self.policies,
            schema: self.schema,
            demo: self.demo.then(|| PathBuf::from("examples/demo.json")),
            body_limit: self.body_limit,
            authn: (*self.authn).into_config(),
            api_keys: self.api_keys,
            person_lookups_per_minute: self.person_lookups_per_minute,
            insecure_open: self.insecure_open,
            audit_retention_days: self.audit_retention_days,
            audit_min_retention_days: self.audit_min_retention_days,
            accept_damaged_log: self.accept_damaged_log,
            log_hash: self.log_hash,
            reload_poll: (self.reload_poll_ms > 0)
                .then(|| std::time::Duration::from_millis(self.reload_poll_ms)),
            caches: self.caches,
            pseudonym_key: self.pseudonym_key,
            limits: self.limits.into_limits(),
            time_offset: self.time_offset,
            strict_reload: self.strict_reload,
            require_proofs: self.require_proofs,
            proof_timeout: std::time::Duration::from_millis(self.proof_timeout_ms),
            ops: self.ops,
            fleet: self.fleet,
        }
    }
}
