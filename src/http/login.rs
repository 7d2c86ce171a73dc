//! Login, password and session endpoints (R1–R11): wire types and
//! handlers. The steps themselves are in [`crate::flows`]; their errors
//! become HTTP in `error.rs`. See docs/login.md for the reference and a walkthrough.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::{Deserialize, Serialize};

use super::admin::person_key;
use super::error::ApiError;
use super::{ok, read_json, AppState};
use crate::flows::login::{IssuedCode, PersonalFactor};
use crate::flows::password::Holder;
use crate::ids::{CreditCode, IdType, Phone};
use crate::store::IdentityType;

/// A login names a resident ID unless it says otherwise.
fn resident_id() -> IdType {
    IdType::ResidentId
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountLogin {
    account: String,
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowOnly {
    flow: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowStaff {
    flow: String,
    staff: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowAgent {
    flow: String,
    agent: String,
}

/// `password`, or `challenge` + `code`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Personal {
    flow: String,
    #[serde(default)]
    staff: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl Personal {
    fn factor(self) -> Result<(String, String, PersonalFactor), ApiError> {
        let who = self.staff.or(self.agent).unwrap_or_default();
        let factor = match (self.password, self.challenge, self.code) {
            (Some(p), None, None) => PersonalFactor::Password(p),
            (None, Some(challenge), Some(code)) => PersonalFactor::Sms { challenge, code },
            _ => {
                return Err(ApiError::invalid(
                    "password",
                    "give either password, or challenge and code",
                ))
            }
        };
        Ok((self.flow, who, factor))
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuickCode {
    account: String,
    password: String,
    identity_type: IdentityType,
    #[serde(default = "resident_id")]
    id_type: IdType,
    id_number: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeAnswer {
    flow: String,
    challenge: String,
    code: String,
}

/// The natural person who is about to log in (R7).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaptchaRequest {
    #[serde(default = "resident_id")]
    id_type: IdType,
    id_number: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NaturalPerson {
    #[serde(default = "resident_id")]
    id_type: IdType,
    id_number: String,
    password: String,
    challenge: String,
    code: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientStep {
    flow: String,
    client: CreditCode,
    agreement_password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetPassword {
    session: String,
    #[serde(default)]
    current_password: Option<String>,
    new_password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForgotCode {
    kind: Holder,
    #[serde(default)]
    account: Option<CreditCode>,
    #[serde(default = "resident_id")]
    id_type: IdType,
    id_number: String,
    /// The phone the user says is their real-name phone.
    phone: Phone,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForgotReset {
    challenge: String,
    code: String,
    new_password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionOnly {
    session: String,
}

/// The quick-login code step's answer: the code issued and the flow it
/// belongs to.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct QuickIssued {
    #[serde(flatten)]
    issued: IssuedCode,
    flow: String,
}

/// `POST /v1/logout`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LoggedOut {
    /// Always true: a session that is already gone is ended all the same.
    logged_out: bool,
}

/// Serves a login step (the `Login` rows of `routes::ROUTES`): each login mode's steps in its own function,
/// like the flows (`flows::login::{enterprise, quick, natural, agency,
/// password}`).
pub async fn handle(
    state: &AppState,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let mode = path.strip_prefix("/v1/login/").unwrap_or_default();
    let mode = mode.split('/').next().unwrap_or_default();
    match mode {
        "enterprise" => enterprise(state, path, req).await,
        "quick" => quick(state, path, req).await,
        "captcha" | "natural-person" => natural(state, path, req).await,
        "agency" => agency(state, path, req).await,
        _ => password(state, path, req).await,
    }
}

/// Enterprise normal login (R2, R3, R6): account, sync staff, code, complete, cancel.
async fn enterprise(
    state: &AppState,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let l = &state.login;
    match path {
        "/v1/login/enterprise" => {
            let b: AccountLogin = read_json(state, req).await?;
            ok(&l.enterprise_login(&b.account, b.password).await?)
        }
        "/v1/login/enterprise/sync" => {
            let b: FlowOnly = read_json(state, req).await?;
            ok(&l.sync_staff(&b.flow).await?)
        }
        "/v1/login/enterprise/code" => {
            let b: FlowStaff = read_json(state, req).await?;
            ok(&l.enterprise_code(&b.flow, &b.staff).await?)
        }
        "/v1/login/enterprise/complete" => {
            let b: Personal = read_json(state, req).await?;
            let (flow, staff, factor) = b.factor()?;
            ok(&l.enterprise_complete(&flow, &staff, factor).await?)
        }
        "/v1/login/enterprise/cancel" => {
            let b: FlowOnly = read_json(state, req).await?;
            ok(&l.enterprise_cancel(&b.flow).await?)
        }
        _ => Err(ApiError::not_found(path)),
    }
}

/// Quick login (R4): code, then the code answered.
async fn quick(
    state: &AppState,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let l = &state.login;
    match path {
        "/v1/login/quick/code" => {
            let b: QuickCode = read_json(state, req).await?;
            let person = person_key("", b.id_type, &b.id_number)?;
            let (flow, issued) = l
                .quick_code(&b.account, b.password, b.identity_type, person)
                .await?;
            ok(&QuickIssued { issued, flow })
        }
        "/v1/login/quick" => {
            let b: CodeAnswer = read_json(state, req).await?;
            ok(&l.quick_complete(&b.flow, b.challenge, b.code).await?)
        }
        _ => Err(ApiError::not_found(path)),
    }
}

/// Natural-person login (R7): captcha, then login.
async fn natural(
    state: &AppState,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let l = &state.login;
    match path {
        "/v1/login/captcha" => {
            let b: CaptchaRequest = read_json(state, req).await?;
            ok(&l.captcha(person_key("", b.id_type, &b.id_number)?).await?)
        }
        "/v1/login/natural-person" => {
            let b: NaturalPerson = read_json(state, req).await?;
            let person = person_key("", b.id_type, &b.id_number)?;
            ok(&l
                .natural_person(person, b.password, &b.challenge, &b.code)
                .await?)
        }
        _ => Err(ApiError::not_found(path)),
    }
}

/// Agency login (R8): account, agent code, agent, client.
async fn agency(
    state: &AppState,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let l = &state.login;
    match path {
        "/v1/login/agency" => {
            let b: AccountLogin = read_json(state, req).await?;
            ok(&l.agency_login(&b.account, b.password).await?)
        }
        "/v1/login/agency/code" => {
            let b: FlowAgent = read_json(state, req).await?;
            ok(&l.agency_code(&b.flow, &b.agent).await?)
        }
        "/v1/login/agency/agent" => {
            let b: Personal = read_json(state, req).await?;
            let (flow, agent, factor) = b.factor()?;
            ok(&l.agency_agent(&flow, &agent, factor).await?)
        }
        "/v1/login/agency/client" => {
            let b: ClientStep = read_json(state, req).await?;
            ok(&l
                .agency_client(&b.flow, b.client, b.agreement_password)
                .await?)
        }
        _ => Err(ApiError::not_found(path)),
    }
}

/// Setting and recovering passwords (R10, R11), and logout.
async fn password(
    state: &AppState,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let l = &state.login;
    match path {
        "/v1/password" => {
            let b: SetPassword = read_json(state, req).await?;
            ok(&l
                .set_password(&b.session, b.current_password, b.new_password)
                .await?)
        }
        "/v1/password/forgot/code" => {
            let b: ForgotCode = read_json(state, req).await?;
            let person = person_key("", b.id_type, &b.id_number)?;
            ok(&l.forgot_code(b.kind, b.account, person, b.phone).await?)
        }
        "/v1/password/forgot/reset" => {
            let b: ForgotReset = read_json(state, req).await?;
            ok(&l
                .forgot_reset(&b.challenge, &b.code, b.new_password)
                .await?)
        }
        "/v1/logout" => {
            let b: SessionOnly = read_json(state, req).await?;
            state
                .sessions
                .end(&b.session)
                .await
                .map_err(crate::flows::FlowError::from)?;
            ok(&LoggedOut { logged_out: true })
        }
        _ => Err(ApiError::not_found(path)),
    }
}
