//! The policy authors' commands: `check` (with `--strict`), `test`, `fmt`,
//! `explain` and `fixture`. They sit above `policy`, `store` and
//! `decision` — the lints need the entity ids a store or the demo holds,
//! `explain` a store's entities, `fixture` the store's entity building —
//! which the policy layer itself must not reach.

pub mod commands;
pub mod explain;
pub mod fixture;

use std::path::Path;

use crate::policy::lint::KnownIds;
use crate::store::{FunctionRecord, Store, StoreError};

/// The business functions a store holds: what `Function::"…"` literals in
/// a policy may name.
pub fn known_ids_in_store(store: &Store) -> Result<KnownIds, StoreError> {
    let functions = store.read()?.all::<FunctionRecord>()?;
    Ok([(
        "Function".to_owned(),
        functions.into_iter().map(|(code, _)| code).collect(),
    )]
    .into())
}

/// The business functions an import document (`examples/demo.json`)
/// declares, read without importing it.
pub fn known_ids_in_document(path: &Path) -> Result<KnownIds, String> {
    #[derive(serde::Deserialize)]
    struct Functions {
        #[serde(default)]
        functions: Vec<Code>,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        code: String,
    }
    let text = crate::files::read_text(path, crate::files::MAX_DOCUMENT_BYTES)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: Functions =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok([(
        "Function".to_owned(),
        doc.functions.into_iter().map(|f| f.code).collect(),
    )]
    .into())
}
