//! The archive of every policy set the service has loaded, so an auditor
//! can read the exact rules a decision record's `policy_version` names long
//! after the files on disk have changed.
//!
//! One JSON file per version, `DATA/policy-archive/<version>.json`, holding
//! the schema and every policy file, each with its name. The archive is
//! content-addressed: the version *is* the SHA-256 of those texts (the same
//! one [`super::Sources::version`] computes), so reading a version
//! re-computes it and an altered archive cannot pass for the original.
//! Writing is idempotent: a version already archived is left as it is.
//!
//! The version joins the texts with NUL separators and no lengths, and
//! hashes file names without their directories. So the reader also refuses
//! what no loaded set holds (loading refuses NUL, [`super::check_no_nul`]):
//! NUL in any text — else a policy file's text could move into the schema
//! text, separators and all, and be dropped from `policy_files` under the
//! same version — and any name that is not a plain file name (`/`, `\`,
//! `..`, absolute), which the version would not cover: `/etc/shadow` could
//! be named as the schema file. Sets are archived under plain names.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Sources;

/// Shortest version prefix `read` accepts: 8 hex digits (32 bits) make an
/// accidental match between two archived sets negligible.
pub const MIN_PREFIX: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("policy archive {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("policy archive {path} is not an archived set: {source}")]
    Format {
        path: String,
        source: serde_json::Error,
    },
    #[error("{0:?} is not a policy version: give at least {MIN_PREFIX} of its 64 hex digits")]
    BadVersion(String),
    #[error("no archived policy set has version {0} (archived sets: etax-authz keeps each set it loads under DATA/policy-archive)")]
    Unknown(String),
    #[error("version prefix {prefix} is ambiguous: {} archived sets start with it; give more digits", .matches.len())]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    #[error("archived policy set {version} was altered: its texts hash to {computed}")]
    Altered { version: String, computed: String },
    #[error("archived policy set {version} was altered: {problem}")]
    NotPlain { version: String, problem: String },
}

/// One archived policy set, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArchivedSet {
    pub version: String,
    pub schema_file: String,
    pub schema: String,
    pub policy_files: Vec<ArchivedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArchivedFile {
    pub file: String,
    pub text: String,
}

impl ArchivedSet {
    /// The set `sources` hold, under plain file names: the version hashes
    /// no directory, so an archive names none.
    fn from_sources(sources: &Sources) -> Self {
        Self {
            version: sources.version(),
            schema_file: super::plain_name(&sources.schema_file),
            schema: sources.schema.clone(),
            policy_files: sources
                .policy_files
                .iter()
                .map(|(file, text)| ArchivedFile {
                    file: super::plain_name(file),
                    text: text.clone(),
                })
                .collect(),
        }
    }

    /// What makes this set one no load could have archived, if anything:
    /// NUL in a text, a name that is not a plain file name.
    fn not_plain(&self) -> Option<String> {
        let texts = std::iter::once(("schema", &self.schema_file, &self.schema)).chain(
            self.policy_files
                .iter()
                .map(|f| ("policy file", &f.file, &f.text)),
        );
        for (what, name, text) in texts {
            if !is_plain_file_name(name) {
                return Some(format!("{what} name {name:?} is not a plain file name"));
            }
            if text.contains('\0') {
                return Some(format!("the text of {what} {name:?} holds NUL"));
            }
        }
        None
    }

    /// The version these texts hash to.
    fn computed_version(&self) -> String {
        let files: Vec<(String, String)> = self
            .policy_files
            .iter()
            .map(|f| (f.file.clone(), f.text.clone()))
            .collect();
        super::version_of(&self.schema, &files)
    }

    /// Every policy file under its name, then the schema, as plain text.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "# policy set {} ({} policy files; version re-computed from these texts)",
            self.version,
            self.policy_files.len()
        )?;
        for f in &self.policy_files {
            writeln!(out, "\n# ==> {} <==", f.file)?;
            write_ending_in_newline(out, &f.text)?;
        }
        writeln!(out, "\n# ==> {} (schema) <==", self.schema_file)?;
        write_ending_in_newline(out, &self.schema)
    }
}

