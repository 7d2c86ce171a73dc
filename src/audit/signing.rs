//! Signed checkpoints: the log's head, signed with SM2 or Ed25519, for
//! auditors to keep off the server and check offline later.
//!
//! The chain alone has no secret (docs/decision-log.md, "Limit"): whoever
//! can write the file can re-hash every record after a change. A checkpoint
//! kept elsewhere catches that; signing it lets anyone holding only the
//! public key tell a genuine checkpoint from one made up to match a
//! rewritten log, and says which key vouched for it.
//!
//! Canonical form (what the signature covers): the compact JSON of
//! [`SignedCheckpoint`] without `signature`, fields in declaration order,
//! `sm2_id` left out for Ed25519, as serde_json writes it. Every value is an
//! ASCII string or an integer, so `jq -cj 'del(.signature)'` on the file
//! gives the same bytes, and OpenSSL can check the signature (see
//! docs/decision-log.md, "Signed checkpoints").

use serde::{Deserialize, Serialize};

use super::chain::Checkpoint;
use super::digest::ChainHash;
use super::keys::{PublicKey, SecretKey, SignatureAlgorithm, SM2_DEFAULT_ID};

/// Names this layout, so a later one can be told apart.
pub const FORMAT: &str = "etax-authz-signed-checkpoint/1";

const BEIJING_OFFSET_MS: u64 = 8 * 3_600_000;

/// A checkpoint with who signed it, when, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// An extra field would not be covered by the signature yet would be read
// by people: such a file is refused rather than half-trusted.
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    pub format: String,
    pub seq: u64,
    pub hash: String,
    pub timestamp_ms: u64,
    pub time: String,
    /// The hash the log's chain uses, so the verifier recomputes the same.
    pub chain_hash: ChainHash,
    pub signature_algorithm: SignatureAlgorithm,
    /// SM2 only: the signer's distinguishing identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm2_id: Option<String>,
    /// The signing key's fingerprint ([`PublicKey::fingerprint`]).
    pub key_fingerprint: String,
    pub signed_at_ms: u64,
    /// `signed_at_ms` in UTC.
    pub signed_at: String,
    /// `signed_at_ms` in Beijing time (+08:00), as the bureau's staff read it.
    pub signed_at_beijing: String,
    /// Hex of the signature: DER `SEQUENCE {r, s}` for SM2, 64 bytes for
    /// Ed25519. Empty (and left out) while the statement is being built.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
}

/// Why a signed checkpoint is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("it carries no signature: --public-key checks a file `audit checkpoint --sign` wrote")]
    Unsigned,
    #[error("not a signed checkpoint: {0}")]
    Malformed(String),
    #[error("unsupported signed checkpoint format {0:?} (expected {FORMAT:?})")]
    Format(String),
    #[error("the checkpoint is signed with {signed} but the public key is an {key} key")]
    AlgorithmMismatch {
        signed: SignatureAlgorithm,
        key: SignatureAlgorithm,
    },
    #[error("the checkpoint was signed by key {signed_by}, not by the given public key {given}")]
    WrongKey { signed_by: String, given: String },
    #[error("BAD SIGNATURE: the checkpoint does not match its signature; a field was changed after signing, or the signature is not this key's")]
    BadSignature,
}

/// `2026-11-27T11:30:02.123+08:00` for a UTC instant.
fn beijing_time(ms: u64) -> String {
    let utc = super::time::format_utc(ms + BEIJING_OFFSET_MS);
    format!("{}+08:00", utc.trim_end_matches('Z'))
}

impl SignedCheckpoint {
    /// Signs `checkpoint` of a log chained with `chain_hash`, at `now_ms`.
    pub fn sign(
        checkpoint: &Checkpoint,
        chain_hash: ChainHash,
        key: &SecretKey,
        now_ms: u64,
    ) -> Self {
        let algorithm = key.algorithm();
        let mut signed = Self {
            format: FORMAT.to_owned(),
            seq: checkpoint.seq,
            hash: checkpoint.hash.clone(),
            timestamp_ms: checkpoint.timestamp_ms,
            time: checkpoint.time.clone(),
            chain_hash,
            signature_algorithm: algorithm,
            sm2_id: (algorithm == SignatureAlgorithm::Sm2).then(|| SM2_DEFAULT_ID.to_owned()),
            key_fingerprint: key.public_key().fingerprint(),
            signed_at_ms: now_ms,
            signed_at: super::time::format_utc(now_ms),
            signed_at_beijing: beijing_time(now_ms),
            signature: String::new(),
        };
        signed.signature = hex::encode(key.sign(&signed.canonical_bytes()));
        signed
    }

