//! `etax-authz impact --candidate DIR`: the data view (who gains, who
//! loses, counted; or every change as JSON lines, identities masked), then
//! the symbolic view. Progress goes to stderr every few seconds.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::policy::{LoadError, PolicySnapshot};
use crate::store::{self, Store};

use super::report::Tally;
use super::{compare, symbolic, ImpactError};

pub struct Args<'a> {
    pub candidate: &'a Path,
    pub policies: &'a Path,
    pub schema: &'a Path,
    pub data: &'a Path,
    /// `true`: every change as a JSON line on stdout, the counts on stderr.
    pub jsonl: bool,
    pub symbolic: bool,
}

pub fn run(args: &Args<'_>) -> ExitCode {
    let load = |dir: &Path, what: &str| {
        PolicySnapshot::load(dir, args.schema).map_err(|e| {
            if let LoadError::Invalid(diags) = &e {
                diags.iter().for_each(|d| eprintln!("{d}"));
            }
            format!("the {what} policies ({}) do not load: {e}", dir.display())
        })
    };
    let sets =
        load(args.policies, "active").and_then(|a| Ok((a, load(args.candidate, "candidate")?)));
    let (active, candidate) = match sets {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let path = store::identity_store_path(args.data);
    if !path.exists() {
        return fail(&format!("no identity store at {}", path.display()));
    }
    let store = match Store::open(&path) {
        Ok(s) => s,
        Err(e) => {
            return fail(&format!(
                "{e} (a running server holds the store: use a copy)"
            ))
        }
    };
    let header = format!(
        "impact of {} (version {}) against {} (version {})",
        args.candidate.display(),
        &candidate.version()[..16],
        args.policies.display(),
        &active.version()[..16]
    );
    if args.jsonl {
        eprintln!("{header}");
    }
    let tally = match data_view(&store, &active, &candidate, args.jsonl) {
        Ok(t) => t,
        Err(e) => return fail(&e.to_string()),
    };
    let mut out = std::io::stdout().lock();
    let printed = if args.jsonl {
        tally.write_text(&mut std::io::stderr().lock())
    } else {
        writeln!(out, "{header}").and_then(|()| tally.write_text(&mut out))
    };
    if let Err(e) = printed {
        return fail(&e.to_string());
    }
    if args.symbolic {
        symbolic_view(&active, &candidate, args.jsonl);
    }
    ExitCode::SUCCESS
}

/// Decides everything over one read snapshot; prints changes as they come
/// in JSON-lines mode.
fn data_view(
    store: &Store,
    active: &PolicySnapshot,
    candidate: &PolicySnapshot,
    jsonl: bool,
) -> Result<Tally, ImpactError> {
    let reader = store.read()?;
    let mut tally = Tally::default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut progress = Ticker::new();
    let asked = compare(
        &reader,
        active,
        candidate,
        |change| {
            tally.add(&change);
            if jsonl {
                serde_json::to_writer(&mut out, &change).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        },
        || progress.tick(),
    )?;
    out.flush()?;
    eprintln!(
        "impact: {} principals, {asked} questions, each decided by both sets in {:.1} s",
        progress.count,
        progress.started.elapsed().as_secs_f64()
    );
    Ok(tally)
}

fn symbolic_view(active: &PolicySnapshot, candidate: &PolicySnapshot, jsonl: bool) {
    let found = match crate::prove::block_on(symbolic::differences(active, candidate)) {
        Ok(Ok(found)) => found,
        Ok(Err(e)) | Err(e) => {
            eprintln!("impact: symbolic view skipped: {e}");
            return;
        }
    };
    if jsonl {
        for d in &found {
            let line = serde_json::json!({
                "symbolic": d.env, "direction": d.direction, "counterexample": d.suite,
            });
            println!("{line}");
        }
        return;
    }
    println!("\nsymbolic view (any data, cvc5):");
    if found.is_empty() {
        println!("  no request of any action is decided differently");
    }
    for d in &found {
        println!("  {}: can change ({})", d.env, d.direction);
        println!("    e.g. {} context {}", d.request, d.context);
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("impact: {message}");
    ExitCode::FAILURE
}

/// A plain progress line on stderr every few seconds.
struct Ticker {
    started: Instant,
    last: Instant,
    count: u64,
}

impl Ticker {
    const EVERY: Duration = Duration::from_secs(3);

    fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last: now,
            count: 0,
        }
    }

    fn tick(&mut self) {
        self.count += 1;
        if self.count.is_multiple_of(1024) && self.last.elapsed() >= Self::EVERY {
            self.last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "impact: {} principals in {secs:.0} s ({:.0}/s)",
                self.count,
                self.count as f64 / secs
            );
        }
    }
}
