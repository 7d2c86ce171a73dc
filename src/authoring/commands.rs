//! `check`, `test` and `fmt`: what they print and how they exit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::policy::lint::{self, KnownIds};
use crate::policy::{format, testing, LoadError, PolicySnapshot, Severity, Sources};

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Where `check --strict` takes the entity ids that exist from.
pub enum KnownFrom<'a> {
    /// The store of a data directory.
    Store(&'a Path),
    /// An import document (the demo).
    Document(&'a Path),
}

fn known_ids(from: KnownFrom<'_>) -> Result<KnownIds, String> {
    match from {
        KnownFrom::Document(path) => super::known_ids_in_document(path),
        KnownFrom::Store(data) => {
            let store = crate::store::Store::open(&crate::store::identity_store_path(data))
                .map_err(|e| format!("{}: {e}", data.display()))?;
            super::known_ids_in_store(&store).map_err(|e| e.to_string())
        }
    }
}

/// `check [--strict]`: with `--strict`, the validator's warnings and the
/// lints (entity ids the data does not hold) are errors.
pub fn check(policies: &Path, schema: &Path, strict: Option<KnownFrom<'_>>) -> ExitCode {
    let loaded = Sources::read(policies, schema).and_then(|s| {
        PolicySnapshot::from_sources(&s.schema_file, &s.schema, &s.policy_files).map(|p| (s, p))
    });
    let (sources, snap) = match loaded {
        Ok(loaded) => loaded,
        Err(LoadError::Invalid(diags)) => return report_invalid(&diags),
        Err(e) => {
            eprintln!("check failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let strict_run = strict.is_some();
    let mut problems = match strict.map(known_ids).transpose() {
        Ok(Some(known)) => lint::strict_problems(&snap, &sources, &known),
        Ok(None) => snap.warnings().to_vec(),
        Err(e) => {
            eprintln!("check failed: cannot read the known entity ids: {e}");
            return ExitCode::FAILURE;
        }
    };
    problems.extend(crate::policy::near_misses(
        policies,
        if strict_run {
            Severity::Error
        } else {
            Severity::Warning
        },
    ));
    if problems.iter().any(|d| d.severity == Severity::Error) {
        return report_invalid(&problems);
    }
    // A set without policies denies everything: under --strict that is
    // taken for the mistake it almost surely is (a wrong --policies path).
    if strict_run && snap.policies().policies().next().is_none() {
        eprintln!(
            "check failed: no policies in {} (a set with no policies denies everything)",
            policies.display()
        );
        return ExitCode::FAILURE;
    }
    problems.iter().for_each(|w| println!("{w}"));
    println!(
        "ok: {} policies valid against {} (version {})",
        snap.policies().policies().count(),
        schema.display(),
        &snap.version()[..16]
    );
    ExitCode::SUCCESS
}

fn report_invalid(diags: &[crate::policy::Diagnostic]) -> ExitCode {
    diags.iter().for_each(|d| println!("{d}"));
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    eprintln!("check failed: {errors} error(s)");
    ExitCode::FAILURE
}

/// What `test` runs.
pub struct TestArgs<'a> {
    /// Suite files, or directories whose `*.json` are suites.
    pub paths: &'a [PathBuf],
    pub policies: &'a Path,
    pub schema: &'a Path,
    pub require_coverage: bool,
    /// Only cases whose `suite :: name` contains this.
    pub filter: Option<&'a str>,
}

/// The suite files `paths` name: files as given, directories' `*.json`.
fn suite_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(
                testing::suite_files(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
            );
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

pub fn test(args: &TestArgs<'_>) -> ExitCode {
    let snap = match PolicySnapshot::load(args.policies, args.schema) {
        Ok(snap) => snap,
        Err(e) => {
            if let LoadError::Invalid(diags) = &e {
                diags.iter().for_each(|d| println!("{d}"));
            }
            eprintln!("test: the policies do not load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = match suite_files(args.paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("test: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("running {} suite file(s)", files.len());
    let mut report = testing::run_files(&snap, &files, args.filter, print_case);
    for e in &report.errors {
        println!("error: {e}");
    }
    let failures: Vec<_> = report
        .cases
        .iter()
        .filter(|c| c.failure.is_some())
        .collect();
    if !failures.is_empty() {
        println!("\nfailures:");
        for c in &failures {
            println!(
                "    {} :: {} ({} cases[{}])",
                c.suite, c.name, c.file, c.index
            );
        }
    }
    let whole_run = args.filter.is_none() && args.paths.iter().all(|p| p.is_dir());
    if !whole_run {
        report.keep_coverage_of_what_ran();
    }
    let gaps: Vec<_> = report.gaps().collect();
    println!(
        "\ncoverage: {} of {} policies {}exercised by both an allow and a deny case",
        report.coverage.len() - gaps.len(),
        report.coverage.len(),
        if whole_run {
            ""
        } else {
            "(those the selected cases evaluated) "
        }
    );
    for (id, c, gap) in &gaps {
        println!("    not covered: {id} ({}): {gap}", c.file);
    }
    // Nothing run proves nothing: an empty directory or a filter that
    // matches no case must not read as a pass.
    let none_ran = report.cases.is_empty();
    if none_ran {
        println!("\nno test cases ran");
    }
    let ok = !none_ran && report.failed() == 0 && (gaps.is_empty() || !args.require_coverage);
    println!(
        "\ntest result: {}. {} passed, {} failed",
        if ok { "ok" } else { "FAILED" },
        report.passed(),
        report.failed()
    );
    exit(ok)
}

/// One case's line, and for a failure where it is, its context and the
/// explain trace.
fn print_case(case: &testing::CaseResult) {
    let Some(why) = &case.failure else {
        println!("test {} :: {} ... ok", case.suite, case.name);
        return;
    };
    println!("test {} :: {} ... FAILED", case.suite, case.name);
    println!("    at {} cases[{}]", case.file, case.index);
    println!("    {why}");
    println!("    context: {}", case.context);
    if !case.trace.is_empty() {
        println!("    explain:");
        case.trace.iter().for_each(|l| println!("      {l}"));
    }
}

/// `fmt [--check]`: with `--check`, changes nothing and prints the diff
/// each file would take.
pub fn fmt(policies: &Path, check: bool) -> ExitCode {
    use format::FileOutcome;
    let files = match crate::policy::policy_files_in(policies) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("fmt: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut bad = 0;
    for outcome in format::format_files(&files, check) {
        match outcome {
            FileOutcome::Unchanged(_) => {}
            FileOutcome::Changed(p, diff) if check => {
                bad += 1;
                println!("{}: not formatted (run `etax-authz fmt`)", p.display());
                print!("{diff}");
            }
            FileOutcome::Changed(p, _) => println!("formatted {}", p.display()),
            FileOutcome::Failed(_, lines) => {
                bad += 1;
                lines.iter().for_each(|l| println!("{l}"));
            }
        }
    }
    exit(bad == 0)
}
