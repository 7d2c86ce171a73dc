//! The credentials a step verifies in Rust before Cedar is asked: a
//! password under its lockout (the attempt reserved before argon2 runs), and
//! one-time codes (issued against a quota, checked once).

use super::steps::Failure;
use super::{Destination, FlowError, IssuedCode, Login, Quota};
use crate::authn::challenge::{self, ChallengeError};
use crate::authn::lockout::{self, LockKey};
use crate::authn::rate;
use crate::store::{ChallengePurpose, ChallengeRecord, CodeRateRecord, LockoutRecord};

/// Where a code goes, which decides the quota it counts against.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// By SMS to a real-name phone; counted per phone.
    Sms(crate::ids::Phone),
    /// Rendered as a captcha for a natural-person login; counted per
    /// account as typed, whether or not the person exists, so the answer
    /// never tells which accounts exist.
    Captcha(crate::ids::PersonKey),
}

impl Delivery {
    /// The quota, its store key and its limit.
    pub(super) fn quota(&self, cfg: &crate::authn::AuthnConfig) -> (Quota, String, u32) {
        match self {
            Delivery::Sms(p) => (
                Quota::SmsPerPhone,
                p.as_str().to_owned(),
                cfg.codes_per_phone,
            ),
            // Prefixed: a person key never collides with a phone number.
            Delivery::Captcha(person) => (
                Quota::CaptchasPerAccount,
                format!("captcha:{}", person.key()),
                cfg.captchas_per_account,
            ),
        }
    }
}

impl Login {
    /// Verifies a password under lockout `lock`. The attempt is reserved
    /// in the transaction that checks the lock, before argon2 runs, so
    /// parallel guesses cannot all pass the check (a lock, or the threshold
    /// reached by attempts in flight, refuses without verifying), then
    /// released as a failure or a success.
    pub(super) async fn guarded_verify(
        &self,
        lock: LockKey,
        password: String,
        phc: Option<String>,
        wrong: &'static str,
    ) -> Result<Option<Failure>, FlowError> {
        let key = lock.to_string();
        // A place on the hashing threads first: a step refused as busy has
        // not counted an attempt against the account.
        let slot = self.authn.hash_slot()?;
        let reservation = match self.reserve_attempt(key.clone()).await? {
            Ok(reservation) => reservation,
            Err(lockout::Refused::Locked(secs)) => return Ok(Some(Failure::Locked(secs))),
            Err(lockout::Refused::InProgress(secs)) => return Ok(Some(Failure::InProgress(secs))),
        };
        // A reservation left by an error here (the store or the log away)
        // counts as a failure at its deadline, like one left by a crash.
        let right = self.authn.verify(slot, password, phc).await;
        let cfg = self.authn.config.clone();
        self.write(move |w| {
            let rec = w.get::<LockoutRecord>(&key)?;
            if !right {
                let rec = lockout::after_wrong(rec, reservation, &cfg, crate::now_ms());
                return w.put(&key, &rec);
            }
            match lockout::after_right(rec, reservation) {
                Some(still_in_flight) => w.put(&key, &still_in_flight),
                None => w.remove::<LockoutRecord>(&key).map(|_| ()),
            }
        })
        .await?;
        Ok((!right).then_some(Failure::Wrong(wrong)))
    }

    /// Reserves one attempt under lockout record `key` (see
    /// `lockout::reserve`); a refusal writes nothing.
    async fn reserve_attempt(
        &self,
        key: String,
    ) -> Result<Result<lockout::Reservation, lockout::Refused>, FlowError> {
        let cfg = self.authn.config.clone();
        let reserved = self
            .write(move |w| {
                let rec = w.get::<LockoutRecord>(&key)?;
                match lockout::reserve(rec, &cfg, crate::now_ms()) {
                    Ok((reserved, r)) => w.put(&key, &reserved).map(|()| Ok(r)),
                    Err(refused) => Ok(Err(refused)),
                }
            })
            .await?;
        Ok(reserved)
    }

    /// Issues a code bound to `purpose`/`subject`, counted against the
    /// quota of where it goes.
    pub(super) async fn issue_code(
        &self,
        purpose: ChallengePurpose,
        subject: String,
        to: Delivery,
    ) -> Result<IssuedCode, FlowError> {
        self.issue_challenge(purpose, subject, to, false).await
    }

    /// [`Self::issue_code`], or with `decoy` a code that looks the same to
    /// the caller (and is rate-limited the same) but that no answer matches.
    pub(super) async fn issue_challenge(
        &self,
        purpose: ChallengePurpose,
        subject: String,
        to: Delivery,
        decoy: bool,
    ) -> Result<IssuedCode, FlowError> {
        let cfg = self.authn.config.clone();
        let id = crate::random_id();
        let code = challenge::new_code();
        let now = crate::now_ms();
        let rec = if decoy {
            challenge::issue_decoy(purpose, &subject, now, cfg.code_ttl_secs)
        } else {
            challenge::issue(&id, &code, purpose, &subject, now, cfg.code_ttl_secs)
        };
        let (quota, quota_key, limit) = to.quota(&cfg);
        let key = id.clone();
        let limited = self
            .write(move |w| {
                let window = w.get::<CodeRateRecord>(&quota_key)?;
                match rate::admit(window, limit, cfg.code_rate_window_secs, now) {
                    Ok(window) => w.put(&quota_key, &window)?,
                    Err(retry_after_secs) => return Ok(Some(retry_after_secs)),
                }
                w.put(&key, &rec)?;
                Ok(None)
            })
            .await?;
        if let Some(retry_after_secs) = limited {
            return Err(FlowError::RateLimited {
                quota,
                retry_after_secs,
            });
        }
        self.decider.metrics.challenge_issued(purpose.as_str());
        Ok(IssuedCode {
            challenge: id,
            code,
            expires_in_secs: self.authn.config.code_ttl_secs,
            destination: match to {
                Delivery::Sms(p) => Some(Destination {
                    phone_masked: p.masked(),
                    phone: p.as_str().to_owned(),
                }),
                Delivery::Captcha(_) => None,
            },
        })
    }

    /// Checks a code against challenge `id`, which must have been issued for
    /// `purpose` and `subject`. Counts a wrong attempt; uses the code up.
    pub(super) async fn check_code(
        &self,
        id: &str,
        code: &str,
        purpose: ChallengePurpose,
        subject: &str,
    ) -> Result<Option<Failure>, FlowError> {
        let max = self.authn.config.code_max_attempts;
        let (id, code, subject) = (id.trim().to_owned(), code.to_owned(), subject.to_owned());
        let result = self
            .write(move |w| {
                let Some(mut rec) = w.get::<ChallengeRecord>(&id)? else {
                    return Ok(Err(ChallengeError::Unknown));
                };
                if rec.purpose != purpose || rec.subject != subject {
                    return Ok(Err(ChallengeError::Unknown));
                }
                let r = challenge::attempt(&mut rec, &id, &code, crate::now_ms(), max);
                w.put(&id, &rec)?;
                Ok(r)
            })
            .await?;
        Ok(result.err().map(Failure::Code))
    }
}
