//! The API keys file: a JSON list of
//! `{"id", "key_sha256", "scopes", "created_ms"}`, read by
//! [`super::callers`] and written by `etax-authz keys create|revoke`.
//!
//! Only a key's SHA-256 is stored: a new key is shown once, on the
//! command's stdout, and is never written anywhere. Writes replace the file
//! atomically (a temporary file in the same directory, fsynced, renamed
//! over it, mode 0600), so a server watching the file reads either the old
//! list or the new one, never half of one. Two `keys` commands run at the
//! same moment can still lose one's change (the last rename wins): keys are
//! managed by one operator at a time.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::callers::Scope;

/// One key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: String,
    /// Hex SHA-256 of the key as sent in `Authorization: Bearer`.
    pub key_sha256: String,
    pub scopes: Vec<Scope>,
    /// When `keys create` made it (ms since the epoch); absent in files
    /// written by hand before the command existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<u64>,
}

impl KeyEntry {
    /// The first 8 hex digits of the hash: enough to tell keys apart in a
    /// listing, too few to help anyone guess a 256-bit key.
    pub fn fingerprint(&self) -> &str {
        self.key_sha256.get(..8).unwrap_or(&self.key_sha256)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    #[error("API keys file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("API keys file {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("a key with id {0:?} already exists (revoke it first)")]
    DuplicateId(String),
    #[error("no key with id {0:?}")]
    UnknownId(String),
    #[error("--id must be 1 to 64 characters of letters, digits, '-', '_' or '.', with fewer than 11 digits (no phone or ID number)")]
    BadId,
    #[error("unknown scope {0:?}: authorize, login, maintain, admin, audit, audit_person")]
    BadScope(String),
    #[error("--scope names no scope")]
    NoScopes,
    #[error(
        "scope {position} of {list:?} is empty: name each scope once, separated by single commas"
    )]
    EmptyScope { position: usize, list: String },
    #[error("scope {0:?} has blanks around it: write scope names exactly, without spaces")]
    PaddedScope(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeysFileError + '_ {
    move |source| KeysFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The largest keys file read: far above any real list (a key is ~150
/// bytes), far below what would hold the service's memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The most keys a file may list.
pub const MAX_KEYS: usize = 10_000;

/// Whether `id` may name a key: 1 to 64 characters of letters, digits,
/// `-`, `_`, `.`, and fewer digits than a phone has, so no ID number or
/// phone can be a key id (it is written unmasked into every decision
/// record as `caller`). `keys create` and the loader both ask this.
pub fn id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && super::request_id::few_digits(id)
}

/// The file's bytes, at most one past [`MAX_FILE_BYTES`] (which [`parse`]
/// refuses).
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, KeysFileError> {
    use std::io::Read;
    let file = crate::files::open_regular(path).map_err(io_error(path))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    Ok(bytes)
}

fn invalid(path: &Path, message: String) -> KeysFileError {
    KeysFileError::Invalid {
        path: path.display().to_string(),
        message,
    }
}

/// Parses the file's bytes (without checking the entries: see
/// [`super::callers::Callers::load`]); at most [`MAX_KEYS`] entries.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<KeyEntry>, KeysFileError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(invalid(path, format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let entries: Vec<KeyEntry> =
        serde_json::from_slice(bytes).map_err(|e| invalid(path, e.to_string()))?;
    if entries.len() > MAX_KEYS {
        return Err(invalid(path, format!("more than {MAX_KEYS} keys")));
    }
    Ok(entries)
}

/// Reads and parses the file.
pub fn read(path: &Path) -> Result<Vec<KeyEntry>, KeysFileError> {
    parse(path, &read_bytes(path)?)
}

/// [`read`], with a missing file read as no keys (the first `create`).
fn read_or_empty(path: &Path) -> Result<Vec<KeyEntry>, KeysFileError> {
    match read(path) {
        Err(KeysFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(Vec::new())
        }
        other => other,
    }
}

/// Replaces the file with `entries`: temp file, fsync, rename, 0600.
pub fn write(path: &Path, entries: &[KeyEntry]) -> Result<(), KeysFileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::random_id()));
    let mut text = serde_json::to_vec_pretty(entries).expect("key entries serialize");
    text.push(b'\n');
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is.
        std::fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io_error(path))
}

