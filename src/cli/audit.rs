//! `etax-authz audit …`: the auditors' commands over a data directory's
//! decision log (verify, checkpoints and keys, queries, summaries, exports,
//! archived policy sets, retention), each read recorded like an HTTP one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::audit;

#[derive(Subcommand)]
pub(super) enum AuditCommand {
    /// Walk the hash chain; report the first record altered, removed or
    /// reordered; exit non-zero if any.
    Verify {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Also prove the log extends this head: SEQ:HASH, the JSON
        /// `audit checkpoint` printed, or a file holding it.
        #[arg(long)]
        checkpoint: Option<String>,
        /// Check the signed checkpoint's signature with this public key
        /// (SPKI PEM) first; exit 5 if it is not genuine.
        #[arg(long, requires = "checkpoint")]
        public_key: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// An anchor that pruned a record younger than this many days
        /// (measured from the anchor's own time) is tampering.
        #[arg(long, default_value_t = audit::MIN_RETENTION_DAYS)]
        min_retention_days: u64,
        #[command(flatten)]
        fleet: FleetLogArgs,
    },
    /// Print the head (sequence number, hash, time) for auditors to keep.
    Checkpoint {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Sign it with this private key (PKCS#8 PEM from `audit keygen`).
        #[arg(long)]
        sign: Option<PathBuf>,
        /// Also write the signed checkpoint to this new file.
        #[arg(long, requires = "sign")]
        out: Option<PathBuf>,
    },
    /// Generate a key pair for signed checkpoints: PREFIX.key (private,
    /// mode 0600) and PREFIX.pub (public); never overwrites.
    Keygen {
        #[arg(long, default_value = "sm2", value_parser = ["sm2", "ed25519"])]
        algorithm: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print matching records.
    Query {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        // Boxed: the filter flags would make this the largest command.
        #[command(flatten)]
        filter: Box<FilterArgs>,
        #[arg(long, default_value = "table", value_parser = ["table", "jsonl", "csv"])]
        format: String,
        /// Start CSV with a UTF-8 byte order mark (for Excel and Chinese text).
        #[arg(long)]
        bom: bool,
        #[command(flatten)]
        fleet: FleetLogArgs,
    },
    /// Count matching records per group: who was denied what.
    Summary {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Fields to group by, comma-separated: principal, action, decision,
        /// policy, kind, caller, outcome.
        #[arg(long, default_value = "principal,action,decision")]
        by: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stream matching records as the stored JSON lines (re-checkable
    /// hashes) or CSV, in constant memory.
    Export {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// Start CSV with a UTF-8 byte order mark (for Excel and Chinese text).
        #[arg(long)]
        bom: bool,
        #[command(flatten)]
        fleet: FleetLogArgs,
    },
    /// Print the archived rules and schema of a policy version (as a
    /// record's policy_version names it; 8 hex digits suffice).
    Policy {
        /// The version, or a prefix of at least 8 hex digits.
        version: String,
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Remove records older than a time, leaving an anchor record so the
    /// rest still verifies.
    Prune {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Remove records before this time (RFC 3339, date, ms, or an age like 365d).
        #[arg(long)]
        before: String,
        /// Offset of a time given without one (a date is midnight there).
        #[arg(long, default_value = "+08:00", env = "ETAX_TIME_OFFSET")]
        time_offset: audit::time::Offset,
        /// Refuse to remove records younger than this many days.
        #[arg(long, default_value_t = audit::MIN_RETENTION_DAYS)]
        min_retention_days: u64,
    },
}

/// `--fleet URL [--host NAME]`: the fleet's table instead of `--data`.
#[derive(clap::Args)]
pub(super) struct FleetLogArgs {
    /// Fleet mode: read the fleet's decision log in this PostgreSQL
    /// database (every host's records) instead of --data; query and export
    /// print JSON lines `{"host", "record"}` whatever --format says.
    #[arg(long, value_name = "URL")]
    fleet: Option<String>,
    /// With --fleet: only this host.
    #[arg(long, requires = "fleet")]
    host: Option<String>,
}

#[derive(clap::Args)]
pub(super) struct FilterArgs {
    /// At or after: 2026-11-27T09:00:00+08:00, a date (midnight at
    /// --time-offset), ms since the epoch, or an age like 2h.
    #[arg(long)]
    since: Option<String>,
    /// Before.
    #[arg(long)]
    until: Option<String>,
    /// Part of the principal; ID numbers are masked before comparing. A
    /// full ID number matches exactly that person (by pseudonym).
    #[arg(long)]
    principal: Option<String>,
    /// What the request acted on: part of the masked target, or a full ID
    /// number for exactly that person.
    #[arg(long)]
    target: Option<String>,
    /// A full ID number: every record naming that person, in any role.
    #[arg(long)]
    person: Option<String>,
    /// The principal's identity type: legal_rep, finance_head, ...
    #[arg(long)]
    identity_type: Option<String>,
    #[arg(long, value_parser = ["done", "refused", "failed"])]
    outcome: Option<String>,
    /// The pseudonym key the server uses (default DATA/pseudonym.key).
    #[arg(long)]
    pseudonym_key: Option<PathBuf>,
    /// Credit code of an enterprise the decision concerned.
    #[arg(long)]
    enterprise: Option<String>,
    /// Action, e.g. useFunction.
    #[arg(long)]
    action: Option<String>,
    #[arg(long, value_parser = ["allow", "deny"])]
    decision: Option<String>,
    /// A determining policy id.
    #[arg(long)]
    policy: Option<String>,
    /// Record kind (authorize, login.sms, ...; `login.` for all login steps).
    #[arg(long)]
    kind: Option<String>,
    /// Also show auditors' own reads of the log (kind audit.read).
    #[arg(long)]
    include_reads: bool,
    /// Offset times are shown at, and read at when they name none.
    #[arg(long, default_value = "+08:00", env = "ETAX_TIME_OFFSET")]
    time_offset: audit::time::Offset,
}

impl FilterArgs {
    fn to_filter(&self, data: &std::path::Path) -> Result<audit::Filter, String> {
        use audit::pseudonym::{key_path, Pseudonyms};
        let now = crate::now_ms();
        let wants_key = [&self.principal, &self.target, &self.person]
            .iter()
            .any(|a| {
                a.as_deref()
                    .and_then(audit::query::full_id_number)
                    .is_some()
            });
        // Only the server creates the key: without it a full ID number
        // cannot be matched exactly, which is an error, not a fallback.
        let keys = wants_key
            .then(|| Pseudonyms::load(&key_path(data, self.pseudonym_key.as_deref())))
            .transpose()
            .map_err(|e| e.to_string())?;
        let time = |t: &Option<String>| {
            t.as_deref()
                .map(|t| audit::time::parse_time(t, now, self.time_offset))
                .transpose()
        };
        Ok(audit::Filter {
            since_ms: time(&self.since)?,
            until_ms: time(&self.until)?,
            principal: self.principal.clone(),
            enterprise: self.enterprise.clone(),
            action: self.action.clone(),
            decision: self.decision.as_deref().map(|d| {
                if d == "allow" {
                    audit::Outcome::Allow
                } else {
                    audit::Outcome::Deny
                }
            }),
            policy: self.policy.clone(),
            kind: self.kind.clone(),
            include_reads: self.include_reads,
            target: self.target.clone(),
            person: self.person.clone(),
            identity_type: self.identity_type.clone(),
            outcome: self.outcome.as_deref().map(str::parse).transpose()?,
            ..audit::Filter::default()
        })
        .map(|f| match &keys {
            Some(k) => f.resolve_persons(k),
            None => f,
        })
    }

    fn output(&self, format: &str, bom: bool) -> audit::query::Output {
        audit::query::Output {
            format: format.parse().expect("clap checked the format"),
            offset: self.time_offset,
            bom,
        }
    }
}

pub(super) fn run(cmd: AuditCommand) -> ExitCode {
    use audit::commands;
    let now = crate::now_ms();
    let bad = |e: String| {
        eprintln!("etax-authz: {e}");
        ExitCode::FAILURE
    };
    match cmd {
        AuditCommand::Verify {
            data,
            checkpoint,
            public_key,
            json,
            min_retention_days,
            fleet,
        } => verify(
            &data,
            checkpoint,
            public_key.as_deref(),
            json,
            min_retention_days,
            fleet,
        ),
        AuditCommand::Checkpoint {
            data, sign: None, ..
        } => commands::checkpoint(&data),
        AuditCommand::Checkpoint {
            data,
            sign: Some(key),
            out,
        } => commands::sign_checkpoint(&data, &key, out.as_deref()),
        AuditCommand::Keygen { algorithm, out } => match algorithm.parse() {
            Ok(algorithm) => commands::keygen(algorithm, &out),
            Err(e) => bad(format!("{e}")),
        },
        AuditCommand::Query {
            data,
            filter,
            format,
            bom,
            fleet,
        } => read(&data, &filter, (&format, bom), fleet, commands::query),
        AuditCommand::Summary {
            data,
            by,
            filter,
            json,
        } => match (
            audit::summary::GroupBy::parse_list(&by),
            filter.to_filter(&data),
        ) {
            (Ok(by), Ok(f)) => commands::summary(&data, &f, &by, json),
            (Err(e), _) | (_, Err(e)) => bad(e),
        },
        AuditCommand::Export {
            data,
            filter,
            format,
            bom,
            fleet,
        } => read(&data, &filter, (&format, bom), fleet, commands::export),
        AuditCommand::Policy { version, data } => policy_text(&data, &version),
        AuditCommand::Prune {
            data,
            before,
            time_offset,
            min_retention_days,
        } => match audit::time::parse_time(&before, now, time_offset) {
            Ok(before) => commands::prune(&data, before, min_retention_days),
            Err(e) => bad(e),
        },
    }
}

/// `audit query` and `audit export`: `local` over a data directory's log,
/// or with `--fleet` the fleet's table (always JSON lines).
fn read(
    data: &std::path::Path,
    filter: &FilterArgs,
    (format, bom): (&str, bool),
    fleet: FleetLogArgs,
    local: fn(&std::path::Path, &audit::Filter, &audit::query::Output) -> ExitCode,
) -> ExitCode {
    match (filter.to_filter(data), fleet.fleet) {
        (Ok(f), Some(url)) => crate::fleet::log_commands::export(&url, fleet.host.as_deref(), &f),
        (Ok(f), None) => local(data, &f, &filter.output(format, bom)),
        (Err(e), _) => {
            eprintln!("etax-authz: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `audit verify`: a data directory's log, or with `--fleet` the fleet's
/// table, after checking a signed checkpoint if one is given.
fn verify(
    data: &std::path::Path,
    checkpoint: Option<String>,
    public_key: Option<&std::path::Path>,
    json: bool,
    min_retention_days: u64,
    fleet: FleetLogArgs,
) -> ExitCode {
    use audit::commands;
    let checkpoint = match checkpoint
        .map(|c| commands::check_checkpoint_signature(&c, public_key))
        .transpose()
    {
        Ok(c) => c,
        Err(code) => return code,
    };
    match fleet.fleet {
        Some(url) => crate::fleet::log_commands::verify(
            &url,
            fleet.host.as_deref(),
            checkpoint.as_deref(),
            json,
            min_retention_days,
        ),
        None => commands::verify(data, checkpoint.as_deref(), json, min_retention_days),
    }
}

/// `audit policy VERSION`: the archived texts, after re-computing their
/// version. Reads only the archive (not the decision log, which a running
/// server holds locked), so it works beside the server.
fn policy_text(data: &std::path::Path, version: &str) -> ExitCode {
    use std::io::Write;
    let archive = crate::policy::archive::PolicyArchive::new(data);
    let set = match archive.read(version) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("etax-authz: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match set.write_text(&mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etax-authz: {e}");
            ExitCode::FAILURE
        }
    }
}
