//! Agency recognition (R17): an enterprise recognizes a tax agency, with
//! the relationship's agreement password, or cancels it. Either gives the
//! recognition a new epoch, which ends the agents' sessions acting for the
//! enterprise.

use serde_json::json;

use super::{Actor, Maintenance, MaintenanceError};
use crate::audit::Target;
use crate::domain::Action;
use crate::flows::decide::Event;
use crate::ids::CreditCode;
use crate::store::{owned_key, AgencyRecord, RecognitionRecord};

impl Maintenance<'_> {
    /// The agency a recognition request acts on, and the recognition
    /// before → after (as read before the decision).
    pub(super) fn about_recognition(
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
        self.on_enterprise(actor, Action::RecognizeAgency, |e| {
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
        self.on_enterprise(actor, Action::CancelAgency, |e| {
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
