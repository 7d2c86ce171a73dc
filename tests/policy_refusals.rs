//! Policies own their refusals (issue #16, item 3): the error a refused
//! caller gets comes from the deciding forbid's `@code` and `@message`, not
//! from its `@id`, so renaming a policy changes no answer; a forbid without
//! them never loads — not in `check`, not at `serve`, not on a reload.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{cli, login_by_sms, try_serve, with_session, ServeAttempt, Server};
use serde_json::{json, Value};

const DALIAN: &str = "91210200MA0DAL003B";
const DALIAN_PW: &str = "Haiyun@2026";

/// A forbid that says nothing about why it refuses.
const SILENT_FORBID: &str = "// no @code, no @message\n@id(\"extra.silent\")\nforbid (\n  principal is Etax::Staff,\n  action == Etax::Action::\"useFunction\",\n  resource == Etax::Function::\"invoice_issue\"\n);\n";

/// Copies of the bundled policies and schema in `tmp`; answers the
/// policies directory and the schema file.
fn copy_policies(tmp: &Path) -> (PathBuf, PathBuf) {
    let root = Path::new(common::CRATE_ROOT);
    let policies = tmp.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    for entry in std::fs::read_dir(root.join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, policies.join(path.file_name().unwrap())).unwrap();
        }
    }
    let schema = tmp.join("etax.cedarschema");
    std::fs::copy(root.join("schemas/etax.cedarschema"), &schema).unwrap();
    (policies, schema)
}

/// Replaces `from` by `to` in policy file `file`, which must contain it.
fn edit(policies: &Path, file: &str, from: &str, to: &str) {
    let path = policies.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no {from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

fn serve_args<'a>(policies: &'a Path, schema: &'a Path) -> Vec<&'a str> {
    vec![
        "--policies",
        policies.to_str().unwrap(),
        "--schema",
        schema.to_str().unwrap(),
    ]
}

/// R3's refusal, as the quick login of the never-synced enterprise gets it.
fn quick_login_refusal(server: &Server) -> Value {
    let (status, v) = server.post(
        "/v1/login/quick/code",
        &json!({"account": DALIAN, "password": DALIAN_PW, "identity_type": "legal_rep",
                "id_number": "210203198808086069"}),
    );
    assert_eq!(status, 403, "{v}");
    v["error"].clone()
}

#[test]
fn renaming_a_forbid_keeps_the_error_it_refuses_with() {
    let tmp = tempfile::tempdir().unwrap();
    let (policies, schema) = copy_policies(tmp.path());
    let original = {
        let server = Server::demo_in(&tmp.path().join("a"), &serve_args(&policies, &schema));
        quick_login_refusal(&server)
    };
    assert_eq!(original["code"], "normal_login_required", "{original}");
    assert_eq!(original["policies"], json!(["login.quick-requires-sync"]));

    edit(
        &policies,
        "login.cedar",
        "@id(\"login.quick-requires-sync\")",
        "@id(\"login.r3-first-normal-login\")",
    );
    edit(
        &policies,
        "staff-maintenance.cedar",
        "@id(\"maintain.ordinary-staff-excluded\")",
        "@id(\"maintain.r13\")",
    );
    let server = Server::demo_in(&tmp.path().join("b"), &serve_args(&policies, &schema));
    let renamed = quick_login_refusal(&server);
    assert_eq!(renamed["code"], original["code"], "{renamed}");
    assert_eq!(renamed["message"], original["message"], "{renamed}");
    assert_eq!(renamed["policies"], json!(["login.r3-first-normal-login"]));

    // Maintenance speaks with the renamed forbid's code and message too.
    let (clerk, _) = login_by_sms(&server, "*伟");
    let (status, v) = with_session(&server, &clerk, "GET", "/v1/maintenance/staff", None);
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "denied", "{v}");
    assert_eq!(v["error"]["policies"], json!(["maintain.r13"]), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only the legal representative"),
        "{v}"
    );
}

#[test]
fn check_names_a_forbid_without_code_or_message() {
    let tmp = tempfile::tempdir().unwrap();
    let (policies, schema) = copy_policies(tmp.path());
    std::fs::write(policies.join("extra.cedar"), SILENT_FORBID).unwrap();
    edit(
        &policies,
        "login.cedar",
        "@code(\"normal_login_required\")",
        "@code(\"Normal-Login\")",
    );
    let (code, out, err) = cli(&[
        "check",
        "--policies",
        policies.to_str().unwrap(),
        "--schema",
        schema.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(
        all.lines()
            .any(|l| l.contains("extra.cedar:2:1: error: [extra.silent]") && l.contains("@code")),
        "{all}"
    );
    assert!(
        all.lines().any(|l| l.contains("login.cedar:")
            && l.contains("[login.quick-requires-sync]")
            && l.contains("snake_case")),
        "{all}"
    );
}

#[test]
fn serve_refuses_such_a_forbid_and_a_reload_keeps_the_old_set() {
    let tmp = tempfile::tempdir().unwrap();
    let (policies, schema) = copy_policies(tmp.path());
    std::fs::write(policies.join("extra.cedar"), SILENT_FORBID).unwrap();
    let data = tmp.path().join("refused");
    let mut args = vec!["--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()];
    args.extend(serve_args(&policies, &schema));
    match try_serve(&args) {
        ServeAttempt::Exited(code, err) => {
            assert_ne!(code, 0, "{err}");
            assert!(
                err.contains("extra.cedar:2:1") && err.contains("@code"),
                "{err}"
            );
        }
        ServeAttempt::Listening(_) => panic!("served a forbid without @code"),
    }

    std::fs::remove_file(policies.join("extra.cedar")).unwrap();
    let mut args = serve_args(&policies, &schema);
    args.extend(["--reload-poll-ms", "100"]);
    let server = Server::demo_in(&tmp.path().join("data"), &args);
    let v0 = server.get("/v1/status").1["policy_version"].clone();
    std::fs::write(policies.join("extra.cedar"), SILENT_FORBID).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let (_, status) = server.get("/v1/status");
        if !status["last_reload_error"].is_null() {
            break status;
        }
        assert!(Instant::now() < deadline, "the reload was not rejected");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["policy_version"], v0, "the old set keeps serving");
    let diagnostics = status["last_reload_error"]["diagnostics"].to_string();
    assert!(diagnostics.contains("[extra.silent]"), "{diagnostics}");
    assert_eq!(
        quick_login_refusal(&server)["code"],
        "normal_login_required"
    );
}
