//! `etax-authz import FILE`: the command's output. An import file is full
//! of ID numbers and phones, and a parse error can quote the value it
//! stopped at: every line is masked like every other output.

use std::path::Path;
use std::process::ExitCode;

use super::{import_file_reporting, ImportError, ImportSummary, Progress};
use crate::authn::{PasswordHasher, PasswordPolicy};
use crate::ids::mask_text;
use crate::store::{self, Store};

/// The import's page cache: written pages need not stay cached (each batch
/// is written once), and a million staff would otherwise fill redb's
/// default 1 GiB.
const CACHE_BYTES: usize = 256 << 20;

pub fn run(file: &Path, data: &Path, passwords: &PasswordPolicy) -> ExitCode {
    run_with(file, data, passwords, Ok)
}

/// [`run`], with the store opened over `data` passed through `prepare`
/// before anything is imported (fleet mode makes it a replica there).
pub fn run_with(
    file: &Path,
    data: &Path,
    passwords: &PasswordPolicy,
    prepare: impl FnOnce(Store) -> Result<Store, ImportError>,
) -> ExitCode {
    let run = || -> Result<ImportSummary, ImportError> {
        std::fs::create_dir_all(data).map_err(|source| ImportError::Io {
            path: data.display().to_string(),
            source,
        })?;
        let path = store::identity_store_path(data);
        let store = prepare(Store::open_with_cache(&path, CACHE_BYTES)?)?;
        let hasher = PasswordHasher::default();
        import_file_reporting(&store, file, &hasher, passwords, &mut Progress::new(true))
    };
    match run() {
        Ok(summary) => {
            println!(
                "imported: {}",
                serde_json::to_string(&summary).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(ImportError::Invalid(failures)) => {
            for f in &failures {
                eprintln!("{}: {}", file.display(), mask_text(&f.to_string()));
            }
            eprintln!(
                "import failed: {} problem(s); nothing was stored",
                failures.len()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            let outcome = if e.stored_nothing() {
                "nothing was stored"
            } else {
                "part of it is stored until the next import undoes it"
            };
            eprintln!("import failed: {}; {outcome}", mask_text(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}
