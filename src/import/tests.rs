//! The import's guarantee with a real store file: a write that fails after
//! some batches committed leaves the store as it was; sections are read in
//! check order whatever their order in the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::*;
use crate::authn::password::HashCost;
use crate::gen::resident_id;
use crate::store::*;

const E: &str = "91210102MA0TAX001F";

fn light_hasher() -> PasswordHasher {
    let cost = HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    PasswordHasher::new(cost).unwrap()
}

fn demo_store(dir: &Path) -> Store {
    let store = Store::open(&dir.join("s.redb")).unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo.json");
    import_file(&store, &demo, &light_hasher(), &PasswordPolicy::default()).unwrap();
    store
}

/// Every identity record, by table and key, as stored.
fn dump(store: &Store) -> BTreeMap<String, String> {
    fn add<R: Record>(r: &StoreReader, out: &mut BTreeMap<String, String>) {
        let table = redb::TableHandle::name(&R::TABLE).to_owned();
        for (k, v) in r.all::<R>().unwrap() {
            out.insert(format!("{table}/{k}"), serde_json::to_string(&v).unwrap());
        }
    }
    let r = store.read().unwrap();
    let mut out = BTreeMap::new();
    add::<EnterpriseRecord>(&r, &mut out);
    add::<CoreOfficersRecord>(&r, &mut out);
    add::<PersonRecord>(&r, &mut out);
    add::<StaffRecord>(&r, &mut out);
    add::<PermissionIdentityRecord>(&r, &mut out);
    add::<FunctionRecord>(&r, &mut out);
    add::<AgencyRecord>(&r, &mut out);
    add::<AgentStaffRecord>(&r, &mut out);
    add::<RecognitionRecord>(&r, &mut out);
    add::<ClientOfRecord>(&r, &mut out);
    out
}

/// An enterprise of the demo renamed under a new taxpayer id, six new
/// persons and six new staff of it: with batches of two, the last staff
/// member is written in the seventh transaction.
fn overwriting_document() -> serde_json::Value {
    let ids: Vec<String> = (0..6).map(|n| resident_id(0, n)).collect();
    json!({
        "staff": ids.iter().map(|id| json!({
            "enterprise": E, "person": { "id_type": "resident_id", "id_number": id },
            "identity_type": "tax_clerk", "permission_identities": ["filing"],
            "password": "Clerk@2026x"
        })).collect::<Vec<_>>(),
        "persons": ids.iter().map(|id| json!({
            "id_type": "resident_id", "id_number": id, "name": "新人"
        })).collect::<Vec<_>>(),
        "enterprises": [{
            "credit_code": E, "taxpayer_id": "210102999999999", "name": "改名",
            "category": "ordinary", "password": "Rename@2026"
        }]
    })
}

#[test]
fn a_write_that_fails_midway_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = demo_store(dir.path());
    let before = dump(&store);
    fail_midway(&store, dir.path());
    assert_eq!(dump(&store), before);
    let r = store.read().unwrap();
    assert_eq!(
        r.credit_code_for_taxpayer_id("210102999999999").unwrap(),
        None
    );
}

#[test]
fn a_first_load_that_fails_midway_leaves_the_store_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let demo = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo.json"));
    let mut doc: serde_json::Value = serde_json::from_slice(&demo.unwrap()).unwrap();
    // The demo's functions and roles, so that the document stands alone.
    let extra = overwriting_document();
    for section in ["staff", "persons"] {
        let more = extra[section].as_array().unwrap().clone();
        doc[section].as_array_mut().unwrap().extend(more);
    }
    let path = dir.path().join("doc.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    fail_midway_with(&store, &path);
    assert!(store.is_empty().unwrap());
    let r = store.read().unwrap();
    assert_eq!(
        r.credit_code_for_taxpayer_id("210102123456789").unwrap(),
        None
    );
}

/// Imports [`overwriting_document`] with batches of two, the file changed
/// after the check so that its last staff member fails the second pass.
fn fail_midway(store: &Store, dir: &Path) {
    let path = dir.join("doc.json");
    std::fs::write(&path, overwriting_document().to_string()).unwrap();
    fail_midway_with(store, &path);
}

fn fail_midway_with(store: &Store, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let cut = text.rfind("\"filing\"").unwrap();
    let changed = format!("{}\"filinX\"{}", &text[..cut], &text[cut + 8..]);
    let hasher = light_hasher();
    let credentials = Credentials {
        hasher: &hasher,
        passwords: &PasswordPolicy::default(),
    };
    let file = std::fs::File::open(path).unwrap();
    let mut rewrite = || std::fs::write(path, &changed).unwrap();
    let commits = store.commits();
    let err = import_with(
        store,
        file,
        &credentials,
        &mut Progress::new(false),
        2,
        &mut rewrite,
    )
    .unwrap_err();
    // The last staff member, in the second pass.
    let last = format!("staff[{}]", text.matches("\"identity_type\"").count() - 1);
    assert!(
        matches!(&err, ImportError::Changed(f) if f.record == last),
        "{err}"
    );
    // Batches were committed before the failure, and undone after it.
    assert!(store.commits() > commits + 3);
    assert!(!store.has_undo().unwrap());
}

#[test]
fn sections_are_checked_in_order_whatever_their_order_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = demo_store(dir.path());
    let hasher = light_hasher();
    let doc = overwriting_document().to_string();
    let summary = import_json(&store, doc.as_bytes(), &hasher, &PasswordPolicy::default()).unwrap();
    assert_eq!(
        (summary.persons, summary.staff, summary.enterprises),
        (6, 6, 1)
    );
    assert!(!store.has_undo().unwrap());
    let r = store.read().unwrap();
    let key = owned_key(E, &format!("resident_id:{}", resident_id(0, 5)));
    let staff = r.get::<StaffRecord>(&key).unwrap().unwrap();
    // The clear password was hashed (in the second pass) and stored.
    assert!(hasher.verify("Clerk@2026x", &staff.password_hash.unwrap()));
    assert_eq!(r.get::<EnterpriseRecord>(E).unwrap().unwrap().name, "改名");
}
