//! Feeds from the bureau's other systems (admin scope): real-name collection
//! results from the mobile tax app, and the legal representative and finance
//! head on file in the core tax system (金税三期), which sync staff reads.

use std::time::Instant;

use serde::Serialize;

use crate::audit::{AuditError, AuditLog, DecisionRecord};
use crate::ids::{CreditCode, PersonKey, Phone};
use crate::store::{
    CoreOfficer, CoreOfficersRecord, EnterpriseRecord, PersonRecord, Store, StoreError,
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeedOutcome {
    pub created: bool,
}

/// Records a real-name result, creating the person if new. A person's
/// natural-person password is kept.
pub async fn record_real_name(
    store: &Store,
    audit: &AuditLog,
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
    let started = Instant::now();
    let store = store.clone();
    let key = result.person.key();
    let resource = format!("Etax::Person::\"{key}\"");
    let created = logged_write(audit, "admin.real_name", &resource, started, async move {
        tokio::task::spawn_blocking(move || {
            store.write(|w| {
                let existing = w.get::<PersonRecord>(&key)?;
                let created = existing.is_none();
                let record = PersonRecord {
                    name: result.name.trim().to_owned(),
                    real_name_verified: result.verified,
                    phone: result.phone,
                    password_hash: existing.and_then(|p| p.password_hash),
                };
                w.put(&key, &record)?;
                Ok::<_, FeedError>(created)
            })
        })
        .await
        .expect("store writes do not panic")
    })
    .await?;
    Ok(FeedOutcome { created })
}

/// Records who the core tax system has as an enterprise's legal
/// representative and finance head.
pub async fn record_core_officers(
    store: &Store,
    audit: &AuditLog,
    enterprise: &CreditCode,
    legal_rep: Option<(String, PersonKey)>,
    finance_head: Option<(String, PersonKey)>,
) -> Result<FeedOutcome, FeedError> {
    let started = Instant::now();
    let store = store.clone();
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
    let created = logged_write(
        audit,
        "admin.core_officers",
        &resource,
        started,
        async move {
            tokio::task::spawn_blocking(move || {
                store.write(|w| {
                    if w.get::<EnterpriseRecord>(&code)?.is_none() {
                        return Err(FeedError::NotFound(format!("no enterprise {code}")));
                    }
                    let created = w.get::<CoreOfficersRecord>(&code)?.is_none();
                    w.put(&code, &record)?;
                    Ok(created)
                })
            })
            .await
            .expect("store writes do not panic")
        },
    )
    .await?;
    Ok(FeedOutcome { created })
}

/// Runs a feed's store write with its decision record committed first: a
/// write is never without its record, even if the process dies between the
/// two commits (the log may then show an attempt the store lacks, never the
/// reverse). A write that fails gets a second record saying so.
async fn logged_write<T>(
    audit: &AuditLog,
    kind: &str,
    resource: &str,
    started: Instant,
    write: impl std::future::Future<Output = Result<T, FeedError>>,
) -> Result<T, FeedError> {
    log(audit, kind, resource, started, None).await?;
    let written = write.await;
    if let Err(e) = &written {
        log(
            audit,
            kind,
            resource,
            started,
            Some(&format!("not written: {e}")),
        )
        .await?;
    }
    written
}

/// Feeds are writes by a trusted system, not Cedar decisions; the log still
/// shows who changed which identity and when.
async fn log(
    audit: &AuditLog,
    kind: &str,
    resource: &str,
    started: Instant,
    failure: Option<&str>,
) -> Result<(), AuditError> {
    let mut record = DecisionRecord::new(
        &crate::random_id(),
        kind,
        "admin",
        kind,
        resource,
        None,
        failure.is_none(),
        &[],
        &[],
        "",
        started.elapsed().as_micros() as u64,
    );
    if let Some(why) = failure {
        record = record.with_reason(why);
    }
    audit.commit(record).await.map(|_| ())
}
