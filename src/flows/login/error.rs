//! What a login or password step answers when it does not succeed, and the
//! issuance quotas a code request can run into. Mapped to HTTP in
//! `http::error`.

use std::sync::Arc;

use crate::audit::AuditError;
use crate::authn::challenge::ChallengeError;
use crate::authn::session::SessionError;
use crate::authn::sessions::SessionsError;
use crate::authn::NewPasswordError;
use crate::decision::DecisionError;
use crate::policy::Refusal;
use crate::store::StoreError;

/// Why a login or password step did not succeed. Mapped to HTTP in
/// `http::login`.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A wrong or unknown account, password or agreement password. The
    /// message never says which.
    #[error("{0}")]
    BadCredentials(&'static str),
    #[error("too many failed attempts; locked for another {retry_after_secs} s")]
    Locked { retry_after_secs: u64 },
    /// Other attempts at the same password are being verified and, were
    /// they all wrong, would lock it: this one was not verified, and
    /// nothing was counted. Not a lock: a retry shortly is answered.
    #[error("other attempts at this password are being verified; retry in {retry_after_secs} s")]
    AttemptsInProgress { retry_after_secs: u64 },
    #[error(transparent)]
    Code(#[from] ChallengeError),
    /// A policy forbids the step; the policy says why, in the bureau's
    /// terms (its `@code` and `@message`).
    #[error("{}", .0.message)]
    Forbidden(Arc<Refusal>),
    /// The step cannot go on for a reason no policy decides (no real-name
    /// phone to send a code to): `code` and `message` say which.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("the login has expired or is unknown; start again")]
    FlowExpired,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("a one-time password must be changed before anything else (R12)")]
    PasswordChangeRequired,
    #[error("too many {quota}; try again in {retry_after_secs} s")]
    RateLimited { quota: Quota, retry_after_secs: u64 },
    #[error(transparent)]
    NewPassword(#[from] NewPasswordError),
    #[error("{0}")]
    RealNameMismatch(String),
    /// The hashing threads are full (`--hash-queue`): nothing was done.
    #[error(transparent)]
    Busy(#[from] crate::authn::HashBusy),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Decision(#[from] DecisionError),
}

/// The issuance quota a request for a code ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// `--codes-per-phone`: SMS codes to one phone per window.
    SmsPerPhone,
    /// `--captchas-per-account`: captchas for one natural-person account per
    /// window.
    CaptchasPerAccount,
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quota::SmsPerPhone => "codes sent to this phone",
            Quota::CaptchasPerAccount => "captchas requested for this account",
        })
    }
}

pub(crate) fn invalid(field: &str, message: impl ToString) -> FlowError {
    FlowError::Invalid {
        field: field.to_owned(),
        message: message.to_string(),
    }
}

/// A session problem is the step's: the same wire codes as before the
/// session service was its own.
impl From<SessionsError> for FlowError {
    fn from(e: SessionsError) -> Self {
        match e {
            SessionsError::Session(s) => FlowError::Session(s),
            SessionsError::PasswordChangeRequired => FlowError::PasswordChangeRequired,
            SessionsError::Store(s) => FlowError::Store(s),
        }
    }
}
