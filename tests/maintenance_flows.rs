//! Staff maintenance and agency recognition (R12–R17) over a real redb
//! store, real Cedar policies, real argon2 and the decision log.

use std::collections::BTreeSet;

use etax_authz::audit::AuditLog;
use etax_authz::authn::config::AuthnConfig;
use etax_authz::authn::password::HashCost;
use etax_authz::authn::{Authn, PasswordHasher, PasswordPolicy};
use etax_authz::decision::{fixture, uid, Engine, Query};
use etax_authz::flows::maintenance::{
    Actor, Maintenance, MaintenanceError, PermissionIdentitySpec, StaffChange,
};
use etax_authz::ids::{CreditCode, PermissionIdentityId, PersonKey};
use etax_authz::store::{self, IdentityType, StaffRecord};
use serde_json::json;

/// A light argon2 cost keeps the suite fast; production uses the default.
const LIGHT: HashCost = HashCost {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};
const E1: &str = "91210102MA0TAX001F";
const AGENCY: &str = "91210100MA0AGT004B";
const LEGAL_REP: &str = "resident_id:210102198003124011";
const FINANCE_HEAD: &str = "resident_id:210102198507263023";
const CLERK: &str = "resident_id:210102199001015035";
const NATURAL: &str = "resident_id:210106199102140105";
const UNVERIFIED: &str = "resident_id:210104197506203078";
const AGENT: &str = "resident_id:210105199303031080";

struct Bureau {
    _tmp: tempfile::TempDir,
    engine: Engine,
    audit: AuditLog,
    decider: etax_authz::flows::decide::Decider,
    hasher: PasswordHasher,
    authn: Authn,
}

impl Bureau {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let hasher = PasswordHasher::new(LIGHT).unwrap();
        let store = fixture::demo_store(tmp.path(), &hasher, &PasswordPolicy::default());
        let engine = fixture::engine_over(store);
        let audit = AuditLog::open(&tmp.path().join("decisions.redb")).unwrap();
        let authn = Authn::new(AuthnConfig {
            cost: LIGHT,
            ..AuthnConfig::default()
        })
        .unwrap();
        let keys = etax_authz::audit::pseudonym::Pseudonyms::load_or_create(
            &tmp.path().join("pseudonym.key"),
        )
        .unwrap();
        let decider = etax_authz::flows::decide::Decider::new(engine.clone(), audit.clone(), keys);
        Self {
            _tmp: tmp,
            engine,
            audit,
            decider,
            hasher,
            authn,
        }
    }

    fn ops(&self) -> Maintenance<'_> {
        Maintenance {
            engine: &self.engine,
            decider: &self.decider,
            authn: &self.authn,
        }
    }

    fn allowed(
        &self,
        principal: (&str, &str),
        action: &str,
        resource: (&str, &str),
        context: serde_json::Value,
    ) -> bool {
        let q = Query {
            principal: uid(principal.0, principal.1),
            action: uid("Action", action),
            resource: uid(resource.0, resource.1),
            context,
            stamped: None,
        };
        self.engine.decide(&q).unwrap().allowed
    }

    fn staff(&self, person: &str) -> Option<StaffRecord> {
        self.engine
            .store()
            .read()
            .unwrap()
            .get::<StaffRecord>(&format!("{E1}/{person}"))
            .unwrap()
    }
}

fn actor(person: &str) -> Actor {
    Actor {
        enterprise: CreditCode::parse(E1).unwrap(),
        person: PersonKey::parse_key(person).unwrap(),
    }
}

fn key(person: &str) -> PersonKey {
    PersonKey::parse_key(person).unwrap()
}

