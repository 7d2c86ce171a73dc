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
    // Fields below were added by issue #11. Each is left out when absent,
    // so records written before them keep their bytes and hashes.
    /// What finally happened to the request (the policy's answer is
    /// `decision`): absent only on records older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<FinalOutcome>,
    /// The HTTP status answered, when the outcome is not `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The wire error code answered (`denied`, `conflict`, …), when the
    /// outcome is not `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What the request acted on, masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// What it changed (`{"identity_type": {"before": …, "after": …}}`),
    /// masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<serde_json::Value>,
    /// A default deny (no permit matched): the permits the action's index
    /// held, none of which applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmatched_permits: Vec<String>,
    /// The Cedar context the decision was asked with, every string masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
    /// Each person the record names, with a keyed pseudonym for exact
    /// filters (see `pseudonym.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub persons: Vec<PersonRef>,
    /// The id of the HTTP request that made it (`X-Request-Id`, echoed to
    /// the caller). Added by issue #14; left out when absent, so older
    /// records keep their bytes and hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// SHA-256 (hex) of the previous record; 64 zeros for the first.
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 (hex) of this record's canonical form (everything above).
    /// Not part of its own input.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// What finally happened to the request a record decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalOutcome {
    /// Carried out as asked (an SMS code sent, a staff member added, an
    /// allowed authorization answered).
    Done,
    /// The service said no: a policy, a credential, a lock, a rate limit, a
    /// conflict with the stored state.
    Refused,
    /// Could not be carried out: a request naming what does not exist or
    /// does not qualify, or an internal failure.
    Failed,
}

impl FinalOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FinalOutcome::Done => "done",
            FinalOutcome::Refused => "refused",
            FinalOutcome::Failed => "failed",
        }
    }

    /// The outcome an HTTP answer stands for. A 4xx is `refused` when the
    /// service declined a well-formed request on a rule or the stored state
    /// (401, 403, 409, 423, 429), `failed` otherwise (400, 404, 422: the
    /// request could not be carried out as asked); every 5xx is `failed`.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => FinalOutcome::Done,
            401 | 403 | 409 | 423 | 429 => FinalOutcome::Refused,
            _ => FinalOutcome::Failed,
        }
    }
}

impl std::str::FromStr for FinalOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "done" => Ok(FinalOutcome::Done),
            "refused" => Ok(FinalOutcome::Refused),
            "failed" => Ok(FinalOutcome::Failed),
            _ => Err(format!("{s:?} is not done, refused or failed")),
        }
    }
}

/// What a request acted on. Every field masked; absent ones left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The person added, edited, reset or refused: `resident_id:2101…4011`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// Their name, masked (`**国`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_identity: Option<String>,
    /// An agency's credit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// The enterprise's credit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise: Option<String>,
}

impl Target {
    /// Masks every field (ID numbers and phones; a name is masked by
    /// whoever sets it, since only they know it is a name).
    fn masked(self) -> Self {
        use crate::ids::mask_text;
        Self {
            person: self.person.as_deref().map(mask_text),
            name: self.name,
            permission_identity: self.permission_identity.as_deref().map(mask_text),
            agency: self.agency.as_deref().map(mask_text),
            enterprise: self.enterprise.as_deref().map(mask_text),
        }
    }

    /// Whether any field contains `needle` (already masked by the caller).
    pub fn contains(&self, needle: &str) -> bool {
        [
            &self.person,
            &self.name,
            &self.permission_identity,
            &self.agency,
            &self.enterprise,
        ]
        .into_iter()
        .flatten()
        .any(|v| v.contains(needle))
    }
}

/// A person a record names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRef {
    /// Keyed pseudonym of the ID number: 32 hex digits.
    pub pseudonym: String,
    /// `principal`, `target` or `agent`.
    pub role: String,
    /// The masked person key: `resident_id:2101**********4011`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For enterprise staff: `legal_rep`, `finance_head`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<String>,
}

/// What an anchor record stands for: records `first_seq..=last_seq` were
/// pruned; `last_hash` was the hash of the last of them, which the first
/// record kept carries as its `prev_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedRange {
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_hash: String,
    /// The canonical JSON of that last pruned record, as stored: `audit
    /// verify` re-hashes it against `last_hash` and so learns when it was
    /// written, to refuse a cut within the minimum retention. Absent on
    /// anchors written before it existed ("unverifiable anchor").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_record: Option<String>,
}

