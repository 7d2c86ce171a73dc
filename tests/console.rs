//! The auditor console in a real browser: Debian's Chromium, headless,
//! driven through `chromedriver` (WebDriver) by `fantoccini`, against the
//! real binary's `serve --demo`. Skipped, loudly, where Chromium or its
//! driver is not installed; CI installs both (`.ci/run`).
//!
//! With `ETAX_CONSOLE_SCREENSHOTS=1` each view is saved under
//! `docs/console/` (the README shows them).

use crate::common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CLERK: &str = "Staff::\"91210102MA0TAX001F/resident_id:210102199001015035\"";
const FORBID: &str = "function.enterprise-only-social-insurance";

/// Whether Chromium and chromedriver are here; says so loudly when not.
fn browser_present() -> bool {
    let runs = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ok = std::path::Path::new(CHROMIUM).exists() && runs(CHROMEDRIVER);
    if !ok {
        eprintln!(
            "\n!!!!!!!! SKIPPED: Chromium ({CHROMIUM}) or chromedriver ({CHROMEDRIVER}) is not \
             installed; `apt-get install chromium chromium-driver` — CI runs this !!!!!!!!\n"
        );
    }
    ok
}

/// A chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until("chromedriver to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        Self { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "args": [
            "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run",
            "--window-size=1280,1100", "--lang=zh-CN",
        ] }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// Waits until the console says `view` is drawn (`#view[data-ready]`);
