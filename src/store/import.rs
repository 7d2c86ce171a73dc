//! Bulk import of identities (`etax-authz import FILE`, `serve --demo`).
//!
//! The whole document is checked first, every problem collected with the
//! record and field it concerns; only a document without problems is written,
//! in one transaction. So an import either fully happens or changes nothing.

use std::collections::{BTreeSet, HashSet};

use serde::Deserialize;

use super::*;
use crate::authn::password::{is_argon2id_phc, PasswordHasher};
use crate::authn::PasswordPolicy;
use crate::ids::{
    check_local_key, CreditCode, IdType, PermissionIdentityId, PersonKey, Phone, TaxpayerId,
};

/// An import file: every kind of identity the store holds. All sections are
/// optional; references may point at records of the same file or already in
/// the store.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportDocument {
    #[serde(default)]
    pub functions: Vec<FunctionIn>,
    #[serde(default)]
    pub persons: Vec<PersonIn>,
    #[serde(default)]
    pub enterprises: Vec<EnterpriseIn>,
    #[serde(default)]
    pub permission_identities: Vec<PermissionIdentityIn>,
    #[serde(default)]
    pub staff: Vec<StaffIn>,
    #[serde(default)]
    pub agencies: Vec<AgencyIn>,
    #[serde(default)]
    pub agent_staff: Vec<AgentStaffIn>,
    #[serde(default)]
    pub recognitions: Vec<RecognitionIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionIn {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonRef {
    pub id_type: String,
    pub id_number: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonIn {
    pub id_type: String,
    pub id_number: String,
    pub name: String,
    #[serde(default)]
    pub real_name_verified: bool,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficerIn {
    pub name: String,
    pub id_type: String,
    pub id_number: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseIn {
    pub credit_code: String,
    #[serde(default)]
    pub taxpayer_id: Option<String>,
    pub name: String,
    pub category: PayerCategory,
    #[serde(default)]
    pub staff_synced: bool,
    /// What the core tax system (金税三期) has on file.
    #[serde(default)]
    pub core_legal_rep: Option<OfficerIn>,
    #[serde(default)]
    pub core_finance_head: Option<OfficerIn>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionIdentityIn {
    pub enterprise: String,
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub functions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffIn {
    pub enterprise: String,
    pub person: PersonRef,
    pub identity_type: IdentityType,
    #[serde(default)]
    pub permission_identities: Vec<String>,
    #[serde(default)]
    pub password_change_required: bool,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyIn {
    pub credit_code: String,
    #[serde(default)]
    pub taxpayer_id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStaffIn {
    pub agency: String,
    pub person: PersonRef,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecognitionIn {
    pub enterprise: String,
    pub agency: String,
    pub agreement_password: String,
}

/// One problem with one record of an import.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportFailure {
    /// `staff[3]`
    pub record: String,
    /// `person.id_number`
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ImportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}: {}", self.record, self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("import file is not valid JSON for an import document: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("{} problem(s) in the import; nothing was stored", .0.len())]
    Invalid(Vec<ImportFailure>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportDocument {
    /// Reads and parses an import file.
    pub fn read(path: &std::path::Path) -> Result<Self, ImportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// How many records of each kind an import stored.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub functions: usize,
    pub persons: usize,
    pub enterprises: usize,
    pub permission_identities: usize,
    pub staff: usize,
    pub agencies: usize,
    pub agent_staff: usize,
    pub recognitions: usize,
}

/// Checks `doc` against itself and the store, hashes its passwords, and
/// stores it in one transaction — or stores nothing and returns every problem.
pub fn import_document(
    store: &Store,
    doc: &ImportDocument,
    hasher: &PasswordHasher,
    passwords: &PasswordPolicy,
) -> Result<ImportSummary, ImportError> {
    store.write(|w| {
        let mut c = Checker {
            w,
            failures: Vec::new(),
            hasher,
            passwords,
        };
        let plan = c.plan(doc)?;
        if !c.failures.is_empty() {
            return Err(ImportError::Invalid(c.failures));
        }
        let summary = plan.summary();
        plan.apply(w)?;
        Ok(summary)
    })
}

/// Records ready to write, keyed.
#[derive(Default)]
struct Plan {
    functions: Vec<(String, FunctionRecord)>,
    persons: Vec<(String, PersonRecord)>,
    enterprises: Vec<(String, EnterpriseRecord, CoreOfficersRecord)>,
    permission_identities: Vec<(String, PermissionIdentityRecord)>,
    staff: Vec<(String, StaffRecord)>,
    agencies: Vec<(String, AgencyRecord)>,
    agent_staff: Vec<(String, AgentStaffRecord)>,
    recognitions: Vec<(String, String, RecognitionRecord)>,
}

impl Plan {
    /// Writes the plan. Every record that holds credentials gets a fresh
    /// credential epoch: importing over an existing record (a new password,
    /// say) ends the sessions opened under the old one.
    fn apply(self, w: &mut StoreWriter) -> Result<(), StoreError> {
        for (k, r) in &self.functions {
            w.put(k, r)?;
        }
        for (k, mut r) in self.persons {
            r.credential_epoch = w.next_epoch()?;
            w.put(&k, &r)?;
        }
        for (k, mut r, officers) in self.enterprises {
            r.credential_epoch = w.next_epoch()?;
            w.put(&k, &r)?;
            w.put(&k, &officers)?;
            if let Some(tin) = &r.taxpayer_id {
                w.put_taxpayer_id(tin.as_str(), &k)?;
            }
        }
        for (k, r) in &self.permission_identities {
            w.put(k, r)?;
        }
        for (k, mut r) in self.staff {
            r.credential_epoch = w.next_epoch()?;
            w.put(&k, &r)?;
        }
        for (k, r) in &self.agencies {
            w.put(k, r)?;
            if let Some(tin) = &r.taxpayer_id {
                w.put_taxpayer_id(tin.as_str(), k)?;
            }
        }
        for (k, mut r) in self.agent_staff {
            r.credential_epoch = w.next_epoch()?;
            w.put(&k, &r)?;
        }
        for (enterprise, agency, mut r) in self.recognitions {
            r.epoch = w.next_epoch()?;
            w.put_recognition(&enterprise, &agency, &r)?;
        }
        Ok(())
    }

    fn summary(&self) -> ImportSummary {
        ImportSummary {
            functions: self.functions.len(),
            persons: self.persons.len(),
            enterprises: self.enterprises.len(),
            permission_identities: self.permission_identities.len(),
            staff: self.staff.len(),
            agencies: self.agencies.len(),
            agent_staff: self.agent_staff.len(),
            recognitions: self.recognitions.len(),
        }
    }
}

struct Checker<'a> {
    w: &'a StoreWriter,
    failures: Vec<ImportFailure>,
    hasher: &'a PasswordHasher,
    /// The same acceptance function as the API's (`--password-*` flags).
    passwords: &'a PasswordPolicy,
}

impl Checker<'_> {
    fn fail(&mut self, record: &str, field: &str, message: impl ToString) {
        self.failures.push(ImportFailure {
            record: record.to_owned(),
            field: field.to_owned(),
            message: message.to_string(),
        });
    }

    fn plan(&mut self, doc: &ImportDocument) -> Result<Plan, StoreError> {
        let mut plan = Plan::default();
        let mut seen = HashSet::new();

        let mut functions = HashSet::new();
        for (i, f) in doc.functions.iter().enumerate() {
            let at = format!("functions[{i}]");
            if let Err(e) = check_local_key(&f.code) {
                self.fail(&at, "code", e);
                continue;
            }
            if !seen.insert(("function", f.code.clone())) {
                self.fail(
                    &at,
                    "code",
                    format!("function '{}' appears twice in this file", f.code),
                );
            }
            functions.insert(f.code.clone());
            plan.functions.push((
                f.code.clone(),
                FunctionRecord {
                    name: f.name.clone(),
                    description: f.description.clone(),
                },
            ));
        }

        let mut persons = HashSet::new();
        for (i, p) in doc.persons.iter().enumerate() {
            let at = format!("persons[{i}]");
            let Some(key) = self.person_key(&at, "", &p.id_type, &p.id_number) else {
                continue;
            };
            if !seen.insert(("person", key.clone())) {
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
                self.fail(
                    &at,
                    "phone",
                    "a real-name-collected person needs the real-name phone number",
                );
            }
            self.non_empty(&at, "name", &p.name);
            let password_hash = self.secret(&at, &p.password, &p.password_hash, false);
            persons.insert(key.clone());
            plan.persons.push((
                key,
                PersonRecord {
                    name: p.name.clone(),
                    real_name_verified: p.real_name_verified,
                    phone,
                    password_hash,
                    credential_epoch: 0,
                },
            ));
        }

        let mut enterprises = HashSet::new();
        for (i, e) in doc.enterprises.iter().enumerate() {
            let at = format!("enterprises[{i}]");
            let Some(code) = self.credit_code(&at, "credit_code", &e.credit_code) else {
                continue;
            };
            if !seen.insert(("taxpayer", code.to_string())) {
                self.fail(
                    &at,
                    "credit_code",
                    format!("{code} appears twice in this file"),
                );
            }
            let taxpayer_id = self.taxpayer_id(&at, e.taxpayer_id.as_deref(), &mut seen)?;
            self.non_empty(&at, "name", &e.name);
            let mut officers = CoreOfficersRecord::default();
            for (field, officer, slot) in [
                ("core_legal_rep", &e.core_legal_rep, &mut officers.legal_rep),
                (
                    "core_finance_head",
                    &e.core_finance_head,
                    &mut officers.finance_head,
                ),
            ] {
                if let Some(o) = officer {
                    if let Some(key) = self.person_key(&at, field, &o.id_type, &o.id_number) {
                        *slot = Some(CoreOfficer {
                            name: o.name.clone(),
                            person: key,
                        });
                    }
                }
            }
            let password_hash = self
                .secret(&at, &e.password, &e.password_hash, true)
                .unwrap_or_default();
            enterprises.insert(code.to_string());
            plan.enterprises.push((
                code.to_string(),
                EnterpriseRecord {
                    credit_code: code,
                    taxpayer_id,
                    name: e.name.clone(),
                    category: e.category,
                    password_hash,
                    staff_synced: e.staff_synced,
                    credential_epoch: 0,
                },
                officers,
            ));
        }

        let mut roles = HashSet::new();
        for (i, r) in doc.permission_identities.iter().enumerate() {
            let at = format!("permission_identities[{i}]");
            self.enterprise_exists(&at, "enterprise", &r.enterprise, &enterprises)?;
            if let Err(e) = PermissionIdentityId::parse(&r.id) {
                self.fail(&at, "id", e);
                continue;
            }
            self.non_empty(&at, "name", &r.name);
            let key = owned_key(&r.enterprise, &r.id);
            if !seen.insert(("role", key.clone())) {
                self.fail(
                    &at,
                    "id",
                    format!(
                        "permission identity '{}' appears twice for this enterprise",
                        r.id
                    ),
                );
            }
            for (j, f) in r.functions.iter().enumerate() {
                if !functions.contains(f) && self.w.get::<FunctionRecord>(f)?.is_none() {
                    self.fail(
                        &at,
                        &format!("functions[{j}]"),
                        format!("unknown business function '{f}'"),
                    );
                }
            }
            roles.insert(key.clone());
            plan.permission_identities.push((
                key,
                PermissionIdentityRecord {
                    name: r.name.clone(),
                    description: r.description.clone(),
                    functions: r.functions.iter().cloned().collect(),
                },
            ));
        }

        for (i, s) in doc.staff.iter().enumerate() {
            let at = format!("staff[{i}]");
            self.enterprise_exists(&at, "enterprise", &s.enterprise, &enterprises)?;
            let Some(person) =
                self.person_key(&at, "person", &s.person.id_type, &s.person.id_number)
            else {
                continue;
            };
            self.person_exists(&at, &person, &persons)?;
            let key = owned_key(&s.enterprise, &person);
            if !seen.insert(("staff", key.clone())) {
                self.fail(
                    &at,
                    "person",
                    "this person is listed twice as staff of this enterprise",
                );
            }
            let mut held = BTreeSet::new();
            for (j, role) in s.permission_identities.iter().enumerate() {
                if let Err(e) = PermissionIdentityId::parse(role) {
                    self.fail(&at, &format!("permission_identities[{j}]"), e);
                    continue;
                }
                let role_key = owned_key(&s.enterprise, role);
                if !roles.contains(&role_key)
                    && self.w.get::<PermissionIdentityRecord>(&role_key)?.is_none()
                {
                    self.fail(
                        &at,
                        &format!("permission_identities[{j}]"),
                        format!(
                            "enterprise {} has no permission identity '{role}'",
                            s.enterprise
                        ),
                    );
                }
                held.insert(role.clone());
            }
            let password_hash = self.secret(&at, &s.password, &s.password_hash, false);
            plan.staff.push((
                key,
                StaffRecord {
                    identity_type: s.identity_type,
                    permission_identities: held,
                    password_hash,
                    password_change_required: s.password_change_required,
                    credential_epoch: 0,
                },
            ));
        }

        let mut agencies = HashSet::new();
        for (i, a) in doc.agencies.iter().enumerate() {
            let at = format!("agencies[{i}]");
            let Some(code) = self.credit_code(&at, "credit_code", &a.credit_code) else {
                continue;
            };
            if !seen.insert(("taxpayer", code.to_string())) {
                self.fail(
                    &at,
                    "credit_code",
                    format!("{code} appears twice in this file"),
                );
            }
            if enterprises.contains(code.as_str())
                || self.w.get::<EnterpriseRecord>(code.as_str())?.is_some()
            {
                self.fail(
                    &at,
                    "credit_code",
                    format!("{code} is registered as an enterprise"),
                );
            }
            let taxpayer_id = self.taxpayer_id(&at, a.taxpayer_id.as_deref(), &mut seen)?;
            self.non_empty(&at, "name", &a.name);
            let password_hash = self
                .secret(&at, &a.password, &a.password_hash, true)
                .unwrap_or_default();
            agencies.insert(code.to_string());
            plan.agencies.push((
                code.to_string(),
                AgencyRecord {
                    credit_code: code,
                    taxpayer_id,
                    name: a.name.clone(),
                    password_hash,
                },
            ));
        }

        for (i, s) in doc.agent_staff.iter().enumerate() {
            let at = format!("agent_staff[{i}]");
            self.agency_exists(&at, "agency", &s.agency, &agencies)?;
            let Some(person) =
                self.person_key(&at, "person", &s.person.id_type, &s.person.id_number)
            else {
                continue;
            };
            self.person_exists(&at, &person, &persons)?;
            let key = owned_key(&s.agency, &person);
            if !seen.insert(("agent_staff", key.clone())) {
                self.fail(
                    &at,
                    "person",
                    "this person is listed twice as staff of this agency",
                );
            }
            let password_hash = self.secret(&at, &s.password, &s.password_hash, false);
            plan.agent_staff.push((
                key,
                AgentStaffRecord {
                    password_hash,
                    password_change_required: false,
                    credential_epoch: 0,
                },
            ));
        }

        for (i, r) in doc.recognitions.iter().enumerate() {
            let at = format!("recognitions[{i}]");
            self.enterprise_exists(&at, "enterprise", &r.enterprise, &enterprises)?;
            self.agency_exists(&at, "agency", &r.agency, &agencies)?;
            if !seen.insert(("recognition", owned_key(&r.enterprise, &r.agency))) {
                self.fail(&at, "agency", "this recognition appears twice in this file");
            }
            let Some(hash) = self.accepted(&at, "agreement_password", &r.agreement_password) else {
                continue;
            };
            plan.recognitions.push((
                r.enterprise.clone(),
                r.agency.clone(),
                RecognitionRecord {
                    agreement_password_hash: hash,
                    recognized_at_ms: crate::now_ms(),
                    epoch: 0,
                },
            ));
        }
        Ok(plan)
    }

    fn non_empty(&mut self, at: &str, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(at, field, "must not be empty");
        }
    }

    fn credit_code(&mut self, at: &str, field: &str, s: &str) -> Option<CreditCode> {
        CreditCode::parse(s)
            .map_err(|e| self.fail(at, field, format!("not a credit code: {e}")))
            .ok()
    }

    fn taxpayer_id(
        &mut self,
        at: &str,
        s: Option<&str>,
        seen: &mut HashSet<(&'static str, String)>,
    ) -> Result<Option<TaxpayerId>, StoreError> {
        let Some(s) = s else { return Ok(None) };
        match TaxpayerId::parse(s) {
            Ok(tin) => {
                if !seen.insert(("tin", tin.to_string()))
                    || self.w.credit_code_for_taxpayer_id(tin.as_str())?.is_some()
                {
                    self.fail(
                        at,
                        "taxpayer_id",
                        format!("taxpayer id {tin} is already registered"),
                    );
                }
                Ok(Some(tin))
            }
            Err(e) => {
                self.fail(
                    at,
                    "taxpayer_id",
                    format!("not a taxpayer identification number: {e}"),
                );
                Ok(None)
            }
        }
    }

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

    fn person_exists(
        &mut self,
        at: &str,
        key: &str,
        in_file: &HashSet<String>,
    ) -> Result<(), StoreError> {
        if !in_file.contains(key) && self.w.get::<PersonRecord>(key)?.is_none() {
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

    fn enterprise_exists(
        &mut self,
        at: &str,
        field: &str,
        code: &str,
        in_file: &HashSet<String>,
    ) -> Result<(), StoreError> {
        if !in_file.contains(code) && self.w.get::<EnterpriseRecord>(code)?.is_none() {
            self.fail(
                at,
                field,
                format!("no enterprise {code} in this file or the store"),
            );
        }
        Ok(())
    }

    fn agency_exists(
        &mut self,
        at: &str,
        field: &str,
        code: &str,
        in_file: &HashSet<String>,
    ) -> Result<(), StoreError> {
        if !in_file.contains(code) && self.w.get::<AgencyRecord>(code)?.is_none() {
            self.fail(
                at,
                field,
                format!("no agency {code} in this file or the store"),
            );
        }
        Ok(())
    }

    /// The hash of a password given in clear, if the acceptance function
    /// takes it; else a failure naming `field`.
    fn accepted(&mut self, at: &str, field: &str, clear: &str) -> Option<String> {
        match self.passwords.accept(clear) {
            Ok(()) => Some(self.hasher.hash(clear)),
            Err(e) => {
                self.fail(at, field, e);
                None
            }
        }
    }

    /// The stored hash for a password given either in clear (hashed here; for
    /// demo and test data) or as an argon2id PHC string (from another system).
    fn secret(
        &mut self,
        at: &str,
        clear: &Option<String>,
        hash: &Option<String>,
        required: bool,
    ) -> Option<String> {
        match (clear, hash) {
            (Some(_), Some(_)) => {
                self.fail(at, "password", "give password or password_hash, not both");
                None
            }
            (Some(clear), None) => self.accepted(at, "password", clear),
            (None, Some(phc)) => {
                if is_argon2id_phc(phc) {
                    Some(phc.clone())
                } else {
                    self.fail(
                        at,
                        "password_hash",
                        "not an argon2id PHC string ($argon2id$v=19$...)",
                    );
                    None
                }
            }
            (None, None) => {
                if required {
                    self.fail(
                        at,
                        "password",
                        "an account password (password or password_hash) is required",
                    );
                }
                None
            }
        }
    }
}
