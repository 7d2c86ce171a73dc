//! `etax-authz gen --enterprises N OUT`: a deterministic synthetic bureau as
//! an import document, for load tests and import benchmarks.
//!
//! Per enterprise: a legal rep, a finance head, 1–15 clerks (so about ten
//! staff per enterprise: `--enterprises 100000` is about a million staff),
//! three permission identities bound to business functions; every person
//! real-name collected with a phone. One agency per hundred enterprises,
//! three agents each; about 3 % of enterprises recognize an agency. Credit
//! codes (GB 32100) and resident IDs (GB 11643) carry correct check
//! characters, computed by the checkers of [`crate::ids`].
//!
//! Every account (enterprise, staff, agency, agent, agreement) has the same
//! password, random per run, printed once on stderr, and stored as one
//! argon2id hash computed once: so the import runs no argon2 per account.
//! For load tests only. Everything else depends only on N and the seed.
//!
//! The file is written a record at a time: memory does not grow with N.

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::authn::{PasswordHasher, PasswordPolicy};
use crate::ids::{CreditCode, IdError, IdType, PersonKey};
use crate::import::document::*;
use crate::store::{IdentityType, PayerCategory};

/// The business-function catalogue (the demo's).
const FUNCTIONS: [(&str, &str); 9] = [
    ("vat_filing", "增值税及附加税费申报"),
    ("cit_filing", "企业所得税申报"),
    ("iit_withholding", "个人所得税扣缴申报"),
    ("invoice_purchase", "发票领用"),
    ("invoice_issue", "发票开具"),
    ("social_insurance_fee", "社会保险费申报缴纳"),
    ("tax_payment", "税费缴纳"),
    ("tax_certificate", "开具税收完税证明"),
    ("taxpayer_info", "纳税人信息查询"),
];

/// Every enterprise's three permission identities.
const ROLES: [(&str, &str, &[&str]); 3] = [
    (
        "filing",
        "申报岗",
        &[
            "vat_filing",
            "cit_filing",
            "iit_withholding",
            "tax_payment",
            "taxpayer_info",
        ],
    ),
    (
        "invoicing",
        "发票岗",
        &["invoice_purchase", "invoice_issue", "taxpayer_info"],
    ),
    (
        "payroll",
        "社保个税岗",
        &["iit_withholding", "social_insurance_fee", "tax_certificate"],
    ),
];

/// Administrative divisions of Shenyang, for credit codes and ID numbers.
const AREAS: [&str; 8] = [
    "210102", "210103", "210104", "210105", "210106", "210111", "210112", "210113",
];
const SURNAMES: [&str; 10] = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
const GIVEN: [&str; 10] = ["伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "勇"];
/// Characters of a credit code's organization part (no I, O, S, V, Z).
const CODE_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// The size and seed of a synthetic bureau.
#[derive(Debug, Clone, Copy)]
pub struct Bureau {
    pub enterprises: u64,
    pub seed: u64,
}

/// How many records a generated document holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub persons: u64,
    pub enterprises: u64,
    pub staff: u64,
    pub agencies: u64,
    pub agent_staff: u64,
    pub recognitions: u64,
}

/// Agents per agency.
const AGENTS: u64 = 3;

impl Bureau {
    fn agencies(&self) -> u64 {
        self.enterprises.div_ceil(100)
    }

    /// A number that depends only on the seed, a purpose and an index.
    fn mix(&self, purpose: u64, i: u64) -> u64 {
        splitmix(self.seed ^ splitmix(purpose.wrapping_add(i.wrapping_mul(0x9E37_79B9))))
    }

    fn clerks(&self, enterprise: u64) -> u64 {
        1 + self.mix(1, enterprise) % 15
    }

    /// The agency enterprise `i` recognizes, if any (about 3 %).
    fn recognized_agency(&self, i: u64) -> Option<u64> {
        (self.mix(2, i) % 100 < 3).then(|| self.mix(3, i) % self.agencies())
    }

    fn category(&self, i: u64) -> PayerCategory {
        if self.mix(4, i).is_multiple_of(50) {
            PayerCategory::SocialSecurityOnly
        } else {
            PayerCategory::Ordinary
        }
    }

    fn enterprise_code(&self, i: u64) -> String {
        credit_code(AREAS[(self.mix(5, i) % 8) as usize], 'A', i)
    }

    fn agency_code(&self, j: u64) -> String {
        credit_code("210100", 'B', j)
    }
}

