//! What a `forbid` says when it decides a deny: the wire error code and the
//! message the caller sees, carried by the policy itself as
//! `@code("…") @message("…")`.
//!
//! Keeping them on the policy (not in a table in Rust keyed by `@id`) means
//! renaming a policy cannot silently change the error a refused user gets,
//! and a new forbid cannot ship without saying why it refuses: a load fails
//! on a forbid that lacks either annotation.

use std::collections::HashMap;
use std::sync::Arc;

use cedar_policy::{Effect, Policy};

/// The refusal one forbid stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The forbid's `@id`.
    pub policy: String,
    /// `@code`: snake_case, the `error.code` of the HTTP answer.
    pub code: String,
    /// `@message`: the `error.message` of the HTTP answer.
    pub message: String,
}

/// Reads a policy's refusal. `Ok(None)` for a permit (a permit never
/// refuses); `Err` says what a forbid lacks, for a diagnostic.
pub(super) fn of(policy: &Policy, id: &str) -> Result<Option<Refusal>, String> {
    if policy.effect() != Effect::Forbid {
        return Ok(None);
    }
    let annotation = |key: &str| {
        policy
            .annotation(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (code, message) = match (annotation("code"), annotation("message")) {
        (Some(code), Some(message)) => (code, message),
        (code, _) => {
            let missing = if code.is_none() { "@code" } else { "@message" };
            return Err(format!(
                "forbid has no {missing}(\"…\") annotation; every forbid needs @code(\"snake_case\") \
                 and @message(\"…\"), the error a refused caller gets"
            ));
        }
    };
    if !is_snake_case(&code) {
        return Err(format!(
            "@code(\"{code}\") is not snake_case (lower-case ASCII letters and digits \
             separated by single '_', starting with a letter)"
        ));
    }
    Ok(Some(Refusal {
        policy: id.to_owned(),
        code,
        message,
    }))
}

/// `real_name_required`, `denied`: what clients match on, so one spelling.
fn is_snake_case(code: &str) -> bool {
    code.starts_with(|c: char| c.is_ascii_lowercase())
        && code.split('_').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Where a policy stands in load order: the index of its file among the
/// sorted file names, then its byte offset in that file.
pub(super) type Rank = (usize, usize);

/// The refusals of a policy set, each with its place in load order.
#[derive(Default)]
pub(super) struct Refusals(HashMap<String, (Rank, Arc<Refusal>)>);

impl Refusals {
    pub(super) fn insert(&mut self, rank: Rank, refusal: Refusal) {
        self.0
            .insert(refusal.policy.clone(), (rank, Arc::new(refusal)));
    }

    /// The refusal of the first of `determining` in load order that is a
    /// forbid. Load order, not the ids' order, so renaming a policy never
    /// changes which of two firing forbids speaks.
    pub(super) fn first(&self, determining: &[String]) -> Option<Arc<Refusal>> {
        determining
            .iter()
            .filter_map(|id| self.0.get(id))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, refusal)| refusal.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case() {
        for ok in ["denied", "real_name_required", "r5_refused"] {
            assert!(is_snake_case(ok), "{ok}");
        }
        for bad in ["", "Denied", "real-name", "_x", "x_", "a__b", "5x", "实名"] {
            assert!(!is_snake_case(bad), "{bad}");
        }
    }
}
