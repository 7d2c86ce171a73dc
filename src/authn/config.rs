//! Configuration of credentials, codes, lockout and sessions, from `serve`
//! flags or the environment. Defaults are the production values.

use clap::Args;

use super::acceptance::PasswordPolicy;
use super::common_passwords::DenyList;
use super::password::{HashCost, PasswordRule};

/// Everything configurable about logging in.
#[derive(Debug, Clone)]
pub struct AuthnConfig {
    pub cost: HashCost,
    /// What every stored password must pass.
    pub passwords: PasswordPolicy,
    /// Lifetime of an SMS code or captcha.
    pub code_ttl_secs: u64,
    /// Wrong attempts after which a code is dead.
    pub code_max_attempts: u32,
    /// SMS codes one phone number may be sent per window.
    pub codes_per_phone: u32,
    /// Captchas one natural-person account may be issued per window.
    pub captchas_per_account: u32,
    pub code_rate_window_secs: u64,
    /// Consecutive failures that lock an account or agreement password.
    pub lockout_threshold: u32,
    /// First lock's wait; each further lock doubles it, up to the maximum.
    pub lockout_base_secs: u64,
    pub lockout_max_secs: u64,
    /// How long a login in progress (flow id) stays valid.
    pub flow_ttl_secs: u64,
    pub session_idle_secs: u64,
    pub session_max_secs: u64,
    /// How often expired login state is swept and the sessions' in-memory
    /// last uses are written to the store.
    pub sweep_interval_secs: u64,
    /// Password hashes and verifications waiting or running at once; past
    /// it a login answers 503 at once instead of queueing.
    pub hash_queue: usize,
    /// Added to the hashing threads' nice value (0–19).
    pub hash_nice: u8,
}

impl Default for AuthnConfig {
    fn default() -> Self {
        Self {
            cost: HashCost::default(),
            passwords: PasswordPolicy::default(),
            code_ttl_secs: 300,
            code_max_attempts: 5,
            codes_per_phone: 5,
            captchas_per_account: 10,
            code_rate_window_secs: 600,
            lockout_threshold: 5,
            lockout_base_secs: 60,
            lockout_max_secs: 24 * 3600,
            flow_ttl_secs: 600,
            session_idle_secs: 1800,
            session_max_secs: 8 * 3600,
            sweep_interval_secs: 60,
            hash_queue: DEFAULT_HASH_QUEUE as usize,
            hash_nice: DEFAULT_HASH_NICE,
        }
    }
}

/// Hashing jobs waiting or running at once by default: with argon2's
/// default cost a 2-core machine works through them in about 2.5 s.
pub const DEFAULT_HASH_QUEUE: u32 = 128;

/// How much lower the hashing threads' priority is than the service's, by
/// default (added to its nice value). At 10 the kernel gives a
/// runnable decision thread about nine times a hashing thread's share of a
/// core: a login storm takes the cores decisions leave (all of them when
/// decisions are quiet) instead of half of them, so answers to tax systems
/// keep their latency while logins queue (BENCHMARKS.md, "The decision
/// hot path, session 8").
pub const DEFAULT_HASH_NICE: u8 = 10;

