//! Hot reload against the real binary: a broken policy file written while
//! requests flow loses no request and keeps the old version active; fixing
//! it activates the new version; SIGHUP reloads too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

fn start(tmp: &Path, poll_ms: u64) -> Server {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&root.join("policies"), &tmp.join("policies"));
    std::fs::copy(
        root.join("schemas/etax.cedarschema"),
        tmp.join("etax.cedarschema"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_etax-authz"))
        .current_dir(root)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.join("data"))
        .arg("--policies")
        .arg(tmp.join("policies"))
        .arg("--schema")
        .arg(tmp.join("etax.cedarschema"))
        .args(["--reload-poll-ms", &poll_ms.to_string()])
        .env("ETAX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("etax-authz listening on http://") {
                let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server prints its address");
    Server { child, addr }
}

/// One HTTP/1.1 exchange; returns status and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn status(addr: SocketAddr) -> serde_json::Value {
    let (code, body) = http(addr, "GET", "/v1/status", "").unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

const CLERK: &str = r#"Staff::\"91210102MA0TAX001F/resident_id:210102199001015035\""#;

fn use_function(function: &str) -> String {
    format!(
        r#"{{"principal":"{CLERK}","action":"Action::\"useFunction\"","resource":"Function::\"{function}\"","context":{{}}}}"#
    )
}

fn decide(addr: SocketAddr, function: &str) -> serde_json::Value {
    let (code, body) = http(addr, "POST", "/v1/authorize", &use_function(function)).unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
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
    let v0 = status(addr)["policy_version"].as_str().unwrap().to_owned();
    assert_eq!(decide(addr, "vat_filing")["decision"], "allow");
    assert_eq!(decide(addr, "invoice_issue")["decision"], "deny");

    // Clients keep asking while the files change under the server.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) && n < 5_000 {
                    let (code, body) =
                        http(addr, "POST", "/v1/authorize", &use_function("vat_filing"))
                            .expect("request succeeds");
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
        !status(addr)["last_reload_error"].is_null()
    });
    let s = status(addr);
    assert_eq!(s["policy_version"], v0.as_str(), "old version stays active");
    let diags = s["last_reload_error"]["diagnostics"].to_string();
    assert!(diags.contains("broken.cedar:2:"), "{diags}");
    let (_, metrics) = http(addr, "GET", "/metrics", "").unwrap();
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
        status(addr)["policy_version"] != v0.as_str()
    });
    let s = status(addr);
    assert!(s["last_reload_error"].is_null(), "{s}");
    assert!(s["reloads"]["succeeded"].as_u64().unwrap() >= 1, "{s}");
    let d = decide(addr, "invoice_issue");
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
    let addr = server.addr;
    let v0 = status(addr)["policy_version"].as_str().unwrap().to_owned();
    std::fs::write(tmp.path().join("policies/extra.cedar"), EXTRA).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(addr)["policy_version"], v0.as_str());
    let ok = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    wait_for("the reload", || {
        status(addr)["policy_version"] != v0.as_str()
    });
    assert_eq!(decide(addr, "invoice_issue")["decision"], "allow");
}
