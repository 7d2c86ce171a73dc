//! The red team's attacks on the decision log's privacy, replayed against
//! the running binary: exact-ID brute force through person filters (H4),
//! ID numbers and phones that escaped the mask (M1), a crafted policy
//! archive (M4), and the edges of `limit` and `after`.

use crate::common;

use std::collections::HashSet;

use common::*;
use serde_json::{json, Value};

/// The resident ID numbers `2101??1980MMDD401?` that pass the check digit:
/// what an auditor who sees the mask `2101**********4011` would try.
fn guesses(n: usize) -> Vec<String> {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: &[u8; 11] = b"10X98765432";
    let mut out = Vec::new();
    'all: for region in 0..21 {
        for month in 1..=12 {
            for day in 1..=28 {
                let s17 = format!("2101{region:02}1980{month:02}{day:02}401");
                let sum: u32 = s17
                    .chars()
                    .zip(W)
                    .map(|(c, w)| c.to_digit(10).unwrap() * w)
                    .sum();
                if C[(sum % 11) as usize] == b'1' {
                    out.push(format!("{s17}1"));
                    if out.len() == n {
                        break 'all;
                    }
                }
            }
        }
    }
    out
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("non-JSON body ({e}): {body}"))
}

/// H4: the mask hides region and birth date, but an `audit` key could try
/// every candidate through an exact person filter, unseen. Now an exact
/// lookup needs `audit_person`, is rate-limited per caller, and each read's
/// record names the pseudonym searched.
#[test]
fn exact_person_lookups_need_their_scope_are_limited_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_file(
        dir.path(),
        &[
            ("auditor", "audit-key", &["audit"]),
            ("person-auditor", "person-key", &["audit", "audit_person"]),
        ],
    );
    let s = Server::demo_in(
        &dir.path().join("data"),
        &["--api-keys", keys.to_str().unwrap()],
    );
    let id = "210102198003124011";

    // An `audit` key may still filter by masks and parts, not by a full ID.
    for path in [
        format!("/v1/audit/decisions?person={id}&limit=1"),
        format!("/v1/audit/decisions?principal={id}&limit=1"),
        format!("/v1/audit/decisions?target=resident_id:{id}&limit=1"),
        format!("/v1/audit/summary?by=decision&person={id}"),
        format!("/v1/audit/export?person={id}"),
    ] {
        let (status, _, body) = get_with_head(s.addr, "audit-key", &path);
        assert_eq!(status, 403, "{path}: {body}");
        let err = json_of(&body);
        assert_eq!(err["error"]["code"], "forbidden", "{body}");
        assert!(body.contains("audit_person"), "{body}");
        assert!(!body.contains(id), "{body}");
    }
    let (status, _, body) = get_with_head(
        s.addr,
        "audit-key",
        "/v1/audit/decisions?principal=2101**********4011&limit=1",
    );
    assert_eq!(status, 200, "{body}");

    // With the scope: 30 lookups a minute, then 429 with Retry-After.
    let tries = guesses(31);
    for (n, guess) in tries.iter().enumerate() {
        let path = format!("/v1/audit/decisions?person={guess}&limit=1");
        let (status, head, body) = get_with_head(s.addr, "person-key", &path);
        if n < 30 {
            assert_eq!(status, 200, "lookup {}: {body}", n + 1);
        } else {
            assert_eq!(status, 429, "lookup {}: {body}", n + 1);
            let err = json_of(&body);
            assert_eq!(err["error"]["code"], "too_many_person_lookups", "{body}");
            let secs = err["error"]["retry_after_secs"].as_u64().unwrap();
            assert!((1..=60).contains(&secs), "{body}");
            assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
        }
    }
    // Other reads are not limited.
    let (status, _, body) = get_with_head(
        s.addr,
        "person-key",
        "/v1/audit/decisions?kind=audit.read&include_reads=true&limit=1000",
    );
    assert_eq!(status, 200, "{body}");

    // Each lookup's read record carries the pseudonym searched, never the ID.
    let page = json_of(&body);
    let pseudonyms: HashSet<String> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["caller"] == "person-auditor" && r["resource"].as_str().unwrap().contains("person=")
        })
        .map(|r| {
            let persons = r["persons"].as_array().unwrap();
            assert_eq!(persons.len(), 1, "{r}");
            let p = persons[0]["pseudonym"].as_str().unwrap().to_owned();
            assert_eq!(p.len(), 32, "{r}");
            p
        })
        .collect();
    assert_eq!(pseudonyms.len(), 30, "{page}");
    let log = String::from_utf8_lossy(&s.decision_log_bytes()).into_owned();
    for guess in &tries {
        assert!(!log.contains(guess.as_str()), "{guess} in the log");
    }
}

/// Open mode (development on loopback) keeps exact lookups working.
#[test]
fn open_mode_still_looks_persons_up() {
    let s = Server::demo();
    let (status, body) = s.get("/v1/audit/decisions?person=210102198003124011&limit=1");
    assert_eq!(status, 200, "{body}");
}

