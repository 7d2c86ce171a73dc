//! `etax-authz audit …`: the decision log from the command line, on a data
//! directory no server holds open (redb locks the file to one process; while
//! the server runs, use `GET /v1/audit/…`).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use super::query::{self, Format};
use super::{decision_log_path, AuditError, AuditLog, Checkpoint, Filter, TamperKind};

fn open(data: &Path) -> Result<AuditLog, ExitCode> {
    AuditLog::open_existing(&decision_log_path(data)).map_err(|e| {
        match &e {
            AuditError::Open {
                source: redb::DatabaseError::DatabaseAlreadyOpen,
                ..
            } => eprintln!(
                "etax-authz: {e}\n(the server holds it open: use GET /v1/audit/verify, /v1/audit/checkpoint or /v1/audit/decisions)"
            ),
            _ => eprintln!("etax-authz: {e}"),
        }
        ExitCode::FAILURE
    })
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("etax-authz: {e}");
    ExitCode::FAILURE
}

/// `audit verify`: exits 0 only if the chain is intact (and extends the
/// checkpoint, if given).
pub fn verify(data: &Path, checkpoint: Option<&str>, json: bool) -> ExitCode {
    let checkpoint = match checkpoint.map(read_checkpoint).transpose() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let log = match open(data) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let report = match log.verify(checkpoint.as_ref()) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        match &report.problem {
            None => println!(
                "ok: {} records verified (first {}, head {})",
                report.records,
                report.first_seq.unwrap_or(0),
                report
                    .head
                    .as_ref()
                    .map(|h| format!("{}:{}", h.seq, h.hash))
                    .unwrap_or_else(|| "none".to_owned())
            ),
            Some(p) => {
                let kind = match p.kind {
                    TamperKind::Altered => "ALTERED",
                    TamperKind::Removed => "REMOVED",
                    TamperKind::Reordered => "REORDERED",
                };
                println!("TAMPERED: record {} {kind}: {}", p.seq, p.detail);
            }
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
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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

/// `audit checkpoint`: prints the head as one JSON line.
pub fn checkpoint(data: &Path) -> ExitCode {
    let log = match open(data) {
        Ok(l) => l,
        Err(code) => return code,
    };
    match log.checkpoint() {
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
    let log = match open(data) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let result = query::write(log.database(), filter, format, &mut out);
    finish(result, out)
}

/// `audit export`: every record (since a time) as JSON lines, streamed.
pub fn export(data: &Path, since_ms: Option<u64>) -> ExitCode {
    let log = match open(data) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let result = query::export(log.database(), since_ms, &mut out);
    finish(result, out)
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

/// `audit prune`: removes records written before `before_ms`, leaving an
/// anchor record.
pub fn prune(data: &Path, before_ms: u64) -> ExitCode {
    let log = match open(data) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
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
            println!("nothing older than {}", super::time::format_utc(before_ms));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
