//! Checking import records, one at a time, against the records before them
//! in the document and against the store.
//!
//! The same checks run twice: in the first pass only to collect every
//! problem (record and field), in the second to build the records to write
//! — then clear-text passwords are hashed too, before any transaction opens.
//! The first pass reads the store through one snapshot; the second reads
//! it live ([`Lookup`]), which answers the same: what the import wrote in
//! between are the document's own records, which count as present anyway.

use std::collections::{BTreeSet, HashSet};

use super::document::*;
use super::ImportFailure;
use crate::authn::password::{is_argon2id_phc, PasswordHasher};
use crate::authn::PasswordPolicy;
use crate::ids::{
    check_local_key, CreditCode, IdType, PermissionIdentityId, PersonKey, Phone, TaxpayerId,
};
use crate::store::*;

/// Where the checks look up records that are not in the document.
pub(super) enum Lookup<'a> {
    /// The first pass: one snapshot, taken before the import.
    Snapshot(StoreReader),
    /// The second pass: the store as it is, a read transaction per lookup.
    /// A read transaction held through the writes would keep every page
    /// they replace from being reused, and the file would grow by every
    /// batch's pages. What the import has written so far changes no
    /// answer: the document's own records count as present anyway.
    Live(&'a Store),
}

impl Lookup<'_> {
    fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        match self {
            Self::Snapshot(r) => r.get(key),
            Self::Live(store) => store.read()?.get(key),
        }
    }

    fn taxpayer_id_taken(&self, tin: &str) -> Result<bool, StoreError> {
        let code = match self {
            Self::Snapshot(r) => r.credit_code_for_taxpayer_id(tin)?,
            Self::Live(store) => store.read()?.credit_code_for_taxpayer_id(tin)?,
        };
        Ok(code.is_some())
    }
}

/// The fields of an account password: in clear or as a PHC string.
const ACCOUNT: [&str; 2] = ["password", "password_hash"];

/// Whose staff member a record is.
#[derive(Clone, Copy)]
enum Owner {
    Enterprise,
    Agency,
}

/// A record ready to write, with its key.
pub(super) enum Built {
    Function(String, FunctionRecord),
    Person(String, PersonRecord),
    Enterprise(String, EnterpriseRecord, CoreOfficersRecord),
    PermissionIdentity(String, PermissionIdentityRecord),
    Staff(String, StaffRecord),
    Agency(String, AgencyRecord),
    AgentStaff(String, AgentStaffRecord),
    /// Enterprise, agency, record.
    Recognition(String, String, RecognitionRecord),
}

/// What one pass has seen so far, and the problems it found.
pub(super) struct Checker<'a> {
    store: Lookup<'a>,
    /// `Some` in the second pass: clear-text passwords are hashed with it.
    hasher: Option<&'a PasswordHasher>,
    /// The same acceptance function as the API's (`--password-*` flags).
    passwords: &'a PasswordPolicy,
    pub failures: Vec<ImportFailure>,
    functions: HashSet<String>,
    persons: HashSet<String>,
    enterprises: HashSet<String>,
    agencies: HashSet<String>,
    /// Credit codes of enterprises and agencies: one namespace.
    taxpayers: HashSet<String>,
    tins: HashSet<String>,
    roles: HashSet<String>,
    staff: HashSet<String>,
    agent_staff: HashSet<String>,
    recognitions: HashSet<String>,
}

impl<'a> Checker<'a> {
    pub fn new(
        store: Lookup<'a>,
        hasher: Option<&'a PasswordHasher>,
        passwords: &'a PasswordPolicy,
    ) -> Self {
        Self {
            store,
            hasher,
            passwords,
            failures: Vec::new(),
            functions: HashSet::new(),
            persons: HashSet::new(),
            enterprises: HashSet::new(),
            agencies: HashSet::new(),
            taxpayers: HashSet::new(),
            tins: HashSet::new(),
            roles: HashSet::new(),
            staff: HashSet::new(),
            agent_staff: HashSet::new(),
            recognitions: HashSet::new(),
        }
    }

    fn fail(&mut self, record: &str, field: &str, message: impl ToString) {
        self.failures.push(ImportFailure {
            record: record.to_owned(),
            field: field.to_owned(),
            message: message.to_string(),
        });
    }

    pub fn function(&mut self, i: usize, f: FunctionIn) -> Option<Built> {
        let at = format!("functions[{i}]");
        if let Err(e) = check_local_key(&f.code) {
            self.fail(&at, "code", e);
            return None;
        }
        if !self.functions.insert(f.code.clone()) {
            let message = format!("function '{}' appears twice in this file", f.code);
            self.fail(&at, "code", message);
        }
        let record = FunctionRecord {
            name: f.name,
            description: f.description,
        };
        Some(Built::Function(f.code, record))
    }

