//! `etax-authz gen` and `import` at scale, with the real binary and real
//! store files: the generator is deterministic and its bureau imports
//! whole; a record error names its line in a generated file; an import
//! interrupted midway is undone by the next.

use crate::common;

use common::*;
use etax_authz::authn::PasswordHasher;
use etax_authz::store::{
    identity_store_path, EnterpriseRecord, FunctionRecord, PersonRecord, StaffRecord, Store,
};
use serde_json::Value;

/// Runs `gen`: (generated counts, the shared password, the file's text).
fn gen(
    dir: &std::path::Path,
    name: &str,
    enterprises: &str,
    seed: &str,
) -> (Value, String, String) {
    let out = dir.join(name);
    let (code, stdout, stderr) = cli(&[
        "gen",
        "--enterprises",
        enterprises,
        "--seed",
        seed,
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let counts = serde_json::from_str(stdout.trim().strip_prefix("generated: ").unwrap()).unwrap();
    let password = stderr
        .split("password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    (counts, password, std::fs::read_to_string(out).unwrap())
}

/// The text with the (randomly salted) shared hash cut out, and the hash.
fn without_hash(text: &str) -> (String, String) {
    let start = text.find("$argon2id$").unwrap();
    let end = start + text[start..].find('"').unwrap();
    let phc = text[start..end].to_owned();
    (text.replace(&phc, "PHC"), phc)
}

#[test]
fn gen_is_deterministic_and_its_bureau_imports_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (counts, password, a) = gen(tmp.path(), "a.json", "120", "7");
    let (_, _, b) = gen(tmp.path(), "b.json", "120", "7");
    let (_, _, c) = gen(tmp.path(), "c.json", "120", "8");
    let ((a, phc), (b, _), (c, _)) = (without_hash(&a), without_hash(&b), without_hash(&c));
    assert_eq!(a, b, "the same seed gives the same bureau");
    assert_ne!(a, c, "another seed gives another bureau");
    assert!(!a.contains(&password), "the password is never in the file");
    let staff = counts["staff"].as_u64().unwrap();
    assert!((3 * 120..=17 * 120).contains(&staff), "{counts}");

    let data = tmp.path().join("data");
    let file = tmp.path().join("a.json");
    let (code, out, err) = cli(&[
        "import",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    // Every credit code and resident ID passed the import's checks.
    assert_eq!(code, 0, "{out}{err}");
    let summary: Value =
        serde_json::from_str(out.trim().strip_prefix("imported: ").unwrap()).unwrap();
    for kind in [
        "persons",
        "enterprises",
        "staff",
        "agencies",
        "agent_staff",
        "recognitions",
    ] {
        assert_eq!(summary[kind], counts[kind], "{kind}: {summary} vs {counts}");
    }
    assert_eq!(summary["permission_identities"], 3 * 120);

    let store = Store::open(&identity_store_path(&data)).unwrap();
    let r = store.read().unwrap();
    let (key, staff) = r.all::<StaffRecord>().unwrap().swap_remove(0);
    let stored = staff.password_hash.unwrap();
    assert_eq!(stored, phc);
    assert!(PasswordHasher::default().verify(&password, &stored));
    let person = key.split_once('/').unwrap().1;
    let person = r.get::<PersonRecord>(person).unwrap().unwrap();
    assert!(person.real_name_verified && person.phone.is_some());
}

#[test]
fn a_record_error_in_a_generated_file_names_its_line_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, text) = gen(tmp.path(), "g.json", "30", "1");
    let line = text
        .lines()
        .position(|l| l.contains("\"identity_type\":\"tax_clerk\""))
        .unwrap()
        + 1;
    let broken = text.replacen(
        "\"identity_type\":\"tax_clerk\"",
        "\"identity_type\":\"tax_clrk\"",
        1,
    );
    let file = tmp.path().join("broken.json");
    std::fs::write(&file, broken).unwrap();
    let data = tmp.path().join("data");
    let (code, _out, err) = cli(&[
        "import",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("unknown variant `tax_clrk`")
            && err.contains(&format!("at line {line} column")),
        "line {line}: {err}"
    );
    assert!(err.contains("nothing was stored"), "{err}");
    let store = Store::open(&identity_store_path(&data)).unwrap();
    assert!(store.is_empty().unwrap());
}

#[test]
fn an_interrupted_import_is_undone_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let (code, out, err) = cli(&["import", "examples/demo.json", "--data", data_s]);
    assert_eq!(code, 0, "{out}{err}");
    {
        // What a killed import leaves: committed batches and their undo log.
        let store = Store::open(&identity_store_path(&data)).unwrap();
        let mut renamed = store
            .read()
            .unwrap()
            .get::<EnterpriseRecord>(E_SYNCED)
            .unwrap()
            .unwrap();
        renamed.name = "半途".into();
        let function = FunctionRecord {
            name: "半途".into(),
            description: String::new(),
        };
        let mut log = store.begin_undo().unwrap();
        store
            .write(|w| {
                w.put_undoable(&mut log, E_SYNCED, &renamed)?;
                w.put_undoable(&mut log, "half_done", &function)
            })
            .unwrap();
    }
    let empty = tmp.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let (code, out, err) = cli(&["import", empty.to_str().unwrap(), "--data", data_s]);
    assert_eq!(code, 0, "{out}{err}");
    let store = Store::open(&identity_store_path(&data)).unwrap();
    assert!(!store.has_undo().unwrap());
    let r = store.read().unwrap();
    let enterprise = r.get::<EnterpriseRecord>(E_SYNCED).unwrap().unwrap();
    assert_eq!(enterprise.name, "沈阳北方机械制造有限公司");
    assert!(r.get::<FunctionRecord>("half_done").unwrap().is_none());
}