fn write_ending_in_newline(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The archive directory of one data directory.
#[derive(Debug, Clone)]
pub struct PolicyArchive {
    dir: PathBuf,
}

impl PolicyArchive {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("policy-archive"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
        move |source| ArchiveError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Archives the texts `sources` holds under their version, unless that
    /// version is already there. Returns the version and whether it was
    /// written now. Blocking (file writes and an fsync).
    pub fn store(&self, sources: &Sources) -> Result<(String, bool), ArchiveError> {
        let set = ArchivedSet::from_sources(sources);
        let path = self.dir.join(format!("{}.json", set.version));
        if path.is_file() && self.load(&path, &set.version).is_ok() {
            return Ok((set.version, false));
        }
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        // Written aside and renamed into place, so a crash never leaves a
        // half-written set under a version's name.
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", set.version, std::process::id()));
        let bytes = serde_json::to_vec_pretty(&set).expect("archived sets serialize");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(Self::io(&path))?;
        Ok((set.version, true))
    }

    /// The archived set whose version is `version` or starts with it (at
    /// least [`MIN_PREFIX`] hex digits), after checking its texts still hash
    /// to its version.
    pub fn read(&self, version: &str) -> Result<ArchivedSet, ArchiveError> {
        let prefix = version.trim().to_ascii_lowercase();
        if prefix.len() < MIN_PREFIX
            || prefix.len() > 64
            || !prefix.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(ArchiveError::BadVersion(version.to_owned()));
        }
        let mut matches = self.versions()?;
        matches.retain(|v| v.starts_with(&prefix));
        match matches.as_slice() {
            [] => Err(ArchiveError::Unknown(prefix)),
            [one] => self.load(&self.dir.join(format!("{one}.json")), one),
            _ => Err(ArchiveError::Ambiguous { prefix, matches }),
        }
    }

    /// Every archived version, sorted.
    pub fn versions(&self) -> Result<Vec<String>, ArchiveError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.dir)(e)),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let name = entry.map_err(Self::io(&self.dir))?.file_name();
            let name = name.to_string_lossy();
            if let Some(v) = name.strip_suffix(".json") {
                if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    versions.push(v.to_owned());
                }
            }
        }
        versions.sort();
        Ok(versions)
    }

    fn load(&self, path: &Path, version: &str) -> Result<ArchivedSet, ArchiveError> {
        let bytes = std::fs::read(path).map_err(Self::io(path))?;
        let set: ArchivedSet =
            serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Format {
                path: path.display().to_string(),
                source,
            })?;
        if let Some(problem) = set.not_plain() {
            return Err(ArchiveError::NotPlain {
                version: version.to_owned(),
                problem,
            });
        }
        let computed = set.computed_version();
        if computed != version || set.version != version {
            return Err(ArchiveError::Altered {
                version: version.to_owned(),
                computed,
            });
        }
        Ok(set)
    }
}

/// A file name without any directory: no `/` or `\\`, not `.` or `..`,
/// no NUL, no drive (`C:`), not empty.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0', ':'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(policy: &str) -> Sources {
        Sources {
            schema_file: "schemas/s.cedarschema".into(),
            schema: "entity User;".into(),
            policy_files: vec![("policies/a.cedar".into(), policy.into())],
        }
    }

    #[test]
    fn stores_once_and_reads_back_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let archive = PolicyArchive::new(dir.path());
        let s = sources("@id(\"a\") permit(principal, action, resource);");
        let (v, written) = archive.store(&s).unwrap();
        assert!(written);
        assert_eq!(archive.store(&s).unwrap(), (v.clone(), false));
        let set = archive.read(&v[..8]).unwrap();
        assert_eq!(set.policy_files[0].text, s.policy_files[0].1);
        assert!(matches!(
            archive.read(&v[..7]),
            Err(ArchiveError::BadVersion(_))
        ));
        assert!(matches!(
            archive.read("deadbeef"),
            Err(ArchiveError::Unknown(_))
        ));
    }

    #[test]
    fn names_are_plain_and_crafted_sets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = PolicyArchive::new(dir.path());
        let (v, _) = archive
            .store(&sources("permit(principal, action, resource);"))
            .unwrap();
        let set = archive.read(&v).unwrap();
        assert_eq!(set.schema_file, "s.cedarschema");
        assert_eq!(set.policy_files[0].file, "a.cedar");
        for name in [
            "",
            ".",
            "..",
            "../a.cedar",
            "/etc/shadow",
            "p/a.cedar",
            "p\\a",
            "C:a",
            "a\0",
        ] {
            assert!(!is_plain_file_name(name), "{name:?}");
        }
        let path = archive.dir().join(format!("{v}.json"));
        let write = |set: &ArchivedSet| {
            std::fs::write(&path, serde_json::to_vec(set).unwrap()).unwrap();
        };
        // The policy text moved into the schema across the separators: the
        // same version, refused for its NUL.
        let mut moved = set.clone();
        let f = moved.policy_files.remove(0);
        moved.schema = format!("{}\0policy-file\0{}\0{}", moved.schema, f.file, f.text);
        assert_eq!(moved.computed_version(), v);
        write(&moved);
        assert!(matches!(
            archive.read(&v),
            Err(ArchiveError::NotPlain { .. })
        ));
        let mut shadow = set.clone();
        shadow.schema_file = "/etc/shadow".into();
        write(&shadow);
        assert!(matches!(
            archive.read(&v),
            Err(ArchiveError::NotPlain { .. })
        ));
    }

    #[test]
    fn an_altered_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = PolicyArchive::new(dir.path());
        let (v, _) = archive
            .store(&sources("@id(\"a\") permit(principal, action, resource);"))
            .unwrap();
        let path = archive.dir().join(format!("{v}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("permit", "forbid");
        std::fs::write(&path, text).unwrap();
        assert!(matches!(
            archive.read(&v),
            Err(ArchiveError::Altered { .. })
        ));
        // Storing the genuine texts again repairs it.
        archive
            .store(&sources("@id(\"a\") permit(principal, action, resource);"))
            .unwrap();
        assert!(archive.read(&v).is_ok());
    }
}
