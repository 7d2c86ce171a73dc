//! Feeds from the bureau's other systems (admin scope): real-name collection
//! results from the mobile tax app, and the legal representative and finance
//! head on file in the core tax system (金税三期), which sync staff reads;
//! and the workday calendar (工作日历) business rules may read.

use serde::Serialize;
use serde_json::json;

use super::decide::{Decider, Event};
use crate::audit::{AuditError, Target};
use crate::domain::EntityKind;
use crate::ids::{CreditCode, PersonKey, Phone};
use crate::store::{
    owned_key, split_owned_key, CalendarYearRecord, CoreOfficer, CoreOfficersRecord,
    EnterpriseRecord, IdentityType, PersonRecord, StaffRecord, StoreError, StoreWriter,
};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A real-name collection (实名采集) result for one person.
#[derive(Debug, Clone)]
pub struct RealNameResult {
    pub person: PersonKey,
    pub name: String,
    pub verified: bool,
    pub phone: Option<Phone>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FeedOutcome {
    pub created: bool,
}

/// Records a real-name result, creating the person if new. A person's
/// natural-person password is kept.
pub async fn record_real_name(
    decider: &Decider,
    result: RealNameResult,
) -> Result<FeedOutcome, FeedError> {
    if result.name.trim().is_empty() {
        return Err(FeedError::Invalid {
            field: "name".into(),
            message: "must not be empty".into(),
        });
    }
    if result.verified && result.phone.is_none() {
        return Err(FeedError::Invalid {
            field: "phone".into(),
            message: "a real-name-collected person needs the real-name phone number".into(),
        });
    }
    let key = result.person.key();
    let resource = format!("Etax::Person::\"{key}\"");
    // The state before, as read just before the write, for the record.
    let before = decider.engine.store().read()?.get::<PersonRecord>(&key)?;
    let event = Event::unasked("admin.real_name", "admin", "admin.real_name", &resource, "")
        .with_target_person(&key, Some(result.name.trim()))
        .with_change(json!({ "real_name": {
            "before": before.map(|p| p.real_name_verified),
            "after": result.verified,
        }}));
    let created = logged_write(decider, event, move |w| {
        let existing = w.get::<PersonRecord>(&key)?;
        let created = existing.is_none();
        let record = PersonRecord {
            name: result.name.trim().to_owned(),
            real_name_verified: result.verified,
            phone: result.phone,
            // The natural-person credentials are kept, so their sessions go on.
            credential_epoch: existing.as_ref().map_or(0, |p| p.credential_epoch),
            password_hash: existing.and_then(|p| p.password_hash),
        };
        w.put(&key, &record)?;
        Ok(created)
    })
    .await?;
    Ok(FeedOutcome { created })
}

/// Records who the core tax system has as an enterprise's legal
/// representative and finance head (the whole record: a role left out has
/// no one on file). Whoever holds an officer identity the record no longer
/// gives them loses it at once (see [`demote_replaced_officers`]).
pub async fn record_core_officers(
    decider: &Decider,
    enterprise: &CreditCode,
    legal_rep: Option<(String, PersonKey)>,
    finance_head: Option<(String, PersonKey)>,
) -> Result<FeedOutcome, FeedError> {
    let code = enterprise.to_string();
    let officer = |o: Option<(String, PersonKey)>| {
        o.map(|(name, p)| CoreOfficer {
            name,
            person: p.key(),
        })
    };
    let record = CoreOfficersRecord {
        legal_rep: officer(legal_rep),
        finance_head: officer(finance_head),
    };
    let resource = format!("Etax::Enterprise::\"{enterprise}\"");
    let on_file = |o: &Option<CoreOfficer>| o.as_ref().map(|o| o.person.clone());
    let event = Event::unasked(
        "admin.core_officers",
        "admin",
        "admin.core_officers",
        &resource,
        "",
    )
    .with_target(Target {
        enterprise: Some(code.clone()),
        ..Target::default()
    })
    .with_change(json!({
        "legal_rep": on_file(&record.legal_rep),
        "finance_head": on_file(&record.finance_head),
    }));
    // The officers put on file are named, so a filter by either finds the
    // feed that appointed them.
    let event = [&record.legal_rep, &record.finance_head]
        .into_iter()
        .flatten()
        .fold(event, |e, o| e.with_other_person(&o.person, Some(&o.name)));
    let (created, demoted) = logged_write(decider, event, move |w| {
        if w.get::<EnterpriseRecord>(&code)?.is_none() {
            return Err(FeedError::NotFound(format!("no enterprise {code}")));
        }
        let created = w.get::<CoreOfficersRecord>(&code)?.is_none();
        w.put(&code, &record)?;
        let demoted = demote_replaced_officers(w, &code, &record)?;
        Ok((created, demoted))
    })
    .await?;
    log_demotions(decider, "admin", &demoted, "the core-officers feed").await?;
    Ok(FeedOutcome { created })
}

/// A staff member who held an officer identity type the core tax system no
/// longer gives them.
#[derive(Debug, Clone)]
pub struct Demoted {
    /// Store key `credit_code/person`.
    pub staff: String,
    pub was: IdentityType,
}

/// Reconciles an enterprise's staff with the officers on file in the core
/// tax system: a staff member who holds the legal representative's or the
/// finance head's identity type but is not the one on file for it becomes
/// ordinary staff (`other`) with no permission identities — kept, so the
/// current officers decide whether to grant them anything or remove them —
/// and gets a new credential epoch, which ends their sessions. Adding the
/// officers on file is sync staff's job (it needs real-name matching).
pub fn demote_replaced_officers(
    w: &mut StoreWriter,
    enterprise: &str,
    officers: &CoreOfficersRecord,
) -> Result<Vec<Demoted>, StoreError> {
    let on_file = |role: IdentityType| {
        let officer = match role {
            IdentityType::LegalRep => officers.legal_rep.as_ref(),
            IdentityType::FinanceHead => officers.finance_head.as_ref(),
            _ => return None,
        };
        officer.map(|o| owned_key(enterprise, &o.person))
    };
    let mut demoted = Vec::new();
    for (key, mut staff) in w.children::<StaffRecord>(enterprise)? {
        let was = staff.identity_type;
        if !matches!(was, IdentityType::LegalRep | IdentityType::FinanceHead)
            || on_file(was).as_deref() == Some(key.as_str())
        {
            continue;
        }
        staff.identity_type = IdentityType::Other;
        staff.permission_identities.clear();
        staff.credential_epoch = w.next_epoch()?;
        w.put(&key, &staff)?;
        demoted.push(Demoted { staff: key, was });
    }
    Ok(demoted)
}

/// Records each demotion (kind `sync.officer_replaced`) with its cause:
/// `by` is who made the change (`admin` for the feed, the enterprise for
/// sync staff), `cause` what did.
pub async fn log_demotions(
    decider: &Decider,
    by: &str,
    demoted: &[Demoted],
    cause: &str,
) -> Result<(), AuditError> {
    for d in demoted {
        let role = match d.was {
            IdentityType::LegalRep => "legal representative (法定代表人)",
            _ => "finance head (财务负责人)",
        };
        let reason = format!(
            "no longer the {role} the core tax system (金税三期) has on file: now ordinary \
             staff (other) without permission identities, and their sessions ended; cause: {cause}"
        );
        let (enterprise, person) = split_owned_key(&d.staff).unwrap_or((&d.staff, ""));
        let event = Event::unasked(
            "sync.officer_replaced",
            by,
            "sync.officer_replaced",
            &EntityKind::Staff.uid(&d.staff).to_string(),
            "",
        )
        .with_target_person(person, None)
        .with_target(Target {
            enterprise: Some(enterprise.to_owned()),
            ..Target::default()
        })
        .with_change(json!({ "identity_type": { "before": d.was.code(), "after": "other" } }))
        .with_reason(reason)
        .already_done();
        decider.record(event).await?;
    }
    Ok(())
}

/// The years a workday calendar may be fed for: the e-tax bureau's era with
/// room ahead. A year far outside is a typo (`1582`, `9999`), not a plan.
pub const CALENDAR_YEARS: std::ops::RangeInclusive<u16> = 2000..=2100;

/// Replaces one year's workday calendar (调休: weekend workdays and weekday
/// holidays), as the bureau's feed publishes it after the State Council's
/// notice. Every date must be a real `YYYY-MM-DD` of that year, and none
/// both a workday and a holiday.
pub async fn record_calendar(
    decider: &Decider,
    year: &str,
    calendar: CalendarYearRecord,
) -> Result<FeedOutcome, FeedError> {
    let invalid = |field: &str, message: String| FeedError::Invalid {
        field: field.into(),
        message,
    };
    let in_range = year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && year
            .parse::<u16>()
            .is_ok_and(|y| CALENDAR_YEARS.contains(&y));
    if !in_range {
        return Err(invalid(
            "year",
            format!(
                "must be a year from {} to {} (four digits, e.g. 2026)",
                CALENDAR_YEARS.start(),
                CALENDAR_YEARS.end()
            ),
        ));
    }
    for (field, dates) in [
        ("workdays", &calendar.workdays),
        ("holidays", &calendar.holidays),
    ] {
        for (i, date) in dates.iter().enumerate() {
            if !is_date_of_year(date, year) {
                return Err(invalid(
                    &format!("{field}[{i}]"),
                    format!("{date:?} is not a date YYYY-MM-DD of {year}"),
                ));
            }
        }
    }
    if let Some(both) = calendar.workdays.intersection(&calendar.holidays).next() {
        return Err(invalid(
            "holidays",
            format!("{both} is also listed as a workday"),
        ));
    }
    let event = Event::unasked(
        "admin.calendar",
        "admin",
        "admin.calendar",
        "Etax::Calendar",
        "",
    )
    .with_change(
        json!({ "year": year, "workdays": calendar.workdays, "holidays": calendar.holidays }),
    );
    let key = year.to_owned();
    let created = logged_write(decider, event, move |w| {
        let created = w.get::<CalendarYearRecord>(&key)?.is_none();
        w.put(&key, &calendar)?;
        Ok(created)
    })
    .await?;
    Ok(FeedOutcome { created })
}

/// `YYYY-MM-DD`, a day that exists, in `year`.
fn is_date_of_year(date: &str, year: &str) -> bool {
    use crate::audit::time::{format_time, parse_time, Offset};
    date.len() == 10
        && date.starts_with(year)
        && parse_time(date, 0, Offset::BEIJING)
            // A date that does not exist (02-30) would roll over: it must
            // read back as itself.
            .is_ok_and(|ms| format_time(ms, Offset::BEIJING).starts_with(date))
}

/// Runs a feed's store write (one transaction, on the blocking pool) with
/// its record committed first (see `decide`): a write is never without its
/// record, even if the process dies between the two commits (the log may
/// then show an attempt the store lacks, never the reverse). A write that
/// fails answers an error, whose record the request's answer adds.
async fn logged_write<T: Send + 'static>(
    decider: &Decider,
    event: Event,
    write: impl FnOnce(&mut StoreWriter) -> Result<T, FeedError> + Send + 'static,
) -> Result<T, FeedError> {
    decider.record(event.before_write()).await?;
    let store = decider.engine.store().clone();
    tokio::task::spawn_blocking(move || store.write(write))
        .await
        .expect("store writes do not panic")
}
