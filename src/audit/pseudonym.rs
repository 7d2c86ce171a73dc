//! Keyed pseudonyms of the persons a record names: HMAC-SHA256 of the ID
//! number under a key that never leaves the data directory, cut to 128 bits.
//!
//! A record shows only masks (`2101**********4011`), and many people share a
//! mask; the pseudonym tells them apart, so a filter by a full ID number is
//! exact while the log still never holds the number. Without the key a
//! pseudonym cannot be recomputed from a guessed number (an unkeyed hash of
//! an 18-digit ID is brute-forced in minutes), which is why it is an HMAC.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Key bytes: as long as the hash block's half, HMAC's recommended minimum
/// and more.
const KEY_BYTES: usize = 32;

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "pseudonym.key";

#[derive(Debug, thiserror::Error)]
pub enum PseudonymError {
    #[error("pseudonym key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("pseudonym key {0}: not {KEY_BYTES} bytes of hex")]
    Malformed(String),
    #[error(
        "pseudonym key {0} does not exist: exact person filters need the key the server created"
    )]
    Missing(String),
}

/// The pseudonym function under one key. `Debug` never shows the key.
#[derive(Clone)]
pub struct Pseudonyms {
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(<key>)")
    }
}

/// Where the key lives: `file` when given, else `DATA/pseudonym.key`.
pub fn key_path(data_dir: &Path, file: Option<&Path>) -> PathBuf {
    file.map_or_else(|| data_dir.join(KEY_FILE), Path::to_path_buf)
}

impl Pseudonyms {
    /// Loads the key at `path`, creating it (0600, random) the first time:
    /// for `serve`, which names persons in every record.
    pub fn load_or_create(path: &Path) -> Result<Self, PseudonymError> {
        if path.exists() {
            return Self::load(path);
        }
        let key: [u8; KEY_BYTES] = rand::random();
        let io = |source| PseudonymError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(hex::encode(key).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        Ok(Self { key })
    }

    /// Loads an existing key, never creating one: for the `audit` commands,
    /// whose pseudonyms must match the ones the server wrote.
    pub fn load(path: &Path) -> Result<Self, PseudonymError> {
        let shown = path.display().to_string();
        let text =
            crate::files::read_text(path, crate::files::MAX_KEY_BYTES).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    PseudonymError::Missing(shown.clone())
                } else {
                    PseudonymError::Io {
                        path: shown.clone(),
                        source,
                    }
                }
            })?;
        let bytes =
            hex::decode(text.trim()).map_err(|_| PseudonymError::Malformed(shown.clone()))?;
        let key = bytes
            .try_into()
            .map_err(|_| PseudonymError::Malformed(shown))?;
        Ok(Self { key })
    }

    /// The pseudonym of a person's ID number: 32 hex digits. The ID type is
    /// left out so that a bare number given to a filter finds its person;
    /// letters are compared upper-case (`…404x` is `…404X`).
    pub fn of(&self, id_number: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(id_number.trim().to_ascii_uppercase().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_private_and_reloaded_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path(), None);
        let created = Pseudonyms::load_or_create(&path).unwrap();
        let again = Pseudonyms::load_or_create(&path).unwrap();
        let read = Pseudonyms::load(&path).unwrap();
        let p = created.of("210102198003124011");
        assert_eq!(p.len(), 32);
        assert_eq!(again.of("210102198003124011"), p);
        assert_eq!(read.of(" 210102198003124011 "), p);
        assert_ne!(created.of("210177777777774011"), p);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{created:?}").contains(&std::fs::read_to_string(&path).unwrap()));
    }

    #[test]
    fn another_key_gives_other_pseudonyms_and_a_missing_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pseudonyms::load_or_create(&dir.path().join("a")).unwrap();
        let b = Pseudonyms::load_or_create(&dir.path().join("b")).unwrap();
        assert_ne!(a.of("210102198003124011"), b.of("210102198003124011"));
        assert!(matches!(
            Pseudonyms::load(&dir.path().join("none")),
            Err(PseudonymError::Missing(_))
        ));
        std::fs::write(dir.path().join("bad"), "zz").unwrap();
        assert!(matches!(
            Pseudonyms::load(&dir.path().join("bad")),
            Err(PseudonymError::Malformed(_))
        ));
    }
}
