//! The authoring commands and the reload reports against the real binary:
//! `check --strict` (a typo'd function id, an impossible forbid), `fmt`'s
//! readable errors and `--check` diff, `test FILE --filter` with the explain
//! trace of a failure, `fixture`, and `serve --strict-reload` with the
//! reload's policy-id changes on `/v1/status`.

use crate::common;

use std::path::Path;

use common::*;

const TYPO: &str = r#"@id("typo.invoice-purchase")
permit (
  principal is Etax::Staff,
  action == Etax::Action::"useFunction",
  resource == Etax::Function::"invoice_purchse"
);
"#;

/// A forbid on a principal type useFunction never has: it can never match.
const IMPOSSIBLE: &str = r#"@id("impossible.agency")
@code("never")
@message("never refuses")
forbid (
  principal is Etax::Agency,
  action == Etax::Action::"useFunction",
  resource
);
"#;

fn policies_with(tmp: &Path, name: &str, text: &str) -> String {
    let dir = tmp.join("policies");
    copy_dir(&Path::new(CRATE_ROOT).join("policies"), &dir);
    std::fs::write(dir.join(name), text).unwrap();
    dir.to_str().unwrap().to_owned()
}

#[test]
fn strict_check_refuses_what_plain_check_lets_through() {
    for (name, text, needle) in [
        (
            "typo.cedar",
            TYPO,
            "Function::\"invoice_purchse\" names no known Function",
        ),
        ("impossible.cedar", IMPOSSIBLE, "impossible.agency"),
        // Read by no load, as only `*.cedar` is: the author is told.
        ("forgotten.CEDAR", IMPOSSIBLE, "is not read"),
        ("spaced.cedar ", IMPOSSIBLE, "is not read"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = policies_with(tmp.path(), name, text);
        let (code, out, err) = cli(&["check", "--policies", &dir]);
        assert_eq!(code, 0, "plain check passes {name}: {out}{err}");
        let (code, out, err) = cli(&["check", "--strict", "--policies", &dir]);
        assert_eq!(code, 1, "{out}{err}");
        let line = out
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            line.contains(&format!("{name}:")) && line.contains(": error: "),
            "{line}"
        );
    }
    let (code, out, err) = cli(&["check", "--strict"]);
    assert_eq!(code, 0, "the bundled set is strict-clean: {out}{err}");
}