/// splitmix64: a fixed, well-mixing function, so a seed means the same
/// bureau on every build (unlike a library RNG whose stream may change).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A valid credit code: `91`, the area, `M` + `kind`, 7 characters of `n`
/// in base 31, and the check character [`CreditCode::parse`] expects.
fn credit_code(area: &str, kind: char, mut n: u64) -> String {
    let mut digits = [b'0'; 7];
    for d in digits.iter_mut().rev() {
        *d = CODE_CHARS[(n % 31) as usize];
        n /= 31;
    }
    let body = format!("91{area}M{kind}{}", String::from_utf8_lossy(&digits));
    with_check(&body, |s| CreditCode::parse(s).err())
}

/// `body` + the check character the checker asks for.
fn with_check(body: &str, check: impl Fn(&str) -> Option<IdError>) -> String {
    let guess = format!("{body}0");
    match check(&guess) {
        None => guess,
        Some(IdError::CheckCharacter { expected, .. }) => format!("{body}{expected}"),
        Some(e) => unreachable!("generated identifier {body}? is malformed: {e}"),
    }
}

/// The resident ID of person `n` in `space` (0: staff, 1: agents): an
/// area, a birth date 1960–1999, a sequence number, the check digit. Each
/// space has its own areas, so the two never collide; within a space the
/// mapping is one-to-one for 116 million people.
pub(crate) fn resident_id(space: usize, n: u64) -> String {
    let area = AREAS[(n % 4) as usize + space * 4];
    let m = n / 4;
    let (y, mo, d) = civil_from_days(m % 14_610);
    let seq = (m / 14_610) % 1000;
    let body = format!("{area}{y:04}{mo:02}{d:02}{seq:03}");
    with_check(&body, |s| PersonKey::new(IdType::ResidentId, s).err())
}

/// 1960-01-01 in days since 1970-01-01.
const EPOCH_1960: i64 = -3653;

/// Year, month, day of `days` after 1960-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + EPOCH_1960 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn phone(space: usize, n: u64) -> String {
    format!("1{}{:09}", 3 + 2 * space, n % 1_000_000_000)
}

fn person_name(n: u64) -> String {
    format!(
        "{}{}{}",
        SURNAMES[(n % 10) as usize],
        GIVEN[(n / 10 % 10) as usize],
        n
    )
}

fn person_ref(space: usize, n: u64) -> PersonRef {
    PersonRef {
        id_type: "resident_id".into(),
        id_number: resident_id(space, n),
    }
}

/// A JSON document written a record at a time: `{"section":[record,…],…}`,
/// one record per line (so an import error's line number finds it).
struct Doc<W: Write> {
    out: W,
    sections: usize,
    records: u64,
}

impl<W: Write> Doc<W> {
    fn section(&mut self, name: &str) -> io::Result<()> {
        let open = if self.sections == 0 { "{" } else { "\n],\n" };
        write!(self.out, "{open}\"{name}\":[")?;
        self.sections += 1;
        self.records = 0;
        Ok(())
    }

    fn record(&mut self, record: &impl Serialize) -> io::Result<()> {
        self.out
            .write_all(if self.records == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut self.out, record)?;
        self.records += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()
    }
}

/// Writes the bureau `b` to `out`, every account's password stored as
/// `phc`.
pub fn write_bureau(out: impl Write, b: &Bureau, phc: &str) -> io::Result<Counts> {
    let mut doc = Doc {
        out: BufWriter::with_capacity(1 << 20, out),
        sections: 0,
        records: 0,
    };
    let mut counts = Counts::default();
    doc.section("functions")?;
    for (code, name) in FUNCTIONS {
        let (code, name, description) = (code.into(), name.into(), String::new());
        doc.record(&FunctionIn {
            code,
            name,
            description,
        })?;
    }
    doc.section("persons")?;
    counts.persons = persons(&mut doc, b)?;
    doc.section("enterprises")?;
    counts.enterprises = enterprises(&mut doc, b, phc)?;
    doc.section("permission_identities")?;
    for i in 0..b.enterprises {
        for (id, name, functions) in ROLES {
            doc.record(&PermissionIdentityIn {
                enterprise: b.enterprise_code(i),
                id: id.into(),
                name: name.into(),
                description: String::new(),
                functions: functions.iter().map(|f| f.to_string()).collect(),
            })?;
        }
    }
    doc.section("staff")?;
    counts.staff = staff(&mut doc, b, phc)?;
    doc.section("agencies")?;
    (counts.agencies, counts.agent_staff) = agencies(&mut doc, b, phc)?;
    doc.section("recognitions")?;
    for i in 0..b.enterprises {
        if let Some(j) = b.recognized_agency(i) {
            doc.record(&RecognitionIn {
                enterprise: b.enterprise_code(i),
                agency: b.agency_code(j),
                agreement_password: None,
                agreement_password_hash: Some(phc.into()),
            })?;
            counts.recognitions += 1;
        }
    }
    doc.finish()?;
    Ok(counts)
}