/// M1 at the edge: a person-keyed entity's id must be the typed key.
#[test]
fn authorize_refuses_person_ids_that_are_not_typed_keys() {
    let s = Server::demo();
    let full_width = "２１０１０２１９８００３１２４０１１";
    for (field, body) in [
        (
            "principal",
            json!({
                "principal": format!("Staff::\"{E_SYNCED}/resident_id:{full_width}\""),
                "action": "Action::\"useFunction\"",
                "resource": "Function::\"vat_filing\"",
            }),
        ),
        (
            "principal",
            json!({
                "principal": "Person::\"resident_id:210102-19800312-4011\"",
                "action": "Action::\"loginNaturalPerson\"",
                "resource": format!("Enterprise::\"{E_SYNCED}\""),
            }),
        ),
        (
            "resource",
            json!({
                "principal": staff(E_SYNCED, P_LEGAL_REP),
                "action": "Action::\"viewStaff\"",
                "resource": format!("Staff::\"{E_SYNCED}/resident_id:a210102198003124011\""),
            }),
        ),
        (
            "context.actingFor",
            json!({
                "principal": agent(P_AGENT),
                "action": "Action::\"useFunction\"",
                "resource": "Function::\"vat_filing\"",
                "context": { "actingFor": { "__entity": {
                    "type": "Etax::Person", "id": format!("resident_id:{full_width}") } } },
            }),
        ),
    ] {
        let (status, answer) = s.post("/v1/authorize", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
        let text = answer.to_string();
        for secret in [full_width, "19800312", "210102198003124011", "a210102"] {
            assert!(!text.contains(secret), "{secret} echoed: {text}");
        }
    }
}

/// M1 in the log: every form the red team used is masked in what a read
/// record keeps of its query (and so in any other masked text).
#[test]
fn every_id_and_phone_form_is_masked_in_the_log() {
    let s = Server::demo();
    let forms = [
        "resident_id:２１０１０２１９８００３１２４０１１",
        "a210102198003124011",
        "ID210102198003124011",
        "13800000001x210102198003124011",
        "resident_id:210102-19800312-4011",
        "8613800000001",
        "138 0000 0001",
        "+86-138-0000-0001",
    ];
    for form in forms {
        let q: String = form
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = s.get(&format!("/v1/audit/decisions?principal={q}&limit=1"));
        assert_eq!(status, 200, "{form}: {body}");
    }
    let log = String::from_utf8_lossy(&s.decision_log_bytes()).into_owned();
    for secret in [
        "２１０１０２１９８００３１２４０１１",
        "１９８００３１２",
        "19800312",
        "0000 0001",
        "0000-0001",
        "13800000001",
        "1380000",
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(log.contains("2101**********4011"), "the one mask");
}

/// M4: texts moved across the NUL separators keep the version; names with
/// directories were not hashed. The archive reader refuses both.
#[test]
fn a_crafted_policy_archive_is_refused() {
    let s = Server::demo();
    let archive = s.data.join("policy-archive");
    let path = std::fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("an archived set");
    let version = path.file_stem().unwrap().to_str().unwrap().to_owned();
    let original: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let (status, genuine) = s.get(&format!("/v1/audit/policy/{version}"));
    assert_eq!(status, 200, "{genuine}");
    for f in genuine["policy_files"].as_array().unwrap() {
        let name = f["file"].as_str().unwrap();
        assert!(!name.contains('/'), "archived as a plain name: {name}");
    }

    let base = |name: &str| name.rsplit('/').next().unwrap().to_owned();
    let mut moved = original.clone();
    let first = moved["policy_files"].as_array_mut().unwrap().remove(0);
    moved["schema"] = json!(format!(
        "{}\0policy-file\0{}\0{}",
        moved["schema"].as_str().unwrap(),
        base(first["file"].as_str().unwrap()),
        first["text"].as_str().unwrap()
    ));
    let mut shadow = original.clone();
    shadow["schema_file"] = json!("/etc/shadow");
    let mut dotdot = original.clone();
    dotdot["policy_files"][0]["file"] = json!("../../etc/login.cedar");
    for crafted in [moved, shadow, dotdot] {
        std::fs::write(&path, crafted.to_string()).unwrap();
        let (status, answer) = s.get(&format!("/v1/audit/policy/{version}"));
        assert_eq!(status, 500, "{answer}");
        assert_eq!(
            answer["error"]["code"], "policy_archive_altered",
            "{answer}"
        );
    }
}

/// M4 at load: a policy text holding NUL is refused with a clear error.
#[test]
fn policy_text_with_nul_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(
        &std::path::Path::new(CRATE_ROOT).join("policies"),
        &policies,
    );
    let login = policies.join("login.cedar");
    let mut text = std::fs::read_to_string(&login).unwrap();
    text.push_str("\n// \0\n");
    std::fs::write(&login, text).unwrap();
    let data = dir.path().join("data");
    match try_serve(&[
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
        "--demo",
        "--policies",
        policies.to_str().unwrap(),
    ]) {
        ServeAttempt::Listening(_) => panic!("a policy text with NUL was loaded"),
        ServeAttempt::Exited(_, err) => assert!(err.contains("NUL"), "{err}"),
    }
}

/// `limit` is 1..=1000, else 400 naming it; export takes `after`.
#[test]
fn limit_out_of_range_is_refused_and_export_takes_after() {
    let s = Server::demo();
    for limit in ["0", "1001"] {
        let (status, body) = s.get(&format!("/v1/audit/decisions?limit={limit}"));
        assert_eq!(status, 400, "limit={limit}: {body}");
        assert_eq!(body["error"]["field"], "limit", "{body}");
    }
    let (status, body) = s.get("/v1/audit/decisions?limit=1000");
    assert_eq!(status, 200, "{body}");
    let (status, all) = http(s.addr, "GET", "/v1/audit/export", None);
    assert_eq!(status, 200);
    let (status, after) = http(s.addr, "GET", "/v1/audit/export?after=1", None);
    assert_eq!(status, 200, "{after}");
    assert!(all.contains("\"seq\":1,"), "{all}");
    assert!(!after.contains("\"seq\":1,"), "{after}");
}
