//! `etax-authz impact` with the real binary on a real store (the demo
//! import): a candidate that takes the invoice functions out of the staff
//! permit shows exactly the demo's invoicing staff losing them — the
//! expected list is asked of a real server, not computed here — and nothing
//! else; a candidate that hands clerks staff maintenance shows the clerks
//! gaining it; an unchanged set changes nothing.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{cli, Server, CRATE_ROOT};
use serde_json::{json, Value};

const INVOICE: [&str; 2] = ["invoice_issue", "invoice_purchase"];

/// A copy of the bundled policies in `dir`, with `edit` applied to one file.
fn candidate(dir: &Path, file: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let out = dir.join("candidate");
    common::copy_dir(&Path::new(CRATE_ROOT).join("policies"), &out);
    let path = out.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    out
}

fn without_invoicing(text: String) -> String {
    let permit = "when { principal in resource };";
    assert!(text.contains(permit), "{text}");
    text.replacen(
        permit,
        "when\n{\n  principal in resource &&\n  !(resource in\n      [Etax::Function::\"invoice_issue\",\n       Etax::Function::\"invoice_purchase\"])\n};",
        1,
    )
}

/// The demo identities in a store no server holds, and the (masked staff,
/// function) pairs a real server allows for the invoice functions.
fn demo_store(dir: &Path) -> (PathBuf, BTreeSet<(String, String)>) {
    let data = dir.join("data");
    let server = Server::demo_in(&data, &[]);
    let demo: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(CRATE_ROOT).join("examples/demo.json")).unwrap(),
    )
    .unwrap();
    let mut allowed = BTreeSet::new();
    for s in demo["staff"].as_array().unwrap() {
        let person = format!(
            "{}:{}",
            s["person"]["id_type"].as_str().unwrap(),
            s["person"]["id_number"].as_str().unwrap()
        );
        let principal = common::staff(s["enterprise"].as_str().unwrap(), &person);
        for f in INVOICE {
            let (code, v) = server.post(
                "/v1/authorize",
                &json!({
                    "principal": principal,
                    "action": common::action("useFunction"),
                    "resource": format!("Function::\"{f}\""),
                }),
            );
            assert_eq!(code, 200, "{v}");
            if v["decision"] == "allow" {
                let full = format!("Etax::{principal}");
                allowed.insert((etax_authz::ids::mask_text(&full), f.to_owned()));
            }
        }
    }
    server.stop();
    assert!(
        allowed.len() >= 2,
        "the demo has invoicing staff: {allowed:?}"
    );
    (data, allowed)
}

fn impact(candidate: &Path, data: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "impact",
        "--candidate",
        candidate.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

fn changes(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v.get("change").is_some())
        .collect()
}

#[test]
fn removing_invoicing_shows_exactly_the_invoicing_staff_losing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, expected) = demo_store(tmp.path());
    let cand = candidate(tmp.path(), "functions.cedar", without_invoicing);

    let (code, out, err) = impact(&cand, &data, &["--format", "jsonl", "--no-symbolic"]);
    assert_eq!(code, 0, "{out}{err}");
    let found = changes(&out);
    let got: BTreeSet<(String, String)> = found
        .iter()
        .map(|c| {
            assert_eq!(c["change"], "lost", "{c}");
            assert_eq!(c["action"], "useFunction", "{c}");
            assert_eq!(
                c["reasons_active"],
                json!(["function.via-permission-identity"]),
                "{c}"
            );
            (
                c["principal"].as_str().unwrap().to_owned(),
                c["what"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{out}");
    assert_eq!(found.len(), expected.len(), "no change twice: {out}");
    // Identities are masked: no full ID number of the demo appears.
    assert!(!out.contains("210102198003124011"), "{out}");
    assert!(
        err.contains("principals"),
        "progress and totals on stderr: {err}"
    );

    let (code, text, err) = impact(&cand, &data, &["--no-symbolic"]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(
        text.contains(&format!("gained: 0  lost: {}", expected.len())),
        "{text}"
    );
    assert!(
        text.contains("by identity type:") && text.contains("invoice_issue"),
        "{text}"
    );
}

#[test]
fn handing_clerks_maintenance_shows_them_gaining_it_and_the_solver_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = demo_store(tmp.path());
    let cand = candidate(tmp.path(), "staff-maintenance.cedar", |text| {
        let start = text
            .find("@id(\"maintain.ordinary-staff-excluded\")")
            .unwrap();
        let end = start + text[start..].find("};").unwrap() + 2;
        format!(
            "{}{}\n@id(\"maintain.clerks-view\")\npermit (principal is Etax::Staff, action == Etax::Action::\"viewStaff\", resource is Etax::Enterprise)\nwhen {{ principal in resource && principal.identityType == Etax::IdentityType::\"tax_clerk\" }};\n",
            &text[..start],
            &text[end..]
        )
    });
    let (code, out, err) = impact(&cand, &data, &["--format", "jsonl", "--no-symbolic"]);
    assert_eq!(code, 0, "{out}{err}");
    let found = changes(&out);
    assert!(!found.is_empty(), "{out}");
    for c in &found {
        assert_eq!(c["change"], "gained", "{c}");
        assert_eq!(c["action"], "viewStaff", "{c}");
        assert_eq!(c["identity_type"], "tax_clerk", "{c}");
    }
    if common::cvc5_present() {
        let (code, text, err) = impact(&cand, &data, &[]);
        assert_eq!(code, 0, "{text}{err}");
        assert!(
            text.contains("Etax::Staff Etax::Action::\"viewStaff\" Etax::Enterprise: can change (deny → allow)"),
            "{text}{err}"
        );
    }
}

#[test]
fn an_unchanged_set_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = demo_store(tmp.path());
    let cand = candidate(tmp.path(), "functions.cedar", |t| t);
    let (code, text, err) = impact(&cand, &data, &[]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("gained: 0  lost: 0"), "{text}");
    assert!(
        text.contains("no stored principal is decided differently"),
        "{text}"
    );
    if common::cvc5_present() {
        assert!(
            text.contains("no request of any action is decided differently"),
            "{text}{err}"
        );
    }
}
