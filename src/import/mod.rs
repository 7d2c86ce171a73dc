//! Bulk import of identities (`etax-authz import FILE`, `serve --demo`).
//!
//! Guarantee: an import either stores every record of the document or
//! leaves the store as it was.
//!
//! 1. **Check** (first pass): the document is read a section at a time, a
//!    record at a time ([`scan`]), and every record is checked against the
//!    records before it and one read snapshot of the store; every problem
//!    is collected with its record and field. A document with problems
//!    stores nothing.
//! 2. **Write** (second pass): the records are read and built again
//!    (clear-text passwords hashed now, before any transaction opens) and
//!    written in batches of [`write::BATCH`], one transaction each. Every
//!    write logs the value it replaced in the store's undo log in the same
//!    transaction; if a batch fails (I/O, a full disk, a record that no
//!    longer checks because the file changed between the passes), the
//!    batches already committed are undone from the log, and the error is
//!    returned. On success the log is dropped (if dropping it fails, the
//!    import is undone too). The second pass checks each record again,
//!    against the live store, and a problem then means the file changed.
//! 3. An import killed midway leaves its undo log: the next import undoes
//!    it before it starts. Until then the store holds the killed import's
//!    first batches: the CLI holds the store exclusively while it runs, so
//!    run `import` again (a file with `{}` will do) before serving a store
//!    whose import was interrupted.
//!
//! Readers in the same process could see the batches before the import
//! ends (or is undone); none do: the CLI holds the store file exclusively,
//! and the server seeds its demo before it serves.

mod check;
pub mod command;
pub mod document;
mod progress;
mod scan;
mod write;

use std::io::{Read, Seek};
use std::path::Path;

pub use document::*;
pub use progress::Progress;

use crate::authn::{PasswordHasher, PasswordPolicy};
use crate::store::{Store, StoreError};
use check::{Built, Checker, Lookup};
use scan::{each_record, Layout};
use write::BatchWriter;

/// One problem with one record of an import.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportFailure {
    /// `staff[3]`
    pub record: String,
    /// `person.id_number`
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ImportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}: {}", self.record, self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// serde_json's message, its position counted in the whole file.
    #[error("import file is not valid JSON for an import document: {0}")]
    Syntax(String),
    #[error("{} problem(s) in the import; nothing was stored", .0.len())]
    Invalid(Vec<ImportFailure>),
    #[error("the import file changed while it was imported: {0}")]
    Changed(ImportFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write failed and so did undoing it: the store holds part of the
    /// import (and its undo log, which the next import applies).
    #[error("{write}; undoing the part written failed too ({undo}): the next import undoes it")]
    UndoFailed {
        write: Box<ImportError>,
        undo: StoreError,
    },
}

impl ImportError {
    pub(crate) fn read(source: std::io::Error) -> Self {
        Self::Io {
            path: "import file".into(),
            source,
        }
    }

    /// Whether the store is as it was before the import.
    pub fn stored_nothing(&self) -> bool {
        !matches!(self, Self::UndoFailed { .. })
    }
}

/// How many records of each kind an import stored.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub functions: usize,
    pub persons: usize,
    pub enterprises: usize,
    pub permission_identities: usize,
    pub staff: usize,
    pub agencies: usize,
    pub agent_staff: usize,
    pub recognitions: usize,
}

/// What an import checks passwords with and hashes them with.
struct Credentials<'a> {
    hasher: &'a PasswordHasher,
    /// The same acceptance function as the API's (`--password-*` flags).
    passwords: &'a PasswordPolicy,
}

/// Imports the document in `path`, all or nothing (see the module doc).
pub fn import_file(
    store: &Store,
    path: &Path,
    hasher: &PasswordHasher,
    passwords: &PasswordPolicy,
) -> Result<ImportSummary, ImportError> {
    import_file_reporting(store, path, hasher, passwords, &mut Progress::new(false))
}

