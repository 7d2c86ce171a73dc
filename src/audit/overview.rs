//! The console's overview, added up from the writer's per-minute counts
//! ([`super::rollup`]): decisions over time in buckets of a minute, an hour
//! or a day (bucket edges at the reader's offset, so a day is a Beijing
//! day), and the range's decisions by policy, kind, calling system and
//! final outcome. Its cost grows with the minutes in range, not with the
//! records in them.

use serde::Serialize;

use super::query::READ_KIND;
use super::rollup::View;
use super::time::{format_time, Offset};

const MINUTE_MS: u64 = 60_000;
/// 9999-12-31T23:59:59.999Z: the latest time an overview covers, so its
/// bucket arithmetic stays far from overflow whatever a caller sends.
pub const LATEST_MS: u64 = 253_402_300_799_999;

/// How wide one point of the series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    pub fn ms(self) -> u64 {
        match self {
            Bucket::Minute => MINUTE_MS,
            Bucket::Hour => 60 * MINUTE_MS,
            Bucket::Day => 24 * 60 * MINUTE_MS,
        }
    }
}

impl std::str::FromStr for Bucket {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minute" => Ok(Bucket::Minute),
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            _ => Err(format!("{s:?} is not minute, hour or day")),
        }
    }
}

/// What an overview covers. The range is read in whole minutes: `since`
/// down to its minute, `until` up to the next.
#[derive(Debug, Clone, Copy)]
pub struct OverviewQuery {
    pub since_ms: u64,
    pub until_ms: u64,
    pub bucket: Bucket,
    pub offset: Offset,
    /// Count the auditors' own reads (`audit.read`) too.
    pub include_reads: bool,
}

/// Allowed and denied records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tally {
    pub allow: u64,
    pub deny: u64,
}

/// One bucket of the series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// Start of the bucket, ms since the epoch (UTC).
    pub start_ms: u64,
    /// The same instant at the query's offset.
    pub time: String,
    pub allow: u64,
    pub deny: u64,
}

/// The records of one policy id, kind, caller or outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Keyed {
    /// The policy id, kind, API key id (empty: open mode, no key) or
    /// outcome (`done`, `refused`, `failed`; `none` for records older than
    /// outcomes).
    pub key: String,
    pub allow: u64,
    pub deny: u64,
}

/// The overview of a range of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// The range counted, whole minutes, ms since the epoch.
    pub since_ms: u64,
    pub until_ms: u64,
    pub bucket: Bucket,
    pub bucket_ms: u64,
    /// The last record the counts include: the log's head when they are
    /// level with it.
    pub through_seq: u64,
    pub total: Tally,
    /// Every bucket from the one holding `since_ms` to the one before
    /// `until_ms`, empty ones included, oldest first.
    pub series: Vec<Point>,
    /// Records each policy determined, most denials first.
    pub by_policy: Vec<Keyed>,
    pub by_kind: Vec<Keyed>,
    pub by_caller: Vec<Keyed>,
    pub by_outcome: Vec<Keyed>,
}

/// The start of the bucket holding `ms`, its edges at `offset`.
fn bucket_start(ms: u64, bucket: Bucket, offset: Offset) -> u64 {
    let size = bucket.ms() as i64;
    let local = ms as i64 + offset.ms();
    (local - local.rem_euclid(size) - offset.ms()).max(0) as u64
}

/// How many points `q` asks for.
pub fn points(q: &OverviewQuery) -> u64 {
    let first = bucket_start(q.since_ms, q.bucket, q.offset);
    q.until_ms.saturating_sub(first).div_ceil(q.bucket.ms())
}

/// Adds up `q`'s range. The series has at most [`super::rollup::MAX_POINTS`]
/// points: the caller checks [`points`] first.
pub(super) fn compute(rollup: &View, q: &OverviewQuery) -> Overview {
    let from = q.since_ms / MINUTE_MS;
    let to = q.until_ms.div_ceil(MINUTE_MS);
    let first = bucket_start(from * MINUTE_MS, q.bucket, q.offset);
    let size = q.bucket.ms();
    let n = (to * MINUTE_MS).saturating_sub(first).div_ceil(size) as usize;
    let mut series = vec![Tally::default(); n.min(super::rollup::MAX_POINTS as usize)];
    let reads = rollup.name_id(READ_KIND).filter(|_| !q.include_reads);
    // Indexed by name id: a few dozen names, millions of cells to add.
    let names = rollup.names_len();
    let mut kinds = vec![Tally::default(); names];
    let mut callers = vec![Tally::default(); names];
    let mut outcomes = [Tally::default(); 4];
    let mut policies = vec![Tally::default(); names];
    let add = |t: &mut Tally, deny: bool, n: u64| {
        // Saturating: counts come from files beside the log, checked
        // but not trusted to sum below 2^64.
        if deny {
            t.deny = t.deny.saturating_add(n)
        } else {
            t.allow = t.allow.saturating_add(n)
        }
    };
    for (minute, cells) in rollup.minutes(from, to) {
        let at = ((minute * MINUTE_MS - first) / size) as usize;
        for (kind, caller, deny, outcome, count) in cells.cells() {
            if Some(kind) == reads {
                continue;
            }
            if let Some(point) = series.get_mut(at) {
                add(point, deny, count);
            }
            add(&mut kinds[kind as usize], deny, count);
            add(&mut callers[caller as usize], deny, count);
            add(&mut outcomes[usize::from(outcome.min(3))], deny, count);
        }
        for (policy, kind, deny, count) in cells.policy_cells() {
            if Some(kind) != reads {
                add(&mut policies[policy as usize], deny, count);
            }
        }
    }
    let total = outcomes.iter().fold(Tally::default(), |t, o| Tally {
        allow: t.allow.saturating_add(o.allow),
        deny: t.deny.saturating_add(o.deny),
    });
    let keyed = |m: Vec<Tally>| {
        ranked(
            m.into_iter()
                .enumerate()
                .map(|(k, t)| (rollup.name(k as u32), t)),
        )
    };
    let outcome_names = ["none", "done", "refused", "failed"];
    Overview {
        since_ms: from * MINUTE_MS,
        until_ms: to * MINUTE_MS,
        bucket: q.bucket,
        bucket_ms: size,
        through_seq: rollup.through_seq(),
        total,
        series: series
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let start_ms = first + i as u64 * size;
                Point {
                    start_ms,
                    time: format_time(start_ms, q.offset),
                    allow: t.allow,
                    deny: t.deny,
                }
            })
            .collect(),
        by_policy: keyed(policies),
        by_kind: keyed(kinds),
        by_caller: keyed(callers),
        by_outcome: ranked(outcome_names.iter().copied().zip(outcomes)),
    }
}

/// Most denials first, then most records, then by key; empty rows left
/// out.
fn ranked<'a>(rows: impl Iterator<Item = (&'a str, Tally)>) -> Vec<Keyed> {
    let mut out: Vec<Keyed> = rows
        .filter(|(_, t)| t.allow > 0 || t.deny > 0)
        .map(|(k, t)| Keyed {
            key: k.to_owned(),
            allow: t.allow,
            deny: t.deny,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.deny, b.allow.saturating_add(b.deny), &a.key).cmp(&(
            a.deny,
            a.allow.saturating_add(a.deny),
            &b.key,
        ))
    });
    out
}
