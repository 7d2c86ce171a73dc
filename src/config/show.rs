//! `etax-authz config`: the merged `serve` configuration as TOML a
//! `--config` file accepts, each value followed by where it came from.
//!
//! API keys, the pseudonym key and signing keys live in files; only their
//! paths are options. An option whose name says it carries a secret
//! (`*-secret`, `*-token`, `*-password`) is shown as hidden, so one added
//! later cannot leak through this command. A connection string can carry a
//! password inside an innocent name (`--fleet postgres://user:pw@…`, or
//! `password=` in its query or key/value form): that part is hidden in any
//! option's value, the rest shown so the operator sees where it points.

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
            Some(v) => format!("{key} = {}", hide_passwords(&v)),
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

/// `text` with every connection-string password replaced by `(hidden)`:
/// the userinfo of `scheme://user:password@host`, and the value of
/// `password=` (a URL's query, or libpq's key/value form).
fn hide_passwords(text: &str) -> String {
    const HIDDEN: &str = "(hidden)";
    let mut out = text.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest + i);
        // The last '@' of the authority ends the userinfo (a password may
        // itself hold an unescaped '@').
        if let Some(at) = out[rest..authority_end].rfind('@').map(|i| rest + i) {
            if let Some(colon) = out[rest..at].find(':').map(|i| rest + i) {
                out.replace_range(colon + 1..at, HIDDEN);
            }
        }
    }
    let mut from = 0;
    while let Some(i) = out[from..].to_ascii_lowercase().find("password=") {
        let start = from + i + "password=".len();
        // libpq's key/value form quotes a value holding spaces.
        let end = if out[start..].starts_with('\'') {
            out[start + 1..]
                .find('\'')
                .map_or(out.len(), |j| start + j + 2)
        } else {
            out[start..]
                .find(['&', ' ', '"', '#'])
                .map_or(out.len(), |j| start + j)
        };
        out.replace_range(start..end, HIDDEN);
        from = start + HIDDEN.len();
    }
    out
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

    #[test]
    fn connection_string_passwords_are_hidden_and_the_rest_kept() {
        for (given, shown) in [
            (
                "postgres://etax:s3cret@db:5432/etax",
                "postgres://etax:(hidden)@db:5432/etax",
            ),
            (
                "postgres://etax:p@ss@db/etax?password=again&sslmode=disable",
                "postgres://etax:(hidden)@db/etax?password=(hidden)&sslmode=disable",
            ),
            ("postgres://etax@db/etax", "postgres://etax@db/etax"),
            (
                "host=db PASSWORD=kv user=etax",
                "host=db PASSWORD=(hidden) user=etax",
            ),
            (
                "host=db password='a b' user=etax",
                "host=db password=(hidden) user=etax",
            ),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
        ] {
            assert_eq!(hide_passwords(given), shown, "{given}");
        }
    }
}
