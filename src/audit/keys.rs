//! The key pairs that sign checkpoints: SM2 (GB/T 32918, the national
//! signature algorithm GB/T 39786-2021 expects) or Ed25519, generated from
//! the operating system's random source, kept as PKCS#8 (private) and SPKI
//! (public) PEM so that OpenSSL 3 and GmSSL read the same files.
//!
//! A public key is named by its fingerprint: the hash of its SPKI DER
//! encoding, SM3 for SM2 keys and SHA-256 for Ed25519 keys, in hex. A signed
//! checkpoint carries the fingerprint of the key that signed it, so a
//! verifier handed the wrong key says so instead of "bad signature".

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::Signer as _;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sm2::elliptic_curve::zeroize::Zeroizing;
use sm2::pkcs8::der::pem::LineEnding;
use sm2::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use sm2::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use super::digest::ChainHash;

/// The signer's distinguishing identifier that goes into SM2's `Z` value:
/// the default GB/T 35276-2017 (and GM/T 0009) gives for when the parties
/// agree on no other, which is also what OpenSSL and GmSSL use.
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureAlgorithm {
    /// SM2 with SM3 over `Z || message`; signature DER `SEQUENCE {r, s}`.
    Sm2,
    /// Pure Ed25519 (RFC 8032); signature the 64 raw bytes.
    Ed25519,
}