    pub fn person(&mut self, i: usize, p: PersonIn) -> Option<Built> {
        let at = format!("persons[{i}]");
        let key = self.person_key(&at, "", &p.id_type, &p.id_number)?;
        if !self.persons.insert(key.clone()) {
            self.fail(&at, "id_number", "this person appears twice in this file");
        }
        let phone = match p.phone.as_deref().map(Phone::parse).transpose() {
            Ok(phone) => phone,
            Err(e) => {
                self.fail(&at, "phone", e);
                None
            }
        };
        if p.real_name_verified && phone.is_none() {
            let message = "a real-name-collected person needs the real-name phone number";
            self.fail(&at, "phone", message);
        }
        self.non_empty(&at, "name", &p.name);
        let password_hash = self.secret(&at, ACCOUNT, p.password, p.password_hash, false);
        let record = PersonRecord {
            name: p.name,
            real_name_verified: p.real_name_verified,
            phone,
            password_hash,
            credential_epoch: 0,
        };
        Some(Built::Person(key, record))
    }

    pub fn enterprise(&mut self, i: usize, e: EnterpriseIn) -> Result<Option<Built>, StoreError> {
        let at = format!("enterprises[{i}]");
        let Some(code) = self.credit_code(&at, &e.credit_code) else {
            return Ok(None);
        };
        let taxpayer_id = self.taxpayer_id(&at, e.taxpayer_id.as_deref())?;
        self.non_empty(&at, "name", &e.name);
        let officers = CoreOfficersRecord {
            legal_rep: self.officer(&at, "core_legal_rep", e.core_legal_rep),
            finance_head: self.officer(&at, "core_finance_head", e.core_finance_head),
        };
        let password_hash = self
            .secret(&at, ACCOUNT, e.password, e.password_hash, true)
            .unwrap_or_default();
        self.enterprises.insert(code.to_string());
        let record = EnterpriseRecord {
            credit_code: code.clone(),
            taxpayer_id,
            name: e.name,
            category: e.category,
            password_hash,
            staff_synced: e.staff_synced,
            credential_epoch: 0,
        };
        Ok(Some(Built::Enterprise(code.to_string(), record, officers)))
    }

    fn officer(&mut self, at: &str, field: &str, o: Option<OfficerIn>) -> Option<CoreOfficer> {
        let o = o?;
        let person = self.person_key(at, field, &o.id_type, &o.id_number)?;
        Some(CoreOfficer {
            name: o.name,
            person,
        })
    }

    pub fn permission_identity(
        &mut self,
        i: usize,
        r: PermissionIdentityIn,
    ) -> Result<Option<Built>, StoreError> {
        let at = format!("permission_identities[{i}]");
        self.enterprise_exists(&at, &r.enterprise)?;
        if let Err(e) = PermissionIdentityId::parse(&r.id) {
            self.fail(&at, "id", e);
            return Ok(None);
        }
        self.non_empty(&at, "name", &r.name);
        let key = owned_key(&r.enterprise, &r.id);
        if !self.roles.insert(key.clone()) {
            let message = format!(
                "permission identity '{}' appears twice for this enterprise",
                r.id
            );
            self.fail(&at, "id", message);
        }
        for (j, f) in r.functions.iter().enumerate() {
            if !self.functions.contains(f) && self.store.get::<FunctionRecord>(f)?.is_none() {
                let message = format!("unknown business function '{f}'");
                self.fail(&at, &format!("functions[{j}]"), message);
            }
        }
        let record = PermissionIdentityRecord {
            name: r.name,
            description: r.description,
            functions: r.functions.into_iter().collect(),
        };
        Ok(Some(Built::PermissionIdentity(key, record)))
    }

    pub fn staff(&mut self, i: usize, s: StaffIn) -> Result<Option<Built>, StoreError> {
        let at = format!("staff[{i}]");
        self.enterprise_exists(&at, &s.enterprise)?;
        let Some(key) = self.member(&at, &s.enterprise, &s.person, Owner::Enterprise)? else {
            return Ok(None);
        };
        let held = self.held_roles(&at, &s.enterprise, s.permission_identities)?;
        let password_hash = self.secret(&at, ACCOUNT, s.password, s.password_hash, false);
        let record = StaffRecord {
            identity_type: s.identity_type,
            permission_identities: held,
            password_hash,
            password_change_required: s.password_change_required,
            credential_epoch: 0,
        };
        Ok(Some(Built::Staff(key, record)))
    }

