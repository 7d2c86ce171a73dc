//! Permission identities (权限身份, R14): an enterprise's named sets of
//! functions, which staff hold. Defining or deleting one is decided with the
//! identity types of its other holders, and the write re-checks them.

use std::collections::BTreeSet;

use serde_json::json;

use super::{
    invalid, Actor, Maintenance, MaintenanceError, PermissionIdentitySpec, PermissionIdentityView,
};
use crate::audit::Target;
use crate::domain::{Action, EntityKind};
use crate::ids::PermissionIdentityId;
use crate::store::{
    owned_key, split_owned_key, FunctionRecord, IdentityType, PermissionIdentityRecord, StaffRecord,
};

impl Maintenance<'_> {
    /// Asks whether `actor` may define (create, change or delete) the
    /// permission identity `id`: its context names the identity types of
    /// the others who hold it, whose grants the change would change. Answers
    /// those types, for the write to check they still hold.
    pub(super) async fn may_define(
        &self,
        actor: &Actor,
        id: &str,
        after: Option<&BTreeSet<String>>,
    ) -> Result<BTreeSet<IdentityType>, MaintenanceError> {
        let reader = self.engine.store().read()?;
        let staff = reader.children::<StaffRecord>(actor.enterprise.as_str())?;
        let before = reader
            .get::<PermissionIdentityRecord>(&owned_key(actor.enterprise.as_str(), id))?
            .map(|p| p.functions);
        drop(reader);
        let target = Target {
            permission_identity: Some(id.to_owned()),
            enterprise: Some(actor.enterprise.to_string()),
            ..Target::default()
        };
        let change = json!({ "functions": { "before": before, "after": after } });
        let holders = other_holder_types(&staff, id, &actor.to_string());
        let context = json!({ "otherHolders": holders
            .iter()
            .map(|t| json!({ "__entity": { "type": "Etax::IdentityType", "id": t.code() } }))
            .collect::<Vec<_>>() });
        self.authorize_in(
            actor,
            Action::DefinePermissionIdentity,
            (EntityKind::Enterprise, actor.enterprise.as_str()),
            context,
            |e| e.with_target(target).with_change(change),
        )
        .await?;
        Ok(holders)
    }

    /// The enterprise's permission identities (viewStaff).
    pub async fn list_permission_identities(
        &self,
        actor: &Actor,
    ) -> Result<Vec<PermissionIdentityView>, MaintenanceError> {
        self.on_enterprise(actor, Action::ViewStaff, |e| e).await?;
        let r = self.engine.store().read()?;
        let staff = r.children::<StaffRecord>(actor.enterprise.as_str())?;
        let mut out = Vec::new();
        for (key, p) in r.children::<PermissionIdentityRecord>(actor.enterprise.as_str())? {
            let id = split_owned_key(&key).map_or("", |(_, id)| id).to_owned();
            let holders = staff
                .iter()
                .filter(|(_, s)| s.permission_identities.contains(&id))
                .count();
            out.push(PermissionIdentityView {
                id,
                name: p.name,
                description: p.description,
                functions: p.functions,
                holders,
            });
        }
        Ok(out)
    }

    /// Creates (`create`) or replaces a permission identity (R14).
    pub async fn put_permission_identity(
        &self,
        actor: &Actor,
        spec: PermissionIdentitySpec,
        create: bool,
    ) -> Result<PermissionIdentityView, MaintenanceError> {
        if spec.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if spec.functions.is_empty() {
            return Err(invalid(
                "functions",
                "a permission identity grants at least one business function",
            ));
        }
        // Before the question is asked and recorded: a code no function can
        // have (a 60 kB one was decided, recorded twice and repeated in the
        // refusal) is refused without being repeated.
        for f in &spec.functions {
            if let Err(e) = crate::ids::check_local_key(f) {
                return Err(invalid(
                    "functions",
                    format!("a business function code {e} (the value is not repeated)"),
                ));
            }
        }
        for (field, text, max) in [
            ("name", &spec.name, 100),
            ("description", &spec.description, 1000),
        ] {
            let len = text.chars().count();
            if len > max {
                return Err(invalid(
                    field,
                    format!("at most {max} characters, got {len}"),
                ));
            }
        }
        let decided_for = self
            .may_define(actor, spec.id.as_str(), Some(&spec.functions))
            .await?;
        let enterprise = actor.enterprise.to_string();
        let me = actor.to_string();
        self.write(move |w| {
            unchanged_holders(w, &enterprise, spec.id.as_str(), &me, &decided_for)?;
            for f in &spec.functions {
                if w.get::<FunctionRecord>(f)?.is_none() {
                    return Err(invalid(
                        "functions",
                        format!("unknown business function '{f}'"),
                    ));
                }
            }
            let key = owned_key(&enterprise, spec.id.as_str());
            let exists = w.get::<PermissionIdentityRecord>(&key)?.is_some();
            if create && exists {
                return Err(MaintenanceError::Conflict(format!(
                    "permission identity '{}' already exists",
                    spec.id
                )));
            }
            if !create && !exists {
                return Err(MaintenanceError::NotFound(format!(
                    "no permission identity '{}'",
                    spec.id
                )));
            }
            let record = PermissionIdentityRecord {
                name: spec.name.clone(),
                description: spec.description.clone(),
                functions: spec.functions.clone(),
            };
            w.put(&key, &record)?;
            let holders = holders_of(w, &enterprise, spec.id.as_str())?.len();
            Ok(PermissionIdentityView {
                id: spec.id.to_string(),
                name: record.name,
                description: record.description,
                functions: record.functions,
                holders,
            })
        })
        .await
    }

    /// Deletes a permission identity; refused while staff hold it unless
    /// `detach`, which first takes it from every holder.
    pub async fn delete_permission_identity(
        &self,
        actor: &Actor,
        id: &PermissionIdentityId,
        detach: bool,
    ) -> Result<usize, MaintenanceError> {
        let decided_for = self.may_define(actor, id.as_str(), None).await?;
        let enterprise = actor.enterprise.to_string();
        let id = id.to_string();
        let me = actor.to_string();
        self.write(move |w| {
            unchanged_holders(w, &enterprise, &id, &me, &decided_for)?;
            let key = owned_key(&enterprise, &id);
            if w.get::<PermissionIdentityRecord>(&key)?.is_none() {
                return Err(MaintenanceError::NotFound(format!("no permission identity '{id}'")));
            }
            let holders = holders_of(w, &enterprise, &id)?;
            if !holders.is_empty() && !detach {
                return Err(MaintenanceError::Conflict(format!(
                    "permission identity '{id}' is held by {} staff member(s); delete with detach=true to take it from them",
                    holders.len()
                )));
            }
            for (staff_key, mut s) in holders.iter().cloned() {
                s.permission_identities.remove(&id);
                w.put(&staff_key, &s)?;
            }
            w.remove::<PermissionIdentityRecord>(&key)?;
            Ok(holders.len())
        })
        .await
    }
}