impl SignatureAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::Sm2 => "sm2",
            SignatureAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// The hash that names a public key of this algorithm.
    pub fn fingerprint_hash(self) -> ChainHash {
        match self {
            SignatureAlgorithm::Sm2 => ChainHash::Sm3,
            SignatureAlgorithm::Ed25519 => ChainHash::Sha256,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignatureAlgorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sm2" => Ok(SignatureAlgorithm::Sm2),
            "ed25519" => Ok(SignatureAlgorithm::Ed25519),
            other => Err(KeyError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// Key errors name the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown signature algorithm {0:?}: expected sm2 or ed25519")]
    UnknownAlgorithm(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} already exists: refusing to overwrite a key")]
    Exists(String),
    #[error("{0}: not a PKCS#8 PEM SM2 or Ed25519 private key")]
    NotPrivateKey(String),
    #[error("{0}: not an SPKI PEM SM2 or Ed25519 public key")]
    NotPublicKey(String),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// A private signing key. Deliberately not `Debug`, so it cannot end up in a
/// log line or an error; both libraries wipe the scalar when it is dropped.
pub enum SecretKey {
    Sm2(sm2::dsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

#[derive(Debug, Clone)]
pub enum PublicKey {
    Sm2(sm2::PublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// 32 bytes straight from the operating system, wiped when dropped.
fn os_random() -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(bytes.as_mut())
        .map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(bytes)
}

fn sm2_signing_key(secret: &sm2::SecretKey) -> sm2::dsa::SigningKey {
    sm2::dsa::SigningKey::new(SM2_DEFAULT_ID, secret)
        .expect("the default distinguishing identifier is 16 bytes, far below SM2's limit")
}

impl SecretKey {
    pub fn generate(algorithm: SignatureAlgorithm) -> Result<Self, KeyError> {
        match algorithm {
            SignatureAlgorithm::Ed25519 => Ok(SecretKey::Ed25519(
                ed25519_dalek::SigningKey::from_bytes(&*os_random()?),
            )),
            // A scalar must lie in [1, n-1]; 32 random bytes fall outside
            // with probability about 2^-32, so drawing again is the
            // uniform way to pick one.
            SignatureAlgorithm::Sm2 => loop {
                let bytes = os_random()?;
                if let Ok(secret) = sm2::SecretKey::from_slice(bytes.as_ref()) {
                    return Ok(SecretKey::Sm2(sm2_signing_key(&secret)));
                }
            },
        }
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self {
            SecretKey::Sm2(_) => SignatureAlgorithm::Sm2,
            SecretKey::Ed25519(_) => SignatureAlgorithm::Ed25519,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            SecretKey::Sm2(k) => PublicKey::Sm2(k.verifying_key().into()),
            SecretKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// PKCS#8 PEM, wiped when dropped.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let pem = match self {
            SecretKey::Sm2(k) => {
                sm2::SecretKey::from(k.as_nonzero_scalar()).to_pkcs8_pem(LineEnding::LF)
            }
            SecretKey::Ed25519(k) => k.to_pkcs8_pem(LineEnding::LF),
        };
        pem.expect("a valid key encodes as PKCS#8")
    }

    /// Reads either algorithm's PKCS#8 PEM (the OID inside tells them apart).
    pub fn from_pem(pem: &str) -> Option<Self> {
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Some(SecretKey::Ed25519(k));
        }
        sm2::SecretKey::from_pkcs8_pem(pem)
            .ok()
            .map(|s| SecretKey::Sm2(sm2_signing_key(&s)))
    }

    /// SM2 signs with the default distinguishing identifier and answers the
    /// DER form GM/T 0009 specifies; Ed25519 answers its 64 bytes.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SecretKey::Sm2(k) => {
                let sig: sm2::dsa::Signature = sm2::dsa::signature::Signer::sign(k, message);
                der_signature(&sig.to_bytes())
            }
            SecretKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
        }
    }
}

impl PublicKey {
    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self {
            PublicKey::Sm2(_) => SignatureAlgorithm::Sm2,
            PublicKey::Ed25519(_) => SignatureAlgorithm::Ed25519,
        }
    }

    fn spki_der(&self) -> Vec<u8> {
        let doc = match self {
            PublicKey::Sm2(k) => k.to_public_key_der(),
            PublicKey::Ed25519(k) => k.to_public_key_der(),
        };
        doc.expect("a valid key encodes as SPKI").into_vec()
    }

    pub fn to_pem(&self) -> String {
        let pem = match self {
            PublicKey::Sm2(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
        };
        pem.expect("a valid key encodes as SPKI")
    }

    pub fn from_pem(pem: &str) -> Option<Self> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Some(PublicKey::Ed25519(k));
        }
        sm2::PublicKey::from_public_key_pem(pem)
            .ok()
            .map(PublicKey::Sm2)
    }

    /// SM3 (SM2 keys) or SHA-256 (Ed25519 keys) of the SPKI DER, in hex:
    /// the same as `openssl pkey -pubin -outform DER | openssl dgst -sm3`.
    pub fn fingerprint(&self) -> String {
        self.algorithm().fingerprint_hash().hex(&self.spki_der())
    }

    /// Whether `signature` is this key's over `message`. For SM2, `sm2_id`
    /// is the signer's distinguishing identifier (it enters the hash, so a
    /// signature made under another identifier fails).
    pub fn verify(&self, message: &[u8], signature: &[u8], sm2_id: &str) -> bool {
        match self {
            PublicKey::Sm2(k) => {
                let Some(rs) = parse_der_signature(signature) else {
                    return false;
                };
                let (Ok(key), Ok(sig)) = (
                    sm2::dsa::VerifyingKey::new(sm2_id, *k),
                    sm2::dsa::Signature::from_slice(&rs),
                ) else {
                    return false;
                };
                sm2::dsa::signature::Verifier::verify(&key, message, &sig).is_ok()
            }
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| k.verify_strict(message, &sig).is_ok()),
        }
    }
}