    /// The permission identities a staff member holds, each one of the
    /// enterprise's (in this file or the store).
    fn held_roles(
        &mut self,
        at: &str,
        enterprise: &str,
        roles: Vec<String>,
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut held = BTreeSet::new();
        for (j, role) in roles.into_iter().enumerate() {
            let field = format!("permission_identities[{j}]");
            if let Err(e) = PermissionIdentityId::parse(&role) {
                self.fail(at, &field, e);
                continue;
            }
            let role_key = owned_key(enterprise, &role);
            if !self.roles.contains(&role_key)
                && self
                    .store
                    .get::<PermissionIdentityRecord>(&role_key)?
                    .is_none()
            {
                let message =
                    format!("enterprise {enterprise} has no permission identity '{role}'");
                self.fail(at, &field, message);
            }
            held.insert(role);
        }
        Ok(held)
    }

    pub fn agency(&mut self, i: usize, a: AgencyIn) -> Result<Option<Built>, StoreError> {
        let at = format!("agencies[{i}]");
        let Some(code) = self.credit_code(&at, &a.credit_code) else {
            return Ok(None);
        };
        if self.enterprises.contains(code.as_str())
            || self.store.get::<EnterpriseRecord>(code.as_str())?.is_some()
        {
            let message = format!("{code} is registered as an enterprise");
            self.fail(&at, "credit_code", message);
        }
        let taxpayer_id = self.taxpayer_id(&at, a.taxpayer_id.as_deref())?;
        self.non_empty(&at, "name", &a.name);
        let password_hash = self
            .secret(&at, ACCOUNT, a.password, a.password_hash, true)
            .unwrap_or_default();
        self.agencies.insert(code.to_string());
        let record = AgencyRecord {
            credit_code: code.clone(),
            taxpayer_id,
            name: a.name,
            password_hash,
        };
        Ok(Some(Built::Agency(code.to_string(), record)))
    }

    pub fn agent_staff(&mut self, i: usize, s: AgentStaffIn) -> Result<Option<Built>, StoreError> {
        let at = format!("agent_staff[{i}]");
        self.agency_exists(&at, &s.agency)?;
        let Some(key) = self.member(&at, &s.agency, &s.person, Owner::Agency)? else {
            return Ok(None);
        };
        let password_hash = self.secret(&at, ACCOUNT, s.password, s.password_hash, false);
        let record = AgentStaffRecord {
            password_hash,
            password_change_required: false,
            credential_epoch: 0,
        };
        Ok(Some(Built::AgentStaff(key, record)))
    }

    pub fn recognition(&mut self, i: usize, r: RecognitionIn) -> Result<Option<Built>, StoreError> {
        let at = format!("recognitions[{i}]");
        self.enterprise_exists(&at, &r.enterprise)?;
        self.agency_exists(&at, &r.agency)?;
        if !self
            .recognitions
            .insert(owned_key(&r.enterprise, &r.agency))
        {
            self.fail(&at, "agency", "this recognition appears twice in this file");
        }
        let fields = ["agreement_password", "agreement_password_hash"];
        let Some(hash) = self.secret(
            &at,
            fields,
            r.agreement_password,
            r.agreement_password_hash,
            true,
        ) else {
            return Ok(None);
        };
        let record = RecognitionRecord {
            agreement_password_hash: hash,
            recognized_at_ms: crate::now_ms(),
            epoch: 0,
        };
        Ok(Some(Built::Recognition(r.enterprise, r.agency, record)))
    }
}

