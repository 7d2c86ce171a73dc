//! Step ordering of each login mode, in process: the right order passes, a
//! skipped or repeated step is refused, a flow is used once, an expired flow
//! or code is refused. Real store, policies, log and argon2
//! ([`crate::flows::test_support`]).

use super::password::Holder;
use super::{EnterpriseLoginOutcome, FlowError, PersonalFactor, StaffSelection};
use crate::authn::challenge::ChallengeError;
use crate::authn::AuthnConfig;
use crate::flows::test_support::*;
use crate::ids::{IdType, PersonKey, Phone};
use crate::store::IdentityType;

/// The demo bureau's enterprise, as a step takes it.
fn ent() -> crate::ids::CreditCode {
    crate::ids::CreditCode::parse(ENT).unwrap()
}

fn person(id_number: &str) -> PersonKey {
    PersonKey::new(IdType::ResidentId, id_number).expect("a valid ID number")
}

/// Login flows and codes that are dead as soon as they are written: their
/// lifetime is 0 s, so no clock needs to pass.
fn expiring() -> AuthnConfig {
    AuthnConfig {
        flow_ttl_secs: 0,
        code_ttl_secs: 0,
        ..AuthnConfig::default()
    }
}

fn expired(r: Result<impl std::fmt::Debug, FlowError>) {
    assert!(matches!(r, Err(FlowError::FlowExpired)), "{r:?}");
}

