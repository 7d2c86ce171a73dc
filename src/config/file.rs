//! The `--config` TOML file, layered under the flags and the environment.
//!
//! Keys are the long flags without `--`, in kebab-case as on the command
//! line (`max-connections = 100`, `demo = true`). The command line is parsed
//! once; every file key whose option was given neither as a flag nor by its
//! `ETAX_*` variable is then added as a flag and the line parsed again, so
//! clap checks a file value exactly as it checks a flag (same parser, same
//! ranges) and the precedence flag > environment > file > default holds by
//! construction. A key no option has is an error naming it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

/// The subcommands whose options a file may set.
pub const LAYERED: &[&str] = &["serve", "config"];

/// The option naming the file itself, which the file may not set.
const CONFIG_KEY: &str = "config";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: String, message: String },
    #[error("config file {path}: unknown key `{key}` (keys are `serve` flags without `--`, e.g. `max-connections`)")]
    UnknownKey { path: String, key: String },
    #[error("config file {path}: `{key}` {message}")]
    BadValue {
        path: String,
        key: String,
        message: String,
    },
    /// clap refused the line once the file's values were added: the
    /// message is clap's, naming the flag (the file key of the same name).
    #[error("{message}(values from config file {path}: {keys})")]
    Parse {
        path: String,
        keys: String,
        message: String,
    },
}

/// Where an option's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    /// The environment variable of that name.
    Env(String),
    File,
    Default,
}

/// The parsed command line, and for a layered subcommand, its matches and
/// the options the file supplied.
pub struct Parsed<C> {
    pub cli: C,
    pub layered: Option<Layered>,
}

pub struct Layered {
    pub matches: ArgMatches,
    pub command: clap::Command,
    pub file: Option<PathBuf>,
    /// Option ids set from the file.
    pub from_file: Vec<String>,
}

impl Layered {
    /// Where option `id` came from.
    pub fn source(&self, id: &str) -> Source {
        if self.from_file.iter().any(|f| f == id) {
            return Source::File;
        }
        match self.matches.value_source(id) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => {
                let arg = self.command.get_arguments().find(|a| a.get_id() == id);
                let name = arg.and_then(|a| a.get_env()).unwrap_or_default();
                Source::Env(name.to_string_lossy().into_owned())
            }
            _ => Source::Default,
        }
    }
}

/// Parses `args` (the program name first) as `C`, with the `--config` file
/// of a layered subcommand under its flags. clap's own errors (`--help`,
/// a bad flag) exit as clap does.
pub fn parse<C: CommandFactory + FromArgMatches>(
    args: Vec<OsString>,
) -> Result<Parsed<C>, ConfigError> {
    let command = C::command();
    let matches = command.clone().get_matches_from(args.clone());
    let Some((name, sub)) = matches
        .subcommand()
        .filter(|(name, _)| LAYERED.contains(name))
    else {
        return Ok(Parsed {
            cli: from_matches(&matches),
            layered: None,
        });
    };
    let sub_command = command
        .find_subcommand(name)
        .expect("clap matched this subcommand")
        .clone();
    let file = sub.get_one::<PathBuf>(CONFIG_KEY).cloned();
    let (matches, from_file) = match &file {
        None => (matches.clone(), Vec::new()),
        Some(path) => {
            let extra = file_flags(path, &sub_command, sub)?;
            let from_file: Vec<String> = extra.iter().map(|(id, _)| id.clone()).collect();
            let mut args = args;
            args.extend(extra.into_iter().map(|(_, flag)| flag));
            let matches =
                command
                    .clone()
                    .try_get_matches_from(args)
                    .map_err(|e| ConfigError::Parse {
                        path: path.display().to_string(),
                        keys: from_file.join(", "),
                        message: e.render().to_string(),
                    })?;
            (matches, from_file)
        }
    };
    let cli = from_matches(&matches);
    let (_, sub) = matches.subcommand().expect("matched before");
    Ok(Parsed {
        cli,
        layered: Some(Layered {
            matches: sub.clone(),
            command: sub_command,
            file,
            from_file,
        }),
    })
}

fn from_matches<C: FromArgMatches>(matches: &ArgMatches) -> C {
    C::from_arg_matches(matches).unwrap_or_else(|e| e.exit())
}

/// The flags (`--key=value`, or `--key` for a switch) the file adds: one per
/// key whose option the command line and environment left at its default.
fn file_flags(
    path: &Path,
    command: &clap::Command,
    given: &ArgMatches,
) -> Result<Vec<(String, OsString)>, ConfigError> {
    let table = read(path)?;
    let mut flags = Vec::new();
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != CONFIG_KEY)
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.display().to_string(),
                key: key.clone(),
            })?;
        let id = arg.get_id().as_str().to_owned();
        if matches!(
            given.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let bad = |message: &str| ConfigError::BadValue {
            path: path.display().to_string(),
            key: key.clone(),
            message: message.to_owned(),
        };
        if arg.get_action().takes_values() {
            let text = scalar(&value).ok_or_else(|| bad("must be a string, number or boolean"))?;
            flags.push((id, OsString::from(format!("--{key}={text}"))));
        } else {
            match value {
                toml::Value::Boolean(true) => flags.push((id, OsString::from(format!("--{key}")))),
                toml::Value::Boolean(false) => {}
                _ => return Err(bad("must be true or false")),
            }
        }
    }
    Ok(flags)
}

/// The file's top-level keys. A table (`[section]`) is refused as an unknown
/// key by the caller, since no option has that name.
fn read(path: &Path) -> Result<BTreeMap<String, toml::Value>, ConfigError> {
    let text =
        crate::files::read_text(path, crate::files::MAX_DOCUMENT_BYTES).map_err(|source| {
            ConfigError::Read {
                path: path.display().to_string(),
                source,
            }
        })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    Ok(table.into_iter().collect())
}

/// A value as it would be written after the flag.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}
