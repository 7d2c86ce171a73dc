//! Who is asked what: every stored principal that can do business, with the
//! questions impact analysis puts to both policy sets.
//!
//! - staff: every business function, and the maintenance actions on their
//!   own enterprise (so a change that hands clerks maintenance shows);
//!   officers (legal rep, finance head) also edit and reset every staff
//!   member of their enterprise;
//! - agent staff: every function, acting for each client that recognizes
//!   their agency;
//! - enterprises asking as themselves (social-security-only payers do):
//!   every function.
//!
//! Natural persons are not asked: the schema gives `Person` no business
//! action (`useFunction` takes staff, agent staff or an enterprise).

use cedar_policy::EntityUid;
use serde_json::json;

use crate::decision::Query;
use crate::domain::{Action, EntityKind};
use crate::store::{
    AgencyRecord, AgentStaffRecord, ClientOfRecord, EnterpriseRecord, FunctionRecord, IdentityType,
    StaffRecord, StoreError, StoreReader,
};

/// Maintenance actions whose resource is the staff member's enterprise.
const ON_ENTERPRISE: [Action; 6] = [
    Action::ViewStaff,
    Action::AddStaff,
    Action::RemoveStaff,
    Action::DefinePermissionIdentity,
    Action::RecognizeAgency,
    Action::CancelAgency,
];

/// Maintenance actions on one staff member, asked for officers.
const ON_STAFF: [Action; 2] = [Action::EditStaff, Action::ResetStaffPassword];

/// One principal and everything it is asked.
pub struct Group {
    pub principal: EntityUid,
    /// `legal_rep`, …, `agent_staff`, `enterprise`.
    pub identity_type: &'static str,
    /// The enterprise it acts in (for an agent: the client).
    pub enterprise: String,
    pub acting_for: Option<String>,
    pub questions: Vec<Query>,
    /// Every entity the questions name, to gather at once.
    pub roots: Vec<EntityUid>,
}

/// The actions any question may name.
pub fn actions() -> Vec<EntityUid> {
    std::iter::once(Action::UseFunction)
        .chain(ON_ENTERPRISE)
        .chain(ON_STAFF)
        .map(Action::uid)
        .collect()
}

/// Calls `each` with every group the store's snapshot holds, enterprise by
/// enterprise, so memory holds one enterprise's staff at a time.
pub fn for_each_group(
    reader: &StoreReader,
    mut each: impl FnMut(Group) -> Result<(), super::ImpactError>,
) -> Result<(), super::ImpactError> {
    let functions: Vec<EntityUid> = reader
        .all::<FunctionRecord>()?
        .into_iter()
        .map(|(code, _)| EntityKind::Function.uid(&code))
        .collect();
    for (code, _) in reader.all::<EnterpriseRecord>()? {
        let staff = reader.children::<StaffRecord>(&code)?;
        for (key, record) in &staff {
            each(staff_group(&code, key, record, &staff, &functions))?;
        }
        let me = EntityKind::Enterprise.uid(&code);
        let questions = functions
            .iter()
            .map(|f| ask(&me, Action::UseFunction, f, json!({})));
        each(group(
            me.clone(),
            "enterprise",
            &code,
            None,
            questions.collect(),
        ))?;
    }
    for (agency, _) in reader.all::<AgencyRecord>()? {
        let clients = client_codes(reader, &agency)?;
        for (key, _) in reader.children::<AgentStaffRecord>(&agency)? {
            let agent = EntityKind::AgentStaff.uid(&key);
            for client in &clients {
                let acting = json!({ "actingFor": { "__entity": {
                    "type": EntityKind::Enterprise.type_name().to_string(), "id": client } } });
                let questions = functions
                    .iter()
                    .map(|f| ask(&agent, Action::UseFunction, f, acting.clone()));
                let mut g = group(
                    agent.clone(),
                    "agent_staff",
                    client,
                    Some(client),
                    questions.collect(),
                );
                g.roots.push(EntityKind::Enterprise.uid(client));
                each(g)?;
            }
        }
    }
    Ok(())
}

fn staff_group(
    enterprise: &str,
    key: &str,
    record: &StaffRecord,
    colleagues: &[(String, StaffRecord)],
    functions: &[EntityUid],
) -> Group {
    let me = EntityKind::Staff.uid(key);
    let company = EntityKind::Enterprise.uid(enterprise);
    let mut questions: Vec<Query> = functions
        .iter()
        .map(|f| ask(&me, Action::UseFunction, f, json!({})))
        .collect();
    for action in ON_ENTERPRISE {
        let context = if action == Action::DefinePermissionIdentity {
            json!({ "otherHolders": [] })
        } else {
            json!({})
        };
        questions.push(ask(&me, action, &company, context));
    }
    if matches!(
        record.identity_type,
        IdentityType::LegalRep | IdentityType::FinanceHead
    ) {
        for (other, _) in colleagues {
            let target = EntityKind::Staff.uid(other);
            for action in ON_STAFF {
                questions.push(ask(&me, action, &target, json!({})));
            }
        }
    }
    group(me, record.identity_type.code(), enterprise, None, questions)
}

fn group(
    principal: EntityUid,
    identity_type: &'static str,
    enterprise: &str,
    acting_for: Option<&str>,
    questions: Vec<Query>,
) -> Group {
    let mut roots = vec![principal.clone()];
    for q in &questions {
        if !roots.contains(&q.resource) {
            roots.push(q.resource.clone());
        }
    }
    Group {
        principal,
        identity_type,
        enterprise: enterprise.to_owned(),
        acting_for: acting_for.map(str::to_owned),
        questions,
        roots,
    }
}

fn ask(
    principal: &EntityUid,
    action: Action,
    resource: &EntityUid,
    context: serde_json::Value,
) -> Query {
    Query {
        principal: principal.clone(),
        action: action.uid(),
        resource: resource.clone(),
        context,
        stamped: None,
    }
}

/// The enterprises that recognize `agency` (its clients).
fn client_codes(reader: &StoreReader, agency: &str) -> Result<Vec<String>, StoreError> {
    Ok(reader
        .children::<ClientOfRecord>(agency)?
        .into_iter()
        .filter_map(|(key, _)| key.split_once('/').map(|(_, client)| client.to_owned()))
        .collect())
}
