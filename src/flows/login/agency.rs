//! Agency login (R8): the agency account, then an agent staff member, then
//! a client enterprise that recognizes the agency and its agreement
//! password; the session acts for that client.

use super::members::{choices, Picked, AGENT_STAFF};
use super::steps::conclude;
use super::{
    invalid, ClientChoice, ClientSelection, FlowError, IssuedCode, Login, PersonalFactor,
    StaffSelection,
};
use crate::authn::lockout::LockKey;
use crate::authn::sessions::{SessionGrant, SessionSubject};
use crate::domain::{Action, EntityKind, Factor, PrincipalKind, StaffKey};
use crate::ids::CreditCode;
use crate::store::{
    owned_key, split_owned_key, AgencyRecord, AgentStaffRecord, ClientOfRecord, EnterpriseRecord,
    FlowKind, RecognitionRecord,
};

pub(super) const WRONG_AGREEMENT: &str = "agreement password (协议密码) is wrong";

impl Login {
    /// R8 step 1: the agency's credit code or taxpayer ID + agency password.
    pub async fn agency_login(
        &self,
        account: &str,
        password: String,
    ) -> Result<StaffSelection, FlowError> {
        let (code, rec, factors, failure) = self
            .account_password(
                account,
                password,
                LockKey::Agency,
                Factor::AgencyPassword,
                |r: &AgencyRecord| r.password_hash.clone(),
            )
            .await?;
        self.own_login(
            "agency_account",
            Action::AgencyAccountLogin,
            EntityKind::Agency,
            &code,
            &factors,
            failure,
        )
        .await?;
        let rec = rec.expect("an allowed login has a stored agency");
        let (flow, key) = self
            .new_flow(FlowKind::Agency, code.clone(), factors, None)
            .await?;
        let reader = self.read()?;
        let members = reader
            .children::<AgentStaffRecord>(&code)?
            .into_iter()
            .map(|(k, s)| (k, None, s.password_hash.is_some()))
            .collect();
        let staff = choices(&reader, &key, members)?;
        Ok(self.selection(flow, rec.name, staff, false))
    }

    pub(super) fn resolve_agent(
        &self,
        flow_key: &str,
        code: &str,
        agent_id: &str,
    ) -> Result<(StaffKey, AgentStaffRecord), FlowError> {
        self.member(flow_key, code, agent_id)?
            .ok_or_else(|| invalid("agent", "no such agent staff member in this login"))
    }

    /// R8 step 2, SMS variant: sends the code to the agent's real-name phone.
    pub async fn agency_code(&self, flow: &str, agent_id: &str) -> Result<IssuedCode, FlowError> {
        let (key, rec) = self.flow(flow, FlowKind::Agency)?;
        let (agent_key, agent) = self.resolve_agent(&key, &rec.account, agent_id)?;
        self.member_code(&AGENT_STAFF, &key, &rec, &agent_key, agent.credential_epoch)
            .await
    }

    /// R8 step 2: the agent staff member logs in by password or SMS code;
    /// answers with the clients that recognize the agency.
    pub async fn agency_agent(
        &self,
        flow: &str,
        agent_id: &str,
        factor: PersonalFactor,
    ) -> Result<ClientSelection, FlowError> {
        let (key, mut rec) = self.flow(flow, FlowKind::Agency)?;
        let (agent_key, agent) = self.resolve_agent(&key, &rec.account, agent_id)?;
        let factors = self
            .member_login(
                &AGENT_STAFF,
                &key,
                &rec,
                Picked {
                    key: &agent_key,
                    epoch: agent.credential_epoch,
                    password_hash: agent.password_hash.clone(),
                },
                factor,
            )
            .await?;
        let agency = rec.account.clone();
        rec.factors = factors;
        rec.staff = Some(agent_key);
        rec.staff_epoch = agent.credential_epoch;
        let k = key.clone();
        self.write(move |w| w.put(&k, &rec)).await?;
        let reader = self.read()?;
        let mut clients = Vec::new();
        for (k, _) in reader.children::<ClientOfRecord>(&agency)? {
            let client = split_owned_key(&k).map_or("", |(_, c)| c).to_owned();
            let name = reader
                .get::<EnterpriseRecord>(&client)?
                .map(|e| e.name)
                .unwrap_or_default();
            clients.push(ClientChoice {
                credit_code: client,
                name,
            });
        }
        Ok(ClientSelection {
            flow: flow.trim().to_owned(),
            clients,
        })
    }

    /// R8 step 3: the client enterprise + the relationship's agreement
    /// password; the session acts for that client.
    pub async fn agency_client(
        &self,
        flow: &str,
        client: CreditCode,
        agreement_password: String,
    ) -> Result<SessionGrant, FlowError> {
        let (key, rec) = self.flow(flow, FlowKind::Agency)?;
        let agent_key = rec
            .staff
            .as_ref()
            .ok_or_else(|| {
                invalid(
                    "flow",
                    "pick and log in an agent staff member first (step 2)",
                )
            })?
            .to_string();
        let recognition = self
            .read()?
            .get::<RecognitionRecord>(&owned_key(client.as_str(), &rec.account))?;
        let recognition_epoch = recognition.as_ref().map_or(0, |r| r.epoch);
        let mut factors = rec.factors.clone();
        let failure = self
            .guarded_verify(
                LockKey::Agreement {
                    agency: rec.account.clone(),
                    client: client.clone(),
                },
                agreement_password,
                recognition.map(|r| r.agreement_password_hash),
                WRONG_AGREEMENT,
            )
            .await?;
        if failure.is_none() {
            factors.insert(Factor::AgreementPassword);
        }
        let verdict = self
            .decide(
                "act_for_client",
                EntityKind::AgentStaff.uid(&agent_key),
                Action::ActForClient,
                EntityKind::Enterprise.uid(client.as_str()),
                &factors,
                Some(client.as_str()),
                failure.as_ref(),
                None,
            )
            .await?;
        conclude(&verdict, failure)?;
        let agent = self.read()?.get::<AgentStaffRecord>(&agent_key)?;
        self.take_flow(key, &rec).await?;
        let subject = SessionSubject {
            principal_type: PrincipalKind::AgentStaff,
            principal_id: agent_key,
            credential_epoch: rec.staff_epoch,
            acting_for: Some((client, recognition_epoch)),
        };
        self.open_session(
            subject,
            agent.as_ref().is_some_and(|a| a.password_hash.is_some()),
            agent.is_some_and(|a| a.password_change_required),
            "home",
        )
        .await
    }
}