/// `r || s` (32 bytes each) as DER `SEQUENCE { INTEGER r, INTEGER s }`.
fn der_signature(rs: &[u8]) -> Vec<u8> {
    let integer = |half: &[u8]| {
        let start = half.iter().position(|b| *b != 0).unwrap_or(half.len() - 1);
        let digits = &half[start..];
        // A set high bit would read as negative: DER needs a 0 before it.
        let pad = usize::from(digits[0] & 0x80 != 0);
        let mut out = vec![0x02, (digits.len() + pad) as u8];
        out.extend(std::iter::repeat_n(0u8, pad));
        out.extend_from_slice(digits);
        out
    };
    let (r, s) = rs.split_at(32);
    let body = [integer(r), integer(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// The inverse of [`der_signature`], strict: minimal integers, no trailing
/// bytes, each at most 32 bytes once its sign byte is dropped.
fn parse_der_signature(der: &[u8]) -> Option<[u8; 64]> {
    let body = match der {
        [0x30, len, body @ ..] if usize::from(*len) == body.len() => body,
        _ => return None,
    };
    let mut out = [0u8; 64];
    let mut rest = body;
    for half in out.chunks_mut(32) {
        let (len, tail) = match rest {
            [0x02, len, tail @ ..] if usize::from(*len) <= tail.len() && *len > 0 => {
                (usize::from(*len), tail)
            }
            _ => return None,
        };
        let (digits, after) = tail.split_at(len);
        let minimal = digits.len() == 1 || !(digits[0] == 0 && digits[1] & 0x80 == 0);
        let negative = digits[0] & 0x80 != 0;
        let value = if digits[0] == 0 { &digits[1..] } else { digits };
        if !minimal || negative || value.len() > 32 {
            return None;
        }
        half[32 - value.len()..].copy_from_slice(value);
        rest = after;
    }
    rest.is_empty().then_some(out)
}

/// Where `keygen` put the pair.
pub struct KeyFiles {
    pub private: PathBuf,
    pub public: PathBuf,
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates `path` with `mode`, never replacing an existing file (an
/// overwritten key would orphan every checkpoint it signed).
fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), KeyError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    // The mode is set as the file is created, so the key is never readable
    // by others, not even for an instant.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists(path.display().to_string()),
        _ => io_error(path)(e),
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error(path))
}

/// Writes `PREFIX.key` (PKCS#8 PEM, mode 0600) and `PREFIX.pub` (SPKI PEM).
/// Neither file is written if either exists.
pub fn write_key_pair(key: &SecretKey, prefix: &Path) -> Result<KeyFiles, KeyError> {
    let files = KeyFiles {
        private: with_suffix(prefix, ".key"),
        public: with_suffix(prefix, ".pub"),
    };
    if files.public.exists() {
        return Err(KeyError::Exists(files.public.display().to_string()));
    }
    write_new(&files.private, 0o600, key.to_pem().as_bytes())?;
    if let Err(e) = write_new(&files.public, 0o644, key.public_key().to_pem().as_bytes()) {
        // Half a pair is no use and leaves a private key behind.
        let _ = std::fs::remove_file(&files.private);
        return Err(e);
    }
    Ok(files)
}

pub fn read_secret_key(path: &Path) -> Result<SecretKey, KeyError> {
    let pem = Zeroizing::new(
        crate::files::read_text(path, crate::files::MAX_KEY_BYTES).map_err(io_error(path))?,
    );
    SecretKey::from_pem(&pem).ok_or_else(|| KeyError::NotPrivateKey(path.display().to_string()))
}

/// Whether a private key file's mode lets its group or others read it (as
/// a copied or unpacked key often does); the key is still usable.
#[cfg(unix)]
pub fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

/// Elsewhere access is governed by ACLs this does not read.
#[cfg(not(unix))]
pub fn readable_by_others(_path: &Path) -> bool {
    false
}

pub fn read_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let pem = crate::files::read_text(path, crate::files::MAX_KEY_BYTES).map_err(io_error(path))?;
    PublicKey::from_pem(&pem).ok_or_else(|| KeyError::NotPublicKey(path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key pair, message and signature made by OpenSSL 3.0
    /// (`openssl genpkey -algorithm SM2`; `openssl pkeyutl -sign -rawin
    /// -digest sm3 -pkeyopt distid:1234567812345678`): a second
    /// implementation's answer, since SM2 signatures are randomized.
    const OPENSSL_SM2_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE6UPo+a/qJ6IRz234CvKSRnPMAT+z
8fv+mlfsdnFvSqITQoVyJyEq4jyEc7SyMF2Ygzsz2LzQZBzFBkus8uiHjA==
-----END PUBLIC KEY-----
";
    const OPENSSL_SM2_MESSAGE: &[u8] = b"etax-authz checkpoint";
    const OPENSSL_SM2_SIGNATURE: &str = "3046022100b7f0fb03d4fc80b3f81fc93a02320b5f7d1b715d7f194f11b988c1e7cdb9c6330221009303de83693b8fd3ec09b9b44e3979e5b66aaf3b967883fa9a0837fc5f4192ae";
    /// `openssl pkey -pubin -outform DER | openssl dgst -sm3`.
    const OPENSSL_SM2_FINGERPRINT: &str =
        "0f4ca7db6e12a7e88cafce6942a670befbca740a9db061474a7fd59973ef537a";

    #[test]
    fn an_openssl_sm2_signature_verifies_and_only_under_its_identifier() {
        let key = PublicKey::from_pem(OPENSSL_SM2_PUB).expect("OpenSSL's SM2 SPKI PEM");
        assert_eq!(key.algorithm(), SignatureAlgorithm::Sm2);
        assert_eq!(key.fingerprint(), OPENSSL_SM2_FINGERPRINT);
        let sig = hex::decode(OPENSSL_SM2_SIGNATURE).unwrap();
        assert!(key.verify(OPENSSL_SM2_MESSAGE, &sig, SM2_DEFAULT_ID));
        assert!(!key.verify(OPENSSL_SM2_MESSAGE, &sig, "1234567812345679"));
        assert!(!key.verify(b"etax-authz checkpoinT", &sig, SM2_DEFAULT_ID));
        assert_eq!(key.to_pem(), OPENSSL_SM2_PUB, "the SPKI PEM round-trips");
    }

    #[test]
    fn ed25519_matches_rfc_8032_test_1() {
        let secret: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SecretKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&secret));
        let PublicKey::Ed25519(public) = key.public_key() else {
            unreachable!()
        };
        assert_eq!(
            hex::encode(public.as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = key.sign(b"");
        assert_eq!(
            hex::encode(&sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(key.public_key().verify(b"", &sig, ""));
        assert!(!key.public_key().verify(b"x", &sig, ""));
    }

    #[test]
    fn an_sm2_signature_under_another_identifier_fails() {
        let SecretKey::Sm2(ours) = SecretKey::generate(SignatureAlgorithm::Sm2).unwrap() else {
            unreachable!()
        };
        let secret = sm2::SecretKey::from(ours.as_nonzero_scalar());
        let alice =
            SecretKey::Sm2(sm2::dsa::SigningKey::new("ALICE123@YAHOO.COM", &secret).unwrap());
        let der = alice.sign(b"m");
        let public = alice.public_key();
        assert_eq!(
            public.fingerprint(),
            SecretKey::Sm2(ours).public_key().fingerprint()
        );
        assert!(public.verify(b"m", &der, "ALICE123@YAHOO.COM"));
        assert!(!public.verify(b"m", &der, SM2_DEFAULT_ID));
    }

    #[test]
    fn keys_round_trip_through_pem() {
        for algorithm in [SignatureAlgorithm::Sm2, SignatureAlgorithm::Ed25519] {
            let key = SecretKey::generate(algorithm).unwrap();
            let again = SecretKey::from_pem(&key.to_pem()).expect("reads its own PKCS#8");
            assert_eq!(again.algorithm(), algorithm);
            let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
            assert_eq!(public.fingerprint(), key.public_key().fingerprint());
            let sig = again.sign(b"checkpoint");
            assert!(public.verify(b"checkpoint", &sig, SM2_DEFAULT_ID));
            assert!(
                PublicKey::from_pem(&key.to_pem()).is_none(),
                "a private key is no public key"
            );
            assert!(SecretKey::from_pem(&public.to_pem()).is_none());
        }
    }

    #[test]
    fn der_signatures_are_minimal_and_strict() {
        let key = SecretKey::generate(SignatureAlgorithm::Sm2).unwrap();
        let public = key.public_key();
        for message in [&b"a"[..], b"b", b"c", b"d", b"e", b"f"] {
            let der = key.sign(message);
            let rs = parse_der_signature(&der).expect("parses its own DER");
            assert_eq!(der_signature(&rs), der);
            assert!(public.verify(message, &der, SM2_DEFAULT_ID));
        }
        // High bits need a 0 byte; leading zeros are dropped.
        let mut rs = [0u8; 64];
        rs[0] = 0x80;
        rs[63] = 1;
        let der = der_signature(&rs);
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x21, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x01]);
        assert_eq!(parse_der_signature(&der), Some(rs));
        let mut padded = der.clone();
        padded.push(0);
        assert_eq!(parse_der_signature(&padded), None);
        // A non-minimal integer (00 01) is refused.
        let loose = [0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x01];
        assert_eq!(parse_der_signature(&loose), None);
    }
}
