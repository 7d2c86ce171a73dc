//! Staff maintenance (企业人员维护, R12–R16) and agency recognition (R17),
//! on behalf of a logged-in staff member.
//!
//! Every operation is first decided by Cedar with the acting staff member as
//! principal; a denied request changes nothing and names the rule that
//! refused it. Every write is one store transaction that re-reads what it
//! changes, so concurrent maintainers never lose each other's updates. Every
//! decision is durably in the decision log before the answer is returned.

use std::collections::BTreeSet;

use rand::seq::{IndexedRandom, SliceRandom};
use serde::Serialize;
use serde_json::json;

use super::decide::{Decider, Event};
use crate::audit::{AuditError, Target};
use crate::authn::{Authn, PasswordPolicy};
use crate::decision::{uid, DecisionError, Engine, Query};
use crate::ids::{mask_name, CreditCode, PermissionIdentityId, PersonKey, Phone};
use crate::store::{
    owned_key, AgencyRecord, FunctionRecord, IdentityType, PermissionIdentityRecord, PersonRecord,
    RecognitionRecord, StaffRecord, StoreError,
};
use serde_json::Value;

/// The staff member a maintenance request acts as (from their session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub enterprise: CreditCode,
    pub person: PersonKey,
}

impl Actor {
    fn uid(&self) -> String {
        staff_uid(self.enterprise.as_str(), &self.person.key())
    }
}

