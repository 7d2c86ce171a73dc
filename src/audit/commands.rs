//! `etax-authz audit …`: the decision log from the command line, on a data
//! directory no server holds open (the log's directory is locked to one
//! process; while the server runs, use `GET /v1/audit/…`).
//!
//! `verify` and `checkpoint` only read the files (no repair, so damage stays
//! as found); the others open the writer and close the log cleanly when done.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use super::query::{self, Format};
use super::{decision_log_path, AuditError, AuditLog, Checkpoint, Filter, TamperKind, Verdict};

fn opening_failed(e: &AuditError) -> ExitCode {
    match e {
        AuditError::Locked(_) => eprintln!(
            "etax-authz: {e}\n(the server holds it open: use GET /v1/audit/verify, /v1/audit/checkpoint or /v1/audit/decisions)"
        ),
        _ => eprintln!("etax-authz: {e}"),
    }
    ExitCode::FAILURE
}

fn open(data: &Path) -> Result<AuditLog, ExitCode> {
    AuditLog::open_existing(&decision_log_path(data)).map_err(|e| opening_failed(&e))
}

/// Runs `f` on the log, then closes it cleanly (everything written, the
/// clean-close head left), whatever `f` answered.
fn with_log(
    data: &Path,
    f: impl FnOnce(&AuditLog, &tokio::runtime::Runtime) -> ExitCode,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let log = match open(data) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let code = f(&log, &runtime);
    match runtime.block_on(log.close()) {
        Ok(()) => code,
        Err(e) => fail(format!("closing the decision log: {e}")),
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("etax-authz: {e}");
    ExitCode::FAILURE
}

/// `audit verify`: reads the files without changing them and exits 0 when
/// the log is intact (and extends the checkpoint, if given), 3 when it was
/// tampered with, 4 when storage is damaged or unreadable (1: it could not
/// be checked at all).
pub fn verify(data: &Path, checkpoint: Option<&str>, json: bool) -> ExitCode {
    let checkpoint = match checkpoint.map(read_checkpoint).transpose() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let report = match super::snapshot_at(&decision_log_path(data))
        .and_then(|snap| super::forensics::verify(&snap, checkpoint.as_ref()))
    {
        Ok(r) => r,
        Err(e) => return opening_failed(&e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        print_report(&report);
    }
    ExitCode::from(report.verdict.exit_code())
}

fn print_report(report: &super::VerifyReport) {
    let head = report
        .head
        .as_ref()
        .map(|h| format!("{}:{}", h.seq, h.hash))
        .unwrap_or_else(|| "none".to_owned());
    if report.problems.is_empty() {
        println!(
            "ok: {} records verified (first {}, head {head}, chain hash {})",
            report.records,
            report.first_seq.unwrap_or(0),
            report.chain_hash
        );
    }
    let verdict = match report.verdict {
        Verdict::Ok => "OK",
        Verdict::Tampered => "TAMPERED",
        Verdict::Unreadable => "UNREADABLE",
    };
    for p in &report.problems {
        let kind = match p.kind {
            TamperKind::Altered => "ALTERED",
            TamperKind::Removed => "REMOVED",
            TamperKind::Reordered => "REORDERED",
            TamperKind::Corrupted => "CORRUPTED",
            TamperKind::Unreadable => "UNREADABLE",
        };
        let time = p
            .time
            .as_deref()
            .map(|t| format!(" (written {t})"))
            .unwrap_or_default();
        println!("{verdict}: record {} {kind}{time}: {}", p.seq, p.detail);
    }
    if !report.problems.is_empty() {
        match &report.last_verified {
            Some(v) => println!(
                "last record verified before the first problem: {} ({}); {} records verified in all",
                v.seq, v.time, report.records
            ),
            None => println!("no record could be verified before the first problem"),
        }
    }
    if let Some(t) = &report.crash_tail {
        println!("note: not closed cleanly; {t}");
    }
    if let Some(t) = &report.crash_tail {
        println!("note: not closed cleanly; {t}");
    }
    if let Some(c) = &report.checkpoint {
        let verdict = if c.extended {
            "extends"
        } else {
            "DOES NOT extend"
        };
        println!(
            "checkpoint {}:{}: the log {verdict} it: {}",
            c.seq, c.hash, c.detail
        );
    }
}

/// `SEQ:HASH`, the JSON `audit checkpoint` prints, or a file holding it.
fn read_checkpoint(arg: &str) -> Result<Checkpoint, String> {
    match Checkpoint::parse(arg) {
        Ok(c) => Ok(c),
        Err(e) if Path::new(arg).is_file() => {
            let text = std::fs::read_to_string(arg).map_err(|io| format!("{arg}: {io}"))?;
            Checkpoint::parse(&text).map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

/// `audit checkpoint`: prints the head as one JSON line: the clean-close
/// head, or (after a crash, before the next open) the last record readable.
pub fn checkpoint(data: &Path) -> ExitCode {
    let head = super::snapshot_at(&decision_log_path(data)).and_then(|snap| {
        if snap.layout.head.is_some() {
            return Ok(snap.layout.head);
        }
        let last = super::scan::Scan::new(std::sync::Arc::new(snap), 0, None).last();
        let last = last.transpose()?;
        Ok(last.and_then(|s| {
            serde_json::from_slice(&s.line())
                .ok()
                .map(|r| Checkpoint::of(&r))
        }))
    });
    match head {
        Ok(Some(cp)) => {
            println!(
                "{}",
                serde_json::to_string(&cp).expect("checkpoints serialize")
            );
            ExitCode::SUCCESS
        }
        Ok(None) => fail("the decision log is empty: nothing to anchor yet"),
        Err(e) => fail(e),
    }
}

/// `audit query`: matching records to stdout.
pub fn query(data: &Path, filter: &Filter, format: Format) -> ExitCode {
    with_log(data, |log, _| {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let result = query::write(log, filter, format, &mut out);
        finish(result, out)
    })
}

/// `audit export`: every record (since a time) as JSON lines, streamed.
pub fn export(data: &Path, since_ms: Option<u64>) -> ExitCode {
    with_log(data, |log, _| {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let result = query::export(log, since_ms, &mut out);
        finish(result, out)
    })
}

fn finish(result: Result<u64, query::QueryError>, mut out: impl Write) -> ExitCode {
    match result.and_then(|n| out.flush().map(|()| n).map_err(Into::into)) {
        Ok(n) => {
            eprintln!("{n} records");
            ExitCode::SUCCESS
        }
        // `| head` closing the pipe is not an error.
        Err(query::QueryError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `audit prune`: removes whole segments of records written before
/// `before_ms`, leaving an anchor record.
pub fn prune(data: &Path, before_ms: u64) -> ExitCode {
    with_log(data, |log, runtime| {
        let operator = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
        match runtime.block_on(log.prune(before_ms, &format!("Operator::{operator:?}"))) {
            Ok(Some(r)) => {
                println!(
                    "pruned records {}..={}; the anchor carries the hash of record {}: {}",
                    r.first_seq, r.last_seq, r.last_seq, r.last_hash
                );
                ExitCode::SUCCESS
            }
            Ok(None) => {
                println!(
                    "no whole segment older than {}",
                    super::time::format_utc(before_ms)
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        }
    })
}