/// Parses `authorize,login` into scopes. Each name exactly: an empty one
/// (`admin,,audit`) or one with blanks (` admin`) is refused by name
/// rather than dropped or trimmed, since a key is minted from what the
/// operator meant, and a typo there is not to be guessed around.
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, KeysFileError> {
    if list.trim().is_empty() {
        return Err(KeysFileError::NoScopes);
    }
    let mut scopes = Vec::new();
    for (i, name) in list.split(',').enumerate() {
        if name.is_empty() {
            return Err(KeysFileError::EmptyScope {
                position: i + 1,
                list: list.to_owned(),
            });
        }
        if name.trim() != name {
            return Err(KeysFileError::PaddedScope(name.to_owned()));
        }
        let scope: Scope = serde_json::from_value(serde_json::Value::from(name))
            .map_err(|_| KeysFileError::BadScope(name.to_owned()))?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(KeysFileError::NoScopes);
    }
    Ok(scopes)
}

/// Adds a new random key `id` with `scopes` to the file (created if
/// missing); returns the key, which is stored nowhere.
pub fn create(path: &Path, id: &str, scopes: Vec<Scope>) -> Result<String, KeysFileError> {
    if !id_ok(id) {
        return Err(KeysFileError::BadId);
    }
    let mut entries = read_or_empty(path)?;
    if entries.iter().any(|e| e.id == id) {
        return Err(KeysFileError::DuplicateId(id.to_owned()));
    }
    let (key, key_sha256) = new_key();
    entries.push(KeyEntry {
        id: id.to_owned(),
        key_sha256,
        scopes,
        created_ms: Some(crate::now_ms()),
    });
    write(path, &entries)?;
    Ok(key)
}

/// A new key and the hex SHA-256 that is stored in its place (the file's
/// and the fleet's table alike).
pub fn new_key() -> (String, String) {
    // 256 random bits; the prefix lets secret scanners recognise a leak.
    let key = format!("etax_{}", hex::encode(rand::random::<[u8; 32]>()));
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    (key, digest)
}

/// Removes key `id` from the file.
pub fn revoke(path: &Path, id: &str) -> Result<(), KeysFileError> {
    let mut entries = read(path)?;
    let before = entries.len();
    entries.retain(|e| e.id != id);
    if entries.len() == before {
        return Err(KeysFileError::UnknownId(id.to_owned()));
    }
    write(path, &entries)
}

/// What identifies one version of the file: the SHA-256 of its bytes, or
/// that it could not be read. Size and time alone miss an edit in place
/// that keeps both (a revoked key kept working); the file is small, so
/// hashing it at each look is cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    Bytes([u8; 32]),
    Unreadable,
}

impl Stamp {
    pub fn of(read: &Result<Vec<u8>, KeysFileError>) -> Self {
        match read {
            Ok(bytes) => Self::Bytes(Sha256::digest(bytes).into()),
            Err(_) => Self::Unreadable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_revoke_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let key = create(&path, "tax-core", parse_scopes("authorize,login").unwrap()).unwrap();
        assert!(key.starts_with("etax_") && key.len() == 5 + 64);
        let entries = read(&path).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].key_sha256,
            hex::encode(Sha256::digest(key.as_bytes()))
        );
        assert_eq!(entries[0].scopes, [Scope::Authorize, Scope::Login]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&key), "only the hash is stored");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            create(&path, "tax-core", vec![Scope::Audit]),
            Err(KeysFileError::DuplicateId(_))
        ));
        revoke(&path, "tax-core").unwrap();
        assert!(read(&path).unwrap().is_empty());
        assert!(matches!(
            revoke(&path, "tax-core"),
            Err(KeysFileError::UnknownId(_))
        ));
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_bad_ids_and_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        for bad in [
            "a b",
            "",
            "13912345678",
            "139.1234.5678",
            "tax\ncore",
            &"a".repeat(65),
        ] {
            assert!(matches!(
                create(&path, bad, vec![Scope::Audit]),
                Err(KeysFileError::BadId)
            ));
        }
        assert!(id_ok("tax-core.2026_v2") && id_ok("a1234567890"));
        assert!(matches!(
            parse_scopes("root"),
            Err(KeysFileError::BadScope(_))
        ));
        assert!(matches!(parse_scopes(" "), Err(KeysFileError::NoScopes)));
        assert!(matches!(parse_scopes(""), Err(KeysFileError::NoScopes)));
    }

    #[test]
    fn refuses_empty_and_padded_scope_names_naming_them() {
        for (list, named) in [
            ("admin,,audit", "scope 2 of \"admin,,audit\" is empty"),
            ("admin,", "scope 2 of \"admin,\" is empty"),
            (",admin", "scope 1 of \",admin\" is empty"),
            (" admin", "scope \" admin\" has blanks"),
            ("authorize, login", "scope \" login\" has blanks"),
            ("audit\t", "scope \"audit\\t\" has blanks"),
        ] {
            let e = parse_scopes(list).expect_err(list);
            assert!(e.to_string().contains(named), "{list:?}: {e}");
        }
        assert_eq!(
            parse_scopes("admin,audit,admin").unwrap(),
            [Scope::Admin, Scope::Audit]
        );
    }
}