#[test]
fn fmt_errors_are_placed_and_check_prints_a_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a.cedar"),
        "@id(\"a\")\npermit(principal,action,resource);\n",
    )
    .unwrap();
    let (code, out, _) = cli(&["fmt", "--check", "--policies", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("-permit(principal,action,resource);"), "{out}");
    assert!(
        out.contains("+permit (principal, action, resource);"),
        "{out}"
    );
    std::fs::write(
        dir.join("a.cedar"),
        "@id(\"a\")\npermit(principal,, action, resource);\n",
    )
    .unwrap();
    let (code, out, _) = cli(&["fmt", "--policies", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a.cedar:2:"), "{out}");
    assert!(!out.contains("SourceOffset"), "{out}");
}

#[test]
fn one_suite_file_filtered_reports_coverage_of_what_ran_and_explains_failures() {
    let (code, out, err) = cli(&["test", "policies/tests/functions.json", "--filter", "R16"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("test functions :: R16"), "{out}");
    assert!(!out.contains("test functions :: R12"), "{out}");
    assert!(
        out.contains("(those the selected cases evaluated)"),
        "{out}"
    );
    assert!(!out.contains("login."), "login policies did not run: {out}");

    // A wrong expectation: file, case index, context and the trace.
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("wrong.json");
    // Fixtures are relative and inside the suite's directory.
    std::fs::copy(
        Path::new(CRATE_ROOT).join("policies/tests/fixtures/entities.json"),
        tmp.path().join("entities.json"),
    )
    .unwrap();
    std::fs::write(
        &suite,
        serde_json::json!({
            "namespace": "Etax",
            "entities": ["entities.json"],
            "cases": [{
                "name": "clerk issues invoices (wrong)",
                "principal": "Staff::\"91210102MA0TAX001F/zhang\"",
                "action": "Action::\"useFunction\"",
                "resource": "Function::\"invoice_issue\"",
                "decision": "allow"
            }]
        })
        .to_string(),
    )
    .unwrap();
    let (code, out, _) = cli(&["test", suite.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("wrong.json cases[0]"), "{out}");
    assert!(out.contains("context: {}"), "{out}");
    assert!(
        out.contains("when { principal in resource } → false"),
        "{out}"
    );
}

#[test]
fn a_fixture_generated_from_the_demo_lets_a_readme_case_run() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = tmp.path().join("demo-entities.json");
    let (code, out, err) = cli(&["fixture", fixture.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let suite = tmp.path().join("readme.json");
    std::fs::write(
        &suite,
        serde_json::json!({
            "namespace": "Etax",
            "entities": ["demo-entities.json"],
            "cases": [{
                "name": "the demo's clerk files VAT",
                "principal": staff(E_SYNCED, P_CLERK),
                "action": "Action::\"useFunction\"",
                "resource": "Function::\"vat_filing\"",
                "decision": "allow",
                "reasons": ["function.via-permission-identity"]
            }]
        })
        .to_string(),
    )
    .unwrap();
    let (code, out, err) = cli(&["test", suite.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn strict_reload_rejects_a_typo_and_a_reload_reports_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let server =
        demo_over_copied_policies(tmp.path(), &["--reload-poll-ms", "0", "--strict-reload"]);
    let status = || server.get("/v1/status").1;
    std::fs::write(tmp.path().join("policies/typo.cedar"), TYPO).unwrap();
    server.signal("HUP");
    wait_until("the rejection", || status()["reloads"]["failed"] == 1);
    let s = status();
    assert!(
        s["last_reload_error"]["diagnostics"]
            .to_string()
            .contains("invoice_purchse"),
        "{s}"
    );

    let fixed = TYPO.replace("invoice_purchse", "invoice_purchase");
    std::fs::write(tmp.path().join("policies/typo.cedar"), fixed).unwrap();
    std::fs::remove_file(tmp.path().join("policies/password.cedar")).unwrap();
    server.signal("HUP");
    wait_until("the reload", || status()["reloads"]["succeeded"] == 1);
    let change = &status()["last_reload_change"];
    assert_eq!(
        change["added"],
        serde_json::json!(["typo.invoice-purchase"]),
        "{change}"
    );
    assert!(
        change["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id.as_str().unwrap().starts_with("password.")),
        "{change}"
    );
    assert_eq!(change["changed"], serde_json::json!([]), "{change}");
}

/// A suite naming `entities` in `dir` and one allow case.
fn suite_with_entities(dir: &Path, name: &str, entities: serde_json::Value) -> std::path::PathBuf {
    let suite = dir.join(name);
    std::fs::write(
        &suite,
        serde_json::json!({
            "namespace": "Etax",
            "entities": entities,
            "cases": [{
                "name": "any",
                "principal": staff(E_SYNCED, P_CLERK),
                "action": "Action::\"useFunction\"",
                "resource": "Function::\"vat_filing\"",
                "decision": "allow"
            }]
        })
        .to_string(),
    )
    .unwrap();
    suite
}

#[test]
fn suite_fixtures_outside_the_suite_tree_are_refused_without_echoing_them() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(&secret, r#"["SECRETSTRING-abc"]"#).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let inside = tmp.path().join("suites");
    std::fs::create_dir(&inside).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&secret, inside.join("link.json")).unwrap();
    let escape = format!("../../../../../../../../..{}", secret.display());
    for (name, rel) in [
        ("absolute.json", secret.display().to_string()),
        ("dotdot.json", escape),
        ("symlink.json", "link.json".to_string()),
    ] {
        let suite = suite_with_entities(&inside, name, serde_json::json!([rel]));
        let (code, out, err) = cli(&["test", suite.to_str().unwrap()]);
        assert_ne!(code, 0, "{name}: {out}{err}");
        let all = format!("{out}{err}");
        assert!(!all.contains("SECRETSTRING"), "{name}: {all}");
        assert!(all.contains("entities"), "{name}: {all}");
        assert!(
            all.contains("inside the suite's directory"),
            "{name}: {all}"
        );
    }
}

#[test]
fn a_malformed_fixture_error_names_the_place_not_the_value() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.json"),
        r#"["SECRETSTRING-abc", "91210102MA0TAX001F"]"#,
    )
    .unwrap();
    let suite = suite_with_entities(tmp.path(), "s.json", serde_json::json!(["bad.json"]));
    let (code, out, err) = cli(&["test", suite.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(!all.contains("SECRETSTRING"), "{all}");
    assert!(!all.contains("91210102MA0TAX001F"), "{all}");
    assert!(all.contains("bad.json:1:"), "{all}");
}

#[test]
fn a_test_run_where_no_case_ran_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("no-suites");
    std::fs::create_dir(&empty).unwrap();
    let (code, out, err) = cli(&["test", empty.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("no test cases ran"),
        "{out}{err}"
    );
    let (code, out, err) = cli(&[
        "test",
        "policies/tests",
        "--filter",
        "no such case anywhere",
    ]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("no test cases ran"),
        "{out}{err}"
    );
}

#[test]
fn strict_check_refuses_a_set_with_no_policies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("empty");
    std::fs::create_dir(&dir).unwrap();
    let (code, out, err) = cli(&["check", "--strict", "--policies", dir.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(format!("{out}{err}").contains("no policies"), "{out}{err}");
}
