//! `/metrics` from the real binary: after a known set of decisions, login
//! failures, a lock and a captcha, the scraped exposition is parsed (with
//! the text format's rules checked) and its counts compared with what was
//! done.

use crate::common;

use std::collections::BTreeMap;

use common::{action, http, staff, Server, E_SYNCED, P_CLERK};
use serde_json::json;

/// One sample: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text format 0.0.4, checking what a scraper relies on:
/// every sample belongs to a family declared by `# TYPE` before it, label
/// values are quoted, values are numbers, and each histogram's buckets
/// rise to a `+Inf` bucket equal to its `_count`.
fn parse(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "twice: {name}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => (name.to_owned(), labels(rest.strip_suffix('}').expect("}"))),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(&name);
        assert!(types.contains_key(family), "no # TYPE before {line}");
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    check_histograms(&samples);
    samples
}

fn labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("key=\"value\"");
        let end = after.find('"').expect("closing quote");
        out.insert(key.to_owned(), after[..end].to_owned());
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

fn check_histograms(samples: &[Sample]) {
    for count in samples.iter().filter(|s| s.name.ends_with("_count")) {
        let family = count.name.trim_end_matches("_count");
        let buckets: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
            .filter(|s| {
                let mut l = s.labels.clone();
                l.remove("le");
                l == count.labels
            })
            .collect();
        if buckets.is_empty() {
            continue;
        }
        assert!(
            buckets.windows(2).all(|w| w[0].value <= w[1].value),
            "{family} buckets fall"
        );
        let last = buckets.last().unwrap();
        assert_eq!(last.labels["le"], "+Inf", "{family}");
        assert_eq!(last.value, count.value, "{family}: +Inf bucket != count");
    }
}

/// The value of the one sample `name` with exactly `want` among its labels;
/// 0 if there is none (a family shows only label sets that occurred).
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(matching.len() <= 1, "{name} {want:?}: {matching:?}");
    matching.first().map_or(0.0, |s| s.value)
}

fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

fn scrape(s: &Server) -> Vec<Sample> {
    let (status, text) = http(s.addr, "GET", "/metrics", None);
    assert_eq!(status, 200, "{text}");
    parse(&text)
}

#[test]
fn the_exposition_counts_what_was_done() {
    let s = Server::start_with(&["--lockout-threshold", "2"]);
    let clerk = staff(E_SYNCED, P_CLERK);
    let ask = |function: &str| {
        let (status, v) = s.post(
            "/v1/authorize",
            &json!({"principal": clerk, "action": action("useFunction"),
                    "resource": format!("Function::\"{function}\"")}),
        );
        assert_eq!(status, 200, "{v}");
        v["decision"].as_str().unwrap().to_owned()
    };
    for _ in 0..3 {
        assert_eq!(ask("vat_filing"), "allow");
    }
    for _ in 0..2 {
        assert_eq!(ask("invoice_issue"), "deny");
    }
    // Two wrong passwords reach the threshold; the third attempt meets the lock.
    for i in 0..3 {
        let (status, v) = s.post(
            "/v1/login/enterprise",
            &json!({"account": E_SYNCED, "password": format!("Wrong@{i}x")}),
        );
        assert_eq!(status, if i < 2 { 401 } else { 423 }, "{v}");
    }
    s.post_ok(
        "/v1/login/captcha",
        &json!({"id_number": "210106199102140105"}),
    );

    let m = scrape(&s);
    let decisions = |decision, outcome| {
        value(
            &m,
            "etax_decisions_total",
            &[
                ("kind", "authorize"),
                ("action", "useFunction"),
                ("decision", decision),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(decisions("allow", "done"), 3.0);
    assert_eq!(decisions("deny", "refused"), 2.0);
    assert_eq!(
        value(
            &m,
            "etax_decision_latency_seconds_count",
            &[("kind", "authorize")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            "etax_decision_policies_total",
            &[("policy", "function.via-permission-identity")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "etax_http_request_duration_seconds_count",
            &[("route", "/v1/authorize"), ("status", "200")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            "etax_http_request_duration_seconds_count",
            &[("route", "/v1/login/enterprise"), ("status", "401")]
        ),
        2.0
    );
    assert_eq!(sum(&m, "etax_login_failures_total"), 3.0);
    assert_eq!(sum(&m, "etax_login_lockouts_total"), 1.0);
    assert_eq!(
        value(&m, "etax_login_challenges_total", &[("purpose", "captcha")]),
        1.0
    );
    assert_eq!(
        value(&m, "etax_login_challenges_total", &[("purpose", "login")]),
        0.0
    );
    // This scrape's own connection.
    assert!(value(&m, "etax_http_connections_open", &[]) >= 1.0);
    // The start's policy.load record and the login records were committed.
    assert!(value(&m, "etax_decision_log_commit_seconds_count", &[]) >= 1.0);
    assert!(m.iter().any(|s| s.name == "etax_decision_log_queue_depth"));
    assert_eq!(
        value(&m, "etax_policy_reloads_total", &[("outcome", "failure")]),
        0.0
    );
    let hits = value(&m, "etax_decision_cache_total", &[("result", "hit")]);
    let misses = value(&m, "etax_decision_cache_total", &[("result", "miss")]);
    assert!(
        hits >= 3.0 && misses >= 2.0,
        "repeated questions reuse entities: {hits}/{misses}"
    );
}

#[test]
fn metrics_keep_their_scope() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys_file(
        dir.path(),
        &[
            ("ops", "k-admin", &["admin"]),
            ("app", "k-auth", &["authorize"]),
        ],
    );
    let s = Server::start(&["--api-keys", keys.to_str().unwrap()]);
    let (status, _, _) = common::get_with_head(s.addr, "k-auth", "/metrics");
    assert_eq!(status, 403);
    let (status, _, body) = common::get_with_head(s.addr, "k-admin", "/metrics");
    assert_eq!(status, 200);
    let m = parse(&body);
    assert_eq!(value(&m, "etax_policy_last_reload_failed", &[]), 0.0);
}
