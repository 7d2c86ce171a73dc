//! Whether a login answer gives away that an account exists, by its time:
//! a wrong password for a real account against an unknown account, and a
//! real password-recovery code against a decoy. Each pair must cost about
//! the same (both verify one argon2id hash, or both do one pre-check, one
//! store write and one log record). Runs the login service in process with
//! the production argon2 cost. Run: `cargo bench --bench login_timing`.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use etax_authz::audit::{self, AuditLog};
use etax_authz::authn::{Authn, AuthnConfig};
use etax_authz::decision::fixture;
use etax_authz::flows::password::Holder;
use etax_authz::flows::Login;
use etax_authz::ids::{CreditCode, IdType, PersonKey, Phone};

/// The demo bureau behind a login service with the production argon2 cost,
/// no lockout and no SMS rate limit (the benchmark repeats one account).
fn login_service(dir: &Path) -> Login {
    let config = AuthnConfig {
        lockout_threshold: u32::MAX,
        codes_per_phone: u32::MAX,
        ..AuthnConfig::default()
    };
    let authn = Arc::new(Authn::new(config.clone()).unwrap());
    let store = fixture::demo_store(dir, authn.hasher(), &config.passwords);
    let engine = fixture::engine_over(store);
    let audit = AuditLog::open(&audit::decision_log_path(dir)).unwrap();
    let keys = audit::pseudonym::Pseudonyms::load_or_create(&dir.join("pseudonym.key")).unwrap();
    let sessions = etax_authz::authn::sessions::Sessions::new(engine.store().clone(), config);
    Login::new(
        etax_authz::flows::decide::Decider::new(engine, audit, keys),
        authn,
        sessions,
    )
}

fn timing(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let login = rt.block_on(async { login_service(dir.path()) });

    let mut g = c.benchmark_group("enterprise_login");
    g.sample_size(20);
    for (name, account) in [
        ("wrong_password", "91210102MA0TAX001F"),
        ("unknown_account", "91210102MA0TAX002J"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = rt.block_on(login.enterprise_login(account, "Wrong@2026x".into()));
                assert!(r.is_err());
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("forgot_code");
    g.sample_size(20);
    let clerk = PersonKey::new(IdType::ResidentId, "210102199001015035").unwrap();
    let stranger = PersonKey::new(IdType::ResidentId, "210102199001015051").unwrap();
    let phone = Phone::parse("13800000003").unwrap();
    for (name, person) in [("real_code", &clerk), ("decoy_code", &stranger)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = rt.block_on(login.forgot_code(
                    Holder::Staff,
                    Some(CreditCode::parse("91210102MA0TAX001F").unwrap()),
                    person.clone(),
                    phone.clone(),
                ));
                assert!(r.is_ok());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, timing);
criterion_main!(benches);
