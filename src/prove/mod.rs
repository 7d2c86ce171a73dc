//! Proofs for all data (`etax-authz prove`, `serve --require-proofs`): the
//! bureau's invariants, written as Cedar property files beside the
//! policies, checked by Cedar's symbolic compiler (`cedar-policy-symcc`) and
//! the cvc5 SMT solver. A proof covers every possible store and request of
//! the schema, not only the cases a suite thought of; a failed one comes
//! with a counterexample written as a test suite.
//!
//! [`property`] reads the files, [`check`] asks the solver,
//! [`counterexample`] writes what it found, [`command`] is the CLI, [`guard`]
//! refuses reloads that break a property.

pub mod check;
pub mod command;
pub mod counterexample;
pub mod guard;
pub mod property;

use std::time::{Duration, Instant};

use crate::policy::PolicySnapshot;

pub use check::{Prover, Violation};
pub use property::{properties_dir, CheckKind, Property};

#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error(
        "the cvc5 SMT solver was not found: install it (Debian: apt-get install cvc5) or set \
         CVC5 to the path of its executable"
    )]
    SolverMissing,
    #[error("SMT solver: {0}")]
    Solver(String),
    #[error("symbolic compilation for {action}: {message}")]
    Compile { action: String, message: String },
    #[error("properties cannot be loaded:\n  {}", .problems.join("\n  "))]
    Properties { problems: Vec<String> },
    #[error(
        "the proof timed out: not finished within {ms} ms (--proof-timeout-ms); a set that \
         was not proved is refused"
    )]
    TimedOut { ms: u128 },
    #[error("cannot start the prover's runtime: {0}")]
    Runtime(std::io::Error),
}

/// How one property went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub property: String,
    pub description: Option<String>,
    pub check: CheckKind,
    pub violation: Option<Violation>,
    pub took: Duration,
}

impl Outcome {
    /// The counterexample as a ready-to-paste suite, when there is one.
    pub fn counterexample_suite(&self) -> Option<serde_json::Value> {
        let v = self.violation.as_ref()?;
        let description = match &v.policy {
            Some(p) => format!(
                "counterexample to property {}: policy {p} errors on this request",
                self.property
            ),
            None => format!(
                "counterexample to property {} ({}): the policies allow this request",
                self.property,
                self.check.as_str()
            ),
        };
        Some(counterexample::as_suite(
            &format!("counterexample {}", self.property),
            &description,
            &v.env,
        ))
    }
}

/// The reload guard's default time limit: a reload must not stall.
pub const GUARD_TIMEOUT_MS: u64 = 2_000;
/// `etax-authz prove`'s default time limit: an author may wait longer.
pub const CLI_TIMEOUT_MS: u64 = 60_000;

/// Checks every property against `set`, in order, with one solver process,
/// within `limit` for the whole run. A run that does not finish in time is
/// [`ProveError::TimedOut`]: the solver is told the same limit (cvc5
/// `--tlimit`, so its process ends by itself) and the run is abandoned at
/// the deadline whatever the solver does.
pub async fn prove_all(
    set: &PolicySnapshot,
    properties: &[Property],
    limit: Duration,
    on_outcome: impl FnMut(&Outcome),
) -> Result<Vec<Outcome>, ProveError> {
    let started = Instant::now();
    let timed_out = ProveError::TimedOut {
        ms: limit.as_millis(),
    };
    match tokio::time::timeout(limit, prove_each(set, properties, limit, on_outcome)).await {
        Err(_elapsed) => Err(timed_out),
        // The solver giving up at its own limit shows as a solver error.
        Ok(Err(ProveError::Solver(_))) if started.elapsed() >= limit => Err(timed_out),
        Ok(result) => result,
    }
}

async fn prove_each(
    set: &PolicySnapshot,
    properties: &[Property],
    limit: Duration,
    mut on_outcome: impl FnMut(&Outcome),
) -> Result<Vec<Outcome>, ProveError> {
    let mut prover = Prover::start_with_limit(limit)?;
    let mut outcomes = Vec::with_capacity(properties.len());
    for property in properties {
        let started = Instant::now();
        let violation = prover.check(set, property).await?;
        let outcome = Outcome {
            property: property.name.clone(),
            description: property.description.clone(),
            check: property.check,
            violation,
            took: started.elapsed(),
        };
        on_outcome(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// [`prove_all`] from synchronous code (the CLI, the reloading thread):
/// its own single-threaded runtime drives the solver's pipes.
pub fn prove_all_blocking(
    set: &PolicySnapshot,
    properties: &[Property],
    limit: Duration,
    on_outcome: impl FnMut(&Outcome),
) -> Result<Vec<Outcome>, ProveError> {
    block_on(prove_all(set, properties, limit, on_outcome))?
}

/// Runs `fut` to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, ProveError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ProveError::Runtime)?;
    Ok(runtime.block_on(fut))
}
