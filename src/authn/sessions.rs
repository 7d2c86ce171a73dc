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
use crate::domain::{PrincipalKind, StaffKey};
use crate::ids::CreditCode;
use crate::store::{
    owned_key, AgentStaffRecord, Change, EnterpriseRecord, PersonRecord, RecognitionRecord,
    SessionRecord, StaffRecord, Store, StoreError, StoreReader,
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    pub principal_type: PrincipalKind,
    pub principal_id: String,
    /// The principal's credential epoch as read *before* its credentials
    /// were verified: a change that raced the login ends the new session too.
    pub credential_epoch: u64,
    /// For an agent: the client enterprise and the epoch of the recognition
    /// whose agreement password was verified.
    pub acting_for: Option<(CreditCode, u64)>,
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
            principal_type,
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
        } else if !opening.has_password && principal_type != PrincipalKind::Enterprise {
            obligations.push("set_password");
        }
        Ok(SessionGrant {
            session: token,
            expires_at_ms: now + cfg.session_max_secs * 1000,
            idle_timeout_secs: cfg.session_idle_secs,
            principal: crate::ids::mask_text(&format!("{principal_type}::{principal_id:?}")),
            acting_for: acting_for.map(String::from),
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
        // Fleet mode: a logout or credential change committed on another
        // host is applied before this check reads the replica. That may
        // wait on the database and on redb's writer: off the async worker.
        if self.store.is_replica() {
            tokio::task::block_in_place(|| {
                self.store
                    .catch_up_if_needed(|reader, changes| rewritten(reader, &key, changes))
            })?;
        }
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

/// Whether `changes` write a record [`Sessions::resolve`] reads for the
/// session stored at `key`: the session itself (a logout, or a session this
/// replica has not seen yet), its principal (a credential epoch, a removal,
/// the principal's own grants), an acting agent's recognition.
fn rewritten(reader: &StoreReader, key: &str, changes: &[&Change]) -> Result<bool, StoreError> {
    let rec = reader.get::<SessionRecord>(key)?;
    let writes = |c: &Change| {
        if c.writes::<SessionRecord>(key) {
            return true;
        }
        let Some(rec) = &rec else { return false };
        let id = rec.principal_id.as_str();
        let principal = match rec.principal_type {
            PrincipalKind::Staff => c.writes::<StaffRecord>(id),
            PrincipalKind::AgentStaff => c.writes::<AgentStaffRecord>(id),
            PrincipalKind::Person => c.writes::<PersonRecord>(id),
            PrincipalKind::Enterprise => c.writes::<EnterpriseRecord>(id),
        };
        principal
            || rec.acting_for.as_ref().is_some_and(|client| {
                let agency = id.parse::<StaffKey>().map(|k| k.enterprise);
                agency.is_ok_and(|a| {
                    c.writes::<RecognitionRecord>(&owned_key(client.as_str(), a.as_str()))
                })
            })
    };
    Ok(changes.iter().any(|c| writes(c)))
}

/// Whether a session's principal still holds the credentials the session
/// was opened under, and an acting agent's client still the recognition.
/// Any change of either gave its record a new epoch, so one comparison each
/// covers password changes, resets, removal and re-adding, re-recognition.
pub fn still_bound(reader: &StoreReader, rec: &SessionRecord) -> Result<(), SessionsError> {
    let id = rec.principal_id.as_str();
    let epoch = match rec.principal_type {
        PrincipalKind::Staff => reader.get::<StaffRecord>(id)?.map(|r| r.credential_epoch),
        PrincipalKind::AgentStaff => reader
            .get::<AgentStaffRecord>(id)?
            .map(|r| r.credential_epoch),
        PrincipalKind::Person => reader.get::<PersonRecord>(id)?.map(|r| r.credential_epoch),
        PrincipalKind::Enterprise => reader
            .get::<EnterpriseRecord>(id)?
            .map(|r| r.credential_epoch),
    }
    .ok_or(SessionError::PrincipalGone)?;
    if epoch != rec.credential_epoch {
        return Err(SessionError::CredentialsChanged.into());
    }
    if let Some(client) = &rec.acting_for {
        // The recognition is keyed `client/agency`; an agent's key that
        // names no agency is bound to no recognition.
        let agency = id
            .parse::<StaffKey>()
            .map_err(|_| SessionError::CredentialsChanged)?
            .enterprise;
        let recognition =
            reader.get::<RecognitionRecord>(&owned_key(client.as_str(), agency.as_str()))?;
        if recognition.is_none_or(|r| r.epoch != rec.recognition_epoch) {
            return Err(SessionError::CredentialsChanged.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERSON: &str = "resident_id:210106199102140105";
    const AGENT: &str = "91210100MA0AGT004B/resident_id:210105199303031080";
    const CLIENT: &str = "91210102MA0TAX001F";

    /// A store holding one natural person, one agent staff member and the
    /// client's recognition of the agent's agency, each at epoch 1.
    fn sessions() -> (tempfile::TempDir, Sessions) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .write(|w| {
                let person = PersonRecord {
                    name: "赵丽".into(),
                    real_name_verified: true,
                    phone: None,
                    password_hash: None,
                    credential_epoch: 1,
                };
                w.put(PERSON, &person)?;
                let agent = AgentStaffRecord {
                    password_hash: None,
                    password_change_required: false,
                    credential_epoch: 1,
                };
                w.put(AGENT, &agent)?;
                let agency = AGENT.parse::<StaffKey>().unwrap().enterprise;
                w.put(&owned_key(CLIENT, agency.as_str()), &recognition(1))
            })
            .unwrap();
        (dir, Sessions::new(store, AuthnConfig::default()))
    }

    fn recognition(epoch: u64) -> RecognitionRecord {
        RecognitionRecord {
            agreement_password_hash: String::new(),
            recognized_at_ms: 0,
            epoch,
        }
    }

    fn subject(principal_type: PrincipalKind, id: &str) -> SessionSubject {
        SessionSubject {
            principal_type,
            principal_id: id.into(),
            credential_epoch: 1,
            acting_for: None,
        }
    }

    const HOME: Opening = Opening {
        has_password: true,
        password_change_required: false,
        route: "home",
    };

    fn refused(r: Result<(String, SessionRecord), SessionsError>) -> SessionError {
        match r {
            Err(SessionsError::Session(e)) => e,
            other => panic!("expected a session error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_session_works_until_it_is_ended() {
        let (_dir, s) = sessions();
        let grant = s
            .open(subject(PrincipalKind::Person, PERSON), HOME)
            .await
            .unwrap();
        let (_, rec) = s.resolve(&grant.session, false).unwrap();
        assert_eq!(rec.principal_id, PERSON);
        s.end(&grant.session).await.unwrap();
        assert_eq!(
            refused(s.resolve(&grant.session, false)),
            SessionError::Unknown
        );
    }

    #[tokio::test]
    async fn a_new_credential_epoch_or_a_removal_ends_the_session() {
        let (_dir, s) = sessions();
        let grant = s
            .open(subject(PrincipalKind::Person, PERSON), HOME)
            .await
            .unwrap();
        s.store
            .write(|w| {
                let mut p = w.get::<PersonRecord>(PERSON)?.unwrap();
                p.credential_epoch = 2;
                w.put(PERSON, &p)
            })
            .unwrap();
        assert_eq!(
            refused(s.resolve(&grant.session, false)),
            SessionError::CredentialsChanged
        );
        s.store
            .write(|w| w.remove::<PersonRecord>(PERSON).map(|_| ()))
            .unwrap();
        assert_eq!(
            refused(s.resolve(&grant.session, false)),
            SessionError::PrincipalGone
        );
    }

    #[tokio::test]
    async fn an_agents_session_ends_with_the_recognition_it_was_opened_under() {
        let (_dir, s) = sessions();
        let agent = SessionSubject {
            acting_for: Some((CreditCode::parse(CLIENT).unwrap(), 1)),
            ..subject(PrincipalKind::AgentStaff, AGENT)
        };
        let grant = s.open(agent, HOME).await.unwrap();
        assert!(s.resolve(&grant.session, false).is_ok());
        let agency = AGENT.parse::<StaffKey>().unwrap().enterprise;
        s.store
            .write(|w| w.put(&owned_key(CLIENT, agency.as_str()), &recognition(2)))
            .unwrap();
        assert_eq!(
            refused(s.resolve(&grant.session, false)),
            SessionError::CredentialsChanged
        );
    }

    #[tokio::test]
    async fn a_one_time_password_lets_only_the_password_step_through() {
        let (_dir, s) = sessions();
        let opening = Opening {
            password_change_required: true,
            ..HOME
        };
        let grant = s
            .open(subject(PrincipalKind::Person, PERSON), opening)
            .await
            .unwrap();
        assert_eq!(grant.obligations, ["change_password"]);
        assert!(matches!(
            s.resolve(&grant.session, false),
            Err(SessionsError::PasswordChangeRequired)
        ));
        assert!(s.resolve(&grant.session, true).is_ok());
    }
}
