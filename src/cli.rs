//! The command line: `serve`, `check`, `test`, `fmt`, `import`, `audit …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::audit;
use crate::authn::PasswordArgs;
use crate::policy::{LoadError, PolicySnapshot};
use crate::server::{self, ServeOptions};

#[derive(Parser)]
#[command(
    name = "etax-authz",
    version,
    about = "Cedar authorization sidecar for the electronic tax bureau"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        /// Address to listen on; loopback by default.
        #[arg(long, default_value = "127.0.0.1:8180", env = "ETAX_LISTEN")]
        listen: SocketAddr,
        /// Directory of the redb files.
        #[arg(long, default_value = "data", env = "ETAX_DATA")]
        data: PathBuf,
        #[arg(long, default_value = "policies", env = "ETAX_POLICIES")]
        policies: PathBuf,
        #[arg(long, default_value = "schemas/etax.cedarschema", env = "ETAX_SCHEMA")]
        schema: PathBuf,
        /// Import examples/demo.json when the store is empty.
        #[arg(long)]
        demo: bool,
        /// Largest accepted request body, in bytes.
        #[arg(long, default_value_t = crate::http::DEFAULT_BODY_LIMIT, env = "ETAX_BODY_LIMIT")]
        body_limit: usize,
        // Boxed: the credential flags would make this the largest command.
        #[command(flatten)]
        authn: Box<crate::authn::AuthnArgs>,
        /// JSON list of {id, key_sha256, scopes}; without it the service runs
        /// open (development on loopback only).
        #[arg(long, env = "ETAX_API_KEYS")]
        api_keys: Option<PathBuf>,
        /// Exact person lookups (audit filters by a full ID number, scope
        /// `audit_person`) each caller may make per minute; past it, 429.
        #[arg(long, env = "ETAX_PERSON_LOOKUPS_PER_MINUTE",
              default_value_t = crate::http::callers::DEFAULT_PERSON_LOOKUPS_PER_MINUTE)]
        person_lookups_per_minute: u32,
        /// Run open (no --api-keys) on an address other than loopback:
        /// everyone who reaches the port is trusted and receives SMS and
        /// reset codes. Refused without this flag.
        #[arg(long, env = "ETAX_INSECURE_OPEN")]
        insecure_open: bool,
        /// Prune decision-log records older than this many days (hourly).
        #[arg(long, env = "ETAX_AUDIT_RETENTION_DAYS")]
        audit_retention_days: Option<u64>,
        /// Retention never removes records younger than this many days
        /// (PRC Cybersecurity Law art. 21: network logs kept six months).
        #[arg(long, default_value_t = audit::MIN_RETENTION_DAYS, env = "ETAX_AUDIT_MIN_RETENTION_DAYS")]
        audit_min_retention_days: u64,
        /// Start even if the decision log's files disagree with its
        /// head.json (cut or rewritten): they are moved, kept, into
        /// DATA/decisions/damaged-<time>/ and a new segment starts with a
        /// log.damage record. Run `audit verify` first.
        #[arg(long)]
        accept_damaged_log: bool,
        /// Chain hash of a decision log created now: sha256 or sm3 (GB/T
        /// 39786-2021). An existing log keeps the one it was created with.
        #[arg(long, default_value = "sha256", env = "ETAX_LOG_HASH")]
        log_hash: audit::ChainHash,
        /// How often to look for changed policy files, in milliseconds; 0
        /// reloads on SIGHUP only.
        #[arg(long, default_value_t = 500, env = "ETAX_RELOAD_POLL_MS")]
        reload_poll_ms: u64,
        /// Built request entities to keep for repeated questions (dropped at
        /// any identity write or policy reload); 0 builds every one afresh.
        #[arg(long, default_value_t = crate::decision::DEFAULT_CACHE_ENTRIES, env = "ETAX_DECISION_CACHE_ENTRIES")]
        decision_cache_entries: usize,
        /// Key file of the decision log's person pseudonyms (default
        /// DATA/pseudonym.key, created 0600 on first start).
        #[arg(long, env = "ETAX_PSEUDONYM_KEY")]
        pseudonym_key: Option<PathBuf>,
        #[command(flatten)]
        limits: crate::http::limits::LimitArgs,
        /// Offset audit queries read times at (when they name none) and show
        /// them at; a request's tz= overrides it.
        #[arg(long, default_value = "+08:00", env = "ETAX_TIME_OFFSET")]
        time_offset: audit::time::Offset,
        /// Prove POLICIES/properties/ (cvc5) for the start set and refuse a
        /// reload whose set fails a property.
        #[arg(long, env = "ETAX_REQUIRE_PROOFS")]
        require_proofs: bool,
    },
    /// Read, check and prune the decision log (on a data directory no server
    /// holds open; while it runs use GET /v1/audit/...).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Validate every policy strictly against the schema.
    Check {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        #[arg(long, default_value = "schemas/etax.cedarschema")]
        schema: PathBuf,
    },
    /// Run the policy test suites (`*.json`) in DIR and report coverage.
    Test {
        #[arg(default_value = "policies/tests")]
        dir: PathBuf,
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        #[arg(long, default_value = "schemas/etax.cedarschema")]
        schema: PathBuf,
        /// Fail when a policy is not covered by an allow and a deny case.
        #[arg(long)]
        require_coverage: bool,
    },
    /// Format the policy files with Cedar's formatter.
    Fmt {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Change nothing; fail if a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Import identities from a JSON file, all or nothing.
    Import {
        file: PathBuf,
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// The same password rule and deny list as `serve`.
        #[command(flatten)]
        passwords: PasswordArgs,
    },
    /// Prove the invariants in policies/properties/ for all data (cvc5).
    Prove {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        #[arg(long, default_value = "schemas/etax.cedarschema")]
        schema: PathBuf,
        /// Property files; default POLICIES/properties.
        #[arg(long)]
        properties: Option<PathBuf>,
    },
    /// Who gains and who loses what if the candidate policies went live:
    /// every stored principal's questions decided by both sets.
    Impact {
        /// The changed policy directory.
        #[arg(long)]
        candidate: PathBuf,
        /// The active policies.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        #[arg(long, default_value = "schemas/etax.cedarschema")]
        schema: PathBuf,
        /// A data directory no server holds open (a copy of a live one).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[arg(long, default_value = "text", value_parser = ["text", "jsonl"])]
        format: String,
        /// Skip the solver's view (requests of any data that differ).
        #[arg(long)]
        no_symbolic: bool,
    },
    /// Write a deterministic synthetic bureau (about ten staff per
    /// enterprise) as an import file, for load tests: every account shares
    /// one password, printed on stderr.
    Gen {
        #[arg(long)]
        enterprises: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
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
        /// (SPKI PEM) first; exit 4 if it is not genuine.
        #[arg(long, requires = "checkpoint")]
        public_key: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// An anchor that pruned a record younger than this many days
        /// (measured from the anchor's own time) is tampering.
        #[arg(long, default_value_t = audit::MIN_RETENTION_DAYS)]
        min_retention_days: u64,
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

#[derive(clap::Args)]
struct FilterArgs {
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

fn audit_command(cmd: AuditCommand) -> ExitCode {
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
        } => {
            let checkpoint = match checkpoint
                .map(|c| commands::check_checkpoint_signature(&c, public_key.as_deref()))
                .transpose()
            {
                Ok(c) => c,
                Err(code) => return code,
            };
            commands::verify(&data, checkpoint.as_deref(), json, min_retention_days)
        }
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
        } => match filter.to_filter(&data) {
            Ok(f) => commands::query(&data, &f, &filter.output(&format, bom)),
            Err(e) => bad(e),
        },
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
        } => match filter.to_filter(&data) {
            Ok(f) => commands::export(&data, &f, &filter.output(&format, bom)),
            Err(e) => bad(e),
        },
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve {
            listen,
            data,
            policies,
            schema,
            demo,
            body_limit,
            authn,
            api_keys,
            person_lookups_per_minute,
            insecure_open,
            audit_retention_days,
            audit_min_retention_days,
            accept_damaged_log,
            log_hash,
            reload_poll_ms,
            decision_cache_entries,
            pseudonym_key,
            limits,
            time_offset,
            require_proofs,
        } => {
            let opts = ServeOptions {
                listen,
                data_dir: data,
                policies_dir: policies,
                schema,
                demo: demo.then(|| PathBuf::from("examples/demo.json")),
                body_limit,
                authn: (*authn).into_config(),
                api_keys,
                person_lookups_per_minute,
                insecure_open,
                audit_retention_days,
                audit_min_retention_days,
                accept_damaged_log,
                log_hash,
                reload_poll: (reload_poll_ms > 0)
                    .then(|| std::time::Duration::from_millis(reload_poll_ms)),
                decision_cache_entries,
                pseudonym_key,
                limits: limits.into_limits(),
                time_offset,
                require_proofs,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build();
            let result = match runtime {
                Ok(rt) => rt.block_on(server::run(opts)),
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(server::ServeError::Policies(LoadError::Invalid(diags))) => {
                    for d in &diags {
                        eprintln!("{d}");
                    }
                    eprintln!("etax-authz: policies are invalid; not serving");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("etax-authz: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { policies, schema } => check(&policies, &schema),
        Command::Test {
            dir,
            policies,
            schema,
            require_coverage,
        } => test(&dir, &policies, &schema, require_coverage),
        Command::Fmt { policies, check } => fmt(&policies, check),
        Command::Import {
            file,
            data,
            passwords,
        } => crate::import::command::run(&file, &data, &passwords.into_policy()),
        Command::Audit(cmd) => audit_command(cmd),
        Command::Gen {
            enterprises,
            seed,
            out,
        } => crate::gen::command(enterprises, seed, &out),
        Command::Prove {
            policies,
            schema,
            properties,
        } => crate::prove::command::run(&policies, &schema, properties.as_deref()),
        Command::Impact {
            candidate,
            policies,
            schema,
            data,
            format,
            no_symbolic,
        } => crate::impact::command::run(&crate::impact::command::Args {
            candidate: &candidate,
            policies: &policies,
            schema: &schema,
            data: &data,
            jsonl: format == "jsonl",
            symbolic: !no_symbolic,
        }),
    }
}

fn test(
    dir: &std::path::Path,
    policies: &std::path::Path,
    schema: &std::path::Path,
    require_coverage: bool,
) -> ExitCode {
    use crate::policy::testing;
    let snap = match PolicySnapshot::load(policies, schema) {
        Ok(snap) => snap,
        Err(e) => {
            if let LoadError::Invalid(diags) = &e {
                diags.iter().for_each(|d| println!("{d}"));
            }
            eprintln!("test: the policies do not load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = match testing::suite_files(dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("test: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    println!("running {} suite(s) from {}", files.len(), dir.display());
    let report = testing::run_files(&snap, &files, |case| match &case.failure {
        None => println!("test {} :: {} ... ok", case.suite, case.name),
        Some(why) => println!("test {} :: {} ... FAILED\n    {why}", case.suite, case.name),
    });
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
            println!("    {} :: {}", c.suite, c.name);
        }
    }
    let gaps: Vec<_> = report.gaps().collect();
    println!(
        "\ncoverage: {} of {} policies exercised by both an allow and a deny case",
        report.coverage.len() - gaps.len(),
        report.coverage.len()
    );
    for (id, c, gap) in &gaps {
        println!("    not covered: {id} ({}): {gap}", c.file);
    }
    let ok = report.failed() == 0 && (gaps.is_empty() || !require_coverage);
    println!(
        "\ntest result: {}. {} passed, {} failed",
        if ok { "ok" } else { "FAILED" },
        report.passed(),
        report.failed()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fmt(policies: &std::path::Path, check: bool) -> ExitCode {
    use crate::policy::format::{format_files, FileOutcome};
    let files = match crate::policy::policy_files_in(policies) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("fmt: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut bad = 0;
    for outcome in format_files(&files, check) {
        match outcome {
            FileOutcome::Unchanged(_) => {}
            FileOutcome::Changed(p) if check => {
                bad += 1;
                println!("{}: not formatted (run `etax-authz fmt`)", p.display());
            }
            FileOutcome::Changed(p) => println!("formatted {}", p.display()),
            FileOutcome::Failed(p, e) => {
                bad += 1;
                println!("{}: cannot format: {e}", p.display());
            }
        }
    }
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check(policies: &std::path::Path, schema: &std::path::Path) -> ExitCode {
    match PolicySnapshot::load(policies, schema) {
        Ok(snap) => {
            for w in snap.warnings() {
                println!("{w}");
            }
            println!(
                "ok: {} policies valid against {} (version {})",
                snap.policies().policies().count(),
                schema.display(),
                &snap.version()[..16]
            );
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(diags)) => {
            for d in &diags {
                println!("{d}");
            }
            let errors = diags
                .iter()
                .filter(|d| d.severity == crate::policy::Severity::Error)
                .count();
            eprintln!("check failed: {errors} error(s)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("check failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ETAX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}
