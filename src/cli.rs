//! The command line: `serve`, `config`, `keys …`, `check`, `test`, `fmt`,
//! `explain`, `fixture`, `import`, `audit …`, `gen`. The `serve` flags are in
//! [`crate::config`]; the authoring commands' bodies in [`crate::authoring`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::audit;
use crate::authn::PasswordArgs;
use crate::config::{self, ServeArgs};
use crate::policy::LoadError;
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
    Serve(Box<ServeArgs>),
    /// Print the configuration `serve` would run with (same flags, same
    /// environment, same --config file) as TOML, with where each value
    /// came from; exit 2 if it does not parse.
    Config(Box<ServeArgs>),
    /// Create, list and revoke API keys in the keys file `serve --api-keys`
    /// reads (a running server picks changes up without restart).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read, check and prune the decision log (on a data directory no server
    /// holds open; while it runs use GET /v1/audit/...).
    #[command(subcommand)]
    Audit(Box<AuditCommand>),
    /// Validate every policy strictly against the schema.
    Check {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        #[arg(long, default_value = "schemas/etax.cedarschema")]
        schema: PathBuf,
        /// Warnings are errors, and entity ids the data does not hold
        /// (`Function::"…"`) are linted: against --data's store, or the demo.
        #[arg(long)]
        strict: bool,
        /// With --strict: lint against this data directory's store.
        #[arg(long, requires = "strict")]
        data: Option<PathBuf>,
    },
    /// Run policy test suites (files, or directories of `*.json`) and
    /// report coverage.
    Test {
        #[arg(default_value = "policies/tests")]
        paths: Vec<PathBuf>,
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        #[arg(long, default_value = "schemas/etax.cedarschema")]
        schema: PathBuf,
        /// Fail when a policy is not covered by an allow and a deny case.
        #[arg(long)]
        require_coverage: bool,
        /// Only the cases whose `suite :: name` contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Format the policy files with Cedar's formatter.
    Fmt {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Change nothing; print the diff and fail if a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Decide one question against a data directory's store and show, for
    /// every policy of the action, whether its scope and each clause held.
    /// Exit 0 on allow, 2 on deny.
    Explain(ExplainArgs),
    /// Write a test-suite fixture (Cedar JSON entities) of every identity
    /// an import document holds.
    Fixture {
        #[arg(long, default_value = "examples/demo.json")]
        from: PathBuf,
        #[arg(long, default_value = "schemas/etax.cedarschema")]
        schema: PathBuf,
        out: PathBuf,
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

/// `explain`'s question and where it is asked.
#[derive(clap::Args)]
struct ExplainArgs {
    #[arg(long)]
    principal: String,
    #[arg(long)]
    action: String,
    #[arg(long)]
    resource: String,
    /// The context, a JSON object.
    #[arg(long)]
    context: Option<String>,
    #[arg(long, default_value = "data")]
    data: PathBuf,
    #[arg(long, default_value = "policies")]
    policies: PathBuf,
    #[arg(long, default_value = "schemas/etax.cedarschema")]
    schema: PathBuf,
    /// Print JSON (the `explain` member `/v1/authorize?explain=true` returns).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key (256 random bits), print it once on stdout and store
    /// only its SHA-256; the file is created if missing.
    Create {
        /// A name for the calling system: letters, digits, '-', '_', '.'.
        #[arg(long)]
        id: String,
        /// Comma-separated: authorize, login, maintain, admin, audit,
        /// audit_person.
        #[arg(long)]
        scope: String,
        #[arg(long, env = "ETAX_API_KEYS")]
        keys: PathBuf,
    },
    /// Show each key's id, scopes, creation time and hash prefix.
    List {
        #[arg(long, env = "ETAX_API_KEYS")]
        keys: PathBuf,
    },
    /// Remove a key: requests with it are refused (401) as soon as a
    /// running server has read the file again.
    Revoke {
        #[arg(long)]
        id: String,
        #[arg(long, env = "ETAX_API_KEYS")]
        keys: PathBuf,
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
    let parsed = match config::file::parse::<Cli>(std::env::args_os().collect()) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("etax-authz: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(match &parsed.cli.command {
        Command::Serve(args) => args.ops.log_format,
        _ => crate::http::options::LogFormat::Text,
    });
    match parsed.cli.command {
        Command::Serve(args) => serve((*args).into_options()),
        Command::Config(_) => {
            let layered = parsed.layered.expect("config is a layered subcommand");
            print!("{}", config::show::render(&layered));
            ExitCode::SUCCESS
        }
        Command::Keys(cmd) => keys_command(cmd),
        Command::Check {
            policies,
            schema,
            strict,
            data,
        } => check(&policies, &schema, strict, data.as_deref()),
        Command::Test {
            paths,
            policies,
            schema,
            require_coverage,
            filter,
        } => crate::authoring::commands::test(&crate::authoring::commands::TestArgs {
            paths: &paths,
            policies: &policies,
            schema: &schema,
            require_coverage,
            filter: filter.as_deref(),
        }),
        Command::Fmt { policies, check } => crate::authoring::commands::fmt(&policies, check),
        Command::Explain(args) => explain(args),
        Command::Fixture { from, schema, out } => {
            crate::authoring::fixture::run(&from, &out, &schema)
        }
        Command::Import {
            file,
            data,
            passwords,
        } => crate::import::command::run(&file, &data, &passwords.into_policy()),
        Command::Audit(cmd) => audit_command(*cmd),
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

/// `serve`: runs the server on a multi-threaded runtime until it stops.
fn serve(opts: ServeOptions) -> ExitCode {
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

/// `keys create|list|revoke`. A created key goes to stdout alone (for
/// scripts to capture), everything else to stderr.
fn keys_command(cmd: KeysCommand) -> ExitCode {
    use crate::http::keys_file;
    let done = match cmd {
        KeysCommand::Create { id, scope, keys } => keys_file::parse_scopes(&scope)
            .and_then(|scopes| keys_file::create(&keys, &id, scopes))
            .map(|key| {
                println!("{key}");
                eprintln!(
                    "created API key {id:?} in {}; it is shown only this once",
                    keys.display()
                );
            }),
        KeysCommand::List { keys } => keys_file::read(&keys).map(|entries| {
            println!("{:<24} {:<40} {:<25} sha256", "id", "scopes", "created");
            for e in entries {
                let scopes: Vec<_> = e.scopes.iter().map(|s| s.as_str()).collect();
                let created = e.created_ms.map_or("-".to_owned(), |ms| {
                    audit::time::format_time(ms, audit::time::Offset::default())
                });
                let fingerprint = format!("{}…", e.fingerprint());
                println!(
                    "{:<24} {:<40} {created:<25} {fingerprint}",
                    e.id,
                    scopes.join(",")
                );
            }
        }),
        KeysCommand::Revoke { id, keys } => keys_file::revoke(&keys, &id)
            .map(|()| eprintln!("revoked API key {id:?} in {}", keys.display())),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etax-authz: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `check`, linting entity ids with `--strict`: against `--data`'s store,
/// or the demo document.
fn check(
    policies: &std::path::Path,
    schema: &std::path::Path,
    strict: bool,
    data: Option<&std::path::Path>,
) -> ExitCode {
    use crate::authoring::commands::KnownFrom;
    let demo = PathBuf::from("examples/demo.json");
    let known = strict.then(|| match data {
        Some(d) => KnownFrom::Store(d),
        None => KnownFrom::Document(&demo),
    });
    crate::authoring::commands::check(policies, schema, known)
}

fn explain(args: ExplainArgs) -> ExitCode {
    crate::authoring::explain::run(
        &crate::authoring::explain::Question {
            principal: &args.principal,
            action: &args.action,
            resource: &args.resource,
            context: args.context.as_deref(),
        },
        &args.data,
        &args.policies,
        &args.schema,
        args.json,
    )
}

fn init_tracing(format: crate::http::options::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ETAX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::http::options::LogFormat::Text => fmt.with_ansi(ansi).try_init(),
        // The request's span (its id) in every line of the request.
        crate::http::options::LogFormat::Json => fmt.json().with_current_span(true).try_init(),
    };
}
