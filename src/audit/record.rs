//! One entry of the decision log. Never holds a secret; ID numbers and phone
//! numbers are masked before a record is built (see [`crate::ids`]).
//!
//! The field order of [`DecisionRecord`] is part of the stored format: the
//! chain hash is computed over the record's compact JSON in this order (see
//! [`super::chain`] and `docs/decision-log.md`). New fields go at the end,
//! optional and skipped when absent, so old records keep their hashes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Position in the log, from 1, assigned by the writer: log order is
    /// chain order. 0 until written.
    #[serde(default)]
    pub seq: u64,
    pub decision_id: String,
    /// UTC, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Which caller asked (API key id); absent in open development mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// `authorize`, `authorize_batch`, `login.<step>`, `maintain.<operation>`,
    /// `audit.<read>`, `anchor`.
    pub kind: String,
    /// For login steps: which step (`password`, `select_staff`, `sms`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub principal: String,
    pub action: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    pub decision: Outcome,
    /// Determining policy ids.
    pub policies: Vec<String>,
    pub errors: Vec<String>,
    /// Hash of the policies and schema that decided.
    pub policy_version: String,
    pub latency_us: u64,
    /// Why a login or maintenance step was refused, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an `anchor` record: the records retention removed before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned: Option<PrunedRange>,
    /// SHA-256 (hex) of the previous record; 64 zeros for the first.
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 (hex) of this record's canonical form (everything above).
    /// Not part of its own input.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// What an anchor record stands for: records `first_seq..=last_seq` were
/// pruned; `last_hash` was the hash of the last of them, which the first
/// record kept carries as its `prev_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedRange {
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_hash: String,
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
            seq: 0,
            decision_id: decision_id.to_owned(),
            timestamp_ms: crate::now_ms(),
            caller: CALLER.try_with(Clone::clone).ok().flatten(),
            kind: kind.to_owned(),
            step: None,
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
            pruned: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// Adds the reason a login or maintenance step was refused (masked).
    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(crate::ids::mask_text(reason));
        self
    }

    /// Names the login step this record decides.
    pub fn with_step(mut self, step: &str) -> Self {
        self.step = Some(step.to_owned());
        self
    }

    /// Names the caller (API key id) that asked.
    pub fn with_caller(mut self, caller: Option<&str>) -> Self {
        self.caller = caller.map(str::to_owned);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_ids_and_phones_everywhere() {
        let r = DecisionRecord::new(
            "d1",
            "login.sms",
            "Etax::Staff::\"91210102MA0TAX001F/resident_id:210102198003124011\"",
            "Etax::Action::\"loginNormal\"",
            "Etax::Enterprise::\"91210102MA0TAX001F\"",
            None,
            false,
            &[],
            &["phone 13800000001 does not match".to_owned()],
            "v",
            5,
        )
        .with_reason("real-name phone 13800000001 of 210102198003124011")
        .with_step("sms");
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("210102198003124011"), "{json}");
        assert!(!json.contains("13800000001"), "{json}");
        assert!(json.contains("2101**********4011"), "{json}");
        assert!(json.contains("138****0001"), "{json}");
        assert!(json.contains("\"step\":\"sms\""), "{json}");
    }

    #[test]
    fn old_records_without_chain_fields_still_parse() {
        let old = r#"{"decision_id":"x","timestamp_ms":1,"kind":"authorize","principal":"p","action":"a","resource":"r","decision":"allow","policies":[],"errors":[],"policy_version":"v","latency_us":1}"#;
        let r: DecisionRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.seq, 0);
        assert!(r.hash.is_empty());
    }
}

tokio::task_local! {
    /// The authenticated caller (API key id) of the request being answered;
    /// set once by the HTTP layer, read by every record made meanwhile.
    pub static CALLER: Option<String>;
}
