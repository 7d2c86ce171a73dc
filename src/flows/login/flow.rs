//! A login flow: the record that carries a multi-step login from its
//! account step to its last step (kind, account, verified factors, picked
//! member), single-use and with a lifetime. Also the account step shared by
//! the enterprise, quick and agency logins.

use std::collections::BTreeSet;

use super::steps::{conclude, Failure};
use super::{invalid, FlowError, Login};
use crate::authn::lockout::LockKey;
use crate::authn::session;
use crate::domain::{Action, EntityKind, Factor, StaffKey};
use crate::ids::TaxpayerRef;
use crate::store::{FlowKind, LoginFlowRecord, Record, StoreError, StoreReader, StoreWriter};

pub(super) const WRONG_ACCOUNT: &str = "account or password is wrong";

/// Whether a login flow's lifetime is over: no step continues it.
pub(crate) fn flow_expired(rec: &LoginFlowRecord, now_ms: u64) -> bool {
    now_ms >= rec.expires_ms
}

/// Resolves what a user typed at an account login to a credit code; unknown
/// accounts keep what was typed, so they fail (and lock) like real ones.
pub(super) fn account_code(reader: &StoreReader, account: &str) -> Result<String, FlowError> {
    let parsed = TaxpayerRef::parse(account).map_err(|e| invalid("account", e))?;
    Ok(match parsed {
        TaxpayerRef::CreditCode(c) => c.to_string(),
        TaxpayerRef::TaxpayerId(t) => reader
            .credit_code_for_taxpayer_id(t.as_str())?
            .unwrap_or_else(|| t.to_string()),
    })
}

impl Login {
    /// Stores a new login flow of `kind` for `account`; answers the flow
    /// token the client holds and the store key.
    pub(super) async fn new_flow(
        &self,
        kind: FlowKind,
        account: String,
        factors: BTreeSet<Factor>,
        staff: Option<(StaffKey, u64)>,
    ) -> Result<(String, String), FlowError> {
        let (staff, staff_epoch) = staff.unzip();
        let rec = LoginFlowRecord {
            kind,
            account,
            factors,
            staff,
            generation: 0,
            staff_epoch: staff_epoch.unwrap_or_default(),
            expires_ms: crate::now_ms() + self.authn.config.flow_ttl_secs * 1000,
        };
        let (flow, key) = session::new_token();
        let k = key.clone();
        self.write(move |w| w.put(&k, &rec)).await?;
        Ok((flow, key))
    }

    /// Step 1 of an account login (the enterprise's or the agency's): the
    /// account resolved from a credit code or taxpayer ID, its record, and
    /// its password checked under its lockout (`lock` names it) — the factors
    /// it proves and the failure, if any. An unknown account is verified
    /// against the dummy hash like a real one.
    pub(super) async fn account_password<R: Record>(
        &self,
        account: &str,
        password: String,
        lock: fn(String) -> LockKey,
        factor: Factor,
        hash_of: fn(&R) -> String,
    ) -> Result<(String, Option<R>, BTreeSet<Factor>, Option<Failure>), FlowError> {
        let reader = self.read()?;
        let code = account_code(&reader, account)?;
        let rec = reader.get::<R>(&code)?;
        drop(reader);
        let failure = self
            .guarded_verify(
                lock(code.clone()),
                password,
                rec.as_ref().map(hash_of),
                WRONG_ACCOUNT,
            )
            .await?;
        let mut factors = BTreeSet::new();
        if failure.is_none() {
            factors.insert(factor);
        }
        Ok((code, rec, factors, failure))
    }

    /// Decides a login in which an account logs in to itself (principal and
    /// resource are the same entity) and concludes it: a refusal or a
    /// failed factor is the error.
    pub(super) async fn own_login(
        &self,
        step: &str,
        action: Action,
        entity: EntityKind,
        id: &str,
        factors: &BTreeSet<Factor>,
        failure: Option<Failure>,
    ) -> Result<(), FlowError> {
        let me = entity.uid(id);
        let verdict = self
            .decide(
                step,
                me.clone(),
                action,
                me,
                factors,
                None,
                failure.as_ref(),
                None,
            )
            .await?;
        conclude(&verdict, failure)
    }

    /// Ends a flow at its last step, as `rec` (read at the step's start)
    /// had it. Only one of several requests finishing the same flow at once
    /// takes it: the others find it gone, so one flow never opens two
    /// sessions; and a flow cancelled meanwhile (a new generation, whose
    /// earlier codes no longer count) is not taken by a step that verified
    /// one of those codes.
    pub(super) async fn take_flow(
        &self,
        key: String,
        rec: &LoginFlowRecord,
    ) -> Result<(), FlowError> {
        self.take_flow_and(key, rec, |_| Ok(())).await
    }

    /// [`Self::take_flow`], with `then` written in the same transaction by
    /// the one request that takes the flow.
    pub(super) async fn take_flow_and(
        &self,
        key: String,
        rec: &LoginFlowRecord,
        then: impl FnOnce(&mut StoreWriter) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), FlowError> {
        let generation = rec.generation;
        let taken = self
            .write(move |w| {
                let current = w.get::<LoginFlowRecord>(&key)?;
                if current.is_none_or(|c| c.generation != generation) {
                    return Ok(false);
                }
                let taken = w.remove::<LoginFlowRecord>(&key)?;
                if taken {
                    then(w)?;
                }
                Ok(taken)
            })
            .await?;
        if taken {
            Ok(())
        } else {
            Err(FlowError::FlowExpired)
        }
    }

    /// A live flow of `kind`.
    pub(super) fn flow(
        &self,
        flow: &str,
        kind: FlowKind,
    ) -> Result<(String, LoginFlowRecord), FlowError> {
        let key = session::token_key(flow);
        // Fleet mode: the step before may have run on another host a
        // moment ago; read the flow as the fleet has it, not as the applier
        // last brought it (the red team's agency login answered
        // `login_flow_expired` on the host the second step reached).
        let store = self.store();
        if store.is_replica() {
            tokio::task::block_in_place(|| {
                store.catch_up_if_needed(|_, changes| {
                    Ok(changes.iter().any(|c| c.writes::<LoginFlowRecord>(&key)))
                })
            })?;
        }
        match self.read()?.get::<LoginFlowRecord>(&key)? {
            Some(rec) if rec.kind == kind && !flow_expired(&rec, crate::now_ms()) => Ok((key, rec)),
            _ => Err(FlowError::FlowExpired),
        }
    }
}
