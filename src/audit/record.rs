//! One entry of the decision log. Never holds a secret; ID numbers and phone
//! numbers are masked before a record is built (see [`crate::ids`]).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub decision_id: String,
    /// UTC, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Which caller asked (API key id), once callers authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// `authorize`, `authorize_batch`, `login.<step>`, `maintain.<operation>`.
    pub kind: String,
    pub principal: String,
    pub action: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    pub decision: Outcome,
    /// Determining policy ids.
    pub policies: Vec<String>,
    pub errors: Vec<String>,
    pub policy_version: String,
    pub latency_us: u64,
    /// Why a login or maintenance step was refused, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl DecisionRecord {
    /// A record of an authorization decision, with every id number and phone
    /// masked.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        decision_id: &str,
        kind: &str,
        principal: &str,
        action: &str,
        resource: &str,
        acting_for: Option<&str>,
        allowed: bool,
        policies: &[String],
        errors: &[String],
        policy_version: &str,
        latency_us: u64,
    ) -> Self {
        use crate::ids::mask_text;
        Self {
            decision_id: decision_id.to_owned(),
            timestamp_ms: crate::now_ms(),
            caller: None,
            kind: kind.to_owned(),
            principal: mask_text(principal),
            action: action.to_owned(),
            resource: mask_text(resource),
            acting_for: acting_for.map(mask_text),
            decision: if allowed {
                Outcome::Allow
            } else {
                Outcome::Deny
            },
            policies: policies.to_vec(),
            errors: errors.iter().map(|e| mask_text(e)).collect(),
            policy_version: policy_version.to_owned(),
            latency_us,
            reason: None,
        }
    }

    /// Adds the reason a login or maintenance step was refused (masked).
    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(crate::ids::mask_text(reason));
        self
    }
}