/// Every staff member's person (numbered in enterprise order: the legal
/// rep, the finance head, the clerks), then every agent's.
fn persons<W: Write>(doc: &mut Doc<W>, b: &Bureau) -> io::Result<u64> {
    let person = |space: usize, n: u64| PersonIn {
        id_type: "resident_id".into(),
        id_number: resident_id(space, n),
        name: person_name(n),
        real_name_verified: true,
        phone: Some(phone(space, n)),
        password: None,
        password_hash: None,
    };
    let mut n = 0;
    for i in 0..b.enterprises {
        for _ in 0..2 + b.clerks(i) {
            doc.record(&person(0, n))?;
            n += 1;
        }
    }
    for a in 0..b.agencies() * AGENTS {
        doc.record(&person(1, a))?;
    }
    Ok(n + b.agencies() * AGENTS)
}

fn enterprises<W: Write>(doc: &mut Doc<W>, b: &Bureau, phc: &str) -> io::Result<u64> {
    let officer = |n: u64| OfficerIn {
        name: person_name(n),
        id_type: "resident_id".into(),
        id_number: resident_id(0, n),
    };
    let mut n = 0;
    for i in 0..b.enterprises {
        doc.record(&EnterpriseIn {
            credit_code: b.enterprise_code(i),
            taxpayer_id: None,
            name: format!("合成企业{i}有限公司"),
            category: b.category(i),
            staff_synced: true,
            core_legal_rep: Some(officer(n)),
            core_finance_head: Some(officer(n + 1)),
            password: None,
            password_hash: Some(phc.into()),
        })?;
        n += 2 + b.clerks(i);
    }
    Ok(b.enterprises)
}

fn staff<W: Write>(doc: &mut Doc<W>, b: &Bureau, phc: &str) -> io::Result<u64> {
    let mut n = 0;
    for i in 0..b.enterprises {
        for k in 0..2 + b.clerks(i) {
            let (identity_type, roles): (_, &[&str]) = match k {
                0 => (IdentityType::LegalRep, &["filing", "invoicing", "payroll"]),
                1 => (IdentityType::FinanceHead, &["filing", "payroll"]),
                _ => match b.mix(6, n) % 4 {
                    0 => (IdentityType::InvoiceBuyer, &["invoicing"]),
                    1 => (IdentityType::TaxClerk, &["payroll"]),
                    _ => (IdentityType::TaxClerk, &["filing"]),
                },
            };
            doc.record(&StaffIn {
                enterprise: b.enterprise_code(i),
                person: person_ref(0, n),
                identity_type,
                permission_identities: roles.iter().map(|r| r.to_string()).collect(),
                password_change_required: false,
                password: None,
                password_hash: Some(phc.into()),
            })?;
            n += 1;
        }
    }
    Ok(n)
}

/// The agencies, then their agents (section `agent_staff`).
fn agencies<W: Write>(doc: &mut Doc<W>, b: &Bureau, phc: &str) -> io::Result<(u64, u64)> {
    for j in 0..b.agencies() {
        doc.record(&AgencyIn {
            credit_code: b.agency_code(j),
            taxpayer_id: None,
            name: format!("合成税务师事务所{j}"),
            password: None,
            password_hash: Some(phc.into()),
        })?;
    }
    doc.section("agent_staff")?;
    for a in 0..b.agencies() * AGENTS {
        doc.record(&AgentStaffIn {
            agency: b.agency_code(a / AGENTS),
            person: person_ref(1, a),
            password: None,
            password_hash: Some(phc.into()),
        })?;
    }
    Ok((b.agencies(), b.agencies() * AGENTS))
}

/// A random password the default rule accepts.
fn random_password() -> String {
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    loop {
        let tail: String = (0..9)
            .map(|_| LOWER[rand::random_range(0..LOWER.len())] as char)
            .collect();
        let password = format!("Gn@{tail}Q");
        if PasswordPolicy::default().accept(&password).is_ok() {
            return password;
        }
    }
}

/// The `gen` command: writes the bureau to `out`, the shared password on
/// stderr, the counts on stdout.
pub fn command(enterprises: u64, seed: u64, out: &Path) -> ExitCode {
    let password = random_password();
    let phc = PasswordHasher::default().hash(&password);
    let bureau = Bureau { enterprises, seed };
    let written = std::fs::File::create(out).and_then(|f| write_bureau(f, &bureau, &phc));
    match written {
        Ok(counts) => {
            eprintln!(
                "gen: every generated account has the password {password} \
                 (one shared argon2id hash; for load tests only)"
            );
            println!(
                "generated: {}",
                serde_json::to_string(&counts).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen failed: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