pub(super) fn check_roles_exist(
    w: &crate::store::StoreWriter,
    enterprise: &str,
    roles: &BTreeSet<PermissionIdentityId>,
) -> Result<(), MaintenanceError> {
    for r in roles {
        if w.get::<PermissionIdentityRecord>(&owned_key(enterprise, r.as_str()))?
            .is_none()
        {
            return Err(invalid(
                "permission_identities",
                format!("no permission identity '{r}' in {enterprise}"),
            ));
        }
    }
    Ok(())
}

/// The identity types of the staff other than `actor` (a staff key) who
/// hold permission identity `id`.
pub(super) fn other_holder_types(
    staff: &[(String, StaffRecord)],
    id: &str,
    actor: &str,
) -> BTreeSet<IdentityType> {
    staff
        .iter()
        .filter(|(key, s)| key != actor && s.permission_identities.contains(id))
        .map(|(_, s)| s.identity_type)
        .collect()
}

/// Refuses a definition whose holders changed between the decision and the
/// write: the decision was about the holders it was told of.
pub(super) fn unchanged_holders(
    w: &crate::store::StoreWriter,
    enterprise: &str,
    id: &str,
    actor: &str,
    decided_for: &BTreeSet<IdentityType>,
) -> Result<(), MaintenanceError> {
    let staff = w.children::<StaffRecord>(enterprise)?;
    if other_holder_types(&staff, id, actor) != *decided_for {
        return Err(MaintenanceError::Conflict(format!(
            "the holders of permission identity '{id}' changed while this request was decided; \
             send it again"
        )));
    }
    Ok(())
}

pub(super) fn holders_of(
    w: &crate::store::StoreWriter,
    enterprise: &str,
    role: &str,
) -> Result<Vec<(String, StaffRecord)>, MaintenanceError> {
    Ok(w.children::<StaffRecord>(enterprise)?
        .into_iter()
        .filter(|(_, s)| s.permission_identities.contains(role))
        .collect())
}
