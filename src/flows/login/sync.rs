//! 同步办税人 (sync staff, R2/R3): during an enterprise login, the officers
//! the core tax system has on file become staff, matched by ID number to
//! real-name records.

use serde_json::{json, Value};

use super::steps::conclude;
use super::{FlowError, Login, StaffSelection};
use crate::domain::{Action, EntityKind};
use crate::flows::decide::Event;
use crate::flows::feeds::{demote_replaced_officers, log_demotions, Demoted};
use crate::ids::mask_name;
use crate::store::{
    owned_key, CoreOfficersRecord, EnterpriseRecord, FlowKind, IdentityType, PersonRecord,
    StaffRecord, StoreError, StoreWriter,
};

/// What sync staff (同步办税人) does for an enterprise, from the officers the
/// core tax system has on file and the real-name records: each officer who
/// matches becomes staff with their identity type; each who does not is
/// named (masked) and must redo real-name collection.
pub(super) struct SyncPlan {
    problems: Vec<String>,
    /// The officer's person key (as the core tax system's record holds
    /// it) and the identity type the core tax system gives them.
    to_add: Vec<(String, IdentityType)>,
    /// The enterprise: the officers become its staff.
    enterprise: String,
}

impl SyncPlan {
    /// The record of the step names the officers it is about to make staff
    /// (as planned from the read; the write plans again in its own
    /// transaction and differs only if the records changed in between).
    fn about(&self, event: Event) -> Event {
        let added: Vec<Value> = self
            .to_add
            .iter()
            .map(|(person, role)| json!({ "staff": self.staff_key(person), "identity_type": role }))
            .collect();
        let event = event.with_change(json!({ "staff_synced": added }));
        self.to_add
            .iter()
            .fold(event, |e, (person, _)| e.with_other_person(person, None))
    }

    /// The store key an officer is (or becomes) staff under.
    fn staff_key(&self, person: &str) -> String {
        owned_key(&self.enterprise, person)
    }

    pub(super) fn of(
        code: &str,
        on_file: Option<&CoreOfficersRecord>,
        person: impl Fn(&str) -> Result<Option<PersonRecord>, StoreError>,
    ) -> Result<Self, StoreError> {
        let mut plan = SyncPlan {
            problems: Vec::new(),
            to_add: Vec::new(),
            enterprise: code.to_owned(),
        };
        let none = CoreOfficersRecord::default();
        let officers = on_file.unwrap_or(&none);
        for (role, label, officer) in [
            (
                IdentityType::LegalRep,
                "法定代表人 (legal representative)",
                &officers.legal_rep,
            ),
            (
                IdentityType::FinanceHead,
                "财务负责人 (finance head)",
                &officers.finance_head,
            ),
        ] {
            let Some(o) = officer else { continue };
            let why = match person(&o.person)? {
                None => Some("no real-name record matches the ID number the core tax system holds"),
                Some(p) if p.name != o.name => {
                    Some("the real-name record's name differs from the core tax system's")
                }
                Some(p) if !p.real_name_verified => Some("real-name collection is not completed"),
                Some(p) if p.phone.is_none() => Some("no real-name phone is on file"),
                Some(_) => None,
            };
            match why {
                Some(why) => plan.problems.push(format!(
                    "{label} {} ({}): {why}; this person must redo real-name collection \
                     (实名采集) in the mobile tax app",
                    mask_name(&o.name),
                    crate::ids::mask_text(&o.person),
                )),
                None => plan.to_add.push((o.person.clone(), role)),
            }
        }
        if officers.legal_rep.is_none() && officers.finance_head.is_none() {
            plan.problems.push(
                "the core tax system (金税三期) has no legal representative or finance head on \
                 file for this enterprise"
                    .to_owned(),
            );
        }
        Ok(plan)
    }
}

impl Login {
    /// 同步办税人 (R2/R3): adds the legal rep and finance head the core tax
    /// system has on file, matched by ID number to real-name records.
    pub async fn sync_staff(&self, flow: &str) -> Result<StaffSelection, FlowError> {
        let (key, rec) = self.flow(flow, FlowKind::Enterprise)?;
        let code = rec.account.clone();
        let reader = self.read()?;
        let on_file = reader.get::<CoreOfficersRecord>(&code)?;
        // The plan as read decides what the log says was asked; the write
        // plans again in its own transaction.
        let planned = SyncPlan::of(&code, on_file.as_ref(), |k| reader.get::<PersonRecord>(k))?;
        let problems = planned.problems.clone();
        let name = reader
            .get::<EnterpriseRecord>(&code)?
            .map(|e| e.name)
            .unwrap_or_default();
        drop(reader);
        let me = EntityKind::Enterprise.uid(&code);
        let me_for_log = me.to_string();
        let note = (!problems.is_empty()).then(|| problems.join("; "));
        let note = note
            .as_deref()
            .or(Some("staff synced from the core tax system"));
        let verdict = self
            .decide_about(
                "sync_staff",
                me.clone(),
                Action::EnterpriseAccountLogin,
                me,
                json!({ "factors": &rec.factors }),
                (None, None, note),
                |e| planned.about(e),
            )
            .await?;
        conclude(&verdict, None)?;
        let c = code.clone();
        let (demoted, plan) = self.write(move |w| apply_sync(w, &c)).await?;
        log_demotions(
            &self.decider,
            &me_for_log,
            &demoted,
            "sync staff (同步办税人)",
        )
        .await?;
        // Each officer who matched is staff now; one who did not is named
        // and must redo real-name collection, without locking the other out.
        // Only when no one matched is the sync a failure.
        if plan.to_add.is_empty() {
            return Err(FlowError::RealNameMismatch(plan.problems.join("; ")));
        }
        let mut selection = self.enterprise_staff(&key, &code, name, flow.trim().to_owned())?;
        selection.sync_problems = plan.problems;
        Ok(selection)
    }
}

/// Sync staff's write, in one transaction: the plan made again from what
/// the transaction reads, the replaced officers demoted, the matched ones
/// added (or given the core tax system's identity type).
fn apply_sync(w: &mut StoreWriter, c: &str) -> Result<(Vec<Demoted>, SyncPlan), StoreError> {
    // Planned again from what this transaction reads: a
    // core-officers update committed since sync_staff read them must
    // not be undone by a plan made before it.
    let on_file = w.get::<CoreOfficersRecord>(c)?;
    let plan = SyncPlan::of(c, on_file.as_ref(), |k| w.get::<PersonRecord>(k))?;
    // Whoever the core tax system no longer names loses the
    // officer identity first, so that an enterprise never has
    // two legal representatives.
    let demoted = match &on_file {
        Some(officers) => demote_replaced_officers(w, c, officers)?,
        // Without a record from the core tax system there is
        // nothing to reconcile the officers with.
        None => Vec::new(),
    };
    for (person, role) in &plan.to_add {
        let (k, role) = (&plan.staff_key(person), *role);
        match w.get::<StaffRecord>(k)? {
            Some(s) if s.identity_type == role => {}
            // Already staff under another identity type: the
            // core tax system's record decides.
            Some(mut s) => {
                s.identity_type = role;
                w.put(k, &s)?;
            }
            None => {
                let credential_epoch = w.next_epoch()?;
                w.put(
                    k,
                    &StaffRecord {
                        identity_type: role,
                        permission_identities: Default::default(),
                        password_hash: None,
                        password_change_required: false,
                        credential_epoch,
                    },
                )?;
            }
        }
    }
    Ok((demoted, plan))
}
