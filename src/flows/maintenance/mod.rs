//! Staff maintenance (企业人员维护, R12–R16) and agency recognition (R17),
//! on behalf of a logged-in staff member.
//!
//! Every operation is first decided by Cedar with the acting staff member as
//! principal; a denied request changes nothing and names the rule that
//! refused it. Every write is one store transaction that re-reads what it
//! changes, so concurrent maintainers never lose each other's updates. Every
//! decision is durably in the decision log before the answer is returned.

mod agency;
mod identities;
mod staff;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::json;

use super::decide::{Decider, Event};
use crate::audit::AuditError;
use crate::authn::Authn;
use crate::decision::{DecisionError, Engine, Query};
use crate::domain::{Action, EntityKind, StaffKey};
use crate::ids::{PermissionIdentityId, PersonKey};
use crate::store::{IdentityType, StoreError};

/// The staff member a maintenance request acts as (from their session).
pub type Actor = StaffKey;

/// `person` as a staff member of the actor's enterprise: whom an
/// operation on a colleague is about.
fn colleague(actor: &Actor, person: &PersonKey) -> StaffKey {
    StaffKey {
        enterprise: actor.enterprise.clone(),
        person: person.clone(),
    }
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
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    pub(super) async fn authorize(
        &self,
        actor: &Actor,
        action: Action,
        resource: (EntityKind, &str),
        about: impl FnOnce(Event) -> Event,
    ) -> Result<(), MaintenanceError> {
        self.authorize_in(actor, action, resource, json!({}), about)
            .await
    }

    /// [`Self::authorize`] with the facts an action's context carries.
    pub(super) async fn authorize_in(
        &self,
        actor: &Actor,
        action: Action,
        resource: (EntityKind, &str),
        context: serde_json::Value,
        about: impl FnOnce(Event) -> Event,
    ) -> Result<(), MaintenanceError> {
        let asked = self.decider.ask(Query {
            principal: EntityKind::Staff.uid(&actor.to_string()),
            action: action.uid(),
            resource: resource.0.uid(resource.1),
            context,
            stamped: None,
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
            action: action.to_string(),
            policies: verdict.reasons,
            errors: verdict.errors,
            refusal: verdict.refusal,
        })
    }

    pub(super) async fn on_enterprise(
        &self,
        actor: &Actor,
        action: Action,
        about: impl FnOnce(Event) -> Event,
    ) -> Result<(), MaintenanceError> {
        self.authorize(
            actor,
            action,
            (EntityKind::Enterprise, actor.enterprise.as_str()),
            about,
        )
        .await
    }

    /// Runs a store write on the blocking pool.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::StoreWriter) -> Result<T, MaintenanceError> + Send + 'static,
    ) -> Result<T, MaintenanceError> {
        let store = self.engine.store().clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .expect("store writes do not panic")
    }
}
