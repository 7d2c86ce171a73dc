//! Staff of an enterprise (R12–R16): list, search for a person to add,
//! add, edit, remove, and reset a staff member's password to a one-time one.

use std::collections::BTreeSet;

use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{json, Value};

use super::identities::check_roles_exist;
use super::{
    colleague, invalid, Actor, Maintenance, MaintenanceError, OneTimePassword, StaffChange,
    StaffView,
};
use crate::authn::PasswordPolicy;
use crate::domain::{Action, EntityKind, StaffKey};
use crate::ids::{mask_name, PermissionIdentityId, PersonKey, Phone};
use crate::store::{IdentityType, PersonRecord, StaffRecord};

impl Maintenance<'_> {
    /// The enterprise's staff (viewStaff).
    pub async fn list_staff(&self, actor: &Actor) -> Result<Vec<StaffView>, MaintenanceError> {
        self.on_enterprise(actor, Action::ViewStaff, |e| e).await?;
        let r = self.engine.store().read()?;
        let mut out = Vec::new();
        for (key, s) in r.children::<StaffRecord>(actor.enterprise.as_str())? {
            // A key that does not parse (a damaged record) is listed with
            // no person, as before the keys were typed.
            let staff = key.parse::<StaffKey>().ok();
            let person_key = staff.as_ref().map(|k| k.person.key()).unwrap_or_default();
            let person = r.get::<PersonRecord>(&person_key)?;
            out.push(StaffView {
                person: staff.map(|k| k.person.masked()).unwrap_or_default(),
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

    /// Finds a person to add as staff (R15): name, ID type and ID number
    /// must match a real-name-collected person.
    pub async fn search_person(
        &self,
        actor: &Actor,
        name: &str,
        person: &PersonKey,
    ) -> Result<String, MaintenanceError> {
        let key = person.key();
        // Searching is part of adding staff (R15), so Cedar decides it as
        // `addStaff`; the record says it was a search, which adds no one.
        self.on_enterprise(actor, Action::AddStaff, |e| {
            e.with_target_person(&key, Some(name))
                .with_kind("maintain.searchPerson")
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
        self.on_enterprise(actor, Action::AddStaff, |e| {
            e.with_target_person(&key, Some(name)).with_change(added)
        })
        .await?;
        let enterprise = actor.enterprise.to_string();
        let name = name.to_owned();
        let staff = colleague(actor, person);
        self.write(move |w| {
            let person = &staff.person;
            real_named_person(w.get::<PersonRecord>(&person.key())?, &name, person)?;
            let key = staff.to_string();
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
        let key = colleague(actor, person).to_string();
        // Asked about the staff member edited, so that a policy can protect
        // some of them (one officer's grants from the other).
        let before = self.engine.store().read()?.get::<StaffRecord>(&key)?;
        let edited = staff_change(before.as_ref(), &change);
        let person_key = person.key();
        self.authorize(actor, Action::EditStaff, (EntityKind::Staff, &key), |e| {
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
        let key = colleague(actor, person).to_string();
        let before = self.engine.store().read()?.get::<StaffRecord>(&key)?;
        let removed = json!({ "identity_type": {
            "before": before.map(|s| s.identity_type.code()),
            "after": null,
        }});
        let person_key = person.key();
        self.on_enterprise(actor, Action::RemoveStaff, |e| {
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
        let target = colleague(actor, person).to_string();
        let person_key = person.key();
        let resource = (EntityKind::Staff, target.as_str());
        self.authorize(actor, Action::ResetStaffPassword, resource, |e| {
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
}

/// A staff edit as before → after: identity type and permission
/// identities, as read before the decision (the write re-reads them).
pub(super) fn staff_change(before: Option<&StaffRecord>, change: &StaffChange) -> Value {
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

pub(super) fn real_named_person(
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

/// A random one-time password that the one acceptance function takes: 12
/// characters (or the rule's bounds) with all four classes, without
/// look-alikes. Checked like any other stored password, so a stricter rule
/// or a deny list applies to resets too; a rule no such password can meet
/// (`--password-max-len` below 4) is reported, not looped on.
pub(super) fn one_time_password(passwords: &PasswordPolicy) -> Result<String, MaintenanceError> {
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