fn staff_uid(enterprise: &str, person: &str) -> String {
    owned_key(enterprise, person)
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// Cedar denied the request; `policies` are the forbids that fired
    /// (empty when no permit applied), `refusal` what the first of them
    /// says (its `@code` and `@message`).
    #[error("{}", match .refusal { Some(r) => r.message.clone(), None => format!("{action} denied (no policy permits it)") })]
    Denied {
        action: String,
        policies: Vec<String>,
        errors: Vec<String>,
        refusal: Option<std::sync::Arc<crate::policy::Refusal>>,
    },
    /// R15: only real-name-collected persons may be added.
    #[error("{0}")]
    RealNameRequired(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A password the service would store fails the one acceptance
    /// function (`authn::PasswordPolicy`).
    #[error("{field}: {source}")]
    Password {
        field: &'static str,
        source: crate::authn::NewPasswordError,
    },
    #[error(transparent)]
    Decision(#[from] DecisionError),
    #[error(transparent)]
    Busy(#[from] crate::authn::HashBusy),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

fn invalid(field: &str, message: impl ToString) -> MaintenanceError {
    MaintenanceError::Invalid {
        field: field.to_owned(),
        message: message.to_string(),
    }
}

/// A staff member as the maintenance page lists them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaffView {
    /// The person key masked (`resident_id:2101**********5035`).
    pub person: String,
    /// The person key in full, for the calling system to address this staff member.
    pub person_key: String,
    pub name: String,
    pub identity_type: IdentityType,
    pub permission_identities: BTreeSet<String>,
    pub real_name_verified: bool,
    pub has_personal_password: bool,
    pub password_change_required: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PermissionIdentityView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub functions: BTreeSet<String>,
    /// How many staff hold it.
    pub holders: usize,
}

/// A one-time password for the calling system to deliver to the staff
/// member's real-name phone (R12). The resetter never sees it.
#[derive(Debug, Clone, Serialize)]
pub struct OneTimePassword {
    pub password: String,
    pub deliver_to: String,
    pub deliver_to_masked: String,
}

/// What a permission identity should look like.
#[derive(Debug, Clone)]
pub struct PermissionIdentitySpec {
    pub id: PermissionIdentityId,
    pub name: String,
    pub description: String,
    pub functions: BTreeSet<String>,
}

/// A change to a staff member (R16). Adding and removing permission
/// identities are separate sets so that two maintainers' concurrent changes
/// both land.
#[derive(Debug, Clone, Default)]
pub struct StaffChange {
    pub identity_type: Option<IdentityType>,
    pub add_permission_identities: BTreeSet<PermissionIdentityId>,
    pub remove_permission_identities: BTreeSet<PermissionIdentityId>,
}

/// The maintenance operations, over the engine (decisions + store) and the
/// decision log.
pub struct Maintenance<'a> {
    pub engine: &'a Engine,
    /// The one decision path (decide, record, count).
    pub decider: &'a Decider,
    /// Hashing on the hashing threads, shared with the login flows.
    pub authn: &'a Authn,
}

impl Maintenance<'_> {
    /// Decides `action` for `actor` on `resource` and records the decision
    /// (with what `about` says it acts on and changes): before the write
    /// when allowed, with the answer when not. A denial names the rule.
    async fn authorize(
        &self,
        actor: &Actor,
        action: &str,
        resource: (&str, &str),
        about: impl FnOnce(Event) -> Event,
    ) -> Result<(), MaintenanceError> {
        self.authorize_in(actor, action, resource, json!({}), about)
            .await
    }

    /// [`Self::authorize`] with the facts an action's context carries.
    async fn authorize_in(
        &self,
        actor: &Actor,
        action: &str,
        resource: (&str, &str),
        context: serde_json::Value,
        about: impl FnOnce(Event) -> Event,
    ) -> Result<(), MaintenanceError> {
        let asked = self.decider.ask(Query {
            principal: uid("Staff", &actor.uid()),
            action: uid("Action", action),
            resource: uid(resource.0, resource.1),
            context,
        })?;
        let event = about(Event::asked(&format!("maintain.{action}"), &asked));
        let verdict = asked.verdict;
        if verdict.allowed {
            self.decider.record(event.before_write()).await?;
            return Ok(());
        }
        // The deciding forbid says why in its own words (`@message`).
        let reason = verdict
            .refusal
            .as_ref()
            .map_or("denied by policy", |r| r.message.as_str());
        self.decider.record(event.with_reason(reason)).await?;
        Err(MaintenanceError::Denied {
            action: action.to_owned(),
            policies: verdict.reasons,
            errors: verdict.errors,
            refusal: verdict.refusal,
        })
    }

    async fn on_enterprise(
        &self,
        actor: &Actor,
        action: &str,
        about: impl FnOnce(Event) -> Event,
    ) -> Result<(), MaintenanceError> {
        self.authorize(
            actor,
            action,
            ("Enterprise", actor.enterprise.as_str()),
            about,
        )
        .await
    }

    /// Asks whether `actor` may define (create, change or delete) the
    /// permission identity `id`: its context names the identity types of
    /// the others who hold it, whose grants the change would change. Answers
    /// those types, for the write to check they still hold.
    async fn may_define(
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
        let holders = other_holder_types(&staff, id, &actor.uid());
        let context = json!({ "otherHolders": holders
            .iter()
            .map(|t| json!({ "__entity": { "type": "Etax::IdentityType", "id": t.code() } }))
            .collect::<Vec<_>>() });
        self.authorize_in(
            actor,
            "definePermissionIdentity",
            ("Enterprise", actor.enterprise.as_str()),
            context,
            |e| e.with_target(target).with_change(change),
        )
        .await?;
        Ok(holders)
    }

    /// Runs a store write on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::StoreWriter) -> Result<T, MaintenanceError> + Send + 'static,
    ) -> Result<T, MaintenanceError> {
        let store = self.engine.store().clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .expect("store writes do not panic")
    }

    /// The agency a recognition request acts on, and the recognition
    /// before → after (as read before the decision).
    fn about_recognition(
        &self,
        e: Event,
        actor: &Actor,
        agency: &CreditCode,
        after: bool,
    ) -> Event {
        let before = self
            .engine
            .store()
            .read()
            .and_then(|r| {
                r.get::<RecognitionRecord>(&owned_key(actor.enterprise.as_str(), agency.as_str()))
            })
            .map(|r| r.is_some())
            .ok();
        e.with_target(Target {
            agency: Some(agency.to_string()),
            enterprise: Some(actor.enterprise.to_string()),
            ..Target::default()
        })
        .with_change(json!({ "recognition": { "before": before, "after": after } }))
    }

    /// The enterprise's staff (viewStaff).
    pub async fn list_staff(&self, actor: &Actor) -> Result<Vec<StaffView>, MaintenanceError> {
        self.on_enterprise(actor, "viewStaff", |e| e).await?;
        let r = self.engine.store().read()?;
        let mut out = Vec::new();
        for (key, s) in r.children::<StaffRecord>(actor.enterprise.as_str())? {
            let person_key = key
                .split_once('/')
                .map(|(_, p)| p.to_owned())
                .unwrap_or_default();
            let person = r.get::<PersonRecord>(&person_key)?;
            out.push(StaffView {
                person: PersonKey::parse_key(&person_key)
                    .map(|k| k.masked())
                    .unwrap_or_default(),
                person_key,
                name: person
                    .as_ref()
                    .map(|p| mask_name(&p.name))
                    .unwrap_or_default(),
                identity_type: s.identity_type,
                permission_identities: s.permission_identities,
                real_name_verified: person.as_ref().is_some_and(|p| p.real_name_verified),
                has_personal_password: s.password_hash.is_some(),
                password_change_required: s.password_change_required,
            });
        }
        Ok(out)
    }

    /// The enterprise's permission identities (viewStaff).
    pub async fn list_permission_identities(
        &self,
        actor: &Actor,
    ) -> Result<Vec<PermissionIdentityView>, MaintenanceError> {
        self.on_enterprise(actor, "viewStaff", |e| e).await?;
        let r = self.engine.store().read()?;
        let staff = r.children::<StaffRecord>(actor.enterprise.as_str())?;
        let mut out = Vec::new();
        for (key, p) in r.children::<PermissionIdentityRecord>(actor.enterprise.as_str())? {
            let id = key
                .split_once('/')
                .map(|(_, id)| id.to_owned())
                .unwrap_or_default();
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
        let decided_for = self
            .may_define(actor, spec.id.as_str(), Some(&spec.functions))
            .await?;
        let enterprise = actor.enterprise.to_string();
        let me = actor.uid();
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
        let me = actor.uid();
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

    /// Finds a person to add as staff (R15): name, ID type and ID number
    /// must match a real-name-collected person.
    pub async fn search_person(
        &self,
        actor: &Actor,
        name: &str,
        person: &PersonKey,
    ) -> Result<String, MaintenanceError> {
        let key = person.key();
        self.on_enterprise(actor, "addStaff", |e| {
            e.with_target_person(&key, Some(name))
        })
        .await?;
        let r = self.engine.store().read()?;
        real_named_person(r.get::<PersonRecord>(&person.key())?, name, person)?;
        Ok(mask_name(name))
    }

    /// Adds a real-name-collected person as staff (R15, R16).
    pub async fn add_staff(
        &self,
        actor: &Actor,
        name: &str,
        person: &PersonKey,
        identity_type: IdentityType,
        permission_identities: BTreeSet<PermissionIdentityId>,
    ) -> Result<(), MaintenanceError> {
        if matches!(
            identity_type,
            IdentityType::LegalRep | IdentityType::FinanceHead
        ) {
            return Err(invalid(
                "identity_type",
                "the legal representative and finance head come from the core tax system through sync staff (同步办税人)",
            ));
        }
        let added = json!({
            "identity_type": { "before": null, "after": identity_type.code() },
            "permission_identities": { "before": [], "after": permission_identities },
        });
        let key = person.key();
        self.on_enterprise(actor, "addStaff", |e| {
            e.with_target_person(&key, Some(name)).with_change(added)
        })
        .await?;
        let enterprise = actor.enterprise.to_string();
        let name = name.to_owned();
        let person = person.clone();
        self.write(move |w| {
            real_named_person(w.get::<PersonRecord>(&person.key())?, &name, &person)?;
            let key = staff_uid(&enterprise, &person.key());
            if w.get::<StaffRecord>(&key)?.is_some() {
                return Err(MaintenanceError::Conflict(format!(
                    "{} is already staff of {enterprise}",
                    mask_name(&name)
                )));
            }
            check_roles_exist(w, &enterprise, &permission_identities)?;
            // A fresh epoch: sessions from before a removal stay ended.
            let credential_epoch = w.next_epoch()?;
            w.put(
                &key,
                &StaffRecord {
                    identity_type,
                    permission_identities: permission_identities
                        .into_iter()
                        .map(String::from)
                        .collect(),
                    password_hash: None,
                    password_change_required: false,
                    credential_epoch,
                },
            )?;
            Ok(())
        })
        .await
    }

    /// Changes a staff member's identity type and permission identities (R16).
    pub async fn edit_staff(
        &self,
        actor: &Actor,
        person: &PersonKey,
        change: StaffChange,
    ) -> Result<StaffRecord, MaintenanceError> {
        if matches!(
            change.identity_type,
            Some(IdentityType::LegalRep | IdentityType::FinanceHead)
        ) {
            return Err(invalid(
                "identity_type",
                "the legal representative and finance head come from the core tax system through sync staff (同步办税人)",
            ));
        }
        let enterprise = actor.enterprise.to_string();
        let key = staff_uid(&enterprise, &person.key());
        // Asked about the staff member edited, so that a policy can protect
        // some of them (one officer's grants from the other).
        let before = self.engine.store().read()?.get::<StaffRecord>(&key)?;
        let edited = staff_change(before.as_ref(), &change);
        let person_key = person.key();
        self.authorize(actor, "editStaff", ("Staff", &key), |e| {
            e.with_target_person(&person_key, None).with_change(edited)
        })
        .await?;
        self.write(move |w| {
            let mut s = w
                .get::<StaffRecord>(&key)?
                .ok_or_else(|| MaintenanceError::NotFound("no such staff member".to_owned()))?;
            if let Some(t) = change.identity_type {
                if matches!(s.identity_type, IdentityType::LegalRep | IdentityType::FinanceHead) {
                    return Err(invalid("identity_type", "the legal representative's and finance head's identity type comes from the core tax system"));
                }
                s.identity_type = t;
            }
            check_roles_exist(w, &enterprise, &change.add_permission_identities)?;
            s.permission_identities
                .extend(change.add_permission_identities.into_iter().map(String::from));
            for r in &change.remove_permission_identities {
                s.permission_identities.remove(r.as_str());
            }
            w.put(&key, &s)?;
            Ok(s)
        })
        .await
    }

    /// Removes a staff member (R16); their sessions end at once, because
    /// every use of a session reads the store, and stay ended if the person
    /// is added again (a new record has a new credential epoch).
    pub async fn remove_staff(
        &self,
        actor: &Actor,
        person: &PersonKey,
    ) -> Result<(), MaintenanceError> {
        let key = staff_uid(actor.enterprise.as_str(), &person.key());
        let before = self.engine.store().read()?.get::<StaffRecord>(&key)?;
        let removed = json!({ "identity_type": {
            "before": before.map(|s| s.identity_type.code()),
            "after": null,
        }});
        let person_key = person.key();
        self.on_enterprise(actor, "removeStaff", |e| {
            e.with_target_person(&person_key, None).with_change(removed)
        })
        .await?;
        self.write(move |w| {
            let s = w
                .get::<StaffRecord>(&key)?
                .ok_or_else(|| MaintenanceError::NotFound("no such staff member".to_owned()))?;
            if matches!(s.identity_type, IdentityType::LegalRep | IdentityType::FinanceHead) {
                return Err(MaintenanceError::Conflict(
                    "the legal representative and finance head are maintained by the core tax system".to_owned(),
                ));
            }
            w.remove::<StaffRecord>(&key)?;
            Ok(())
        })
        .await
    }

    /// Resets a staff member's personal password to a random one-time
    /// password that must be changed at next login (R12).
    pub async fn reset_password(
        &self,
        actor: &Actor,
        person: &PersonKey,
    ) -> Result<OneTimePassword, MaintenanceError> {
        let target = staff_uid(actor.enterprise.as_str(), &person.key());
        let person_key = person.key();
        self.authorize(actor, "resetStaffPassword", ("Staff", &target), |e| {
            e.with_target_person(&person_key, None)
                .with_change(json!({ "password": "reset to a one-time password (must change)" }))
        })
        .await?;
        let password = one_time_password(&self.authn.config.passwords)?;
        let hash = self.authn.hash(password.clone()).await?;
        let person_key = person.key();
        let phone = self
            .write(move |w| {
                let mut s = w
                    .get::<StaffRecord>(&target)?
                    .ok_or_else(|| MaintenanceError::NotFound("no such staff member".to_owned()))?;
                let phone = w.get::<PersonRecord>(&person_key)?.and_then(|p| p.phone).ok_or_else(|| {
                    MaintenanceError::RealNameRequired(
                        "the staff member has no real-name phone to receive the password; real-name collection needed"
                            .to_owned(),
                    )
                })?;
                s.password_hash = Some(hash);
                s.password_change_required = true;
                // Sessions opened under the old password end.
                s.credential_epoch = w.next_epoch()?;
                w.put(&target, &s)?;
                Ok::<Phone, MaintenanceError>(phone)
            })
            .await?;
        Ok(OneTimePassword {
            password,
            deliver_to_masked: phone.masked(),
            deliver_to: phone.as_str().to_owned(),
        })
    }

    /// Recognizes an agency as the enterprise's tax agent and sets the
    /// relationship's agreement password (R17). Recognizing again replaces it
    /// and ends the agents' sessions acting for the enterprise.
    pub async fn recognize_agency(
        &self,
        actor: &Actor,
        agency: &CreditCode,
        agreement_password: &str,
    ) -> Result<(), MaintenanceError> {
        self.authn
            .check_new_password(agreement_password)
            .map_err(|source| MaintenanceError::Password {
                field: "agreement_password",
                source,
            })?;
        self.on_enterprise(actor, "recognizeAgency", |e| {
            self.about_recognition(e, actor, agency, true)
        })
        .await?;
        let hash = self.authn.hash(agreement_password.to_owned()).await?;
        let enterprise = actor.enterprise.to_string();
        let agency = agency.to_string();
        self.write(move |w| {
            if w.get::<AgencyRecord>(&agency)?.is_none() {
                return Err(MaintenanceError::NotFound(format!("no agency {agency}")));
            }
            // Agents acting under an earlier recognition (another
            // agreement password) stop.
            let epoch = w.next_epoch()?;
            w.put_recognition(
                &enterprise,
                &agency,
                &RecognitionRecord {
                    agreement_password_hash: hash,
                    recognized_at_ms: crate::now_ms(),
                    epoch,
                },
            )?;
            Ok(())
        })
        .await
    }

    /// Ends the recognition; the agency's agents' sessions acting for the
    /// enterprise end at their very next use (R17).
    pub async fn cancel_agency(
        &self,
        actor: &Actor,
        agency: &CreditCode,
    ) -> Result<(), MaintenanceError> {
        self.on_enterprise(actor, "cancelAgency", |e| {
            self.about_recognition(e, actor, agency, false)
        })
        .await?;
        let enterprise = actor.enterprise.to_string();
        let agency = agency.to_string();
        self.write(move |w| {
            if !w.remove_recognition(&enterprise, &agency)? {
                return Err(MaintenanceError::NotFound(format!(
                    "{enterprise} does not recognize agency {agency}"
                )));
            }
            Ok(())
        })
        .await
    }
}

/// A staff edit as before → after: identity type and permission
/// identities, as read before the decision (the write re-reads them).
fn staff_change(before: Option<&StaffRecord>, change: &StaffChange) -> Value {
    let had: BTreeSet<String> = before
        .map(|s| s.permission_identities.clone())
        .unwrap_or_default();
    let mut has = had.clone();
    has.extend(
        change
            .add_permission_identities
            .iter()
            .map(|p| p.to_string()),
    );
    for p in &change.remove_permission_identities {
        has.remove(p.as_str());
    }
    let type_before = before.map(|s| s.identity_type.code());
    let type_after = change.identity_type.map(|t| t.code()).or(type_before);
    json!({
        "identity_type": { "before": type_before, "after": type_after },
        "permission_identities": { "before": had, "after": has },
    })
}

fn real_named_person(
    found: Option<PersonRecord>,
    name: &str,
    person: &PersonKey,
) -> Result<PersonRecord, MaintenanceError> {
    match found {
        Some(p) if p.name == name.trim() && p.real_name_verified => Ok(p),
        _ => Err(MaintenanceError::RealNameRequired(format!(
            "no real-name-collected person {} with ID {}: real-name collection (实名采集) is needed before adding them",
            mask_name(name),
            person.masked()
        ))),
    }
}

fn check_roles_exist(
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
fn other_holder_types(
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
fn unchanged_holders(
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

fn holders_of(
    w: &crate::store::StoreWriter,
    enterprise: &str,
    role: &str,
) -> Result<Vec<(String, StaffRecord)>, MaintenanceError> {
    Ok(w.children::<StaffRecord>(enterprise)?
        .into_iter()
        .filter(|(_, s)| s.permission_identities.contains(role))
        .collect())
}

/// A random one-time password that the one acceptance function takes: 12
/// characters (or the rule's bounds) with all four classes, without
/// look-alikes. Checked like any other stored password, so a stricter rule
/// or a deny list applies to resets too; a rule no such password can meet
/// (`--password-max-len` below 4) is reported, not looped on.
fn one_time_password(passwords: &PasswordPolicy) -> Result<String, MaintenanceError> {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SPECIAL: &[u8] = b"!@#$%^&*-_=+";
    let rule = passwords.rule;
    let len = 12.clamp(rule.min_len, rule.max_len.max(rule.min_len));
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SPECIAL].concat();
    let mut refused = None;
    for _ in 0..16 {
        let mut chars: Vec<u8> = [UPPER, LOWER, DIGIT, SPECIAL]
            .iter()
            .map(|set| *set.choose(&mut rng).expect("non-empty"))
            .collect();
        while chars.len() < len {
            chars.push(*all.choose(&mut rng).expect("non-empty"));
        }
        chars.shuffle(&mut rng);
        let password = String::from_utf8(chars).expect("ASCII");
        match passwords.accept(&password) {
            Ok(()) => return Ok(password),
            Err(e) => refused = Some(e),
        }
    }
    Err(MaintenanceError::Conflict(format!(
        "no one-time password meets the configured password rule: {}",
        refused.expect("at least one attempt")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_passwords_pass_the_acceptance_function_and_differ() {
        let policy = PasswordPolicy::default();
        let a = one_time_password(&policy).unwrap();
        assert!(policy.accept(&a).is_ok(), "{a}");
        assert_ne!(a, one_time_password(&policy).unwrap());
        let strict = PasswordPolicy {
            rule: crate::authn::PasswordRule {
                min_len: 16,
                max_len: 20,
                min_classes: 4,
            },
            ..PasswordPolicy::default()
        };
        let b = one_time_password(&strict).unwrap();
        assert!(strict.accept(&b).is_ok(), "{b}");
    }

    /// A person of the demo bureau's enterprise, by ID number.
    fn staff_of_ent(id_number: &str) -> (Actor, PersonKey) {
        use crate::flows::test_support::ENT;
        let person = PersonKey::new(crate::ids::IdType::ResidentId, id_number).unwrap();
        let actor = Actor {
            enterprise: CreditCode::parse(ENT).unwrap(),
            person: person.clone(),
        };
        (actor, person)
    }

    /// Cedar decides before anything is written: a denied change leaves the
    /// store as it was; an allowed one is in the decision log even when its
    /// write then fails, so the record came first.
    #[tokio::test]
    async fn maintenance_decides_and_records_before_it_writes() {
        use crate::flows::test_support::{Bureau, WANG_ID};
        let b = Bureau::demo();
        let ops = b.maintenance();
        let (legal_rep, wang) = staff_of_ent(WANG_ID);
        let (clerk, zhang) = staff_of_ent("210102199001015035");
        let key = format!("{}/{}", clerk.enterprise, zhang.key());
        let stored = || {
            b.store()
                .read()
                .unwrap()
                .get::<StaffRecord>(&key)
                .unwrap()
                .unwrap()
        };
        let before = stored();
        // A tax clerk may not reset passwords (R12): nothing changes.
        let denied = ops.reset_password(&clerk, &zhang).await;
        assert!(
            matches!(denied, Err(MaintenanceError::Denied { .. })),
            "{denied:?}"
        );
        let after = stored();
        assert_eq!(after.password_hash, before.password_hash);
        assert_eq!(after.credential_epoch, before.credential_epoch);
        // Allowed, then refused by the write (officers are the core tax
        // system's): the allow was already recorded, and the officer stays.
        let refused = ops.remove_staff(&legal_rep, &wang).await;
        assert!(
            matches!(refused, Err(MaintenanceError::Conflict(_))),
            "{refused:?}"
        );
        let wang_key = format!("{}/{}", legal_rep.enterprise, wang.key());
        assert!(b
            .store()
            .read()
            .unwrap()
            .get::<StaffRecord>(&wang_key)
            .unwrap()
            .is_some());
        // The legal representative's reset is decided, recorded and written.
        ops.reset_password(&legal_rep, &zhang).await.unwrap();
        let reset = stored();
        assert!(reset.password_change_required);
        assert_ne!(reset.credential_epoch, before.credential_epoch);
        let log = b.log().await;
        let decided: Vec<_> = log
            .iter()
            .map(|(k, allowed)| (k.as_str(), *allowed))
            .collect();
        // (The correction of the refused write is the request's: HTTP
        // commits it with the answer.)
        assert_eq!(
            decided,
            [
                ("maintain.resetStaffPassword", false),
                ("maintain.removeStaff", true),
                ("maintain.resetStaffPassword", true),
            ]
        );
    }
}
