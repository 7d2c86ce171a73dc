//! Counting changes and printing them: gained and lost, by enterprise, by
//! function (or maintenance action) and by identity type.

use std::collections::BTreeMap;
use std::io::Write;

use super::Change;

/// Enterprises listed in the text report; the rest are counted.
const TOP_ENTERPRISES: usize = 20;

/// (gained, lost) per key.
type Counts = BTreeMap<String, (u64, u64)>;

#[derive(Debug, Default)]
pub struct Tally {
    pub gained: u64,
    pub lost: u64,
    pub by_enterprise: Counts,
    pub by_what: Counts,
    pub by_identity_type: Counts,
}

impl Tally {
    pub fn add(&mut self, c: &Change) {
        let gained = c.change == "gained";
        if gained {
            self.gained += 1;
        } else {
            self.lost += 1;
        }
        for (counts, key) in [
            (&mut self.by_enterprise, &c.enterprise),
            (&mut self.by_what, &c.what),
            (&mut self.by_identity_type, &c.identity_type.to_owned()),
        ] {
            let e = counts.entry(key.clone()).or_default();
            if gained {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }

    /// The summary a person reads.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "gained: {}  lost: {}", self.gained, self.lost)?;
        if self.gained + self.lost == 0 {
            return writeln!(out, "no stored principal is decided differently");
        }
        write_counts(out, "by function or action", self.by_what.iter())?;
        write_counts(out, "by identity type", self.by_identity_type.iter())?;
        let mut enterprises: Vec<_> = self.by_enterprise.iter().collect();
        enterprises.sort_by_key(|(code, (g, l))| (std::cmp::Reverse(g + l), (*code).clone()));
        let more = enterprises.len().saturating_sub(TOP_ENTERPRISES);
        write_counts(
            out,
            "by enterprise (most changes first)",
            enterprises.into_iter().take(TOP_ENTERPRISES),
        )?;
        if more > 0 {
            writeln!(
                out,
                "  … and {more} more enterprises (--format jsonl lists all)"
            )?;
        }
        Ok(())
    }
}

fn write_counts<'a>(
    out: &mut impl Write,
    title: &str,
    rows: impl Iterator<Item = (&'a String, &'a (u64, u64))>,
) -> std::io::Result<()> {
    writeln!(out, "\n{title}:")?;
    for (key, (gained, lost)) in rows {
        writeln!(out, "  {key:<32} gained {gained:>8}  lost {lost:>8}")?;
    }
    Ok(())
}