    /// The bytes the signature covers: this JSON without `signature`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let unsigned = Self {
            signature: String::new(),
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).expect("checkpoints serialize")
    }

    /// Reads the JSON `audit checkpoint --sign` writes (any whitespace).
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        if !looks_signed(text) {
            return Err(SignatureError::Unsigned);
        }
        let signed: Self = serde_json::from_str(text.trim())
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
        if signed.format != FORMAT {
            return Err(SignatureError::Format(signed.format));
        }
        if signed.signature.is_empty() {
            return Err(SignatureError::Unsigned);
        }
        Ok(signed)
    }

    /// Checks the signature with `key`, offline. The fingerprint comes
    /// first so a wrong key is named as such, not as tampering.
    pub fn verify(&self, key: &PublicKey) -> Result<(), SignatureError> {
        if key.algorithm() != self.signature_algorithm {
            return Err(SignatureError::AlgorithmMismatch {
                signed: self.signature_algorithm,
                key: key.algorithm(),
            });
        }
        let given = key.fingerprint();
        if !given.eq_ignore_ascii_case(&self.key_fingerprint) {
            return Err(SignatureError::WrongKey {
                signed_by: self.key_fingerprint.clone(),
                given,
            });
        }
        let sm2_id = match (self.signature_algorithm, &self.sm2_id) {
            (SignatureAlgorithm::Sm2, Some(id)) => id.as_str(),
            (SignatureAlgorithm::Sm2, None) => {
                return Err(SignatureError::Malformed(
                    "an SM2 signature needs the signer's sm2_id".to_owned(),
                ))
            }
            (SignatureAlgorithm::Ed25519, _) => "",
        };
        let signature = hex::decode(&self.signature).map_err(|_| SignatureError::BadSignature)?;
        if key.verify(&self.canonical_bytes(), &signature, sm2_id) {
            Ok(())
        } else {
            Err(SignatureError::BadSignature)
        }
    }

    /// The checkpoint it vouches for, to verify the log against.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            seq: self.seq,
            hash: self.hash.clone(),
            timestamp_ms: self.timestamp_ms,
            time: self.time.clone(),
        }
    }
}

/// Whether `text` is JSON carrying a `signature` field: a signed checkpoint
/// given without a public key is still usable, but only with a warning.
pub fn looks_signed(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text.trim())
        .is_ok_and(|v| v.get("signature").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            seq: 42,
            hash: "ab".repeat(32),
            timestamp_ms: 1_764_214_202_123,
            time: super::super::time::format_utc(1_764_214_202_123),
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_breaks_it() {
        for algorithm in [SignatureAlgorithm::Sm2, SignatureAlgorithm::Ed25519] {
            let key = SecretKey::generate(algorithm).unwrap();
            let signed =
                SignedCheckpoint::sign(&checkpoint(), ChainHash::Sm3, &key, 1_764_300_000_000);
            let text = serde_json::to_string(&signed).unwrap();
            let parsed = SignedCheckpoint::parse(&text).unwrap();
            assert_eq!(parsed, signed);
            parsed.verify(&key.public_key()).unwrap();
            assert_eq!(parsed.checkpoint(), checkpoint());
            assert_eq!(
                parsed.sm2_id.is_some(),
                algorithm == SignatureAlgorithm::Sm2
            );

            let mut moved = parsed.clone();
            moved.seq += 1;
            assert!(matches!(
                moved.verify(&key.public_key()),
                Err(SignatureError::BadSignature)
            ));
            let mut rehashed = parsed.clone();
            rehashed.chain_hash = ChainHash::Sha256;
            assert!(matches!(
                rehashed.verify(&key.public_key()),
                Err(SignatureError::BadSignature)
            ));

            let other = SecretKey::generate(algorithm).unwrap();
            assert!(matches!(
                parsed.verify(&other.public_key()),
                Err(SignatureError::WrongKey { .. })
            ));
            let mut forged = SignedCheckpoint::sign(&checkpoint(), ChainHash::Sm3, &other, 1);
            forged.key_fingerprint = parsed.key_fingerprint.clone();
            assert!(matches!(
                forged.verify(&key.public_key()),
                Err(SignatureError::BadSignature)
            ));
        }
    }

    #[test]
    fn unknown_fields_and_unsigned_files_are_refused() {
        let key = SecretKey::generate(SignatureAlgorithm::Ed25519).unwrap();
        let signed = SignedCheckpoint::sign(&checkpoint(), ChainHash::Sha256, &key, 1);
        let mut value = serde_json::to_value(&signed).unwrap();
        value["note"] = "verified by the bureau".into();
        assert!(SignedCheckpoint::parse(&value.to_string()).is_err());
        assert!(looks_signed(&value.to_string()));
        let unsigned = serde_json::to_string(&checkpoint()).unwrap();
        assert!(!looks_signed(&unsigned));
        assert!(matches!(
            SignedCheckpoint::parse(&unsigned),
            Err(SignatureError::Unsigned)
        ));
        assert!(matches!(
            SignedCheckpoint::parse("7:abc"),
            Err(SignatureError::Unsigned)
        ));
    }

    #[test]
    fn the_canonical_form_is_the_file_without_its_signature() {
        let key = SecretKey::generate(SignatureAlgorithm::Sm2).unwrap();
        let signed = SignedCheckpoint::sign(&checkpoint(), ChainHash::Sm3, &key, 1_764_300_000_000);
        let file = serde_json::to_string(&signed).unwrap();
        let canonical = String::from_utf8(signed.canonical_bytes()).unwrap();
        let tail = format!(",\"signature\":\"{}\"}}", signed.signature);
        assert_eq!(format!("{}{tail}", canonical.trim_end_matches('}')), file);
        assert!(canonical.starts_with("{\"format\":\"etax-authz-signed-checkpoint/1\",\"seq\":42,"));
        assert!(canonical.contains("\"chain_hash\":\"sm3\",\"signature_algorithm\":\"sm2\",\"sm2_id\":\"1234567812345678\""));
        assert_eq!(signed.signed_at, "2025-11-28T03:20:00.000Z");
        assert_eq!(signed.signed_at_beijing, "2025-11-28T11:20:00.000+08:00");
        // Past 16:00 UTC it is already the next day in Beijing.
        assert_eq!(
            beijing_time(1_795_802_740_741),
            "2026-11-28T02:05:40.741+08:00"
        );
    }
}
