//! `etax-authz audit …`: the decision log from the command line, on a data
//! directory no server holds open (the log's directory is locked to one
//! process; while the server runs, use `GET /v1/audit/…`).
//!
//! `verify` and `checkpoint` only read the files (no repair, so damage stays
//! as found); the others open the writer and close the log cleanly when done.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use super::digest::ChainHash;
use super::keys::{self, SecretKey, SignatureAlgorithm};
use super::query::{self, Output};
use super::signing::{self, SignedCheckpoint};
use super::summary::{self, GroupBy};
use super::{
    decision_log_path, AuditError, AuditLog, Checkpoint, DecisionRecord, Filter, TamperKind,
    Verdict,
};

fn opening_failed(e: &AuditError) -> ExitCode {
    match e {
        AuditError::Locked(_) => eprintln!(
            "etax-authz: {e}\n(the server holds it open: a live log is read through the server that writes it: GET /v1/audit/verify, /v1/audit/checkpoint or /v1/audit/decisions)"
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
pub fn verify(
    data: &Path,
    checkpoint: Option<&str>,
    json: bool,
    min_retention_days: u64,
) -> ExitCode {
    let checkpoint = match checkpoint.map(read_checkpoint).transpose() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let report = match super::snapshot_at(&decision_log_path(data)).and_then(|snap| {
        let rules = super::forensics::Rules::now(min_retention_days);
        super::forensics::verify_with(&snap, checkpoint.as_ref(), &rules)
    }) {
        Ok(r) => r,
        Err(e) => return opening_failed(&e),
    };
    conclude(&report, report.verdict, json, print_report)
}

/// Prints a verify report, as JSON or by `text`, and exits with its
/// verdict's code (the fleet's verify too).
pub fn conclude<T: serde::Serialize>(
    report: &T,
    verdict: super::Verdict,
    json: bool,
    text: impl FnOnce(&T),
) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports serialize")
        );
    } else {
        text(report);
    }
    ExitCode::from(verdict.exit_code())
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
    if let Some(live) = &report.live {
        println!("note: {live}");
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

/// A checkpoint file is one JSON line (a signed one a few hundred bytes
/// more): anything near this is no checkpoint, and is not read whole.
const MAX_CHECKPOINT_BYTES: u64 = 64 << 10;

/// `SEQ:HASH`, the JSON `audit checkpoint` prints, or a file holding it.
pub fn read_checkpoint(arg: &str) -> Result<Checkpoint, String> {
    Checkpoint::parse(arg).or_else(|e| match checkpoint_file(arg) {
        Some(text) => {
            let text = text.map_err(|io| format!("{arg}: {io}"))?;
            Checkpoint::parse(&text).map_err(|_| e)
        }
        None => Err(e),
    })
}

/// The text of the file `arg` names (`None`: it names no entry, so it is
/// the checkpoint itself). Read as `files` reads what an operator names: a
/// FIFO or a directory by that name is refused as no regular file, not
/// taken for a malformed checkpoint.
fn checkpoint_file(arg: &str) -> Option<std::io::Result<String>> {
    let path = Path::new(arg);
    std::fs::symlink_metadata(path).ok()?;
    Some(crate::files::read_text(path, MAX_CHECKPOINT_BYTES))
}

/// `audit checkpoint`: prints the head as one JSON line: the clean-close
/// head, or (after a crash, before the next open) the last record readable.
pub fn checkpoint(data: &Path) -> ExitCode {
    match read_head(data) {
        Ok(Some((cp, _))) => {
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

/// The log's head and chain hash, read from its files without opening it
/// for writing (so reading leaves it as it was, cleanly closed or not).
fn read_head(data: &Path) -> Result<Option<(Checkpoint, ChainHash)>, AuditError> {
    let snap = super::snapshot_at(&decision_log_path(data))?;
    let hash = snap.chain_hash;
    if let Some(head) = snap.layout.head.clone() {
        return Ok(Some((head, hash)));
    }
    let last = super::scan::Scan::new(std::sync::Arc::new(snap), 0, None).last();
    let last = last.transpose()?;
    Ok(last.and_then(|s| {
        serde_json::from_slice(&s.line())
            .ok()
            .map(|r| (Checkpoint::of(&r), hash))
    }))
}

/// `audit query`: matching records to stdout.
pub fn query(data: &Path, filter: &Filter, output: &Output) -> ExitCode {
    with_read(data, "audit.query", filter, |log| {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let result = query::write_with(log, filter, output, &mut out);
        finish(result, out)
    })
}

/// `audit export`: matching records streamed, as the stored JSON lines or
/// as CSV.
pub fn export(data: &Path, filter: &Filter, output: &Output) -> ExitCode {
    with_read(data, "audit.export", filter, |log| {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let result = query::write_with(log, filter, output, &mut out);
        finish(result, out)
    })
}

/// `audit summary`: counts per group, as a table or JSON.
pub fn summary(data: &Path, filter: &Filter, by: &[GroupBy], json: bool) -> ExitCode {
    with_read(data, "audit.summary", filter, |log| {
        let summary = match summary::summarize(log, filter, by) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let mut out = BufWriter::new(std::io::stdout().lock());
        let written = if json {
            serde_json::to_writer_pretty(&mut out, &summary)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            summary.write_table(&mut out)
        };
        finish(written.map(|()| summary.records).map_err(Into::into), out)
    })
}

/// Runs `read` on the log after recording this read in it, as every read
/// over HTTP is: an auditor's look at the log leaves a trace even when it
/// is cut short. The log is closed cleanly afterwards.
fn with_read(
    data: &Path,
    action: &str,
    filter: &Filter,
    read: impl FnOnce(&AuditLog) -> ExitCode,
) -> ExitCode {
    with_log(data, |log, runtime| {
        match runtime.block_on(log.commit(cli_read_record(action, filter))) {
            Ok(_) => read(log),
            Err(e) => fail(e),
        }
    })
}

/// The `audit.read` record of a command-line read.
fn cli_read_record(action: &str, filter: &Filter) -> DecisionRecord {
    let operator = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| CLI_CALLER.to_owned());
    let described = filter.describe();
    let resource = if described.is_empty() {
        "DecisionLog".to_owned()
    } else {
        format!("DecisionLog?{described}")
    };
    // No policy decides a command-line read: it names no policy version.
    let mut record = DecisionRecord::new(
        &crate::random_id(),
        query::READ_KIND,
        &format!("Operator::{operator:?}"),
        action,
        &resource,
        None,
        true,
        &[],
        &[],
        "",
        0,
    );
    record.caller = Some(CLI_CALLER.to_owned());
    record
}

/// The caller every command-line read is recorded under.
pub const CLI_CALLER: &str = "cli";

/// Flushes `out` and reports how many records were written.
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
pub fn prune(data: &Path, before_ms: u64, min_retention_days: u64) -> ExitCode {
    with_log(data, |log, runtime| {
        let operator = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
        match runtime.block_on(log.prune(
            before_ms,
            min_retention_days,
            &format!("Operator::{operator:?}"),
        )) {
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

/// `audit verify` exits with this when a signed checkpoint is not accepted
/// (bad signature, another key, malformed): a problem with the evidence the
/// auditor brought, told apart from the log's own tampering (exit 3) and
/// unreadable storage (exit 4).
pub const EXIT_BAD_CHECKPOINT_SIGNATURE: u8 = 5;

/// `audit keygen`: a new key pair for signing checkpoints; prints where it
/// went and the public key's fingerprint, never the private key.
pub fn keygen(algorithm: SignatureAlgorithm, prefix: &Path) -> ExitCode {
    let written = SecretKey::generate(algorithm).and_then(|key| {
        let files = keys::write_key_pair(&key, prefix)?;
        Ok((files, key.public_key().fingerprint()))
    });
    match written {
        Ok((files, fingerprint)) => {
            let hash = algorithm.fingerprint_hash();
            println!(
                "private key: {} (mode 0600: keep it on the signing host only)",
                files.private.display()
            );
            println!(
                "public key:  {} (give it to the auditors)",
                files.public.display()
            );
            println!("fingerprint ({algorithm} key, {hash} of its SPKI DER): {fingerprint}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `audit checkpoint --sign KEY [--out FILE]`: the head, signed, as one
/// JSON line on stdout and (with `out`) in a new file.
pub fn sign_checkpoint(data: &Path, key: &Path, out: Option<&Path>) -> ExitCode {
    // The key is read before the log is opened, so a wrong path fails fast
    // without holding the log's lock.
    let key_path = key;
    let key = match keys::read_secret_key(key_path) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    if keys::readable_by_others(key_path) {
        eprintln!(
            "etax-authz: warning: {} can be read by other users: `chmod 600` it",
            key_path.display()
        );
    }
    let (head, chain_hash) = match read_head(data) {
        Ok(Some(head)) => head,
        Ok(None) => return fail("the decision log is empty: nothing to anchor yet"),
        Err(e) => return fail(e),
    };
    let signed = SignedCheckpoint::sign(&head, chain_hash, &key, crate::now_ms());
    let line = serde_json::to_string(&signed).expect("checkpoints serialize") + "\n";
    if let Some(path) = out {
        // A kept checkpoint is evidence: never replace one silently.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_all()));
        if let Err(e) = written {
            return fail(format!("{}: {e}", path.display()));
        }
    }
    print!("{line}");
    ExitCode::SUCCESS
}

/// Runs in front of `audit verify --checkpoint ARG [--public-key KEY]`.
/// With a key: checks ARG's signature offline and answers the checkpoint it
/// vouches for as `SEQ:HASH`, which the log is then verified against (the
/// file is not read twice, so what was checked is what is used). Without a
/// key: ARG unchanged, with a warning if it is signed.
pub fn check_checkpoint_signature(
    checkpoint: &str,
    public_key: Option<&Path>,
) -> Result<String, ExitCode> {
    let refuse = |e: &dyn std::fmt::Display| {
        eprintln!("etax-authz: checkpoint {checkpoint}: {e}");
        ExitCode::from(EXIT_BAD_CHECKPOINT_SIGNATURE)
    };
    // Like `read_checkpoint`: the argument is the text itself unless it
    // names a file.
    let text = || checkpoint_file(checkpoint).unwrap_or_else(|| Ok(checkpoint.to_owned()));
    let Some(key_path) = public_key else {
        // An unreadable file is left for `verify` to report, as before.
        if text().is_ok_and(|t| signing::looks_signed(&t)) {
            eprintln!(
                "etax-authz: warning: {checkpoint} is signed but no --public-key was given: \
                 its signature was NOT checked; the log is verified against it as given"
            );
        }
        return Ok(checkpoint.to_owned());
    };
    let text = text().map_err(|e| refuse(&e))?;
    let key = keys::read_public_key(key_path).map_err(|e| refuse(&e))?;
    let signed = SignedCheckpoint::parse(&text).map_err(|e| refuse(&e))?;
    signed.verify(&key).map_err(|e| refuse(&e))?;
    eprintln!(
        "signature ok: record {} signed with {} key {} at {}",
        signed.seq, signed.signature_algorithm, signed.key_fingerprint, signed.signed_at_beijing
    );
    Ok(format!("{}:{}", signed.seq, signed.hash))
}