/// an error drawn instead fails with its message.
async fn ready(c: &Client, view: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = c
            .find(Locator::Css("#view"))
            .await
            .unwrap()
            .attr("data-ready")
            .await
            .unwrap()
            .unwrap_or_default();
        if state == view {
            return;
        }
        if state.ends_with("-error") {
            let msg = c.find(Locator::Css("#error")).await.unwrap().text().await;
            panic!("the {view} view failed: {msg:?}");
        }
        assert!(
            Instant::now() < deadline,
            "the {view} view never drew ({state:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Runs a verification in the Verify view; the verdict it shows.
async fn verify_in_console(c: &Client, s: &Server) -> String {
    c.goto(&console(s, "#/verify")).await.unwrap();
    ready(c, "verify-idle").await;
    click(c, "#verify-run").await;
    ready(c, "verify").await;
    text(c, "#verify-verdict").await
}

async fn screenshot(c: &Client, name: &str) {
    if std::env::var_os("ETAX_CONSOLE_SCREENSHOTS").is_none() {
        return;
    }
    let png = c.screenshot().await.unwrap();
    let dir = format!("{CRATE_ROOT}/docs/console");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
}

/// Allowed and denied decisions, login steps among them; the decision id
/// of the denial a forbid made.
fn make_decisions(s: &Server) -> String {
    for f in ["vat_filing", "cit_filing", "invoice_issue", "tax_payment"] {
        assert_eq!(s.post("/v1/authorize", &use_function(CLERK, f)).0, 200);
    }
    let (status, denied) = s.post(
        "/v1/authorize",
        &use_function(&enterprise(E_SOCIAL), "vat_filing"),
    );
    assert_eq!(status, 200);
    assert_eq!(denied["decision"], "deny", "{denied}");
    let (status, _) = s.post(
        "/v1/login/enterprise",
        &json!({ "account": E_SYNCED, "password": "Wrong@2026x" }),
    );
    assert_eq!(status, 401);
    login_by_sms(s, "**国");
    denied["decision_id"].as_str().unwrap().to_owned()
}

fn console(s: &Server, hash: &str) -> String {
    format!("http://{}/console/{hash}", s.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_log_as_the_api_does_in_a_real_browser() {
    if !browser_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::demo_in(&data, &[]);
    let denied_id = make_decisions(&s);
    // The denial's record, as the API finds it.
    let (_, page) = s.get(&format!("/v1/audit/decisions?decision_id={denied_id}"));
    let denied_seq = page["records"][0]["seq"]
        .as_u64()
        .expect("the denial is logged");
    assert_eq!(page["records"][0]["policies"], json!([FORBID]));

    let driver = Driver::start();
    let c = browser(&driver).await;

    // Overview: the counts the API answers (the console's own reads are
    // not counted, so reading twice changes nothing).
    let (_, api) = s.get("/v1/audit/overview?since=24h&bucket=hour");
    c.goto(&console(&s, "#/overview")).await.unwrap();
    ready(&c, "overview").await;
    let total = &api["counts"]["total"];
    assert_eq!(text(&c, "#total-allow").await, total["allow"].to_string());
    assert_eq!(text(&c, "#total-deny").await, total["deny"].to_string());
    assert!(text(&c, "#by-policy").await.contains(FORBID));
    let kinds = text(&c, "#by-kind").await;
    assert!(
        kinds.contains("authorize") && kinds.contains("login."),
        "{kinds}"
    );
    screenshot(&c, "overview").await;

    // Search: the denied request, found through the form.
    c.goto(&console(&s, "#/search")).await.unwrap();
    ready(&c, "search").await;
    click(&c, "#f-decision option[value='deny']").await;
    c.find(Locator::Css("#f-kind"))
        .await
        .unwrap()
        .send_keys("authorize")
        .await
        .unwrap();
    click(&c, "#search-run").await;
    ready(&c, "search").await;
    let row = format!("#results tr[data-seq='{denied_seq}']");
    let found = text(&c, &row).await;
    assert!(found.contains("deny") && found.contains(FORBID), "{found}");
    let rows = c.find_all(Locator::Css("#results tbody tr")).await.unwrap();
    for r in rows {
        assert!(r.text().await.unwrap().contains("deny"));
    }
    // The page shows what the log holds: the masked principal of the
    // clerk's records, never a full ID number.
    let source = c.source().await.unwrap();
    assert!(
        !source.contains("210102199001015035"),
        "an unmasked ID number on the page"
    );
    assert!(
        source.contains("2101**********5035"),
        "the masked form is shown"
    );
    screenshot(&c, "search").await;

    // Record: every field, and the policy that denied with its source.
    click(&c, &format!("{row} a")).await;
    ready(&c, "record").await;
    let policies = text(&c, "#record-policies").await;
    assert!(
        policies.contains(&format!("@id(\"{FORBID}\")")),
        "{policies}"
    );
    assert!(
        policies.contains("forbid"),
        "the source text is shown: {policies}"
    );
    assert!(text(&c, "#record-fields").await.contains(&denied_id));
    screenshot(&c, "record").await;

    // Verify: intact.
    assert_eq!(verify_in_console(&c, &s).await, "ok");
    s.stop();

    // Tampered: one decision turned from deny to allow, hashes left as
    // they were; the console's verification names the record.
    rewrite_log(&data, |rs| {
        let at = rs.iter().position(|r| r.seq == denied_seq).unwrap();
        edit_record(&mut rs[at], |r| {
            r.decision = etax_authz::audit::Outcome::Allow
        });
    });
    let s = Server::demo_in(&data, &[]);
    assert_eq!(verify_in_console(&c, &s).await, "tampered");
    let problem = text(&c, "#verify-problem").await;
    assert!(
        problem.contains(&format!("record {denied_seq}")),
        "{problem}"
    );
    screenshot(&c, "verify").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_the_console_asks_for_one_and_keeps_it_out_of_urls() {
    if !browser_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_file(
        dir.path(),
        &[
            ("auditor", "audit-key-7f3a", &["audit"]),
            ("core", "authz-key", &["authorize"]),
        ],
    );
    let s = Server::start_with(&["--api-keys", keys.to_str().unwrap()]);
    let driver = Driver::start();
    let c = browser(&driver).await;

    // The page itself needs no key; its data does.
    c.goto(&console(&s, "#/overview")).await.unwrap();
    ready(&c, "overview-error").await;
    assert!(text(&c, "#error").await.contains("401"));

    // A key without the audit scope is refused; the audit key is used.
    for (key, view) in [
        ("authz-key", "overview-error"),
        ("audit-key-7f3a", "overview"),
    ] {
        let input = c.find(Locator::Css("#key")).await.unwrap();
        input.send_keys(key).await.unwrap();
        click(&c, "#key-save").await;
        ready(&c, view).await;
    }
    // Its reads are recorded under the key's id.
    let (_, page) = s.request_as(
        Some("audit-key-7f3a"),
        "GET",
        "/v1/audit/decisions?kind=audit.read&caller=auditor",
        None,
    );
    assert!(!page["records"].as_array().unwrap().is_empty(), "{page}");
    let url = c.current_url().await.unwrap();
    assert!(!url.as_str().contains("audit-key"), "{url}");
    let stored: Value = c
        .execute("return sessionStorage.getItem('etax-audit-key')", vec![])
        .await
        .unwrap();
    assert_eq!(stored, "audit-key-7f3a");
    c.close().await.unwrap();
}

/// Red team: the record view picked the first statement whose text held
/// `@id("X")`, so a comment naming a policy's id above a decoy statement
/// showed the decoy's source as the determining policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_view_shows_the_determining_policys_own_source_not_a_decoy() {
    if !browser_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("aaa-decoy.cedar"),
        format!(
            "// a comment naming @id(\"{FORBID}\")\n@id(\"zz.decoy\")\n@code(\"decoy\")\n\
             @message(\"decoy\")\nforbid (principal, action, resource)\nwhen {{ false }};\n"
        ),
    )
    .unwrap();
    let s = demo_over_copied_policies(dir.path(), &[]);
    let denied_id = make_decisions(&s);
    let (_, page) = s.get(&format!("/v1/audit/decisions?decision_id={denied_id}"));
    let seq = page["records"][0]["seq"].as_u64().unwrap();

    let driver = Driver::start();
    let c = browser(&driver).await;
    c.goto(&console(&s, &format!("#/record/{seq}")))
        .await
        .unwrap();
    ready(&c, "record").await;
    let shown = text(&c, "#record-policies").await;
    assert!(shown.contains("functions.cedar"), "{shown}");
    assert!(!shown.contains("zz.decoy"), "the decoy is shown: {shown}");
    c.close().await.unwrap();
}
