//! A record's canonical form (see [`super::chain`]), written field by field,
//! and [`Unsealed`]: a record on its way to the writer thread as that form.
//!
//! The writer thread seals every decision, and serde_json's derived
//! serializer spent most of a record's serialization on its generic path:
//! each key escaped again, each string scanned and written a fragment at a
//! time through `io::Write`. This writes the same bytes directly. The
//! derived `Serialize` stays the definition of the form: the tests compare
//! the two on records with every field set and on arbitrary strings, and
//! the fields this file does not expect to be common (`pruned`, `target`,
//! `change`, `context`) are written by serde_json itself.

use serde::Serialize;

use super::record::{DecisionRecord, PersonRef};
use super::rollup::{Counted, Fields};

/// A record as the writer thread takes it: its canonical form without
/// `seq` and `prev_hash`, which only the writer knows, and what the rollup
/// counts it by.
///
/// Made by the thread that made the record, while the record's strings are
/// in that core's cache. The writer thread used to read each string of each
/// record from the other core's cache and free each one (a mimalloc free of
/// another thread's block) — more of its time than writing the bytes; it
/// now reads and frees one buffer.
pub struct Unsealed {
    /// From `,"decision_id":` up to, not including, `,"prev_hash":`.
    body: Vec<u8>,
    fields: Fields,
}

impl Unsealed {
    pub fn of(record: &DecisionRecord) -> Self {
        let mut body = Vec::with_capacity(1024);
        write_body(record, &mut body);
        Self {
            body,
            fields: Fields::of(record),
        }
    }

    /// Bytes of the body: its canonical form is about 100 more.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    pub fn timestamp_ms(&self) -> u64 {
        self.fields.timestamp_ms()
    }

    pub fn counted(&self) -> Counted<'_> {
        self.fields.counted()
    }

    /// The canonical form of the record at `seq` after the record whose
    /// hash is `prev_hash` (hex): what `serde_json::to_vec` gives for the
    /// record with those two fields and no `hash`.
    pub fn canonical(&self, seq: u64, prev_hash: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 128);
        out.extend_from_slice(b"{\"seq\":");
        number(&mut out, seq);
        out.extend_from_slice(&self.body);
        key(&mut out, "prev_hash");
        string(&mut out, prev_hash);
        out.push(b'}');
        out
    }
}

/// Appends every field of `record` between `seq` and `prev_hash` (`hash`
/// is not part of the canonical form).
fn write_body(record: &DecisionRecord, out: &mut Vec<u8>) {
    // Every field named, none skipped with `..`: a field added to the
    // record fails to compile here until it is written too.
    let DecisionRecord {
        seq: _,
        decision_id,
        timestamp_ms,
        caller,
        kind,
        step,
        principal,
        action,
        resource,
        acting_for,
        decision,
        policies,
        errors,
        policy_version,
        latency_us,
        reason,
        pruned,
        outcome,
        status,
        code,
        target,
        change,
        unmatched_permits,
        context,
        persons,
        request_id,
        prev_hash: _,
        hash: _,
    } = record;
    key(out, "decision_id");
    string(out, decision_id);
    key(out, "timestamp_ms");
    number(out, *timestamp_ms);
    optional(out, "caller", caller);
    key(out, "kind");
    string(out, kind);
    optional(out, "step", step);
    key(out, "principal");
    string(out, principal);
    key(out, "action");
    string(out, action);
    key(out, "resource");
    string(out, resource);
    optional(out, "acting_for", acting_for);
    key(out, "decision");
    string(out, decision.as_str());
    key(out, "policies");
    strings(out, policies);
    key(out, "errors");
    strings(out, errors);
    key(out, "policy_version");
    string(out, policy_version);
    key(out, "latency_us");
    number(out, *latency_us);
    optional(out, "reason", reason);
    optional_by_serde(out, "pruned", pruned);
    if let Some(outcome) = outcome {
        key(out, "outcome");
        string(out, outcome.as_str());
    }
    if let Some(status) = status {
        key(out, "status");
        number(out, u64::from(*status));
    }
    optional(out, "code", code);
    optional_by_serde(out, "target", target);
    optional_by_serde(out, "change", change);
    if !unmatched_permits.is_empty() {
        key(out, "unmatched_permits");
        strings(out, unmatched_permits);
    }
    optional_by_serde(out, "context", context);
    if !persons.is_empty() {
        key(out, "persons");
        out.push(b'[');
        for (i, person) in persons.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            person_ref(out, person);
        }
        out.push(b']');
    }
    optional(out, "request_id", request_id);
}

fn person_ref(out: &mut Vec<u8>, person: &PersonRef) {
    let PersonRef {
        pseudonym,
        role,
        id,
        name,
        identity_type,
    } = person;
    out.extend_from_slice(b"{\"pseudonym\":");
    string(out, pseudonym);
    key(out, "role");
    string(out, role);
    key(out, "id");
    string(out, id);
    optional(out, "name", name);
    optional(out, "identity_type", identity_type);
    out.push(b'}');
}

/// `,"name":` — every key but an object's first. The keys are the
/// record's field names: plain ASCII, nothing to escape.
fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A field left out when absent (`skip_serializing_if = "Option::is_none"`).
fn optional(out: &mut Vec<u8>, name: &str, value: &Option<String>) {
    if let Some(value) = value {
        key(out, name);
        string(out, value);
    }
}