impl DecisionRecord {
    /// A record of a decision, with every id number and phone masked. For
    /// records no request makes (anchors); a request's decisions are
    /// recorded through `flows::decide`.
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
        Self::unmasked(
            decision_id,
            kind,
            principal,
            action,
            resource,
            acting_for,
            allowed,
            policies,
            errors,
            policy_version,
            latency_us,
        )
        .masked()
    }

    /// [`Self::new`] before masking: for `flows::decide`, which adds the
    /// fields it knows and then masks once ([`Self::masked`] is not
    /// idempotent: a mask of a mask hides more).
    #[allow(clippy::too_many_arguments)]
    pub fn unmasked(
        decision_id: impl Into<String>,
        kind: &str,
        principal: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
        acting_for: Option<&str>,
        allowed: bool,
        policies: &[String],
        errors: &[String],
        policy_version: &str,
        latency_us: u64,
    ) -> Self {
        Self {
            seq: 0,
            decision_id: decision_id.into(),
            timestamp_ms: crate::now_ms(),
            caller: None,
            kind: kind.to_owned(),
            step: None,
            principal: principal.into(),
            action: action.into(),
            resource: resource.into(),
            acting_for: acting_for.map(str::to_owned),
            decision: if allowed {
                Outcome::Allow
            } else {
                Outcome::Deny
            },
            policies: policies.to_vec(),
            errors: errors.to_vec(),
            policy_version: policy_version.to_owned(),
            latency_us,
            reason: None,
            pruned: None,
            outcome: None,
            status: None,
            code: None,
            target: None,
            change: None,
            unmatched_permits: Vec::new(),
            context: None,
            persons: Vec::new(),
            request_id: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// The record with every ID number and phone in its free-text fields
    /// masked (see [`Self::mask`]).
    pub fn masked(mut self) -> Self {
        self.mask();
        self
    }

    /// Masks every ID number and phone in the record's free-text fields,
    /// in place: the one place a record is masked, so no field is missed.
    pub fn mask(&mut self) {
        let texts = [&mut self.principal, &mut self.resource]
            .into_iter()
            .chain(&mut self.acting_for)
            .chain(&mut self.errors)
            .chain(&mut self.reason);
        for text in texts {
            mask_in_place(text);
        }
        self.target = self.target.take().map(Target::masked);
        if let Some(change) = &mut self.change {
            mask_json(change);
        }
        if let Some(context) = &mut self.context {
            mask_json(context);
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
}

fn mask_in_place(text: &mut String) {
    if let Some(masked) = crate::ids::mask_changed(text) {
        *text = masked;
    }
}

/// Passes every string in `value` (keys too) through
/// [`crate::ids::mask_text`].
fn mask_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => mask_in_place(s),
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        Value::Object(map) if map.keys().any(|k| crate::ids::mask_changed(k).is_some()) => {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(k, mut v)| {
                    mask_json(&mut v);
                    (crate::ids::mask_text(&k), v)
                })
                .collect();
        }
        Value::Object(map) => map.values_mut().for_each(mask_json),
        _ => {}
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
    fn change_context_and_target_are_masked_too() {
        let mut r = DecisionRecord::unmasked("d", "k", "p", "a", "r", None, true, &[], &[], "v", 1);
        r.change = Some(serde_json::json!({"reset": "resident_id:210102198003124011"}));
        r.context = Some(serde_json::json!({"phone": ["13800000001"]}));
        r.target = Some(Target {
            person: Some("resident_id:210102198003124011".into()),
            ..Target::default()
        });
        let json = serde_json::to_string(&r.masked()).unwrap();
        assert!(!json.contains("210102198003124011"), "{json}");
        assert!(!json.contains("13800000001"), "{json}");
    }

    #[test]
    fn a_record_without_the_new_fields_serializes_as_before() {
        let r = DecisionRecord::new("d", "k", "p", "a", "r", None, true, &[], &[], "v", 1);
        let json = serde_json::to_string(&r).unwrap();
        for field in [
            "outcome", "status", "target", "change", "context", "persons",
        ] {
            assert!(!json.contains(field), "{json}");
        }
    }

    #[test]
    fn an_http_status_says_the_outcome() {
        assert_eq!(FinalOutcome::of_status(200), FinalOutcome::Done);
        for s in [401, 403, 409, 423, 429] {
            assert_eq!(FinalOutcome::of_status(s), FinalOutcome::Refused, "{s}");
        }
        for s in [400, 404, 422, 500, 503] {
            assert_eq!(FinalOutcome::of_status(s), FinalOutcome::Failed, "{s}");
        }
    }

    #[test]
    fn old_records_without_chain_fields_still_parse() {
        let old = r#"{"decision_id":"x","timestamp_ms":1,"kind":"authorize","principal":"p","action":"a","resource":"r","decision":"allow","policies":[],"errors":[],"policy_version":"v","latency_us":1}"#;
        let r: DecisionRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.seq, 0);
        assert!(r.hash.is_empty());
    }
}
