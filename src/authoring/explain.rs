//! `etax-authz explain`: a question against a data directory's store, the
//! decision it gets and why, policy by policy.
//!
//! A dry run, like `test`: nobody is let in by it, so it writes nothing to
//! the decision log (which a running server holds open anyway). It decides
//! with the same engine `/v1/authorize` uses, and explains with the same
//! trace `?explain=true` returns.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::decision::{Engine, Query, Verdict, NAMESPACE};
use crate::policy::explain::Explanation;
use crate::policy::{testing::parse_uid, PolicySnapshot};
use crate::store::{identity_store_path, Store};

/// One question, as the flags give it.
pub struct Question<'a> {
    pub principal: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    /// A JSON object; `{}` when absent.
    pub context: Option<&'a str>,
}

pub fn run(q: &Question<'_>, data: &Path, policies: &Path, schema: &Path, json: bool) -> ExitCode {
    let (verdict, trace) = match explain(q, data, policies, schema) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("explain: {e}");
            return ExitCode::FAILURE;
        }
    };
    let decision = if verdict.allowed { "allow" } else { "deny" };
    let errors: Vec<String> = verdict
        .errors
        .iter()
        .map(|e| crate::ids::mask_text(e))
        .collect();
    if json {
        let out = serde_json::json!({
            "decision": decision,
            "reasons": verdict.reasons,
            "errors": errors,
            "policy_version": verdict.policy_version,
            "explain": trace,
        });
        println!("{out}");
    } else {
        let reasons = match verdict.reasons.is_empty() {
            true => "no policy".to_owned(),
            false => verdict.reasons.join(", "),
        };
        println!("decision: {decision} (determined by: {reasons})");
        errors.iter().for_each(|e| println!("error: {e}"));
        trace.lines().iter().for_each(|l| println!("{l}"));
    }
    // Like `test`: scripts can branch on the decision.
    if verdict.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

fn explain(
    q: &Question<'_>,
    data: &Path,
    policies: &Path,
    schema: &Path,
) -> Result<(Verdict, Explanation), String> {
    let snap = PolicySnapshot::load(policies, schema).map_err(|e| match e {
        crate::policy::LoadError::Invalid(d) => {
            let lines: Vec<String> = d.iter().map(|d| d.to_string()).collect();
            format!("the policies do not load:\n{}", lines.join("\n"))
        }
        other => other.to_string(),
    })?;
    let path = identity_store_path(data);
    if !path.exists() {
        return Err(format!(
            "no identity store at {} (import one, or run `serve --demo` once)",
            path.display()
        ));
    }
    let store = Store::open(&path).map_err(|e| e.to_string())?;
    let engine = Engine::new(store, Arc::new(ArcSwap::from_pointee(snap)));
    let context: serde_json::Value = serde_json::from_str(q.context.unwrap_or("{}"))
        .map_err(|e| format!("--context: not JSON: {e}"))?;
    let ns = Some(NAMESPACE);
    let query = Query {
        principal: parse_uid(ns, "principal", q.principal)?,
        // A bare name (`useFunction`) is the action of that name.
        action: match q.action.contains("::") {
            true => parse_uid(ns, "action", q.action)?,
            false => parse_uid(ns, "action", &format!("Action::{:?}", q.action))?,
        },
        resource: parse_uid(ns, "resource", q.resource)?,
        context,
        stamped: None,
    };
    let mut query = query;
    crate::flows::clock::stamp(
        &engine,
        &engine.snapshot(),
        &mut query,
        &crate::flows::clock::Clock::at(crate::now_ms()),
    )
    .map_err(|e| e.to_string())?;
    let (verdict, trace) = engine.decide_explained(&query).map_err(|e| e.to_string())?;
    Ok((verdict, trace.masked()))
}
