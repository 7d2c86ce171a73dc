//! Session tokens: 256 random bits, given to the caller once and stored only
//! as their SHA-256 (a high-entropy token needs no slow hash). A session has
//! an absolute and an idle expiry and ends at logout.

use sha2::{Digest, Sha256};

use super::AuthnConfig;
use crate::store::SessionRecord;

/// A new opaque token (64 hex digits) and the key it is stored under.
pub fn new_token() -> (String, String) {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let key = token_key(&token);
    (token, key)
}

/// The store key of a token (also used for login-flow ids).
pub fn token_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// Why a session no longer works.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("unknown session, or logged out")]
    Unknown,
    #[error("session expired (absolute lifetime reached); log in again")]
    Expired,
    #[error("session expired after inactivity; log in again")]
    Idle,
    #[error("the session's user no longer exists")]
    PrincipalGone,
    /// The credentials it was opened under changed: a password change or
    /// reset, a removal and re-adding, a new agency recognition.
    #[error("the session ended because its credentials changed; log in again")]
    CredentialsChanged,
}

/// Whether the session still works at `now_ms`. `touched` is a use later
/// than the stored one, noted in memory and not yet written (see
/// [`super::touches`]).
pub fn check(
    rec: &SessionRecord,
    touched: Option<u64>,
    cfg: &AuthnConfig,
    now_ms: u64,
) -> Result<(), SessionError> {
    if now_ms >= rec.expires_ms {
        return Err(SessionError::Expired);
    }
    let last_used = touched.map_or(rec.last_used_ms, |t| t.max(rec.last_used_ms));
    if now_ms >= last_used + cfg.session_idle_secs * 1000 {
        return Err(SessionError::Idle);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_use_noted_in_memory_restarts_the_idle_clock() {
        let cfg = AuthnConfig {
            session_idle_secs: 10,
            ..AuthnConfig::default()
        };
        let rec = SessionRecord {
            principal_type: crate::domain::PrincipalKind::Person,
            principal_id: "p".into(),
            acting_for: None,
            created_ms: 0,
            last_used_ms: 0,
            expires_ms: 100_000,
            password_change_required: false,
            credential_epoch: 0,
            recognition_epoch: 0,
        };
        assert_eq!(check(&rec, None, &cfg, 10_000), Err(SessionError::Idle));
        assert_eq!(check(&rec, Some(5_000), &cfg, 10_000), Ok(()));
        assert_eq!(
            check(&rec, Some(5_000), &cfg, 15_000),
            Err(SessionError::Idle)
        );
        assert_eq!(
            check(&rec, Some(99_000), &cfg, 100_000),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, ka) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(a, ka);
        assert_eq!(token_key(&a), ka);
    }
}
