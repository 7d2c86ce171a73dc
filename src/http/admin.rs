//! Feeds from the bureau's other systems: real-name collection results and
//! the officers on file in the core tax system.

use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::flows::feeds::{self, FeedOutcome, RealNameResult};
use crate::ids::{CreditCode, IdType, PersonKey, Phone};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RealNameBody {
    pub id_type: IdType,
    pub id_number: String,
    pub name: String,
    pub verified: bool,
    #[serde(default)]
    pub phone: Option<Phone>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfficerBody {
    pub name: String,
    pub id_type: IdType,
    pub id_number: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CoreOfficersBody {
    #[serde(default)]
    pub legal_rep: Option<OfficerBody>,
    #[serde(default)]
    pub finance_head: Option<OfficerBody>,
}

/// The person a body names by `id_type` and `id_number`. The type is
/// parsed as the body is read (a bad one names `id_type`); the number's
/// form depends on the type, so it is checked here, once, for every body
/// that names a person, naming `<prefix>id_number`. (serde cannot build one
/// value from two keys of a flat object while refusing unknown keys.)
pub fn person_key(prefix: &str, id_type: IdType, id_number: &str) -> Result<PersonKey, ApiError> {
    PersonKey::new(id_type, id_number)
        .map_err(|e| ApiError::invalid(format!("{prefix}id_number"), e.to_string()))
}

/// A credit code in a path segment (a body's is parsed as it is read).
pub fn credit_code(field: &str, s: &str) -> Result<CreditCode, ApiError> {
    CreditCode::parse(s).map_err(|e| ApiError::invalid(field, format!("not a credit code: {e}")))
}

pub async fn real_name(state: &AppState, body: RealNameBody) -> Result<FeedOutcome, ApiError> {
    let result = RealNameResult {
        person: person_key("", body.id_type, &body.id_number)?,
        name: body.name,
        verified: body.verified,
        phone: body.phone,
    };
    Ok(feeds::record_real_name(&state.decider, result).await?)
}

pub async fn core_officers(
    state: &AppState,
    enterprise: &str,
    body: CoreOfficersBody,
) -> Result<FeedOutcome, ApiError> {
    let enterprise = credit_code("enterprise", enterprise)?;
    // The body replaces the whole record; an empty one would silently
    // clear both officers (and demote whoever holds them).
    if body.legal_rep.is_none() && body.finance_head.is_none() {
        return Err(ApiError::invalid(
            "legal_rep",
            "name the legal representative, the finance head or both",
        ));
    }
    let officer =
        |field: &str, o: Option<OfficerBody>| -> Result<Option<(String, PersonKey)>, ApiError> {
            o.map(|o| {
                Ok((
                    o.name,
                    person_key(&format!("{field}."), o.id_type, &o.id_number)?,
                ))
            })
            .transpose()
        };
    let legal_rep = officer("legal_rep", body.legal_rep)?;
    let finance_head = officer("finance_head", body.finance_head)?;
    Ok(feeds::record_core_officers(&state.decider, &enterprise, legal_rep, finance_head).await?)
}

/// `PUT /v1/admin/calendar/{year}`: the year's adjusted days (调休).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarBody {
    #[serde(default)]
    pub workdays: std::collections::BTreeSet<String>,
    #[serde(default)]
    pub holidays: std::collections::BTreeSet<String>,
}

pub async fn calendar(
    state: &AppState,
    year: &str,
    body: CalendarBody,
) -> Result<FeedOutcome, ApiError> {
    let record = crate::store::CalendarYearRecord {
        workdays: body.workdays,
        holidays: body.holidays,
    };
    Ok(feeds::record_calendar(&state.decider, year, record).await?)
}