fn denied_by(r: Result<impl std::fmt::Debug, MaintenanceError>) -> Vec<String> {
    match r {
        Err(MaintenanceError::Denied { policies, .. }) => policies,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_officers_maintain_staff_and_each_denial_names_its_rule() {
    let b = Bureau::new();
    let ops = b.ops();
    assert_eq!(
        denied_by(ops.list_staff(&actor(CLERK)).await),
        ["maintain.ordinary-staff-excluded"]
    );
    let staff = ops.list_staff(&actor(FINANCE_HEAD)).await.unwrap();
    assert_eq!(staff.len(), 5);
    assert!(
        staff
            .iter()
            .all(|s| s.name.starts_with('*') && s.person.contains("**********")),
        "{staff:?}"
    );

    // Every decision, allowed or denied, is in the decision log.
    let log = b.audit.all().unwrap();
    let kinds: Vec<(&str, &str)> = log
        .iter()
        .map(|(_, r)| {
            (
                r.kind.as_str(),
                if r.decision == etax_authz::audit::Outcome::Allow {
                    "allow"
                } else {
                    "deny"
                },
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("maintain.viewStaff", "deny"),
            ("maintain.viewStaff", "allow")
        ]
    );
    assert_eq!(log[0].1.policies, ["maintain.ordinary-staff-excluded"]);
    assert!(
        !log[0].1.principal.contains("210102199001015035"),
        "masked: {}",
        log[0].1.principal
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_follows_r12() {
    let b = Bureau::new();
    let ops = b.ops();
    // The finance head may not reset the legal rep's password, nor the reverse.
    assert_eq!(
        denied_by(
            ops.reset_password(&actor(FINANCE_HEAD), &key(LEGAL_REP))
                .await
        ),
        ["maintain.no-cross-officer-reset"]
    );
    assert_eq!(
        denied_by(
            ops.reset_password(&actor(LEGAL_REP), &key(FINANCE_HEAD))
                .await
        ),
        ["maintain.no-cross-officer-reset"]
    );
    assert_eq!(
        denied_by(ops.reset_password(&actor(CLERK), &key(CLERK)).await),
        ["maintain.ordinary-staff-excluded"]
    );
    let before = b.staff(CLERK).unwrap();

    // The legal rep resets a clerk: a random one-time password for the
    // clerk's real-name phone, to be changed before anything else.
    let otp = ops
        .reset_password(&actor(LEGAL_REP), &key(CLERK))
        .await
        .unwrap();
    assert_eq!(otp.deliver_to, "13800000003");
    assert_eq!(otp.deliver_to_masked, "138****0003");
    assert!(PasswordPolicy::default().accept(&otp.password).is_ok());
    let after = b.staff(CLERK).unwrap();
    assert!(after.password_change_required);
    assert!(b
        .hasher
        .verify(&otp.password, after.password_hash.as_ref().unwrap()));
    assert_ne!(before.password_hash, after.password_hash);
    assert!(!b.allowed(
        ("Staff", &format!("{E1}/{CLERK}")),
        "useFunction",
        ("Function", "vat_filing"),
        json!({})
    ));

    // Each officer may reset their own.
    ops.reset_password(&actor(FINANCE_HEAD), &key(FINANCE_HEAD))
        .await
        .unwrap();
    // The one-time password never reaches the decision log.
    let log = serde_json::to_string(
        &b.audit
            .all()
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!log.contains(&otp.password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_identities_and_staff_changes() {
    let b = Bureau::new();
    let ops = b.ops();
    let lr = actor(LEGAL_REP);
    let spec = |id: &str, functions: &[&str]| PermissionIdentitySpec {
        id: role(id),
        name: "报税".into(),
        description: "filing only".into(),
        functions: functions.iter().map(|f| f.to_string()).collect(),
    };
    // A role granting an unknown function is refused.
    assert!(matches!(
        ops.put_permission_identity(&lr, spec("vat", &["vat_filing", "time_travel"]), true).await,
        Err(MaintenanceError::Invalid { ref field, .. }) if field == "functions"
    ));
    ops.put_permission_identity(&lr, spec("vat", &["vat_filing"]), true)
        .await
        .unwrap();
    assert!(matches!(
        ops.put_permission_identity(&lr, spec("vat", &["vat_filing"]), true)
            .await,
        Err(MaintenanceError::Conflict(_))
    ));
    assert_eq!(
        denied_by(
            ops.put_permission_identity(&actor(CLERK), spec("x", &["vat_filing"]), true)
                .await
        ),
        ["maintain.ordinary-staff-excluded"]
    );

    // R15: only real-name-collected persons can be added.
    let err = ops
        .add_staff(
            &lr,
            "吴桂兰",
            &key(UNVERIFIED),
            IdentityType::TaxClerk,
            BTreeSet::new(),
        )
        .await;
    assert!(
        matches!(&err, Err(MaintenanceError::RealNameRequired(m)) if m.contains("real-name collection")),
        "{err:?}"
    );
    let err = ops
        .add_staff(
            &lr,
            "别人",
            &key(NATURAL),
            IdentityType::TaxClerk,
            BTreeSet::new(),
        )
        .await;
    assert!(
        matches!(err, Err(MaintenanceError::RealNameRequired(_))),
        "a wrong name does not find the person"
    );
    assert_eq!(
        ops.search_person(&lr, "赵丽", &key(NATURAL)).await.unwrap(),
        "*丽"
    );

    // Add 赵丽 as invoice buyer with the new role: she may file VAT at once.
    let newbie = format!("{E1}/{NATURAL}");
    assert!(!b.allowed(
        ("Staff", &newbie),
        "useFunction",
        ("Function", "vat_filing"),
        json!({})
    ));
    ops.add_staff(
        &lr,
        "赵丽",
        &key(NATURAL),
        IdentityType::InvoiceBuyer,
        [role("vat")].into(),
    )
    .await
    .unwrap();
    assert!(b.allowed(
        ("Staff", &newbie),
        "useFunction",
        ("Function", "vat_filing"),
        json!({})
    ));
    assert!(!b.allowed(
        ("Staff", &newbie),
        "useFunction",
        ("Function", "invoice_issue"),
        json!({})
    ));

    // Officers are not assigned through maintenance.
    assert!(matches!(
        ops.add_staff(
            &lr,
            "赵丽",
            &key(NATURAL),
            IdentityType::LegalRep,
            BTreeSet::new()
        )
        .await,
        Err(MaintenanceError::Invalid { .. })
    ));

    // Deleting a role in use is refused unless detached from its holders.
    assert!(matches!(
        ops.delete_permission_identity(&lr, &role("vat"), false)
            .await,
        Err(MaintenanceError::Conflict(_))
    ));
    assert_eq!(
        ops.delete_permission_identity(&lr, &role("vat"), true)
            .await
            .unwrap(),
        1
    );
    assert!(!b.allowed(
        ("Staff", &newbie),
        "useFunction",
        ("Function", "vat_filing"),
        json!({})
    ));

    // Removing a staff member ends their access on the very next decision.
    ops.edit_staff(
        &lr,
        &key(NATURAL),
        StaffChange {
            add_permission_identities: [role("invoicing")].into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(b.allowed(
        ("Staff", &newbie),
        "useFunction",
        ("Function", "invoice_issue"),
        json!({})
    ));
    ops.remove_staff(&lr, &key(NATURAL)).await.unwrap();
    assert!(!b.allowed(
        ("Staff", &newbie),
        "useFunction",
        ("Function", "invoice_issue"),
        json!({})
    ));
    assert!(matches!(
        ops.remove_staff(&lr, &key(LEGAL_REP)).await,
        Err(MaintenanceError::Conflict(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_maintainers_never_lose_an_update() {
    let b = Bureau::new();
    let ops = b.ops();
    for round in 0..10 {
        let (lr, fh) = (actor(LEGAL_REP), actor(FINANCE_HEAD));
        let clerk = key(CLERK);
        let give = |role: &str| StaffChange {
            add_permission_identities: [self::role(role)].into(),
            ..Default::default()
        };
        let take = |role: &str| StaffChange {
            remove_permission_identities: [self::role(role)].into(),
            ..Default::default()
        };
        let (a, c) = tokio::join!(
            ops.edit_staff(&lr, &clerk, give("invoicing")),
            ops.edit_staff(&fh, &clerk, give("all-business"))
        );
        a.unwrap();
        c.unwrap();
        let held = b.staff(CLERK).unwrap().permission_identities;
        assert_eq!(
            held,
            ["all-business", "filing", "invoicing"]
                .map(String::from)
                .into(),
            "round {round}"
        );
        let (a, c) = tokio::join!(
            ops.edit_staff(&lr, &clerk, take("invoicing")),
            ops.edit_staff(&fh, &clerk, take("all-business"))
        );
        a.unwrap();
        c.unwrap();
        assert_eq!(
            b.staff(CLERK).unwrap().permission_identities,
            ["filing".to_owned()].into(),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_agency_stops_its_agents_at_once() {
    let b = Bureau::new();
    let ops = b.ops();
    let agency = CreditCode::parse(AGENCY).unwrap();
    let agent = format!("{AGENCY}/{AGENT}");
    let acting = json!({ "actingFor": { "__entity": { "type": "Etax::Enterprise", "id": E1 } } });
    assert!(b.allowed(
        ("AgentStaff", &agent),
        "useFunction",
        ("Function", "vat_filing"),
        acting.clone()
    ));

    assert_eq!(
        denied_by(ops.cancel_agency(&actor(CLERK), &agency).await),
        ["maintain.ordinary-staff-excluded"]
    );
    ops.cancel_agency(&actor(FINANCE_HEAD), &agency)
        .await
        .unwrap();
    assert!(!b.allowed(
        ("AgentStaff", &agent),
        "useFunction",
        ("Function", "vat_filing"),
        acting.clone()
    ));
    assert!(matches!(
        ops.cancel_agency(&actor(FINANCE_HEAD), &agency).await,
        Err(MaintenanceError::NotFound(_))
    ));

    // Recognized again with a new agreement password.
    assert!(matches!(
        ops.recognize_agency(&actor(LEGAL_REP), &agency, "123")
            .await,
        Err(MaintenanceError::Password {
            field: "agreement_password",
            ..
        })
    ));
    ops.recognize_agency(&actor(LEGAL_REP), &agency, "Xieyi#2027")
        .await
        .unwrap();
    assert!(b.allowed(
        ("AgentStaff", &agent),
        "useFunction",
        ("Function", "vat_filing"),
        acting
    ));
    let r = b.engine.store().read().unwrap();
    let rec = r
        .get::<store::RecognitionRecord>(&format!("{E1}/{AGENCY}"))
        .unwrap()
        .unwrap();
    assert!(b.hasher.verify("Xieyi#2027", &rec.agreement_password_hash));
}

/// A permission identity id known to be well formed.
fn role(id: &str) -> PermissionIdentityId {
    PermissionIdentityId::parse(id).expect("a valid permission identity id")
}