fn code_refused(r: Result<impl std::fmt::Debug, FlowError>, want: ChallengeError) {
    match r {
        Err(FlowError::Code(e)) => assert_eq!(e, want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

/// Step 1 of an enterprise login, with its staff selection.
async fn enterprise_step(b: &Bureau) -> StaffSelection {
    match b.login.enterprise_login(ENT, ENT_PW.into()).await {
        Ok(EnterpriseLoginOutcome::SelectStaff(s)) => s,
        other => panic!("expected a staff selection, got {other:?}"),
    }
}

fn wang_password() -> PersonalFactor {
    PersonalFactor::Password(WANG_PW.into())
}

#[tokio::test]
async fn enterprise_login_in_order_opens_a_session_once() {
    let b = Bureau::demo();
    let sel = enterprise_step(&b).await;
    let wang = member_id(&sel, WANG);
    let grant = b
        .login
        .enterprise_complete(&sel.flow, &wang, wang_password())
        .await
        .expect("the last step logs in");
    let (_, rec) = b.sessions.resolve(&grant.session, false).expect("live");
    assert_eq!(rec.principal_type, crate::domain::PrincipalKind::Staff);
    assert_eq!(rec.principal_id, format!("{ENT}/resident_id:{WANG_ID}"));
    // The flow was taken by the last step: it opens no second session.
    expired(
        b.login
            .enterprise_complete(&sel.flow, &wang, wang_password())
            .await,
    );
    expired(b.login.enterprise_code(&sel.flow, &wang).await);
    // Each step was decided and recorded: the account, then the staff member.
    let kinds: Vec<_> = b.log().await.into_iter().collect();
    assert_eq!(
        kinds,
        [
            ("login.enterprise_account".to_owned(), true),
            ("login.normal".to_owned(), true)
        ]
    );
}

#[tokio::test]
async fn enterprise_steps_without_the_account_step_are_refused() {
    let b = Bureau::demo();
    let (never_issued, _) = crate::authn::session::new_token();
    expired(b.login.enterprise_code(&never_issued, "x").await);
    expired(
        b.login
            .enterprise_complete(&never_issued, "x", wang_password())
            .await,
    );
    expired(b.login.sync_staff(&never_issued).await);
    // An agency flow does not continue an enterprise login.
    let agency = b
        .login
        .agency_login(AGENCY, AGENCY_PW.into())
        .await
        .unwrap();
    expired(b.login.enterprise_code(&agency.flow, "x").await);
    expired(b.login.enterprise_cancel(&agency.flow).await);
}

#[tokio::test]
async fn an_sms_code_not_sent_in_this_flow_or_before_a_cancel_is_refused() {
    let b = Bureau::demo();
    let sel = enterprise_step(&b).await;
    let wang = member_id(&sel, WANG);
    // The code step skipped: a made-up challenge.
    code_refused(
        b.login
            .enterprise_complete(
                &sel.flow,
                &wang,
                PersonalFactor::Sms {
                    challenge: "not-issued".into(),
                    code: "000000".into(),
                },
            )
            .await,
        ChallengeError::Unknown,
    );
    // A code sent, then the flow cancelled: the code no longer counts.
    let issued = b.login.enterprise_code(&sel.flow, &wang).await.unwrap();
    let sel = b.login.enterprise_cancel(&sel.flow).await.unwrap();
    let sms = PersonalFactor::Sms {
        challenge: issued.challenge,
        code: issued.code,
    };
    code_refused(
        b.login.enterprise_complete(&sel.flow, &wang, sms).await,
        ChallengeError::Unknown,
    );
}

#[tokio::test]
async fn an_expired_enterprise_flow_is_refused() {
    let b = Bureau::with(expiring());
    let sel = enterprise_step(&b).await;
    let wang = member_id(&sel, WANG);
    expired(b.login.enterprise_code(&sel.flow, &wang).await);
    expired(
        b.login
            .enterprise_complete(&sel.flow, &wang, wang_password())
            .await,
    );
}

/// Quick login step 1 for 王建国: the flow and the SMS code.
async fn quick_step(b: &Bureau) -> (String, super::IssuedCode) {
    b.login
        .quick_code(ENT, ENT_PW.into(), IdentityType::LegalRep, person(WANG_ID))
        .await
        .expect("a code is sent")
}

#[tokio::test]
async fn quick_login_in_order_then_once() {
    let b = Bureau::demo();
    let (flow, issued) = quick_step(&b).await;
    let grant = b
        .login
        .quick_complete(&flow, issued.challenge.clone(), issued.code.clone())
        .await
        .expect("the code logs in");
    assert!(b.sessions.resolve(&grant.session, false).is_ok());
    expired(
        b.login
            .quick_complete(&flow, issued.challenge, issued.code)
            .await,
    );
}

#[tokio::test]
async fn quick_login_refuses_other_flows_expired_flows_and_a_first_login() {
    let b = Bureau::demo();
    // The code step skipped: an enterprise flow is not a quick one.
    let sel = enterprise_step(&b).await;
    expired(
        b.login
            .quick_complete(&sel.flow, "c".into(), "000000".into())
            .await,
    );
    // R3: quick login only after a first normal login.
    let r = b
        .login
        .quick_code(
            DALIAN,
            DALIAN_PW.into(),
            IdentityType::LegalRep,
            person("210203198808086069"),
        )
        .await;
    match r {
        Err(FlowError::Forbidden(refusal)) => assert_eq!(refusal.code, "normal_login_required"),
        other => panic!("expected normal_login_required, got {other:?}"),
    }
    let b = Bureau::with(expiring());
    let (flow, issued) = quick_step(&b).await;
    expired(
        b.login
            .quick_complete(&flow, issued.challenge, issued.code)
            .await,
    );
}

#[tokio::test]
async fn natural_person_login_needs_a_fresh_captcha_for_that_account() {
    let b = Bureau::demo();
    let zhao = person(ZHAO_ID);
    // The captcha step skipped.
    code_refused(
        b.login
            .natural_person(zhao.clone(), ZHAO_PW.into(), "not-issued", "000000")
            .await,
        ChallengeError::Unknown,
    );
    // A captcha requested for another account.
    let other = b.login.captcha(person(WANG_ID)).await.unwrap();
    code_refused(
        b.login
            .natural_person(zhao.clone(), ZHAO_PW.into(), &other.challenge, &other.code)
            .await,
        ChallengeError::Unknown,
    );
    let captcha = b.login.captcha(zhao.clone()).await.unwrap();
    let grant = b
        .login
        .natural_person(
            zhao.clone(),
            ZHAO_PW.into(),
            &captcha.challenge,
            &captcha.code,
        )
        .await
        .expect("captcha and password log in");
    assert!(b.sessions.resolve(&grant.session, false).is_ok());
    // The captcha is used up.
    code_refused(
        b.login
            .natural_person(zhao, ZHAO_PW.into(), &captcha.challenge, &captcha.code)
            .await,
        ChallengeError::Used,
    );
}

#[tokio::test]
async fn an_expired_captcha_is_refused() {
    let b = Bureau::with(expiring());
    let zhao = person(ZHAO_ID);
    let captcha = b.login.captcha(zhao.clone()).await.unwrap();
    code_refused(
        b.login
            .natural_person(zhao, ZHAO_PW.into(), &captcha.challenge, &captcha.code)
            .await,
        ChallengeError::Expired,
    );
}

/// Agency steps 1 and 2: the flow, after 孙明 logged in by password.
async fn agency_agent(b: &Bureau) -> String {
    let sel = b
        .login
        .agency_login(AGENCY, AGENCY_PW.into())
        .await
        .unwrap();
    let sun = member_id(&sel, SUN);
    let clients = b
        .login
        .agency_agent(&sel.flow, &sun, PersonalFactor::Password(SUN_PW.into()))
        .await
        .expect("the agent logs in");
    assert_eq!(clients.clients[0].credit_code, ENT);
    sel.flow
}

#[tokio::test]
async fn agency_login_in_three_steps_then_once() {
    let b = Bureau::demo();
    let flow = agency_agent(&b).await;
    let grant = b
        .login
        .agency_client(&flow, ent(), AGREEMENT_PW.into())
        .await
        .expect("step 3 acts for the client");
    assert_eq!(grant.acting_for.as_deref(), Some(ENT));
    let (_, rec) = b.sessions.resolve(&grant.session, false).unwrap();
    assert_eq!(rec.acting_for, Some(ent()));
    expired(
        b.login
            .agency_client(&flow, ent(), AGREEMENT_PW.into())
            .await,
    );
}

#[tokio::test]
async fn agency_client_step_before_the_agent_step_is_refused() {
    let b = Bureau::demo();
    let sel = b
        .login
        .agency_login(AGENCY, AGENCY_PW.into())
        .await
        .unwrap();
    match b
        .login
        .agency_client(&sel.flow, ent(), AGREEMENT_PW.into())
        .await
    {
        Err(FlowError::Invalid { field, .. }) => assert_eq!(field, "flow"),
        other => panic!("expected the agent step first, got {other:?}"),
    }
    // An enterprise flow does not continue an agency login.
    let ent = enterprise_step(&b).await;
    expired(
        b.login
            .agency_agent(&ent.flow, "x", PersonalFactor::Password(SUN_PW.into()))
            .await,
    );
    let b = Bureau::with(expiring());
    let sel = b
        .login
        .agency_login(AGENCY, AGENCY_PW.into())
        .await
        .unwrap();
    let sun = member_id(&sel, SUN);
    expired(
        b.login
            .agency_agent(&sel.flow, &sun, PersonalFactor::Password(SUN_PW.into()))
            .await,
    );
}

#[tokio::test]
async fn a_forgotten_password_is_reset_once_by_its_code() {
    let b = Bureau::demo();
    let zhao = person(ZHAO_ID);
    let phone = Phone::parse("13600000010").unwrap();
    // The code step skipped.
    code_refused(
        b.login
            .forgot_reset("not-issued", "000000", "Fresh@2027zl".into())
            .await,
        ChallengeError::Unknown,
    );
    let issued = b
        .login
        .forgot_code(Holder::Person, None, zhao.clone(), phone)
        .await
        .unwrap();
    b.login
        .forgot_reset(&issued.challenge, &issued.code, "Fresh@2027zl".into())
        .await
        .expect("the code resets the password");
    code_refused(
        b.login
            .forgot_reset(&issued.challenge, &issued.code, "Again@2027zl".into())
            .await,
        ChallengeError::Used,
    );
    // The new password is the one that logs in.
    let captcha = b.login.captcha(zhao.clone()).await.unwrap();
    b.login
        .natural_person(
            zhao,
            "Fresh@2027zl".into(),
            &captcha.challenge,
            &captcha.code,
        )
        .await
        .expect("the new password logs in");
}

#[tokio::test]
async fn a_social_security_only_payer_is_logged_in_at_the_account_step() {
    let b = Bureau::demo();
    match b.login.enterprise_login(SOCIAL, SOCIAL_PW.into()).await {
        Ok(EnterpriseLoginOutcome::LoggedIn(g)) => {
            assert_eq!(g.route, "social_insurance_fee_system");
            assert!(b.sessions.resolve(&g.session, false).is_ok());
        }
        other => panic!("expected a session, got {other:?}"),
    }
}
