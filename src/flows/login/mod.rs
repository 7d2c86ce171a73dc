//! The login flows of the bureau (R1–R9) and the password steps (R10, R11):
//! enterprise normal login with staff sync, quick login, social-security-only
//! payers, natural persons, the three steps of agency login, and setting or
//! recovering a password. One file per mode; the step machinery they share
//! is in `steps` (ask, record, conclude), `credentials` (passwords under
//! lockout, codes), `flow` (the login flow record, the account step) and
//! `members` (picking and logging in a staff or agent staff member).
//! Sessions are opened through [`crate::authn::sessions`].

mod agency;
mod credentials;
mod enterprise;
mod error;
mod flow;
mod members;
mod natural;
pub mod password;
mod quick;
mod steps;
mod sync;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::Serialize;

use super::decide::Decider;
use crate::authn::sessions::{Opening, SessionSubject, Sessions};
use crate::authn::Authn;
use crate::domain::{PrincipalKind, StaffKey};
use crate::store::{StaffRecord, Store, StoreError, StoreReader, StoreWriter};

pub use crate::authn::sessions::SessionGrant;
pub(crate) use credentials::Delivery;
pub(crate) use error::invalid;
pub use error::{FlowError, Quota};
pub(crate) use flow::flow_expired;

/// How a staff or agent staff member proves who they are.
#[derive(Debug)]
pub enum PersonalFactor {
    /// 个人密码
    Password(String),
    /// An SMS code to the real-name phone.
    Sms { challenge: String, code: String },
}

/// One staff member (or agent staff member) the user may pick.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffChoice {
    /// Opaque within this login flow.
    pub staff_id: String,
    /// As the bureau shows it: `*建国`.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<&'static str>,
    pub real_name_verified: bool,
    /// `sms` (a real-name phone is on file), `password` (a personal password is set).
    pub methods: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<&'static str>,
}

/// After the enterprise or agency account step.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffSelection {
    pub flow: String,
    pub expires_in_secs: u64,
    pub account_name: String,
    pub staff: Vec<StaffChoice>,
    /// No staff yet: ask to sync staff (同步办税人).
    pub sync_required: bool,
    /// After sync staff: each officer on file who could not be added, and
    /// why (masked name and ID number): they must redo real-name collection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sync_problems: Vec<String>,
}

/// Step 1 of an enterprise login.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EnterpriseLoginOutcome {
    /// Pick a staff member (R2).
    SelectStaff(StaffSelection),
    /// A social-security-only payer is logged in (R6).
    LoggedIn(SessionGrant),
}

/// A client enterprise an agent may act for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientChoice {
    pub credit_code: String,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientSelection {
    pub flow: String,
    pub clients: Vec<ClientChoice>,
}

/// A code issued for the calling system to deliver (SMS) or render (captcha).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedCode {
    pub challenge: String,
    /// The code itself: for the calling system to deliver, never to log.
    pub code: String,
    pub expires_in_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
}

/// Where an SMS code goes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Destination {
    /// For display: `138****0001`.
    pub phone_masked: String,
    /// For the delivering system only.
    pub phone: String,
}

/// The login flows and password steps. Cheap to clone.
#[derive(Clone)]
pub struct Login {
    /// Decides and records every step.
    decider: Decider,
    authn: Arc<Authn>,
    /// Opens the session a successful login ends with.
    sessions: Sessions,
}

impl Login {
    pub fn new(decider: Decider, authn: Arc<Authn>, sessions: Sessions) -> Self {
        Self {
            decider,
            authn,
            sessions,
        }
    }

    pub(super) fn store(&self) -> &Store {
        self.decider.engine.store()
    }

    /// Opens the session a successful login ends with.
    pub(super) async fn open_session(
        &self,
        subject: SessionSubject,
        has_password: bool,
        password_change_required: bool,
        route: &'static str,
    ) -> Result<SessionGrant, FlowError> {
        let opening = Opening {
            has_password,
            password_change_required,
            route,
        };
        Ok(self.sessions.open(subject, opening).await?)
    }

    /// Opens an enterprise staff member's session on the business home
    /// page: the last step of a normal and of a quick login alike.
    pub(super) async fn open_staff_session(
        &self,
        staff_key: StaffKey,
        staff: &StaffRecord,
    ) -> Result<SessionGrant, FlowError> {
        let subject = SessionSubject {
            principal_type: PrincipalKind::Staff,
            principal_id: staff_key.to_string(),
            credential_epoch: staff.credential_epoch,
            acting_for: None,
        };
        self.open_session(
            subject,
            staff.password_hash.is_some(),
            staff.password_change_required,
            "home",
        )
        .await
    }

    pub(super) fn read(&self) -> Result<StoreReader, FlowError> {
        Ok(self.store().read()?)
    }

    /// Runs a write transaction on the blocking pool.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut StoreWriter) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, FlowError> {
        let store = self.store().clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .expect("store write task does not panic")
            .map_err(FlowError::from)
    }
}
