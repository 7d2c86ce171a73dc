//! `etax-authz audit verify|query|export --fleet URL`: the auditors'
//! commands over the fleet's table instead of one data directory. They
//! connect with SELECT only (no migration, no pool): an auditor's read-only
//! role is enough, and reading changes nothing.

use std::io::Write;
use std::process::ExitCode;

use super::log::{self, ExportError, FleetVerify};
use super::FleetError;
use crate::audit::{commands, Filter};

/// Connects for one command. The URL can hold a password: errors name the
/// problem, never the URL.
async fn connect(url: &str) -> Result<tokio_postgres::Client, FleetError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| FleetError::Url(e.to_string()))?;
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "fleet database connection ended");
        }
    });
    Ok(client)
}

/// Runs `f` against the fleet's database on a runtime of its own.
fn with_client<T, E: From<FleetError>>(
    url: &str,
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, E>,
) -> Result<T, E> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FleetError::Pool(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async {
        let client = connect(url).await.map_err(E::from)?;
        f(&client).await
    })
}

/// `audit verify --fleet URL [--host H] [--checkpoint C] [--json]`: each
/// host's chain; the exit code is the worst host's (0 ok, 3 tampered, 4
/// unreadable).
pub fn verify(
    url: &str,
    host: Option<&str>,
    checkpoint: Option<&str>,
    json: bool,
    min_retention_days: u64,
) -> ExitCode {
    let checkpoint = match checkpoint.map(commands::read_checkpoint).transpose() {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    if checkpoint.is_some() && host.is_none() {
        return failed("--checkpoint names one host's record: give --host too");
    }
    let report = with_client(url, async |c| {
        log::verify(c, host, checkpoint.as_ref(), min_retention_days).await
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => return failed(&e.to_string()),
    };
    commands::conclude(&report, report.verdict, json, print_report)
}

fn print_report(report: &FleetVerify) {
    if report.hosts.is_empty() {
        println!("the fleet's decision log holds no records");
    }
    for h in &report.hosts {
        let r = &h.report;
        let head = r
            .head
            .as_ref()
            .map(|c| format!(", head {}:{}", c.seq, c.hash))
            .unwrap_or_default();
        match &r.problem {
            None => println!("host {}: ok, {} records{head}", h.host, r.records),
            Some(p) => println!(
                "host {}: {:?} at record {} ({:?}): {}",
                h.host, r.verdict, p.seq, p.kind, p.detail
            ),
        }
    }
}

/// `audit query|export --fleet URL [--host H] FILTERS`: every matching
/// record, one JSON line each: `{"host": …, "record": <the stored line>}`,
/// the stored line byte for byte (canonical JSON and hash, re-hashable).
pub fn export(url: &str, host: Option<&str>, filter: &Filter) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = with_client(url, async |c| {
        log::for_each(c, filter, host, |host, line| {
            export_line(&mut out, host, line)
        })
        .await
    });
    match written.and_then(|_| Ok(out.flush()?)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => failed(&e.to_string()),
    }
}

/// One line of an export across hosts: `{"host": …, "record": <the
/// stored line>}` (the HTTP export writes the same lines).
pub fn export_line(out: &mut impl Write, host: &str, line: &[u8]) -> std::io::Result<()> {
    let host = serde_json::to_string(host).expect("strings serialize");
    out.write_all(b"{\"host\":")?;
    out.write_all(host.as_bytes())?;
    out.write_all(b",\"record\":")?;
    out.write_all(line)?;
    out.write_all(b"}\n")
}

fn failed(message: &str) -> ExitCode {
    eprintln!("etax-authz: {message}");
    ExitCode::FAILURE
}
