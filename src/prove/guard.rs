//! `serve --require-proofs`: the properties a server started with must hold
//! for every set it makes active. The properties are read once, at start,
//! so a reload cannot weaken them by editing `properties/` along with the
//! policies: changing an invariant takes a restart.

use std::time::{Duration, Instant};

use crate::policy::reload::{Guard, Refused};
use crate::policy::PolicySnapshot;

use super::{prove_all_blocking, Outcome, Property, ProveError};

/// Proves `properties` for `set`: `Err` with every failed property and its
/// counterexample, or with why the proofs could not run (which refuses too:
/// a set that was not proved is not served).
pub fn prove_set(
    set: &PolicySnapshot,
    properties: &[Property],
    limit: Duration,
) -> Result<(), Refused> {
    let started = Instant::now();
    let outcomes =
        prove_all_blocking(set, properties, limit, |_| {}).map_err(|e| not_proved(&e))?;
    let took_ms = started.elapsed().as_millis();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.violation.is_some()).collect();
    if failed.is_empty() {
        tracing::info!(
            policy_version = set.version(),
            properties = outcomes.len(),
            took_ms,
            "policy set proved"
        );
        return Ok(());
    }
    Err(Refused {
        message: format!(
            "{} of {} properties failed: {}",
            failed.len(),
            outcomes.len(),
            failed
                .iter()
                .map(|o| o.property.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        details: failed
            .iter()
            .map(|o| {
                let request = o
                    .violation
                    .as_ref()
                    .map(|v| super::counterexample::one_line(&v.env))
                    .unwrap_or_default();
                format!(
                    "property {} ({}) FAILED; counterexample: {request} (entities on /v1/status)",
                    o.property,
                    o.check.as_str()
                )
            })
            .collect(),
        failed_properties: failed
            .iter()
            .map(|o| {
                serde_json::json!({
                    "property": o.property,
                    "check": o.check.as_str(),
                    "counterexample": o.counterexample_suite(),
                })
            })
            .collect(),
    })
}

/// The reload guard over `properties`, each proof run within `limit`.
pub fn guard(properties: Vec<Property>, limit: Duration) -> Guard {
    std::sync::Arc::new(move |set: &PolicySnapshot| prove_set(set, &properties, limit))
}

fn not_proved(e: &ProveError) -> Refused {
    Refused {
        message: format!("the properties could not be proved: {e}"),
        details: Vec::new(),
        failed_properties: Vec::new(),
    }
}
