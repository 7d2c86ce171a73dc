//! `etax-authz import FILE --data DATA [--fleet URL]`. Without `--fleet`,
//! the embedded import. With it, an import into the fleet: DATA becomes (or is) a replica of the fleet's store, the import
//! runs through it under the fleet's job lock (so it cannot interleave with
//! another import or a demo seed), and every batch it writes goes through
//! the change log to every sidecar.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{changes, Fleet, FleetArgs};
use crate::authn::PasswordPolicy;

pub fn run(file: PathBuf, data: PathBuf, passwords: PasswordPolicy, args: &FleetArgs) -> ExitCode {
    let Some(url) = args.url.clone() else {
        return crate::import::command::run(&file, &data, &passwords);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("import failed: {e}; nothing was stored");
            return ExitCode::FAILURE;
        }
    };
    let (host, max_stale_ms) = (args.host_name(), args.max_stale_ms);
    runtime.block_on(async move {
        let fleet = match Fleet::connect(&url, &host).await {
            Ok(fleet) => fleet,
            Err(e) => {
                eprintln!("import failed: {e}; nothing was stored");
                return ExitCode::FAILURE;
            }
        };
        let log = changes::PgChangeLog::new(fleet.clone());
        let job = tokio::task::spawn_blocking(move || {
            crate::import::command::run_with(&file, &data, &passwords, |store| {
                let replica = store.attach(Box::new(log), max_stale_ms)?;
                replica.catch_up()?;
                Ok(replica)
            })
        });
        match changes::exclusively(&fleet, job).await {
            Ok(Ok(code)) => code,
            Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                eprintln!("import failed: {e}; nothing was stored");
                ExitCode::FAILURE
            }
        }
    })
}
