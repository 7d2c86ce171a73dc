//! `etax-authz fixture --from examples/demo.json OUT`: a test-suite fixture
//! (Cedar JSON entities) of every identity an import document holds.
//!
//! The document is imported into a scratch store and the entities are
//! built by the decision layer's own code, so the fixture has exactly the
//! attributes a decision sees and the parents its ancestries are closed
//! from — the schema mapping is not
//! written a second time here to drift from the real one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cedar_policy::{Entities, EntityUid};

use crate::authn::PasswordPolicy;
use crate::decision::{fixture::light_hasher, slice::stored_entity};
use crate::domain::EntityKind;
use crate::store::{
    AgencyRecord, AgentStaffRecord, EnterpriseRecord, FunctionRecord, PermissionIdentityRecord,
    PersonRecord, Record, StaffRecord, Store, StoreReader,
};

pub fn run(from: &Path, out: &Path, schema: &Path) -> ExitCode {
    match fixture_json(from, schema)
        .and_then(|json| std::fs::write(out, json).map_err(|e| format!("{}: {e}", out.display())))
    {
        Ok(()) => {
            println!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fixture: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A scratch directory removed when dropped (`tempfile` is only a dev
/// dependency).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The document's identities as a pretty-printed Cedar entities array,
/// checked against the schema.
pub fn fixture_json(document: &Path, schema: &Path) -> Result<String, String> {
    let scratch =
        Scratch(std::env::temp_dir().join(format!("etax-fixture-{}", crate::random_id())));
    std::fs::create_dir_all(&scratch.0).map_err(|e| e.to_string())?;
    let store = Store::open(&scratch.0.join("identities.redb")).map_err(|e| e.to_string())?;
    // The passwords are hashed and never leave the scratch store.
    crate::import::import_file(
        &store,
        document,
        &light_hasher(),
        &PasswordPolicy::default(),
    )
    .map_err(|e| e.to_string())?;
    let reader = store.read().map_err(|e| e.to_string())?;
    let roots = stored_uids(&reader).map_err(|e| e.to_string())?;
    let mut stored = Vec::with_capacity(roots.len());
    for uid in &roots {
        stored.extend(stored_entity(&reader, uid).map_err(|e| e.to_string())?);
    }
    let schema_text =
        crate::policy::read_regular(schema).map_err(|e| format!("{}: {e}", schema.display()))?;
    let (schema, _) =
        cedar_policy::Schema::from_cedarschema_str(&schema_text).map_err(|e| e.to_string())?;
    let entities = Entities::from_entities(stored, Some(&schema)).map_err(|e| e.to_string())?;
    let mut json = entities.to_json_value().map_err(|e| e.to_string())?;
    // Stable order, so a regenerated fixture diffs cleanly; without the
    // action entities the schema added, which suites get from the schema.
    if let Some(list) = json.as_array_mut() {
        list.retain(|e| e["uid"]["type"] != "Etax::Action");
        list.sort_by_key(|e| e.get("uid").map(|u| u.to_string()).unwrap_or_default());
    }
    serde_json::to_string_pretty(&json).map_err(|e| e.to_string())
}

/// The uid of every stored identity (each table's keys are entity ids).
pub(crate) fn stored_uids(
    reader: &StoreReader,
) -> Result<Vec<EntityUid>, crate::store::StoreError> {
    fn keys<R: Record>(
        reader: &StoreReader,
        kind: EntityKind,
    ) -> Result<Vec<EntityUid>, crate::store::StoreError> {
        Ok(reader
            .all::<R>()?
            .into_iter()
            .map(|(k, _)| kind.uid(&k))
            .collect())
    }
    Ok([
        keys::<FunctionRecord>(reader, EntityKind::Function)?,
        keys::<PersonRecord>(reader, EntityKind::Person)?,
        keys::<EnterpriseRecord>(reader, EntityKind::Enterprise)?,
        keys::<PermissionIdentityRecord>(reader, EntityKind::PermissionIdentity)?,
        keys::<StaffRecord>(reader, EntityKind::Staff)?,
        keys::<AgencyRecord>(reader, EntityKind::Agency)?,
        keys::<AgentStaffRecord>(reader, EntityKind::AgentStaff)?,
    ]
    .concat())
}
