//! Hot reload against the real binary: a broken policy file written while
//! requests flow loses no request and keeps the old version active; fixing
//! it activates the new version; SIGHUP reloads too.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{copy_dir, http, Server};
use serde_json::{json, Value};

/// The demo over copies of the policies and schema in `tmp`, which the test
/// then edits under the running server.
fn start(tmp: &Path, poll_ms: u64) -> Server {
    let root = Path::new(common::CRATE_ROOT);
    copy_dir(&root.join("policies"), &tmp.join("policies"));
    let schema = tmp.join("etax.cedarschema");
    std::fs::copy(root.join("schemas/etax.cedarschema"), &schema).unwrap();
    let policies = tmp.join("policies");
    Server::demo_in(
        &tmp.join("data"),
        &[
            "--policies",
            policies.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
            "--reload-poll-ms",
            &poll_ms.to_string(),
        ],
    )
}

fn status(server: &Server) -> Value {
    let (code, body) = server.get("/v1/status");
    assert_eq!(code, 200, "{body}");
    body
}

const CLERK: &str = "Staff::\"91210102MA0TAX001F/resident_id:210102199001015035\"";

fn use_function(function: &str) -> Value {
    json!({
        "principal": CLERK,
        "action": "Action::\"useFunction\"",
        "resource": format!("Function::\"{function}\""),
        "context": {},
    })
}

fn decide(server: &Server, function: &str) -> Value {
    let (code, body) = server.post("/v1/authorize", &use_function(function));
    assert_eq!(code, 200, "{body}");
    body
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const EXTRA: &str = r#"@id("extra.clerk-issues-invoices")
permit (
  principal is Etax::Staff,
  action == Etax::Action::"useFunction",
  resource == Etax::Function::"invoice_issue"
);
"#;

#[test]
fn broken_policy_during_load_loses_no_request_and_keeps_old_version() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), 100);
    let addr = server.addr;
    let ask_vat = use_function("vat_filing").to_string();
    let v0 = status(&server)["policy_version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(decide(&server, "vat_filing")["decision"], "allow");
    assert_eq!(decide(&server, "invoice_issue")["decision"], "deny");

    // Clients keep asking while the files change under the server.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ask_vat) = (stop.clone(), ask_vat.clone());
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) && n < 5_000 {
                    let (code, body) =
                        http(addr, "POST", "/v1/authorize", Some(ask_vat.as_bytes()));
                    assert_eq!(code, 200, "{body}");
                    assert!(body.contains(r#""decision":"allow""#), "{body}");
                    n += 1;
                }
                n
            })
        })
        .collect();

    std::fs::write(
        tmp.path().join("policies/broken.cedar"),
        "@id(\"broken\")\npermit (principal is Etax::Nobody, action, resource);\n",
    )
    .unwrap();
    wait_for("the reload error", || {
        !status(&server)["last_reload_error"].is_null()
    });
    let s = status(&server);
    assert_eq!(s["policy_version"], v0.as_str(), "old version stays active");
    let diags = s["last_reload_error"]["diagnostics"].to_string();
    assert!(diags.contains("broken.cedar:2:"), "{diags}");
    let (_, metrics) = http(addr, "GET", "/metrics", None);
    assert!(
        metrics.contains("etax_policy_last_reload_failed 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("etax_policy_reloads_total{outcome=\"failure\"} 1"),
        "{metrics}"
    );

    // Fix it: the new set becomes active and is used.
    std::fs::remove_file(tmp.path().join("policies/broken.cedar")).unwrap();
    std::fs::write(tmp.path().join("policies/extra.cedar"), EXTRA).unwrap();
    wait_for("the new version", || {
        status(&server)["policy_version"] != v0.as_str()
    });
    let s = status(&server);
    assert!(s["last_reload_error"].is_null(), "{s}");
    assert!(s["reloads"]["succeeded"].as_u64().unwrap() >= 1, "{s}");
    let d = decide(&server, "invoice_issue");
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(d["policy_version"], s["policy_version"]);

    stop.store(true, Ordering::Relaxed);
    let sent: u32 = clients
        .into_iter()
        .map(|c| c.join().expect("no request failed"))
        .sum();
    assert!(sent > 0);
}

#[test]
fn sighup_reloads() {
    let tmp = tempfile::tempdir().unwrap();
    // File polling off: only the signal can reload.
    let server = start(tmp.path(), 0);
    let v0 = status(&server)["policy_version"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(tmp.path().join("policies/extra.cedar"), EXTRA).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(&server)["policy_version"], v0.as_str());
    server.signal("HUP");
    wait_for("the reload", || {
        status(&server)["policy_version"] != v0.as_str()
    });
    assert_eq!(decide(&server, "invoice_issue")["decision"], "allow");
}

/// `?explain=true` answers with a decision and its trace: both must be of
/// one policy set, or an auditor reads a trace that did not make the
/// decision. Reloads flip a permit in and out while explained questions
/// are asked.
#[test]
fn an_explained_decision_and_its_trace_are_of_one_policy_set() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), 0);
    let extra = tmp.path().join("policies/extra.cedar");
    let stop = AtomicBool::new(false);
    let ask = use_function("invoice_issue").to_string();
    // Set on the way out, a failed assertion included, or the scope would
    // wait for the flipper forever.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let (flips, versions) = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let flipper = s.spawn(|| {
            let mut flips = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if flips.is_multiple_of(2) {
                    std::fs::write(&extra, EXTRA).unwrap();
                } else {
                    std::fs::remove_file(&extra).unwrap();
                }
                server.signal("HUP");
                flips += 1;
                std::thread::sleep(Duration::from_millis(40));
            }
            flips
        });
        let (mut versions, mut asked) = (std::collections::HashSet::new(), 0);
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline && (asked < 400 || versions.len() < 2) {
            let (code, body) = http(
                server.addr,
                "POST",
                "/v1/authorize?explain=true",
                Some(ask.as_bytes()),
            );
            assert_eq!(code, 200, "{body}");
            let body: Value = serde_json::from_str(&body).unwrap();
            let explain = &body["explain"];
            assert_eq!(
                explain["policy_version"], body["policy_version"],
                "the trace is of another policy set than the decision"
            );
            let applies = |effect: &str| {
                explain["policies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["effect"] == effect && p["applies"] == true)
            };
            let traced = applies("permit") && !applies("forbid");
            assert_eq!(body["decision"] == "allow", traced, "{body}");
            versions.insert(body["policy_version"].as_str().unwrap().to_owned());
            asked += 1;
        }
        drop(_stop);
        (flipper.join().unwrap(), versions)
    });
    assert!(versions.len() >= 2, "{flips} reloads, one version seen");
}
