//! `etax-authz config`: the merged `serve` configuration as TOML a
//! `--config` file accepts, each value followed by where it came from.
//!
//! No `serve` option holds a secret today (API keys, the pseudonym key and
//! signing keys live in files; only their paths are options). An option
//! whose name says it carries one (`*-secret`, `*-token`, `*-password`) is
//! shown as hidden, so one added later cannot leak through this command.

use std::fmt::Write as _;

use super::file::{Layered, Source};

/// Names of options whose values are never shown.
const SECRET_SUFFIXES: &[&str] = &["-secret", "-token", "-password"];

/// Options of the command that are not configuration.
const NOT_SHOWN: &[&str] = &["config", "help", "version"];

/// The TOML text.
pub fn render(layered: &Layered) -> String {
    let mut out = String::from("# etax-authz serve: the effective configuration\n");
    match &layered.file {
        Some(path) => {
            let _ = writeln!(out, "# config file: {}", path.display());
        }
        None => out.push_str("# config file: none\n"),
    }
    out.push_str("# precedence: flag > environment (ETAX_*) > config file > default\n\n");
    for arg in layered.command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(key) = arg.get_long().filter(|_| !NOT_SHOWN.contains(&id)) else {
            continue;
        };
        let line = match value(layered, arg) {
            None => format!("# {key} is not set"),
            Some(_) if is_secret(key) => format!("{key} = \"(hidden)\""),
            Some(v) => format!("{key} = {v}"),
        };
        let _ = writeln!(out, "{line}  # {}", describe(&layered.source(id)));
    }
    out
}

/// The option's value as a TOML value: switches as booleans, numbers bare,
/// everything else a quoted string.
fn value(layered: &Layered, arg: &clap::Arg) -> Option<String> {
    let id = arg.get_id().as_str();
    if !arg.get_action().takes_values() {
        return Some(layered.matches.get_flag(id).to_string());
    }
    let raw: Vec<String> = layered
        .matches
        .get_raw(id)?
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let text = raw.join(",");
    if text.parse::<i64>().is_ok() {
        return Some(text);
    }
    Some(toml::Value::String(text).to_string())
}

fn is_secret(key: &str) -> bool {
    SECRET_SUFFIXES.iter().any(|s| key.ends_with(s))
}

fn describe(source: &Source) -> String {
    match source {
        Source::Flag => "flag".to_owned(),
        Source::Env(name) => format!("environment {name}"),
        Source::File => "config file".to_owned(),
        Source::Default => "default".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_named_as_secrets_are_hidden() {
        assert!(is_secret("sms-gateway-token"));
        assert!(is_secret("admin-password"));
        assert!(!is_secret("password-min-len"));
        assert!(!is_secret("api-keys"));
    }
}
