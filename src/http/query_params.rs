//! The query strings of the decision log's reads (`/v1/audit/*`,
//! `/v1/fleet/*`, the console's overview): decoded once, every name one the
//! endpoint documents and given once, and the record filter they share
//! (`FILTERS`) read into an `audit::Filter`; `limit`, numbers and flags by
//! one set of rules. Each endpoint reads what remains.

use super::error::ApiError;
use super::routes::{documents, Param, ParamKind as K};
use super::AppState;
use crate::audit::query;
use crate::audit::time::{self, Offset};
use crate::audit::{Filter, Outcome};

/// Records one page returns unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;

/// The `limit` values a page accepts: a larger one is refused rather than
/// cut short silently, so a client never mistakes a short page for all.
pub const LIMITS: std::ops::RangeInclusive<usize> = 1..=query::MAX_PAGE;

const TIME: &str = "epoch ms, RFC 3339, a date or clock time at `tz`, or 90s/15m/2h/7d ago";

/// The record filters every read but `verify` takes (`Filter`).
pub const FILTERS: &[Param] = &[
    SINCE,
    UNTIL,
    Param::new(
        "principal",
        K::String,
        "Principal uid, or a full ID number (exact, audit_person)",
        "Etax::Staff",
    ),
    Param::new(
        "enterprise",
        K::String,
        "Enterprise credit code",
        "91110000100000000A",
    ),
    Param::new("action", K::String, "Action name", "useFunction"),
    Param::new(
        "decision",
        K::OneOf(&["allow", "deny"]),
        "The decision",
        "deny",
    ),
    Param::new(
        "policy",
        K::String,
        "A policy id that decided",
        "login-allow",
    ),
    Param::new(
        "kind",
        K::String,
        "Record kind (authorize, login, audit.read, …)",
        "authorize",
    ),
    Param::new(
        "target",
        K::String,
        "The person acted on (masked, or full ID: exact)",
        "2101",
    ),
    Param::new(
        "person",
        K::String,
        "A person in any role (masked, or full ID: exact)",
        "2101",
    ),
    Param::new(
        "identity_type",
        K::String,
        "The staff identity type",
        "legal_rep",
    ),
    Param::new(
        "outcome",
        K::OneOf(&["done", "refused", "failed"]),
        "An operation's final outcome",
        "done",
    ),
    Param::new(
        "caller",
        K::String,
        "The calling system's API key id (empty: open mode)",
        "console",
    ),
    Param::new(
        "decision_id",
        K::String,
        "One decision's records",
        "d-1764214202123-1",
    ),
    INCLUDE_READS,
    TZ,
    OFFSET,
];

pub(super) const SINCE: Param = Param::new("since", K::String, TIME, "2026-01-01");
pub(super) const UNTIL: Param = Param::new("until", K::String, TIME, "1h");
pub(super) const INCLUDE_READS: Param = Param::new(
    "include_reads",
    K::Boolean,
    "Include the log's own read records",
    "true",
);
pub(super) const TZ: Param = Param::new(
    "tz",
    K::String,
    "UTC offset to read times at and show them in (+08:00)",
    "+08:00",
);
pub(super) const OFFSET: Param = Param::new("offset", K::String, "Same as tz", "+08:00");

/// The filter and offset a request names, and its other parameters for the
/// endpoint to read.
pub(super) struct Params {
    pub filter: Filter,
    pub offset: Offset,
    pub rest: Vec<(String, String)>,
}

pub(super) fn filter_params(
    state: &AppState,
    query: Option<&str>,
    accepted: &[&[Param]],
) -> Result<Params, ApiError> {
    let pairs = known_params(query, accepted)?;
    let offset = offset_of(state, &pairs)?;
    let now = crate::now_ms();
    let at = |k: &str, v: &str| time_of(k, v, now, offset).map(Some);
    let mut filter = Filter::default();
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "tz" | "offset" => {}
            "since" => filter.since_ms = at("since", &v)?,
            "until" => filter.until_ms = at("until", &v)?,
            "principal" => filter.principal = Some(v),
            "enterprise" => filter.enterprise = Some(v),
            "action" => filter.action = Some(v),
            "policy" => filter.policy = Some(v),
            "kind" => filter.kind = Some(v),
            "include_reads" => filter.include_reads = flag("include_reads", &v)?,
            "target" => filter.target = Some(v),
            "person" => filter.person = Some(v),
            "identity_type" => filter.identity_type = Some(v),
            "caller" => filter.caller = Some(v),
            "decision_id" => filter.decision_id = Some(v),
            "outcome" => {
                filter.outcome = Some(
                    v.parse()
                        .map_err(|e: String| ApiError::invalid("outcome", e))?,
                )
            }
            "decision" => {
                filter.decision = Some(match v.as_str() {
                    "allow" => Outcome::Allow,
                    "deny" => Outcome::Deny,
                    _ => return Err(ApiError::invalid("decision", "must be allow or deny")),
                })
            }
            _ => rest.push((k, v)),
        }
    }
    Ok(Params {
        filter,
        offset,
        rest,
    })
}

