//! `serve` options from a TOML file (`--config`), the environment and
//! flags — flags win over the environment, which wins over the file — and
//! `etax-authz config`, which prints the result.

use crate::common;

use std::path::{Path, PathBuf};

use common::{cli, cli_with_env, serve_with_env, staff, Server, E_SYNCED, P_CLERK};
use serde_json::json;

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("etax.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The line of `config` output for `key`.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} ")))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

#[test]
fn config_prints_the_merged_options_and_where_each_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "body-limit = 100\nreload-poll-ms = 900\nmax-connections = 7\n\
         time-offset = \"+09:00\"\ndemo = true\n",
    );
    let env = [
        ("ETAX_RELOAD_POLL_MS", "800"),
        ("ETAX_MAX_CONNECTIONS", "9"),
    ];
    let args = [
        "config",
        "--config",
        file.to_str().unwrap(),
        "--max-connections",
        "11",
    ];
    let (code, out, err) = cli_with_env(&args, &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(line(&out, "body-limit"), "body-limit = 100  # config file");
    assert_eq!(
        line(&out, "reload-poll-ms"),
        "reload-poll-ms = 800  # environment ETAX_RELOAD_POLL_MS"
    );
    assert_eq!(
        line(&out, "max-connections"),
        "max-connections = 11  # flag"
    );
    assert_eq!(
        line(&out, "time-offset"),
        "time-offset = \"+09:00\"  # config file"
    );
    assert_eq!(line(&out, "demo"), "demo = true  # config file");
    assert_eq!(
        line(&out, "listen"),
        "listen = \"127.0.0.1:8180\"  # default"
    );
    assert_eq!(line(&out, "api-keys"), "# api-keys is not set  # default");

    // What `config` prints is itself a config file giving the same values.
    let again = write_config(dir.path(), &out);
    let (code, out2, err) = cli(&["config", "--config", again.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for key in [
        "body-limit",
        "reload-poll-ms",
        "max-connections",
        "time-offset",
        "listen",
    ] {
        let value = |o: &str| line(o, key).split("  #").next().unwrap().to_owned();
        assert_eq!(value(&out), value(&out2), "{key}");
    }
    assert_eq!(
        line(&out2, "reload-poll-ms"),
        "reload-poll-ms = 800  # config file"
    );
}

#[test]
fn unknown_keys_and_bad_values_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, named) in [
        ("max-conections = 3\n", "unknown key `max-conections`"),
        ("max_connections = 3\n", "unknown key `max_connections`"),
        ("[limits]\nmax-connections = 3\n", "unknown key `limits`"),
        ("demo = \"yes\"\n", "`demo` must be true or false"),
        (
            "max-connections = [1]\n",
            "`max-connections` must be a string, number or boolean",
        ),
        ("max-connections = 0\n", "--max-connections"),
        ("config = \"other.toml\"\n", "unknown key `config`"),
        ("listen = \n", "etax.toml"),
    ] {
        let file = write_config(dir.path(), text);
        for command in ["config", "serve"] {
            let (code, out, err) = cli(&[command, "--config", file.to_str().unwrap()]);
            assert_eq!(code, 2, "{command} with {text:?}: {out}{err}");
            assert!(err.contains(named), "{command} with {text:?}: {err}");
        }
    }
    let (code, _, err) = cli(&["config", "--config", "/nonexistent/etax.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/etax.toml"), "{err}");
}

/// A body of about 150 bytes: within a limit of 1000, over one of 100.
fn ask(s: &Server) -> u16 {
    let body = json!({"principal": staff(E_SYNCED, P_CLERK), "action": "Action::\"useFunction\"",
                      "resource": "Function::\"vat_filing\""});
    s.post("/v1/authorize", &body).0
}

#[test]
fn serve_takes_flags_over_environment_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), "body-limit = 100\n");
    let config = file.to_str().unwrap();

    let from_file = Server::start(&["--demo", "--config", config]);
    assert_eq!(ask(&from_file), 413, "the file's limit");
    drop(from_file);

    let env = [("ETAX_BODY_LIMIT", "1000")];
    let from_env = serve_with_env(&["--config", config], &env);
    assert_eq!(ask(&from_env), 200, "the environment over the file");
    drop(from_env);

    let from_flag = serve_with_env(&["--config", config, "--body-limit", "120"], &env);
    assert_eq!(ask(&from_flag), 413, "the flag over the environment");

    // The file is named by the environment as well.
    let by_env = serve_with_env(&[], &[("ETAX_CONFIG", config)]);
    assert_eq!(ask(&by_env), 413);
}