/// `serve` flags for [`AuthnConfig`].
#[derive(Debug, Clone, Args)]
pub struct AuthnArgs {
    /// argon2id memory cost in KiB (default: OWASP minimum, 19 MiB).
    #[arg(long, default_value_t = 19 * 1024, env = "ETAX_ARGON2_MEMORY_KIB")]
    pub argon2_memory_kib: u32,
    #[arg(long, default_value_t = 2, env = "ETAX_ARGON2_ITERATIONS")]
    pub argon2_iterations: u32,
    #[arg(long, default_value_t = 1, env = "ETAX_ARGON2_PARALLELISM")]
    pub argon2_parallelism: u32,
    #[command(flatten)]
    pub passwords: PasswordArgs,
    #[arg(long, default_value_t = 300, env = "ETAX_CODE_TTL_SECS")]
    pub code_ttl_secs: u64,
    #[arg(long, default_value_t = 5, env = "ETAX_CODE_MAX_ATTEMPTS")]
    pub code_max_attempts: u32,
    /// SMS codes per phone number per rate window.
    #[arg(long, default_value_t = 5, env = "ETAX_CODES_PER_PHONE")]
    pub codes_per_phone: u32,
    /// Captchas per natural-person account (ID number) per rate window.
    #[arg(long, default_value_t = 10, env = "ETAX_CAPTCHAS_PER_ACCOUNT")]
    pub captchas_per_account: u32,
    /// The window code issuance is counted in, in seconds.
    #[arg(long, default_value_t = 600, env = "ETAX_CODE_RATE_WINDOW_SECS")]
    pub code_rate_window_secs: u64,
    #[arg(long, default_value_t = 5, env = "ETAX_LOCKOUT_THRESHOLD")]
    pub lockout_threshold: u32,
    #[arg(long, default_value_t = 60, env = "ETAX_LOCKOUT_BASE_SECS")]
    pub lockout_base_secs: u64,
    /// Longest lock; also how long a lockout record is kept after its last
    /// failure or lock before the sweeper forgets it.
    #[arg(long, default_value_t = 24 * 3600, env = "ETAX_LOCKOUT_MAX_SECS")]
    pub lockout_max_secs: u64,
    #[arg(long, default_value_t = 600, env = "ETAX_FLOW_TTL_SECS")]
    pub flow_ttl_secs: u64,
    #[arg(long, default_value_t = 1800, env = "ETAX_SESSION_IDLE_SECS")]
    pub session_idle_secs: u64,
    #[arg(long, default_value_t = 8 * 3600, env = "ETAX_SESSION_MAX_SECS")]
    pub session_max_secs: u64,
    /// Seconds between sweeps of expired codes, login flows, sessions,
    /// lockouts and rate windows; each sweep first writes the sessions'
    /// last uses from memory, so a crash loses at most this much of their
    /// idle clocks.
    #[arg(long, default_value_t = 60, env = "ETAX_SWEEP_INTERVAL_SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub sweep_interval_secs: u64,
    /// Password hashes and verifications waiting or running at once; past
    /// it a login step answers 503 `busy` (with Retry-After) at once, so a
    /// flood of logins (or of clients that hang up after sending one)
    /// cannot queue argon2 work without bound ahead of real users.
    #[arg(long, default_value_t = DEFAULT_HASH_QUEUE, env = "ETAX_HASH_QUEUE",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub hash_queue: u32,
    /// How much lower the password-hashing threads' priority is than the
    /// rest of the service's: added to its nice value, at most 19 (0: the
    /// same). Higher gives decisions the cores first during a login storm;
    /// logins then wait for what decisions leave.
    #[arg(long, default_value_t = DEFAULT_HASH_NICE, env = "ETAX_HASH_NICE",
          value_parser = clap::value_parser!(u8).range(0..=19))]
    pub hash_nice: u8,
}

impl AuthnArgs {
    pub fn into_config(self) -> AuthnConfig {
        AuthnConfig {
            cost: HashCost {
                memory_kib: self.argon2_memory_kib,
                iterations: self.argon2_iterations,
                parallelism: self.argon2_parallelism,
            },
            passwords: self.passwords.into_policy(),
            code_ttl_secs: self.code_ttl_secs,
            code_max_attempts: self.code_max_attempts,
            codes_per_phone: self.codes_per_phone,
            captchas_per_account: self.captchas_per_account,
            code_rate_window_secs: self.code_rate_window_secs,
            lockout_threshold: self.lockout_threshold,
            lockout_base_secs: self.lockout_base_secs,
            lockout_max_secs: self.lockout_max_secs,
            flow_ttl_secs: self.flow_ttl_secs,
            session_idle_secs: self.session_idle_secs,
            session_max_secs: self.session_max_secs,
            sweep_interval_secs: self.sweep_interval_secs,
            hash_queue: self.hash_queue as usize,
            hash_nice: self.hash_nice,
        }
    }
}

/// The flags of the one password acceptance function, shared by `serve` and
/// `import` so that both accept exactly the same passwords.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// Password rule (R10 by default): shortest length.
    #[arg(long, default_value_t = 8, env = "ETAX_PASSWORD_MIN_LEN")]
    pub password_min_len: usize,
    #[arg(long, default_value_t = 15, env = "ETAX_PASSWORD_MAX_LEN")]
    pub password_max_len: usize,
    /// Of upper case, lower case, digits, special characters.
    #[arg(long, default_value_t = 3, env = "ETAX_PASSWORD_MIN_CLASSES")]
    pub password_min_classes: usize,
    /// Passwords refused as too common: `bundled` (the built-in list),
    /// `none`, or a file with one password a line (`#` comments).
    #[arg(long, default_value = "bundled", env = "ETAX_PASSWORD_DENY_LIST")]
    pub password_deny_list: DenyList,
}

impl PasswordArgs {
    pub fn into_policy(self) -> PasswordPolicy {
        PasswordPolicy {
            rule: PasswordRule {
                min_len: self.password_min_len,
                max_len: self.password_max_len,
                min_classes: self.password_min_classes,
            },
            deny_list: self.password_deny_list,
        }
    }
}