/// [`optional`] for a value serde_json writes.
fn optional_by_serde(out: &mut Vec<u8>, name: &str, value: &Option<impl Serialize>) {
    if let Some(value) = value {
        key(out, name);
        by_serde(out, value);
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn strings(out: &mut Vec<u8>, values: &[String]) {
    out.push(b'[');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, value);
    }
    out.push(b']');
}

/// A JSON string as serde_json writes it. Only `"` and `\` are escaped
/// here (a uid's quotes are in most records); a string holding a control
/// character, which serde_json escapes in several ways, is handed to
/// serde_json whole.
fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // No early exit, so the compiler checks many bytes at a time.
    if bytes.iter().fold(false, |control, &b| control | (b < 0x20)) {
        by_serde(out, s);
        return;
    }
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    for i in memchr::memchr2_iter(b'"', b'\\', bytes) {
        out.extend_from_slice(&bytes[copied..i]);
        out.push(b'\\');
        out.push(bytes[i]);
        copied = i + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

fn by_serde(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) {
    serde_json::to_writer(&mut *out, value).expect("records serialize");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{FinalOutcome, Outcome, PrunedRange, Target};
    use proptest::prelude::*;
    use serde_json::json;

    /// serde_json's bytes for `record` without its `hash`: the definition.
    fn derived(record: &DecisionRecord) -> Vec<u8> {
        let mut record = record.clone();
        record.hash.clear();
        serde_json::to_vec(&record).unwrap()
    }

    fn written(record: &DecisionRecord) -> Vec<u8> {
        Unsealed::of(record).canonical(record.seq, &record.prev_hash)
    }

    /// Every field set, each string with what JSON escapes.
    fn full(text: &str) -> DecisionRecord {
        let s = |name: &str| format!("{name}{text}");
        DecisionRecord {
            seq: u64::MAX,
            decision_id: s("id"),
            timestamp_ms: 1_795_934_437_822,
            caller: Some(s("caller")),
            kind: s("kind"),
            step: Some(s("step")),
            principal: s("Etax::Staff::\"91210113MA000000HW/resident_id:2101**********0004\""),
            action: s("action"),
            resource: s("resource"),
            acting_for: Some(s("acting_for")),
            decision: Outcome::Deny,
            policies: vec![s("a"), s("b")],
            errors: vec![s("error")],
            policy_version: s("version"),
            latency_us: 0,
            reason: Some(s("reason")),
            pruned: Some(PrunedRange {
                first_seq: 1,
                last_seq: 2,
                last_hash: s("hash"),
                last_record: Some(s("record")),
            }),
            outcome: Some(FinalOutcome::Refused),
            status: Some(403),
            code: Some(s("code")),
            target: Some(Target {
                person: Some(s("person")),
                name: Some(s("name")),
                permission_identity: None,
                agency: Some(s("agency")),
                enterprise: None,
            }),
            change: Some(json!({"identity_type": {"before": s("b"), "after": null}})),
            unmatched_permits: vec![s("permit")],
            context: Some(json!({"actingFor": s("x"), "n": 1.5, "list": [true, s("y")]})),
            persons: vec![
                PersonRef {
                    pseudonym: s("p"),
                    role: s("principal"),
                    id: s("id"),
                    name: Some(s("name")),
                    identity_type: Some(s("legal_rep")),
                },
                PersonRef {
                    pseudonym: s("q"),
                    role: s("agent"),
                    id: s("id"),
                    name: None,
                    identity_type: None,
                },
            ],
            request_id: Some(s("request")),
            prev_hash: s("prev"),
            hash: s("hash"),
        }
    }

    /// The same record with every optional field absent and every list
    /// empty.
    fn bare(record: &DecisionRecord) -> DecisionRecord {
        let allowed = record.decision == Outcome::Allow;
        DecisionRecord {
            seq: record.seq,
            timestamp_ms: record.timestamp_ms,
            prev_hash: record.prev_hash.clone(),
            ..DecisionRecord::unmasked(
                &record.decision_id,
                &record.kind,
                &record.principal,
                &record.action,
                &record.resource,
                None,
                allowed,
                &[],
                &[],
                &record.policy_version,
                record.latency_us,
            )
        }
    }

    #[test]
    fn every_field_is_written_as_serde_json_writes_it() {
        for text in [
            "",
            "plain",
            "\"quoted\"",
            "back\\slash",
            "\u{0}\u{1f}\n\t\r\u{8}\u{c}",
            "税务\u{7f}\u{2028}",
        ] {
            let record = full(text);
            assert_eq!(
                String::from_utf8(written(&record)).unwrap(),
                String::from_utf8(derived(&record)).unwrap(),
                "{text:?}"
            );
            let record = bare(&record);
            assert_eq!(
                written(&record),
                derived(&record),
                "{text:?}, fields absent"
            );
        }
    }

    #[test]
    fn every_decision_and_outcome_is_spelled_as_serde_json_spells_it() {
        for decision in [Outcome::Allow, Outcome::Deny] {
            for outcome in [
                FinalOutcome::Done,
                FinalOutcome::Refused,
                FinalOutcome::Failed,
            ] {
                let record = DecisionRecord {
                    decision,
                    outcome: Some(outcome),
                    ..full("")
                };
                assert_eq!(
                    written(&record),
                    derived(&record),
                    "{decision:?} {outcome:?}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(text in any::<String>(), n in any::<u64>()) {
            let mut record = full(&text);
            record.seq = n;
            record.principal = text.clone();
            prop_assert_eq!(written(&record), derived(&record));
            let record = bare(&record);
            prop_assert_eq!(written(&record), derived(&record));
        }
    }
}