/// [`import_file`], telling `progress` how far it got.
pub fn import_file_reporting(
    store: &Store,
    path: &Path,
    hasher: &PasswordHasher,
    passwords: &PasswordPolicy,
    progress: &mut Progress,
) -> Result<ImportSummary, ImportError> {
    let file = crate::files::open_regular(path).map_err(|source| ImportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let credentials = Credentials { hasher, passwords };
    import(store, file, &credentials, progress)
}

/// Imports a document held in memory (tests, benches), all or nothing.
pub fn import_json(
    store: &Store,
    json: &[u8],
    hasher: &PasswordHasher,
    passwords: &PasswordPolicy,
) -> Result<ImportSummary, ImportError> {
    let credentials = Credentials { hasher, passwords };
    let mut quiet = Progress::new(false);
    import(store, std::io::Cursor::new(json), &credentials, &mut quiet)
}

fn import<R: Read + Seek>(
    store: &Store,
    file: R,
    credentials: &Credentials,
    progress: &mut Progress,
) -> Result<ImportSummary, ImportError> {
    import_with(store, file, credentials, progress, write::BATCH, &mut || {})
}

/// [`import`] with `batch` records per transaction, running `between`
/// after the check (tests change the file there).
fn import_with<R: Read + Seek>(
    store: &Store,
    mut file: R,
    credentials: &Credentials,
    progress: &mut Progress,
    batch: usize,
    between: &mut dyn FnMut(),
) -> Result<ImportSummary, ImportError> {
    let layout = Layout::scan(&mut file)?;
    file.rewind().map_err(ImportError::read)?;
    if store.has_undo()? {
        // A killed import's first batches: gone before this one is checked.
        let n = store.undo(write::BATCH)?;
        tracing::warn!(writes = n, "undid the part of an interrupted import");
    }
    progress.phase("checked");
    let snapshot = Lookup::Snapshot(store.read()?);
    let mut checker = Checker::new(snapshot, None, credentials.passwords);
    each_built(&mut file, &layout, &mut checker, &mut |_| {
        progress.add(1);
        Ok(())
    })?;
    if !checker.failures.is_empty() {
        return Err(ImportError::Invalid(checker.failures));
    }
    // Also ends the snapshot: no read transaction outlives the check.
    drop(checker);
    between();
    progress.phase("wrote");
    let pass = Pass {
        layout: &layout,
        credentials,
        batch,
    };
    let written = write_all(store, &mut file, &pass, progress).and_then(|summary| {
        store.forget_undo()?;
        Ok(summary)
    });
    progress.end();
    // On any failure (dropping the log included), the batches committed
    // are undone from the log.
    written.map_err(|e| match store.undo(write::BATCH) {
        Ok(_) => e,
        Err(undo) => ImportError::UndoFailed {
            write: Box::new(e),
            undo,
        },
    })
}

/// What the second pass reads and writes with.
struct Pass<'a> {
    layout: &'a Layout,
    credentials: &'a Credentials<'a>,
    batch: usize,
}

/// The second pass: build again (hashing clear passwords) and write.
fn write_all<R: Read + Seek>(
    store: &Store,
    file: &mut R,
    pass: &Pass,
    progress: &mut Progress,
) -> Result<ImportSummary, ImportError> {
    let credentials = pass.credentials;
    let hasher = Some(credentials.hasher);
    let mut checker = Checker::new(Lookup::Live(store), hasher, credentials.passwords);
    let mut writer = BatchWriter::new(store, pass.batch)?;
    each_built(file, pass.layout, &mut checker, &mut |built| {
        progress.add(writer.push(built)? as u64);
        Ok(())
    })?;
    progress.add(writer.flush()? as u64);
    // A problem now that the first pass did not see: the file changed.
    match checker.failures.into_iter().next() {
        Some(f) => Err(ImportError::Changed(f)),
        None => Ok(writer.summary),
    }
}

/// Reads every section in check order, checks (and builds) each record,
/// and hands what was built to `then`.
fn each_built<R: Read + Seek>(
    file: &mut R,
    layout: &Layout,
    c: &mut Checker,
    then: &mut dyn FnMut(Built) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut go = |built: Option<Built>| built.map_or(Ok(()), &mut *then);
    for section in Section::ALL {
        match section {
            Section::Functions => {
                each_record(file, layout, section, |i, r| go(c.function(i, r)))?;
            }
            Section::Persons => each_record(file, layout, section, |i, r| go(c.person(i, r)))?,
            Section::Enterprises => {
                each_record(file, layout, section, |i, r| go(c.enterprise(i, r)?))?;
            }
            Section::PermissionIdentities => each_record(file, layout, section, |i, r| {
                go(c.permission_identity(i, r)?)
            })?,
            Section::Staff => each_record(file, layout, section, |i, r| go(c.staff(i, r)?))?,
            Section::Agencies => each_record(file, layout, section, |i, r| go(c.agency(i, r)?))?,
            Section::AgentStaff => {
                each_record(file, layout, section, |i, r| go(c.agent_staff(i, r)?))?;
            }
            Section::Recognitions => {
                each_record(file, layout, section, |i, r| go(c.recognition(i, r)?))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
