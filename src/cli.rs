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
        #[command(flatten)]
        authn: crate::authn::AuthnArgs,
        /// JSON list of {id, key_sha256, scopes}; without it the service runs
        /// open (development on loopback only).
        #[arg(long, env = "ETAX_API_KEYS")]
        api_keys: Option<PathBuf>,
        /// Run open (no --api-keys) on an address other than loopback:
        /// everyone who reaches the port is trusted and receives SMS and
        /// reset codes. Refused without this flag.
        #[arg(long, env = "ETAX_INSECURE_OPEN")]
        insecure_open: bool,
        /// Prune decision-log records older than this many days (hourly).
        #[arg(long, env = "ETAX_AUDIT_RETENTION_DAYS")]
        audit_retention_days: Option<u64>,
        /// How often to look for changed policy files, in milliseconds; 0
        /// reloads on SIGHUP only.
        #[arg(long, default_value_t = 500, env = "ETAX_RELOAD_POLL_MS")]
        reload_poll_ms: u64,
        /// Built request entities to keep for repeated questions (dropped at
        /// any identity write or policy reload); 0 builds every one afresh.
        #[arg(long, default_value_t = crate::decision::DEFAULT_CACHE_ENTRIES, env = "ETAX_DECISION_CACHE_ENTRIES")]
        decision_cache_entries: usize,
        #[command(flatten)]
        limits: crate::http::limits::LimitArgs,
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
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the head (sequence number, hash, time) for auditors to keep.
    Checkpoint {
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Print matching records.
    Query {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value = "table", value_parser = ["table", "jsonl", "csv"])]
        format: String,
    },
    /// Stream records as JSON lines (constant memory).
    Export {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Only records at or after this time (RFC 3339 UTC, date, ms, or an age like 7d).
        #[arg(long)]
        since: Option<String>,
    },
    /// Remove records older than a time, leaving an anchor record so the
    /// rest still verifies.
    Prune {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Remove records before this time (RFC 3339 UTC, date, ms, or an age like 365d).
        #[arg(long)]
        before: String,
    },
}

#[derive(clap::Args)]
struct FilterArgs {
    /// At or after (RFC 3339 UTC, date, ms since the epoch, or an age like 2h).
    #[arg(long)]
    since: Option<String>,
    /// Before.
    #[arg(long)]
    until: Option<String>,
    /// Part of the principal; ID numbers are masked before comparing.
    #[arg(long)]
    principal: Option<String>,
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
}

impl FilterArgs {
    fn into_filter(self) -> Result<audit::Filter, String> {
        let now = crate::now_ms();
        let time = |t: Option<String>| t.map(|t| audit::time::parse_time(&t, now)).transpose();
        Ok(audit::Filter {
            since_ms: time(self.since)?,
            until_ms: time(self.until)?,
            principal: self.principal,
            enterprise: self.enterprise,
            action: self.action,
            decision: self.decision.map(|d| {
                if d == "allow" {
                    audit::Outcome::Allow
                } else {
                    audit::Outcome::Deny
                }
            }),
            policy: self.policy,
            kind: self.kind,
        })
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
            json,
        } => commands::verify(&data, checkpoint.as_deref(), json),
        AuditCommand::Checkpoint { data } => commands::checkpoint(&data),
        AuditCommand::Query {
            data,
            filter,
            format,
        } => match filter.into_filter() {
            Ok(f) => commands::query(&data, &f, format.parse().expect("clap checked the format")),
            Err(e) => bad(e),
        },
        AuditCommand::Export { data, since } => {
            match since.map(|s| audit::time::parse_time(&s, now)).transpose() {
                Ok(since) => commands::export(&data, since),
                Err(e) => bad(e),
            }
        }
        AuditCommand::Prune { data, before } => match audit::time::parse_time(&before, now) {
            Ok(before) => commands::prune(&data, before),
            Err(e) => bad(e),
        },
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
            insecure_open,
            audit_retention_days,
            reload_poll_ms,
            decision_cache_entries,
            limits,
        } => {
            let opts = ServeOptions {
                listen,
                data_dir: data,
                policies_dir: policies,
                schema,
                demo: demo.then(|| PathBuf::from("examples/demo.json")),
                body_limit,
                authn: authn.into_config(),
                api_keys,
                insecure_open,
                audit_retention_days,
                reload_poll: (reload_poll_ms > 0)
                    .then(|| std::time::Duration::from_millis(reload_poll_ms)),
                decision_cache_entries,
                limits: limits.into_limits(),
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
