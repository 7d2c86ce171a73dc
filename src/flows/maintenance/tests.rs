//! Maintenance on the shared flows fixture, and its one-time passwords.

use super::staff::one_time_password;
use super::*;
use crate::authn::PasswordPolicy;
use crate::ids::CreditCode;
use crate::store::StaffRecord;

#[test]
fn one_time_passwords_pass_the_acceptance_function_and_differ() {
    let policy = PasswordPolicy::default();
    let a = one_time_password(&policy).unwrap();
    assert!(policy.accept(&a).is_ok(), "{a}");
    assert_ne!(a, one_time_password(&policy).unwrap());
    let strict = PasswordPolicy {
        rule: crate::authn::PasswordRule {
            min_len: 16,
            max_len: 20,
            min_classes: 4,
        },
        ..PasswordPolicy::default()
    };
    let b = one_time_password(&strict).unwrap();
    assert!(strict.accept(&b).is_ok(), "{b}");
}

/// A person of the demo bureau's enterprise, by ID number.
fn staff_of_ent(id_number: &str) -> (Actor, PersonKey) {
    use crate::flows::test_support::ENT;
    let person = PersonKey::new(crate::ids::IdType::ResidentId, id_number).unwrap();
    let actor = Actor {
        enterprise: CreditCode::parse(ENT).unwrap(),
        person: person.clone(),
    };
    (actor, person)
}

/// Cedar decides before anything is written: a denied change leaves the
/// store as it was; an allowed one is in the decision log even when its
/// write then fails, so the record came first.
#[tokio::test]
async fn maintenance_decides_and_records_before_it_writes() {
    use crate::flows::test_support::{Bureau, WANG_ID};
    let b = Bureau::demo();
    let ops = b.maintenance();
    let (legal_rep, wang) = staff_of_ent(WANG_ID);
    let (clerk, zhang) = staff_of_ent("210102199001015035");
    let key = super::colleague(&clerk, &zhang).to_string();
    let stored = || {
        b.store()
            .read()
            .unwrap()
            .get::<StaffRecord>(&key)
            .unwrap()
            .unwrap()
    };
    let before = stored();
    // A tax clerk may not reset passwords (R12): nothing changes.
    let denied = ops.reset_password(&clerk, &zhang).await;
    assert!(
        matches!(denied, Err(MaintenanceError::Denied { .. })),
        "{denied:?}"
    );
    let after = stored();
    assert_eq!(after.password_hash, before.password_hash);
    assert_eq!(after.credential_epoch, before.credential_epoch);
    // Allowed, then refused by the write (officers are the core tax
    // system's): the allow was already recorded, and the officer stays.
    let refused = ops.remove_staff(&legal_rep, &wang).await;
    assert!(
        matches!(refused, Err(MaintenanceError::Conflict(_))),
        "{refused:?}"
    );
    let wang_key = super::colleague(&legal_rep, &wang).to_string();
    assert!(b
        .store()
        .read()
        .unwrap()
        .get::<StaffRecord>(&wang_key)
        .unwrap()
        .is_some());
    // The legal representative's reset is decided, recorded and written.
    ops.reset_password(&legal_rep, &zhang).await.unwrap();
    let reset = stored();
    assert!(reset.password_change_required);
    assert_ne!(reset.credential_epoch, before.credential_epoch);
    let log = b.log().await;
    let decided: Vec<_> = log
        .iter()
        .map(|(k, allowed)| (k.as_str(), *allowed))
        .collect();
    // (The correction of the refused write is the request's: HTTP
    // commits it with the answer.)
    assert_eq!(
        decided,
        [
            ("maintain.resetStaffPassword", false),
            ("maintain.removeStaff", true),
            ("maintain.resetStaffPassword", true),
        ]
    );
}
