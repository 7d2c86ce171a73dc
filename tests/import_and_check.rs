//! `etax-authz import` (all or nothing, an error per bad record) and
//! `etax-authz check` (file:line:col diagnostics).

use crate::common;

use common::*;
use etax_authz::store::{identity_store_path, EnterpriseRecord, PersonRecord, StaffRecord, Store};
use serde_json::json;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn import_is_all_or_nothing_with_an_error_per_bad_record() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();

    let (code, out, err) = cli(&["import", "examples/demo.json", "--data", data_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"enterprises\":3"), "{out}");

    // A new, valid enterprise next to several broken records.
    let bad = json!({
        "persons": [
            { "id_type": "resident_id", "id_number": "210102199001015036", "name": "坏校验" },
            { "id_type": "resident_id", "id_number": "11010519491231002X", "name": "新人", "real_name_verified": true, "phone": "1380000" }
        ],
        "enterprises": [
            { "credit_code": "91210100MA0NEW005C", "name": "新企业", "category": "ordinary", "password": "Newco@2026" },
            { "credit_code": "91210100MA0NEW005D", "name": "坏代码", "category": "ordinary", "password": "Newco@2026" },
            { "credit_code": "91210100MA0Y8K3L57", "name": "弱密码", "category": "ordinary", "password": "12345678" }
        ],
        "staff": [
            { "enterprise": "91210100MA0NEW005C", "person": { "id_type": "resident_id", "id_number": "210106199102140105" },
              "identity_type": "tax_clerk", "permission_identities": ["no-such-role"] }
        ],
        "permission_identities": [
            { "enterprise": "91210100MA0NEW005C", "id": "r", "name": "r", "functions": ["time_travel"] }
        ]
    });
    let file = write(tmp.path(), "bad.json", &bad.to_string());
    let (code, _out, err) = cli(&["import", file.to_str().unwrap(), "--data", data_s]);
    assert_ne!(code, 0);
    for expected in [
        "persons[0].id_number: check character",
        "persons[1].phone: must be 11 characters",
        "enterprises[1].credit_code: not a credit code: check character",
        "enterprises[2].password: password uses 1 of the four character classes",
        "staff[0].permission_identities[0]: enterprise 91210100MA0NEW005C has no permission identity 'no-such-role'",
        "permission_identities[0].functions[0]: unknown business function 'time_travel'",
        "nothing was stored",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // Secrets never appear in the errors.
    assert!(
        !err.contains("12345678") && !err.contains("Newco@2026"),
        "{err}"
    );

    // Nothing of the failed import was stored; the earlier import is intact.
    let store = Store::open(&identity_store_path(&data)).unwrap();
    let r = store.read().unwrap();
    assert!(r
        .get::<EnterpriseRecord>("91210100MA0NEW005C")
        .unwrap()
        .is_none());
    assert!(r
        .get::<PersonRecord>("resident_id:11010519491231002X")
        .unwrap()
        .is_none());
    assert!(r.get::<EnterpriseRecord>(E_SYNCED).unwrap().is_some());
    let staff = r
        .get::<StaffRecord>(&format!("{E_SYNCED}/{P_CLERK}"))
        .unwrap()
        .unwrap();
    assert!(staff.password_hash.unwrap().starts_with("$argon2id$"));
    drop(r);
    drop(store);

    // A malformed file says where.
    let file = write(
        tmp.path(),
        "typo.json",
        r#"{ "enterprises": [ { "credit_code": "x", "nmae": "y" } ] }"#,
    );
    let (code, _out, err) = cli(&["import", file.to_str().unwrap(), "--data", data_s]);
    assert_ne!(code, 0);
    assert!(
        err.contains("unknown field `nmae`") && err.contains("line 1"),
        "{err}"
    );

    // Importing the same demo twice is refused (duplicates of stored taxpayer ids).
    let (code, _out, err) = cli(&[
        "import",
        "examples/taxpayer-id-clash.json",
        "--data",
        data_s,
    ]);
    assert_ne!(code, 0, "{err}");
}

#[test]
fn check_passes_on_the_bundled_policies() {
    let (code, out, err) = cli(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("policies valid"), "{out}");
}

#[test]
fn check_reports_file_line_col_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let pol = tmp.path().join("policies");
    std::fs::create_dir(&pol).unwrap();
    write(
        &pol,
        "bad.cedar",
        "// comment\n@id(\"typo\")\npermit (principal is Etax::Staff, action == Etax::Action::\"useFunction\", resource)\nwhen { principal.identityTipe == Etax::IdentityType::\"legal_rep\" };\n",
    );
    write(
        &pol,
        "syntax.cedar",
        "@id(\"broken\")\npermit (principal, action, resource) when { 1 + };\n",
    );
    let (code, out, _err) = cli(&["check", "--policies", pol.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        out.lines().any(|l| l.contains("bad.cedar:4:")
            && l.contains("[typo]")
            && l.contains("identityTipe")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.contains("syntax.cedar:2:")), "{out}");
}
