//! The chain's hash function, chosen per log: SHA-256 (the default and the
//! only choice of logs written before the setting existed) or SM3, which
//! government systems assessed against GB/T 39786-2021 are expected to use
//! for integrity. Both give 32 bytes, written as 64 lower-case hex digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// `bytes` as lower-case hex, as `hex::encode` writes them but without
/// pushing them into a `String` a character at a time: every record's hash
/// and link are written this way, on the log's one writer thread.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut out).expect("the output is twice the input");
    String::from_utf8(out).expect("hex digits are ASCII")
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChainHash {
    #[default]
    Sha256,
    Sm3,
}

impl ChainHash {
    pub fn digest(self, bytes: &[u8]) -> [u8; 32] {
        match self {
            ChainHash::Sha256 => sha2::Sha256::digest(bytes).into(),
            ChainHash::Sm3 => sm3::Sm3::digest(bytes).into(),
        }
    }

    pub fn hex(self, bytes: &[u8]) -> String {
        to_hex(&self.digest(bytes))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChainHash::Sha256 => "sha256",
            ChainHash::Sm3 => "sm3",
        }
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown chain hash {0:?}: expected sha256 or sm3")]
pub struct UnknownChainHash(String);

impl FromStr for ChainHash {
    type Err = UnknownChainHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(ChainHash::Sha256),
            "sm3" => Ok(ChainHash::Sm3),
            other => Err(UnknownChainHash(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // GB/T 32905-2016 example 1 ("abc") and FIPS 180-2 ("abc").
        assert_eq!(
            ChainHash::Sm3.hex(b"abc"),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            ChainHash::Sha256.hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!("sm3".parse::<ChainHash>().unwrap(), ChainHash::Sm3);
        assert!("md5".parse::<ChainHash>().is_err());
    }
}
