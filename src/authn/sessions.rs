//! The session authority: opens a session after a login, resolves a token to
//! a live session on every use (`/v1/authorize`, maintenance, the password
//! step), and ends it at logout. It lives in `authn` because it needs only
//! the store and the credential machinery: no Cedar, no decision log, so
//! `/v1/authorize` and maintenance depend on it without depending on the
//! login flows.
//!
//! A session is bound to its principal's credential epoch (and, for an
//! agent acting for a client, the recognition's): [`still_bound`] is the one
//! comparison that ends it after a password change, a reset, a removal and
//! re-adding or a new recognition.

use std::sync::Arc;

use serde::Serialize;

use super::session::{self, SessionError};
use super::touches::Touches;
use super::AuthnConfig;
use crate::store::{
    owned_key, AgentStaffRecord, EnterpriseRecord, PersonRecord, RecognitionRecord, SessionRecord,
    StaffRecord, Store, StoreError, StoreReader,
};

/// Why a session could not be opened, used or ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("a one-time password must be changed before anything else (R12)")]
    PasswordChangeRequired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A session handed out by a successful login (R9).
#[derive(Debug, Serialize)]
pub struct SessionGrant {
    pub session: String,
    pub expires_at_ms: u64,
    pub idle_timeout_secs: u64,
    /// Masked, for display.
    pub principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// `set_password` (no personal password yet, R10) or `change_password`
    /// (one-time password, R12: nothing else is allowed until changed).
    pub obligations: Vec<&'static str>,
    /// Where the caller sends the user: `home` (e-tax home page, R9) or
    /// `social_insurance_fee_system` (R6).
    pub route: &'static str,
}

/// Who a new session is for, and the credentials it is bound to.
pub struct SessionSubject {
    /// Cedar entity type: `Staff`, `AgentStaff`, `Person`, `Enterprise`.
    pub principal_type: &'static str,
    pub principal_id: String,
    /// The principal's credential epoch as read *before* its credentials
    /// were verified: a change that raced the login ends the new session too.
    pub credential_epoch: u64,
    /// For an agent: the client enterprise and the epoch of the recognition
    /// whose agreement password was verified.
    pub acting_for: Option<(String, u64)>,
}

/// What the login established beyond who the subject is: the obligations
/// and route of the grant.
#[derive(Debug, Clone, Copy)]
pub struct Opening {
    pub has_password: bool,
    pub password_change_required: bool,
    pub route: &'static str,
}

/// The session service. Cheap to clone; the clones share the in-memory
/// last uses.
#[derive(Clone)]
pub struct Sessions {
    store: Store,
    config: Arc<AuthnConfig>,
    /// Sessions' last uses not yet written to the store (the sweeper writes
    /// them).
    touches: Arc<Touches>,
}

impl Sessions {
    pub fn new(store: Store, config: AuthnConfig) -> Self {
        Self {
            store,
            config: Arc::new(config),
            touches: Arc::default(),
        }
    }

    /// The in-memory last uses, shared with the sweeper that writes them.
    pub fn touches(&self) -> &Arc<Touches> {
        &self.touches
    }

    /// Runs a write transaction on the blocking pool.
    async fn write(
        &self,
        f: impl FnOnce(&mut crate::store::StoreWriter) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .expect("store write task does not panic")
    }

