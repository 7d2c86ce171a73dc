//! The command line: `serve`, `config`, `keys …`, `check`, `test`, `fmt`,
//! `explain`, `fixture`, `import`, `audit …`, `gen`. The `serve` flags are in
//! [`crate::config`]; the authoring commands' bodies in [`crate::authoring`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::authn::PasswordArgs;
use crate::config::{self, ServeArgs};
use crate::policy::LoadError;
use crate::server::{self, ServeOptions};

mod audit;
use audit::AuditCommand;

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
        /// Import into a fleet (`--fleet URL`): DATA becomes a replica.
        #[command(flatten)]
        fleet: crate::fleet::FleetArgs,
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
        /// Give up (and fail) when the proofs take longer than this.
        #[arg(long, default_value_t = crate::prove::CLI_TIMEOUT_MS)]
        proof_timeout_ms: u64,
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
        #[command(flatten)]
        at: KeyStore,
    },
    /// Show each key's id, scopes, creation (and revocation) time and hash
    /// prefix.
    List {
        #[command(flatten)]
        at: KeyStore,
    },
    /// Revoke a key: requests with it are refused (401) as soon as a
    /// running server has read the file (or the fleet's table) again.
    Revoke {
        #[arg(long)]
        id: String,
        #[command(flatten)]
        at: KeyStore,
    },
}

/// Where the keys are: a file, or the fleet's database.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct KeyStore {
    /// The keys file `serve --api-keys` reads.
    #[arg(long, env = "ETAX_API_KEYS")]
    keys: Option<PathBuf>,
    /// The fleet's database: the keys every `serve --fleet` without
    /// `--api-keys` serves (revoked keys stay listed, never reused).
    #[arg(long, env = "ETAX_FLEET", value_name = "URL")]
    fleet: Option<String>,
}

/// A [`KeyStore`] as clap leaves it: exactly one of the two.
enum Target<'a> {
    File(&'a std::path::Path),
    Fleet(&'a str),
}

impl KeyStore {
    fn target(&self) -> Target<'_> {
        match (&self.fleet, &self.keys) {
            (Some(url), _) => Target::Fleet(url),
            (None, Some(path)) => Target::File(path),
            (None, None) => unreachable!("clap requires --keys or --fleet"),
        }
    }

    /// Names the store in messages (never the URL, which can hold a
    /// password).
    fn name(&self) -> String {
        match &self.keys {
            Some(path) => path.display().to_string(),
            None => "the fleet's database".to_owned(),
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
        Command::Config(_) => {
            let layered = parsed.layered.expect("config is a layered subcommand");
            print!("{}", config::show::render(&layered));
            ExitCode::SUCCESS
        }
        command => dispatch(command),
    }
}

/// Runs every subcommand that needs nothing but its own arguments.
fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Serve(args) => serve((*args).into_options()),
        Command::Config(_) => unreachable!("config is answered by main"),
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
            fleet,
        } => crate::fleet::import::run(file, data, passwords.into_policy(), &fleet),
        Command::Audit(cmd) => audit::run(*cmd),
        Command::Gen {
            enterprises,
            seed,
            out,
        } => crate::gen::command(enterprises, seed, &out),
        Command::Prove {
            policies,
            schema,
            properties,
            proof_timeout_ms,
        } => crate::prove::command::run(
            &policies,
            &schema,
            properties.as_deref(),
            std::time::Duration::from_millis(proof_timeout_ms),
        ),
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

/// `keys create|list|revoke`, on a file or (`--fleet`) the fleet's table.
/// A created key goes to stdout alone (for scripts to capture), everything
/// else to stderr.
fn keys_command(cmd: KeysCommand) -> ExitCode {
    use crate::fleet::{keys::FleetKey, keys_command as fleet};
    use crate::http::keys_file;
    let done: Result<(), crate::fleet::keys::KeysError> = match cmd {
        KeysCommand::Create { id, scope, at } => keys_file::parse_scopes(&scope)
            .map_err(Into::into)
            .and_then(|scopes| match at.target() {
                Target::Fleet(url) => fleet::create(url, &id, &scopes),
                Target::File(path) => Ok(keys_file::create(path, &id, scopes)?),
            })
            .map(|key| {
                println!("{key}");
                eprintln!(
                    "created API key {id:?} in {}; it is shown only this once",
                    at.name()
                );
            }),
        KeysCommand::List { at } => match at.target() {
            Target::Fleet(url) => fleet::list(url),
            Target::File(path) => keys_file::read(path)
                .map(|entries| {
                    let unrevoked = |entry| FleetKey {
                        entry,
                        revoked_ms: None,
                    };
                    entries.into_iter().map(unrevoked).collect()
                })
                .map_err(Into::into),
        }
        .map(|keys| print_keys(&keys)),
        KeysCommand::Revoke { id, at } => match at.target() {
            Target::Fleet(url) => fleet::revoke(url, &id),
            Target::File(path) => keys_file::revoke(path, &id).map_err(Into::into),
        }
        .map(|()| eprintln!("revoked API key {id:?} in {}", at.name())),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etax-authz: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `keys list`: one line a key, its hash only as a prefix.
fn print_keys(keys: &[crate::fleet::keys::FleetKey]) {
    use crate::audit::time::{format_time, Offset};
    let time = |ms: Option<u64>| ms.map_or("-".to_owned(), |ms| format_time(ms, Offset::default()));
    println!(
        "{:<24} {:<40} {:<25} {:<25} sha256",
        "id", "scopes", "created", "revoked"
    );
    for k in keys {
        let e = &k.entry;
        let scopes: Vec<_> = e.scopes.iter().map(|s| s.as_str()).collect();
        let fingerprint = format!("{}…", e.fingerprint());
        println!(
            "{:<24} {:<40} {:<25} {:<25} {fingerprint}",
            e.id,
            scopes.join(","),
            time(e.created_ms),
            time(k.revoked_ms)
        );
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
