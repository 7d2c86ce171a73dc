//! `audit summary`: how many records fall in each group (principal, action,
//! decision, policy, …), so "who was denied what" is a few lines instead of
//! a table of every record. Streams like a query; memory grows with the
//! number of groups, never with the number of records.

use std::collections::HashMap;
use std::str::FromStr;

use serde::Serialize;

use super::query::{self, Filter, QueryError};
use super::DecisionRecord;

/// What a group is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Principal,
    Action,
    Decision,
    /// Each determining policy is its own group: a record decided by two
    /// permits counts under both; one decided by none under `(none)`.
    Policy,
    Kind,
    Caller,
    /// The request's final outcome, where the record carries one.
    Outcome,
}

/// Key shown for a record that lacks the field grouped by.
pub const NONE: &str = "(none)";

impl GroupBy {
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Principal => "principal",
            GroupBy::Action => "action",
            GroupBy::Decision => "decision",
            GroupBy::Policy => "policy",
            GroupBy::Kind => "kind",
            GroupBy::Caller => "caller",
            GroupBy::Outcome => "outcome",
        }
    }

    /// `principal,action,decision` → the fields, in that order, each once.
    pub fn parse_list(s: &str) -> Result<Vec<GroupBy>, String> {
        let mut by = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g: GroupBy = part.parse()?;
            if by.contains(&g) {
                return Err(format!("{part:?} is named twice"));
            }
            by.push(g);
        }
        if by.is_empty() {
            return Err(
                "name at least one of principal, action, decision, policy, kind, caller, outcome"
                    .to_owned(),
            );
        }
        Ok(by)
    }

    /// The record's values for this field (several only for `policy`).
    fn values(self, r: &DecisionRecord, stored: &[u8]) -> Vec<String> {
        let one = |v: &str| vec![v.to_owned()];
        match self {
            GroupBy::Principal => one(&r.principal),
            GroupBy::Action => one(&r.action),
            GroupBy::Decision => one(r.decision.as_str()),
            GroupBy::Kind => one(&r.kind),
            GroupBy::Caller => one(r.caller.as_deref().unwrap_or(NONE)),
            GroupBy::Policy if r.policies.is_empty() => one(NONE),
            GroupBy::Policy => r.policies.clone(),
            GroupBy::Outcome => one(&stored_outcome(stored)),
        }
    }
}

impl FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "principal" => GroupBy::Principal,
            "action" => GroupBy::Action,
            "decision" => GroupBy::Decision,
            "policy" => GroupBy::Policy,
            "kind" => GroupBy::Kind,
            "caller" => GroupBy::Caller,
            "outcome" => GroupBy::Outcome,
            _ => {
                return Err(format!(
                "cannot group by {s:?}: use principal, action, decision, policy, kind, caller or outcome"
            ))
            }
        })
    }
}

/// The `outcome` field of the stored record, read from its stored JSON so
/// that summaries follow the record's format as it gains the field; `(none)`
/// for records written before it existed.
fn stored_outcome(stored: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Only {
        #[serde(default)]
        outcome: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Only>(stored)
        .ok()
        .and_then(|o| o.outcome)
    {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => NONE.to_owned(),
    }
}

/// One group and how many records it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Group {
    /// Field name → value, in the order grouped by.
    #[schema(value_type = Object)]
    pub key: serde_json::Map<String, serde_json::Value>,
    pub count: u64,
}

/// Counts per group, largest first (ties by key), and the records counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub by: Vec<GroupBy>,
    pub records: u64,
    pub groups: Vec<Group>,
}

/// Counts the records matching `filter` per combination of the `by` fields.
pub fn summarize(
    log: &super::AuditLog,
    filter: &Filter,
    by: &[GroupBy],
) -> Result<Summary, QueryError> {
    let mut counts: HashMap<Vec<String>, u64> = HashMap::new();
    let records = query::for_each(log, filter, |r, stored| {
        for key in keys(r, stored, by) {
            *counts.entry(key).or_default() += 1;
        }
        Ok(())
    })?;
    let mut sorted: Vec<(Vec<String>, u64)> = counts.into_iter().collect();
    sorted.sort_by(|(ka, a), (kb, b)| b.cmp(a).then_with(|| ka.cmp(kb)));
    let groups = sorted
        .into_iter()
        .map(|(values, count)| Group {
            key: by
                .iter()
                .zip(values)
                .map(|(g, v)| (g.name().to_owned(), v.into()))
                .collect(),
            count,
        })
        .collect();
    Ok(Summary {
        by: by.to_vec(),
        records,
        groups,
    })
}

/// Every combination of the record's values for the `by` fields (more than
/// one only when it has several determining policies).
fn keys(r: &DecisionRecord, stored: &[u8], by: &[GroupBy]) -> Vec<Vec<String>> {
    let mut keys = vec![Vec::with_capacity(by.len())];
    for g in by {
        let values = g.values(r, stored);
        keys = keys
            .into_iter()
            .flat_map(|k| {
                values.iter().map(move |v| {
                    let mut k = k.clone();
                    k.push(v.clone());
                    k
                })
            })
            .collect();
    }
    keys
}

impl Summary {
    /// Aligned columns: the grouped fields, then COUNT.
    pub fn write_table(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let header: Vec<String> = self.by.iter().map(|g| g.name().to_uppercase()).collect();
        let rows: Vec<Vec<String>> = self
            .groups
            .iter()
            .map(|g| {
                g.key
                    .values()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String], count: &str, out: &mut dyn std::io::Write| {
            write!(out, "{count:>9}")?;
            for (c, w) in cells.iter().zip(&widths) {
                let pad = w.saturating_sub(c.chars().count());
                write!(out, "  {c}{}", " ".repeat(pad))?;
            }
            writeln!(out)
        };
        line(&header, "COUNT", out)?;
        for (row, g) in rows.iter().zip(&self.groups) {
            line(row, &g.count.to_string(), out)?;
        }
        writeln!(out, "{:>9}  records", self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_lists_parse_in_order_and_once() {
        assert_eq!(
            GroupBy::parse_list("principal, decision").unwrap(),
            vec![GroupBy::Principal, GroupBy::Decision]
        );
        assert!(GroupBy::parse_list("principal,principal").is_err());
        assert!(GroupBy::parse_list("").is_err());
        assert!(GroupBy::parse_list("password").is_err());
    }

    #[test]
    fn the_outcome_is_read_from_the_stored_record() {
        assert_eq!(stored_outcome(br#"{"outcome":"refused"}"#), "refused");
        assert_eq!(stored_outcome(br#"{"seq":1}"#), NONE);
    }
}
