//! `etax-authz prove`: output like `cargo test` — one line per property,
//! each counterexample as a suite to paste, a closing count, and a
//! non-zero exit when anything failed or could not be checked.

use std::path::Path;
use std::process::ExitCode;

use crate::policy::{LoadError, PolicySnapshot};

use super::{property, prove_all_blocking, Outcome};

pub fn run(
    policies: &Path,
    schema: &Path,
    properties: Option<&Path>,
    limit: std::time::Duration,
) -> ExitCode {
    let snap = match PolicySnapshot::load(policies, schema) {
        Ok(snap) => snap,
        Err(e) => {
            if let LoadError::Invalid(diags) = &e {
                diags.iter().for_each(|d| println!("{d}"));
            }
            eprintln!("prove: the policies do not load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = properties
        .map(Path::to_path_buf)
        .unwrap_or_else(|| property::properties_dir(policies));
    let props = match property::load_all(&dir, snap.schema()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("prove: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "proving {} propert(ies) from {}",
        props.len(),
        dir.display()
    );
    let outcomes = match prove_all_blocking(&snap, &props, limit, print_outcome) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("prove: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = outcomes.iter().filter(|o| o.violation.is_some()).count();
    println!(
        "\nprove result: {}. {} proved, {} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        outcomes.len() - failed,
        failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_outcome(o: &Outcome) {
    let ms = o.took.as_secs_f64() * 1000.0;
    match o.counterexample_suite() {
        None => println!(
            "property {} ({}) ... proved ({ms:.0} ms)",
            o.property,
            o.check.as_str()
        ),
        Some(suite) => {
            println!(
                "property {} ({}) ... FAILED ({ms:.0} ms)",
                o.property,
                o.check.as_str()
            );
            if let Some(d) = &o.description {
                println!("    {d}");
            }
            println!("    counterexample (a suite for policies/tests/):");
            let text = serde_json::to_string_pretty(&suite).unwrap_or_default();
            for line in text.lines() {
                println!("    {line}");
            }
            println!();
        }
    }
}