    /// Creates a session for a principal that just logged in, bound to the
    /// credentials it logged in with.
    pub async fn open(
        &self,
        subject: SessionSubject,
        opening: Opening,
    ) -> Result<SessionGrant, SessionsError> {
        let cfg = &self.config;
        let now = crate::now_ms();
        let (token, key) = session::new_token();
        let SessionSubject {
            principal_type,
            principal_id,
            credential_epoch,
            acting_for,
        } = subject;
        let (acting_for, recognition_epoch) = acting_for.unzip();
        let rec = SessionRecord {
            principal_type: principal_type.to_owned(),
            principal_id: principal_id.clone(),
            acting_for: acting_for.clone(),
            created_ms: now,
            last_used_ms: now,
            expires_ms: now + cfg.session_max_secs * 1000,
            password_change_required: opening.password_change_required,
            credential_epoch,
            recognition_epoch: recognition_epoch.unwrap_or_default(),
        };
        self.write(move |w| w.put(&key, &rec)).await?;
        let mut obligations = Vec::new();
        if opening.password_change_required {
            obligations.push("change_password");
        } else if !opening.has_password && principal_type != "Enterprise" {
            obligations.push("set_password");
        }
        Ok(SessionGrant {
            session: token,
            expires_at_ms: now + cfg.session_max_secs * 1000,
            idle_timeout_secs: cfg.session_idle_secs,
            principal: crate::ids::mask_text(&format!("{principal_type}::{principal_id:?}")),
            acting_for,
            obligations,
            route: opening.route,
        })
    }

    /// The session behind `token`, re-checked now: not logged out, within its
    /// absolute and idle lifetime, its principal still in the store with the
    /// credentials the session was opened under (and an agent's client still
    /// recognizing the agency as it did then). Notes the use in memory (the
    /// idle clock; see [`super::touches`]), so this hot path writes nothing.
    /// `allow_pending_change` lets the password-change step through while a
    /// one-time password is still unchanged. Answers the store key and the
    /// record.
    pub fn resolve(
        &self,
        token: &str,
        allow_pending_change: bool,
    ) -> Result<(String, SessionRecord), SessionsError> {
        let key = session::token_key(token);
        let now = crate::now_ms();
        let reader = self.store.read()?;
        let rec = reader
            .get::<SessionRecord>(&key)?
            .ok_or(SessionError::Unknown)?;
        session::check(&rec, self.touches.last_used(&key), &self.config, now)?;
        still_bound(&reader, &rec)?;
        drop(reader);
        if rec.password_change_required && !allow_pending_change {
            return Err(SessionsError::PasswordChangeRequired);
        }
        self.touches.touch(&key, now);
        Ok((key, rec))
    }

    /// Ends a session (logout). Unknown tokens are ignored.
    pub async fn end(&self, token: &str) -> Result<(), SessionsError> {
        let key = session::token_key(token);
        let k = key.clone();
        self.write(move |w| w.remove::<SessionRecord>(&k).map(|_| ()))
            .await?;
        self.touches.forget(&key);
        Ok(())
    }
}

/// Whether a session's principal still holds the credentials the session
/// was opened under, and an acting agent's client still the recognition.
/// Any change of either gave its record a new epoch, so one comparison each
/// covers password changes, resets, removal and re-adding, re-recognition.
pub fn still_bound(reader: &StoreReader, rec: &SessionRecord) -> Result<(), SessionsError> {
    let id = rec.principal_id.as_str();
    let epoch = match rec.principal_type.as_str() {
        "Staff" => reader.get::<StaffRecord>(id)?.map(|r| r.credential_epoch),
        "AgentStaff" => reader
            .get::<AgentStaffRecord>(id)?
            .map(|r| r.credential_epoch),
        "Person" => reader.get::<PersonRecord>(id)?.map(|r| r.credential_epoch),
        "Enterprise" => reader
            .get::<EnterpriseRecord>(id)?
            .map(|r| r.credential_epoch),
        _ => None,
    }
    .ok_or(SessionError::PrincipalGone)?;
    if epoch != rec.credential_epoch {
        return Err(SessionError::CredentialsChanged.into());
    }
    if let Some(client) = &rec.acting_for {
        // An agent's key is `agency/person`; the recognition is
        // `client/agency`.
        let agency = id.split_once('/').map_or(id, |(a, _)| a);
        let recognition = reader.get::<RecognitionRecord>(&owned_key(client, agency))?;
        if recognition.is_none_or(|r| r.epoch != rec.recognition_epoch) {
            return Err(SessionError::CredentialsChanged.into());
        }
    }
    Ok(())
}
