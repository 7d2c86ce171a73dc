//! The deny list of common passwords, refused whenever a password is stored
//! (OWASP ASVS 5.0 6.2.4): the bundled list (`common-passwords.txt`, the
//! default), none, or the bureau's own file (`--password-deny-list`).
//! Compared case-insensitively, since "Password1!" is as guessable as
//! "password1!".

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

const LIST: &str = include_str!("common-passwords.txt");

/// One password a line; blank lines and `#` comments are skipped.
fn parse(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
}

fn bundled() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| parse(LIST))
}

/// Which passwords are refused as too common.
#[derive(Debug, Clone, Default)]
pub enum DenyList {
    /// The bundled list. Note that it refuses some passwords that meet R10
    /// (`Abc12345`): that is the point of a deny list.
    #[default]
    Bundled,
    /// No deny list: the rule alone.
    None,
    /// The passwords in a file, one a line.
    File(Arc<HashSet<String>>),
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the password deny list {path}: {source}")]
pub struct DenyListError {
    path: String,
    source: std::io::Error,
}

impl FromStr for DenyList {
    type Err = DenyListError;

    /// `bundled`, `none`, or the path of a file.
    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        Ok(match arg {
            "bundled" => Self::Bundled,
            "none" => Self::None,
            path => {
                let text = crate::files::read_text(
                    std::path::Path::new(path),
                    crate::files::MAX_DOCUMENT_BYTES,
                )
                .map_err(|source| DenyListError {
                    path: path.to_owned(),
                    source,
                })?;
                Self::File(Arc::new(parse(&text)))
            }
        })
    }
}

impl DenyList {
    /// Whether `password` is on the list.
    pub fn contains(&self, password: &str) -> bool {
        let set = match self {
            Self::Bundled => bundled(),
            Self::None => return false,
            Self::File(set) => set,
        };
        set.contains(&password.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_large_and_matches_case_insensitively() {
        let list = DenyList::Bundled;
        assert!(bundled().len() >= 1000);
        assert!(list.contains("P@ssw0rd"));
        assert!(list.contains("password123!"));
        assert!(list.contains("QWERTY@123"));
        assert!(!list.contains("Etax@2026"));
        assert!(!DenyList::None.contains("P@ssw0rd"));
    }

    #[test]
    fn a_file_list_skips_comments_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deny.txt");
        std::fs::write(&path, "# ours\n\n  Li#Caiwu2026 \n").unwrap();
        let list: DenyList = path.to_str().unwrap().parse().unwrap();
        assert!(list.contains("li#caiwu2026"));
        assert!(!list.contains("# ours"));
        assert!(!list.contains("P@ssw0rd"));
        assert!("/no/such/file".parse::<DenyList>().is_err());
    }
}
