//! What the server does around a policy load: archive the set and record
//! its load in the chain, prove it (`--require-proofs`), record a refusal.

use std::sync::Arc;

use super::ServeError;
use crate::audit::AuditLog;
use crate::audit::DecisionRecord;
use crate::policy::archive::PolicyArchive;
use crate::policy::reload::{Loaded, OnLoad, Trigger};
use crate::policy::PolicySnapshot;

/// Archives a set about to be made active and writes a record of its load
/// into the decision log, waiting until it is durable (reloads run on a
/// blocking thread), so the record precedes the set's first decision. A
/// valid set is not refused when either fails (the log being down stops
/// every decision anyway); the failure is logged loudly instead.
pub(super) fn on_policy_load(archive: PolicyArchive, audit: AuditLog) -> OnLoad {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |loaded: &Loaded<'_>| {
        let record = policy_load_record(&archive, loaded);
        if let Err(e) = runtime.block_on(audit.commit(record)) {
            tracing::error!(error = %e, "policy reload not recorded in the decision log");
        }
    })
}

/// `--require-proofs` at start: reads the properties beside the policies
/// (kept for the server's life) and proves them for the start set, so a
/// server never serves an unproved set, and a missing solver stops it here
/// rather than at the first reload.
pub(super) async fn start_proofs(
    policies_dir: &std::path::Path,
    snapshot: &PolicySnapshot,
    limit: std::time::Duration,
) -> Result<crate::policy::reload::Guard, ServeError> {
    use crate::prove;
    let properties =
        prove::property::load_all(&prove::properties_dir(policies_dir), snapshot.schema())
            .map_err(|e| ServeError::Proofs(e.to_string()))?;
    let checked =
        tokio::task::block_in_place(|| prove::guard::prove_set(snapshot, &properties, limit));
    if let Err(refused) = checked {
        let failed = serde_json::to_string_pretty(&refused.failed_properties).unwrap_or_default();
        return Err(ServeError::Proofs(format!(
            "the policies do not prove: {}\n{}",
            refused.message,
            crate::ids::mask_text(&failed)
        )));
    }
    Ok(prove::guard::guard(properties, limit))
}

/// Records a set the reload guard refused in the decision log: a denied
/// `policy.reload` naming the failed properties, so auditors see the
/// attempted change beside the loads.
pub(super) fn on_proof_refusal(audit: AuditLog) -> crate::policy::reload::OnRefused {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |loaded: &Loaded<'_>, refused| {
        let version = loaded.snapshot.version();
        let reason = format!(
            "policy set {version} refused, {} still serves: {}",
            loaded.old_version.unwrap_or("nothing"),
            refused.message
        );
        let record = DecisionRecord::new(
            &crate::random_id(),
            "policy.reload",
            &format!("PolicyLoader::{:?}", loaded.trigger.as_str()),
            "policy.reload",
            &format!("PolicySet::{version:?}"),
            None,
            false,
            &[],
            &[],
            loaded.old_version.unwrap_or(version),
            0,
        )
        .with_reason(&reason);
        if let Err(e) = runtime.block_on(audit.commit(record)) {
            tracing::error!(error = %e, "refused policy reload not recorded in the decision log");
        }
    })
}

/// Archives the texts of `loaded` and builds the chain record of its load:
/// kind `policy.load` at start, `policy.reload` after; the principal names
/// what set it off, the resource the new version, the reason the old one.
pub(super) fn policy_load_record(archive: &PolicyArchive, loaded: &Loaded<'_>) -> DecisionRecord {
    let version = loaded.snapshot.version();
    let archived = match archive.store(loaded.sources) {
        Ok((_, true)) => "archived now",
        Ok((_, false)) => "already archived",
        Err(e) => {
            tracing::error!(error = %e, policy_version = version, "policy set not archived");
            "NOT ARCHIVED"
        }
    };
    let kind = match loaded.trigger {
        Trigger::Start => "policy.load",
        _ => "policy.reload",
    };
    let reason = format!(
        "policy set {version} ({} files, {} policies; {archived}) replaces {}",
        loaded.sources.policy_files.len(),
        loaded.snapshot.policies().policies().count(),
        loaded.old_version.unwrap_or("nothing: the server started"),
    );
    DecisionRecord::new(
        &crate::random_id(),
        kind,
        &format!("PolicyLoader::{:?}", loaded.trigger.as_str()),
        kind,
        &format!("PolicySet::{version:?}"),
        None,
        true,
        &[],
        &[],
        version,
        0,
    )
    .with_reason(&reason)
}