/// The field checks the record checks share: identifiers, references to
/// other records, and passwords.
impl Checker<'_> {
    fn non_empty(&mut self, at: &str, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(at, field, "must not be empty");
        }
    }

    /// The credit code of an enterprise or agency: one namespace, each
    /// code once in the file.
    fn credit_code(&mut self, at: &str, s: &str) -> Option<CreditCode> {
        let code = CreditCode::parse(s)
            .map_err(|e| self.fail(at, "credit_code", format!("not a credit code: {e}")))
            .ok()?;
        if !self.taxpayers.insert(code.to_string()) {
            let message = format!("{code} appears twice in this file");
            self.fail(at, "credit_code", message);
        }
        Some(code)
    }

    fn taxpayer_id(&mut self, at: &str, s: Option<&str>) -> Result<Option<TaxpayerId>, StoreError> {
        let Some(s) = s else { return Ok(None) };
        match TaxpayerId::parse(s) {
            Ok(tin) => {
                if !self.tins.insert(tin.to_string())
                    || self.store.taxpayer_id_taken(tin.as_str())?
                {
                    let message = format!("taxpayer id {tin} is already registered");
                    self.fail(at, "taxpayer_id", message);
                }
                Ok(Some(tin))
            }
            Err(e) => {
                let message = format!("not a taxpayer identification number: {e}");
                self.fail(at, "taxpayer_id", message);
                Ok(None)
            }
        }
    }

    /// The person key of `id_type` + `id_number`; a failure names
    /// `field.id_type` or `field.id_number`.
    fn person_key(
        &mut self,
        at: &str,
        field: &str,
        id_type: &str,
        id_number: &str,
    ) -> Option<String> {
        let prefix = if field.is_empty() {
            String::new()
        } else {
            format!("{field}.")
        };
        let id_type = match IdType::parse(id_type) {
            Ok(t) => t,
            Err(e) => {
                self.fail(at, &format!("{prefix}id_type"), e);
                return None;
            }
        };
        match PersonKey::new(id_type, id_number) {
            Ok(k) => Some(k.key()),
            Err(e) => {
                self.fail(at, &format!("{prefix}id_number"), e);
                None
            }
        }
    }

    /// The key (`owner/person`) of a staff member of an enterprise or
    /// agency, if the person is valid; the person must exist and be listed
    /// once per owner.
    fn member(
        &mut self,
        at: &str,
        owner: &str,
        person: &PersonRef,
        kind: Owner,
    ) -> Result<Option<String>, StoreError> {
        let Some(person) = self.person_key(at, "person", &person.id_type, &person.id_number) else {
            return Ok(None);
        };
        self.person_exists(at, &person)?;
        let key = owned_key(owner, &person);
        let (seen, of) = match kind {
            Owner::Enterprise => (&mut self.staff, "enterprise"),
            Owner::Agency => (&mut self.agent_staff, "agency"),
        };
        if !seen.insert(key.clone()) {
            let message = format!("this person is listed twice as staff of this {of}");
            self.fail(at, "person", message);
        }
        Ok(Some(key))
    }

    fn person_exists(&mut self, at: &str, key: &str) -> Result<(), StoreError> {
        if !self.persons.contains(key) && self.store.get::<PersonRecord>(key)?.is_none() {
            let masked = PersonKey::parse_key(key)
                .map(|k| k.masked())
                .unwrap_or_default();
            self.fail(
                at,
                "person",
                format!("no person {masked} in this file or the store"),
            );
        }
        Ok(())
    }

    fn enterprise_exists(&mut self, at: &str, code: &str) -> Result<(), StoreError> {
        if !self.enterprises.contains(code) && self.store.get::<EnterpriseRecord>(code)?.is_none() {
            let message = format!("no enterprise {code} in this file or the store");
            self.fail(at, "enterprise", message);
        }
        Ok(())
    }

    fn agency_exists(&mut self, at: &str, code: &str) -> Result<(), StoreError> {
        if !self.agencies.contains(code) && self.store.get::<AgencyRecord>(code)?.is_none() {
            let message = format!("no agency {code} in this file or the store");
            self.fail(at, "agency", message);
        }
        Ok(())
    }

    /// The hash of a password given in clear, if the acceptance function
    /// takes it (in the first pass, a placeholder: nothing is written
    /// then, and argon2 runs once per password, in the second); else a
    /// failure naming `field`.
    fn accepted(&mut self, at: &str, field: &str, clear: &str) -> Option<String> {
        match self.passwords.accept(clear) {
            Ok(()) => Some(self.hasher.map(|h| h.hash(clear)).unwrap_or_default()),
            Err(e) => {
                self.fail(at, field, e);
                None
            }
        }
    }

    /// The stored hash for a password given either in clear (hashed here; for
    /// demo and test data) or as an argon2id PHC string (from another system,
    /// or the generator). `fields`: the names of the clear and hash fields.
    fn secret(
        &mut self,
        at: &str,
        [clear_field, hash_field]: [&str; 2],
        clear: Option<String>,
        hash: Option<String>,
        required: bool,
    ) -> Option<String> {
        match (clear, hash) {
            (Some(_), Some(_)) => {
                let message = format!("give {clear_field} or {hash_field}, not both");
                self.fail(at, clear_field, message);
                None
            }
            (Some(clear), None) => self.accepted(at, clear_field, &clear),
            (None, Some(phc)) if is_argon2id_phc(&phc) => Some(phc),
            (None, Some(_)) => {
                let message = "not an argon2id PHC string ($argon2id$v=19$...)";
                self.fail(at, hash_field, message);
                None
            }
            (None, None) if required => {
                let message = if clear_field == "password" {
                    "an account password (password or password_hash) is required".to_owned()
                } else {
                    format!("{clear_field} or {hash_field} is required")
                };
                self.fail(at, clear_field, message);
                None
            }
            (None, None) => None,
        }
    }
}