/// The offset `tz` or `offset` names (one of them, once), else the
/// server's: read first, as it says how `since` and `until` are read.
fn offset_of(state: &AppState, pairs: &[(String, String)]) -> Result<Offset, ApiError> {
    let mut named = pairs.iter().filter(|(k, _)| k == "tz" || k == "offset");
    let Some((k, v)) = named.next() else {
        return Ok(state.time_offset);
    };
    if let Some((other, _)) = named.next() {
        return Err(ApiError::invalid(
            other.clone(),
            "tz and offset are one parameter: give it once",
        ));
    }
    v.parse().map_err(|e| ApiError::invalid(k.clone(), e))
}

/// A `since` or `until` value as epoch ms. Stored times are `i64` ms (the
/// fleet's table too): a later time is refused, not read as no record.
fn time_of(name: &str, v: &str, now: u64, offset: Offset) -> Result<u64, ApiError> {
    let ms = time::parse_time(v, now, offset).map_err(|e| ApiError::invalid(name, e))?;
    if ms > i64::MAX as u64 {
        return Err(ApiError::invalid(
            name,
            format!(
                "{v:?} is later than any time the log can hold ({} ms)",
                i64::MAX
            ),
        ));
    }
    Ok(ms)
}

pub(super) fn flag(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::invalid(name, "must be true or false")),
    }
}

/// The query's pairs, once every name is one `accepted` documents (a
/// handler reads no parameter that `/openapi.json` does not name) and
/// none is repeated: `host=h1&host=h2` is ambiguous, and taking the last
/// (or the first) would answer a question the caller may not have asked.
pub(super) fn known_params(
    query: Option<&str>,
    accepted: &[&[Param]],
) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = params(query)?;
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !documents(accepted, k)) {
        return Err(unknown(k.clone(), accepted));
    }
    // No id, name, code or time holds a control character or bytes that
    // are not UTF-8 (decoded as U+FFFD): such a value matches no record, so
    // a 400 says why where an empty page would not.
    let garbled = |v: &str| v.chars().any(|c| c.is_control() || c == '\u{FFFD}');
    if let Some((k, _)) = pairs.iter().find(|(_, v)| garbled(v)) {
        return Err(ApiError::invalid(
            k.clone(),
            "holds a control character or bytes that are not UTF-8",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        return Err(ApiError::invalid(
            k.clone(),
            "given more than once: give it once",
        ));
    }
    Ok(pairs)
}

pub(super) fn unknown(k: String, accepted: &[&[Param]]) -> ApiError {
    let names: Vec<&str> = accepted
        .iter()
        .flat_map(|g| g.iter())
        .map(|p| p.name)
        .collect();
    ApiError::invalid(k, format!("unknown parameter: use {}", names.join(", ")))
}

/// A parameter that must be a whole number.
pub(super) fn number(name: &str, v: &str) -> Result<u64, ApiError> {
    // Digits only: `parse` alone would also take a sign (`+5`).
    let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| v.parse().ok())
        .flatten()
        .ok_or_else(|| ApiError::invalid(name, format!("{v:?} is not a number")))
}

/// A page's `limit`: a number within [`LIMITS`].
pub(super) fn page_limit(v: &str) -> Result<usize, ApiError> {
    let limit = usize::try_from(number("limit", v)?).unwrap_or(usize::MAX);
    if !LIMITS.contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be {} to {} records", LIMITS.start(), LIMITS.end()),
        ));
    }
    Ok(limit)
}

/// `a=1&b=x%20y` → pairs, percent- and `+`-decoded.
pub(crate) fn params(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(q) = query else {
        return Ok(Vec::new());
    };
    Ok(q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect())
}

/// Query-string decoding: `+` is a space (a literal `+` arrives as `%2B`).
pub(super) fn decode(s: &str) -> String {
    super::uri::percent_decode(&s.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_strings() {
        assert_eq!(decode("Etax%3A%3AStaff+x"), "Etax::Staff x");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        let p = params(Some("a=1&&b=%E7%A8%8E")).unwrap();
        assert_eq!(p, vec![("a".into(), "1".into()), ("b".into(), "税".into())]);
    }
}
