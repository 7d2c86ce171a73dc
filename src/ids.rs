//! Identifiers of the tax domain, checked once at the edge.
//!
//! Each newtype can only be built from a string that passes its format and
//! check-character rules, so inner code never re-checks strings. The `masked`
//! forms are what logs and the decision log may show.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be {expected} characters long, got {got}")]
    Length { expected: &'static str, got: usize },
    #[error("character {position} ('{found}') is not allowed here")]
    Character { position: usize, found: char },
    #[error("check character is '{found}', expected '{expected}'")]
    CheckCharacter { found: char, expected: char },
    #[error("unknown ID type '{0}' (expected one of: {list})", list = IdType::ALL_CODES.join(", "))]
    UnknownIdType(String),
    #[error("must not contain '/' or ':' or control characters")]
    Separator,
}

/// Characters of a unified social credit code (GB 32100-2015): digits and
/// upper-case letters without I, O, Z, S and V.
const CREDIT_CODE_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const CREDIT_CODE_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// 统一社会信用代码: 18 characters, the last a check character (GB 32100-2015).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

impl CreditCode {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let chars: Vec<char> = s.chars().collect();
        if chars.len() != 18 {
            return Err(IdError::Length {
                expected: "18",
                got: chars.len(),
            });
        }
        let mut sum = 0;
        for (i, c) in chars.iter().enumerate() {
            let value = CREDIT_CODE_CHARS
                .iter()
                .position(|&b| b as char == *c)
                .ok_or(IdError::Character {
                    position: i + 1,
                    found: *c,
                })?;
            if i < 17 {
                sum += CREDIT_CODE_WEIGHTS[i] * value as u32;
            }
        }
        let expected = CREDIT_CODE_CHARS[((31 - sum % 31) % 31) as usize] as char;
        if chars[17] != expected {
            return Err(IdError::CheckCharacter {
                found: chars[17],
                expected,
            });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 纳税人识别号 or credit code: what a user types at the enterprise or agency
/// login. New registrations use the credit code; older ones a 15, 17 or 20
/// character number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaxpayerRef {
    CreditCode(CreditCode),
    TaxpayerId(TaxpayerId),
}

impl TaxpayerRef {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match CreditCode::parse(s) {
            Ok(code) => Ok(Self::CreditCode(code)),
            Err(credit_err) if s.trim().chars().count() == 18 => Err(credit_err),
            Err(_) => TaxpayerId::parse(s).map(Self::TaxpayerId),
        }
    }
}

/// 纳税人识别号 of the older kinds (15, 17 or 20 characters of digits and
/// upper-case letters); an 18-character one is a credit code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaxpayerId(String);

impl TaxpayerId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let len = s.chars().count();
        if CreditCode::parse(s).is_ok() {
            return Ok(Self(s.to_owned()));
        }
        if !matches!(len, 15 | 17 | 20) {
            return Err(IdError::Length {
                expected: "15, 17, 18 or 20",
                got: len,
            });
        }
        check_chars(s, |_, c| c.is_ascii_digit() || c.is_ascii_uppercase())?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 证件类型: the kinds of identity document the bureau accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum IdType {
    /// 居民身份证
    ResidentId,
    /// 护照
    Passport,
    /// 港澳居民来往内地通行证
    HkMacaoPermit,
    /// 台湾居民来往大陆通行证
    TaiwanPermit,
    /// 外国人永久居留身份证
    ForeignPermanentResident,
}

impl IdType {
    pub const ALL_CODES: [&'static str; 5] = [
        "resident_id",
        "passport",
        "hk_macao_permit",
        "taiwan_permit",
        "foreign_permanent_resident",
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::ResidentId => "resident_id",
            Self::Passport => "passport",
            Self::HkMacaoPermit => "hk_macao_permit",
            Self::TaiwanPermit => "taiwan_permit",
            Self::ForeignPermanentResident => "foreign_permanent_resident",
        }
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        Ok(match s {
            "resident_id" => Self::ResidentId,
            "passport" => Self::Passport,
            "hk_macao_permit" => Self::HkMacaoPermit,
            "taiwan_permit" => Self::TaiwanPermit,
            "foreign_permanent_resident" => Self::ForeignPermanentResident,
            other => return Err(IdError::UnknownIdType(other.to_owned())),
        })
    }
}

impl TryFrom<String> for IdType {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<IdType> for String {
    fn from(t: IdType) -> String {
        t.code().to_owned()
    }
}

const RESIDENT_ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const RESIDENT_ID_CHECK: &[u8; 11] = b"10X98765432";

/// A person's key: ID type + ID number (证件类型 + 证件号码). A resident ID
/// number has 18 characters with a check digit (GB 11643-1999).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonKey {
    id_type: IdType,
    id_number: String,
}

impl PersonKey {
    pub fn new(id_type: IdType, id_number: &str) -> Result<Self, IdError> {
        let id_number = id_number.trim();
        match id_type {
            IdType::ResidentId => check_resident_id(id_number)?,
            _ => {
                let len = id_number.chars().count();
                if !(5..=20).contains(&len) {
                    return Err(IdError::Length {
                        expected: "5 to 20",
                        got: len,
                    });
                }
                check_chars(id_number, |_, c| c.is_ascii_alphanumeric())?;
            }
        }
        Ok(Self {
            id_type,
            id_number: id_number.to_ascii_uppercase(),
        })
    }

    /// The stored key and Cedar entity id: `resident_id:210102199003071234`.
    pub fn parse_key(s: &str) -> Result<Self, IdError> {
        let (t, n) = s.split_once(':').ok_or(IdError::Separator)?;
        Self::new(IdType::parse(t)?, n)
    }

    pub fn key(&self) -> String {
        format!("{}:{}", self.id_type.code(), self.id_number)
    }

    pub fn id_type(&self) -> IdType {
        self.id_type
    }

    pub fn id_number(&self) -> &str {
        &self.id_number
    }

    /// `resident_id:2101**********1234`
    pub fn masked(&self) -> String {
        format!(
            "{}:{}",
            self.id_type.code(),
            mask_id_number(&self.id_number)
        )
    }
}

impl fmt::Display for PersonKey {
    /// Masked: a person key is never shown whole outside the store.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

fn check_resident_id(n: &str) -> Result<(), IdError> {
    let chars: Vec<char> = n.chars().collect();
    if chars.len() != 18 {
        return Err(IdError::Length {
            expected: "18",
            got: chars.len(),
        });
    }
    let mut sum = 0;
    for (i, c) in chars.iter().take(17).enumerate() {
        let d = c.to_digit(10).ok_or(IdError::Character {
            position: i + 1,
            found: *c,
        })?;
        sum += RESIDENT_ID_WEIGHTS[i] * d;
    }
    let expected = RESIDENT_ID_CHECK[(sum % 11) as usize] as char;
    let found = chars[17].to_ascii_uppercase();
    if found != expected {
        return Err(IdError::CheckCharacter {
            found: chars[17],
            expected,
        });
    }
    Ok(())
}

/// Every character of `s` passes `ok(index, char)`; the first that does not
/// is named by its 1-based position.
fn check_chars(s: &str, ok: impl Fn(usize, char) -> bool) -> Result<(), IdError> {
    match s.chars().enumerate().find(|&(i, c)| !ok(i, c)) {
        Some((i, c)) => Err(IdError::Character {
            position: i + 1,
            found: c,
        }),
        None => Ok(()),
    }
}

/// 手机号码: a mainland mobile number, 11 digits starting 13–19.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let len = s.chars().count();
        if len != 11 {
            return Err(IdError::Length {
                expected: "11",
                got: len,
            });
        }
        check_chars(s, |i, c| match i {
            0 => c == '1',
            1 => ('3'..='9').contains(&c),
            _ => c.is_ascii_digit(),
        })?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `138****5678`
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

/// 权限身份 id: the name an enterprise gives a permission identity (R14), the
/// local part of `PermissionIdentity::"<credit code>/<id>"`. ASCII letters,
/// digits, '-' and '_', 1 to 64 of them, taken as given (no trimming): a
/// look-alike — `filing ` or full-width `ｆiling` — would be a second role that
/// reads like the first in every list and log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PermissionIdentityId(String);

impl PermissionIdentityId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let len = s.chars().count();
        if len == 0 || len > 64 {
            return Err(IdError::Length {
                expected: "1 to 64",
                got: len,
            });
        }
        check_chars(s, |_, c| c.is_ascii_alphanumeric() || c == '-' || c == '_')?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_conversions {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype_conversions!(CreditCode, TaxpayerId, PermissionIdentityId);

impl TryFrom<String> for Phone {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<Phone> for String {
    fn from(v: Phone) -> String {
        v.0
    }
}

/// Masks an ID number: the one rule every log line, decision record, HTTP
/// answer and CLI output follows, so one person's number always reads the
/// same and records can be matched by it. By length, which is what the
/// number's type decides:
///
/// - 15 or more characters — resident IDs (18, or 15 for the first
///   generation), foreign permanent resident IDs (18), long permits: the
///   first four and last four kept, as the bureau prints them
///   (`2101**********1234`);
/// - 9 to 14 — passports (`E12345678`), Hong Kong/Macao and Taiwan permits:
///   the first two and last two kept (`E1*****78`), so at least half is
///   hidden;
/// - 8 or fewer: all hidden.
///
/// Kept characters are upper-cased (a resident ID's check character `x` is
/// `X`, as [`PersonKey`] stores it), and a masked number masks to itself,
/// so masking text twice changes nothing.
pub fn mask_id_number(n: &str) -> String {
    let chars: Vec<char> = n.chars().map(|c| c.to_ascii_uppercase()).collect();
    let kept = match chars.len() {
        15.. => 4,
        9..=14 => 2,
        _ => 0,
    };
    let head: String = chars[..kept].iter().collect();
    let tail: String = chars[chars.len() - kept..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 2 * kept))
}

/// Masks every ID number and phone number inside free text (entity ids,
/// Cedar error messages, audit queries) exactly as [`mask_id_number`] and
/// [`Phone::masked`] mask them, whatever surrounds them:
///
/// - the number after an ID-type prefix (`resident_id:…`, `passport:…`);
/// - any run of 18 digits (or 17 and `X`), 15, or 19 and more — glued to
///   letters or not (`a210102…`, `ID210102…`): a number is a person's
///   whatever is typed next to it;
/// - a resident ID number written in groups, `210102-19800312-4011` or with
///   spaces, masked as the one mask `2101**********4011`;
/// - an 11-digit mobile number (`138****5678`), also with `+86`/`86`/`0086`
///   before it and spaces or hyphens between its groups (`+86-138-****-5678`).
///
/// Full-width digits (`２１０１…`, U+FF10–U+FF19) and `Ｘ` are read as their
/// ASCII forms first, so the text comes back with ASCII digits. One
/// exception keeps hashes readable: in a token of exactly 32 or 64 lower-case
/// hex digits (a pseudonym, a policy version, a chain hash), a digit run
/// shorter than an ID number (a phone-like run) is left whole.
/// Already-masked text comes back unchanged.
pub fn mask_text(text: &str) -> String {
    let normalized;
    let text = if text.contains(|c| full_width_ascii(c).is_some()) {
        normalized = text
            .chars()
            .map(|c| full_width_ascii(c).unwrap_or(c))
            .collect::<String>();
        normalized.as_str()
    } else {
        text
    };
    // Byte-wise, copying unmasked stretches whole: this runs on every
    // decision's log record. Every position sliced at is an ASCII byte, so
    // always a char boundary.
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // An ID-type prefix: mask the alphanumeric run that follows it. A
        // `*` belongs to the run, so a number masked before is taken whole
        // and masks to itself (not its four kept leading characters alone).
        let after_alnum = i > 0 && bytes[i - 1].is_ascii_alphanumeric();
        let code = IdType::ALL_CODES.iter().find(|c| {
            !after_alnum
                && bytes[i..].starts_with(c.as_bytes())
                && bytes.get(i + c.len()) == Some(&b':')
        });
        if let Some(code) = code {
            let start = i + code.len() + 1;
            let (end, masked) = match grouped_id(bytes, start) {
                Some((end, number)) => (end, mask_id_number(&number)),
                None => {
                    let end = run_end(bytes, start, |b| b.is_ascii_alphanumeric() || b == b'*');
                    (end, mask_id_number(&text[start..end]))
                }
            };
            out.push_str(&text[copied..start]);
            out.push_str(&masked);
            copied = end;
            i = end;
            continue;
        }
        let starts_number = !(i > 0 && bytes[i - 1].is_ascii_digit());
        if starts_number && (bytes[i].is_ascii_digit() || bytes[i] == b'+') {
            if let Some((end, masked)) = number_at(bytes, i) {
                out.push_str(&text[copied..i]);
                out.push_str(&masked);
                copied = end;
                i = end;
                continue;
            }
            // Not a number to mask: past its digits, never into them.
            i = run_end(bytes, i + 1, |b| b.is_ascii_digit());
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// The ASCII digit or `X` of a full-width one (`２` → `2`, `Ｘ` → `X`).
fn full_width_ascii(c: char) -> Option<char> {
    match c {
        '\u{FF10}'..='\u{FF19}' => char::from_digit(c as u32 - 0xFF10, 10),
        '\u{FF38}' | '\u{FF58}' => Some('X'),
        _ => None,
    }
}

/// The ID number or phone starting at `i` (the first digit of a run, or a
/// `+`), if any: where it ends and its mask.
fn number_at(bytes: &[u8], i: usize) -> Option<(usize, String)> {
    if let Some((end, number)) = grouped_id(bytes, i) {
        return Some((end, mask_id_number(&number)));
    }
    if let Some(found) = phone_at(bytes, i) {
        return Some(found);
    }
    let end = run_end(bytes, i, |b| b.is_ascii_digit());
    let run = std::str::from_utf8(&bytes[i..end]).ok()?;
    let (end, masked) = match run.len() {
        17 if matches!(bytes.get(end), Some(b'X' | b'x')) => {
            (end + 1, mask_id_number(&format!("{run}X")))
        }
        15 | 18 | 19.. => (end, mask_id_number(run)),
        11 if run.starts_with('1') => (end, mask_phone(run)),
        _ => return None,
    };
    (!in_hash(bytes, i, end)).then_some((end, masked))
}

/// A resident ID number written in groups, `210102-19800312-4011` (or with
/// spaces), at `i`: where it ends and its 18 characters.
fn grouped_id(bytes: &[u8], i: usize) -> Option<(usize, String)> {
    let digits = |from: usize, n: usize| {
        bytes
            .get(from..from + n)?
            .iter()
            .all(u8::is_ascii_digit)
            .then_some(from + n)
    };
    let sep = |at: usize| matches!(bytes.get(at), Some(b'-' | b' ')).then_some(at + 1);
    let j = sep(digits(i, 6)?)?;
    let j = sep(digits(j, 8)?)?;
    let j = digits(j, 3)?;
    let end = match bytes.get(j) {
        Some(b'0'..=b'9' | b'X' | b'x') => j + 1,
        _ => return None,
    };
    if bytes.get(end).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let number: String = bytes[i..end]
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|&b| b.to_ascii_uppercase() as char)
        .collect();
    Some((end, number))
}

/// A mobile number at `i` written with a country code (`+86`, `0086`,
/// `86`) or separators between its 3-4-4 groups (`138 0000 0001`,
/// `+86-138-0000-0001`): where it ends and its mask, the middle four
/// digits hidden and everything else kept. A bare 11-digit run is left to
/// the run rule of [`number_at`].
fn phone_at(bytes: &[u8], i: usize) -> Option<(usize, String)> {
    let digits = |from: usize, n: usize| {
        bytes
            .get(from..from + n)?
            .iter()
            .all(u8::is_ascii_digit)
            .then_some(from + n)
    };
    let skip_sep = |at: usize| match bytes.get(at) {
        Some(b'-' | b' ') => (at + 1, true),
        _ => (at, false),
    };
    for prefix in [&b"+86"[..], b"0086", b"86", b""] {
        if !bytes[i..].starts_with(prefix) {
            continue;
        }
        let (start, sep0) = if prefix.is_empty() {
            (i, false)
        } else {
            skip_sep(i + prefix.len())
        };
        let Some(a) = digits(start, 3) else { continue };
        let (b, sep1) = skip_sep(a);
        let Some(middle_end) = digits(b, 4) else {
            continue;
        };
        let (c, sep2) = skip_sep(middle_end);
        let Some(end) = digits(c, 4) else { continue };
        let plain = prefix.is_empty() && !sep0 && !sep1 && !sep2;
        let mobile = bytes[start] == b'1' && (b'3'..=b'9').contains(&bytes[start + 1]);
        if plain || !mobile || bytes.get(end).is_some_and(u8::is_ascii_digit) {
            continue;
        }
        let mut masked = String::from_utf8_lossy(&bytes[i..b]).into_owned();
        masked.push_str("****");
        masked.push_str(&String::from_utf8_lossy(&bytes[middle_end..end]));
        return Some((end, masked));
    }
    None
}

/// Whether `start..end` lies in a token of exactly 32 or 64 lower-case hex
/// digits: a pseudonym, policy version or hash. Only a run shorter than an
/// ID number, in a token with at least one letter, is spared: a caller can
/// write an ID inside a hex-looking token (the second red-team round did),
/// while a hash has 15 digits in a row only rarely, and then loses a few of
/// them to the mask in free text (its own fields are never masked).
fn in_hash(bytes: &[u8], start: usize, end: usize) -> bool {
    // `*` counts as part of the token, so a token whose long run a first
    // pass masked is still one the second pass spares: masking twice
    // changes nothing.
    let part = |b: u8| b.is_ascii_alphanumeric() || b == b'*';
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b) || *b == b'*';
    let from = bytes[..start]
        .iter()
        .rposition(|b| !part(*b))
        .map_or(0, |p| p + 1);
    let to = run_end(bytes, end, part);
    end - start < 15
        && matches!(to - from, 32 | 64)
        && bytes[from..to].iter().all(hex)
        && bytes[from..to].iter().any(u8::is_ascii_lowercase)
}

/// A mainland mobile number (11 ASCII digits) with its middle four hidden:
/// the first three (the carrier) and last four kept, `138****5678`.
fn mask_phone(digits: &str) -> String {
    format!("{}****{}", &digits[..3], &digits[7..])
}

/// The end of the run of bytes from `start` that `keep` accepts.
fn run_end(bytes: &[u8], start: usize, keep: impl Fn(u8) -> bool) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| !keep(b))
        .map_or(bytes.len(), |n| start + n)
}

/// Masks a person's name as the bureau shows it in staff lists: all but the
/// last character hidden (`*三`, `**明`).
pub fn mask_name(name: &str) -> String {
    let count = name.chars().count();
    match name.chars().last() {
        Some(last) if count > 1 => format!("{}{last}", "*".repeat(count - 1)),
        _ => "*".to_owned(),
    }
}

/// A local key of the bureau's own catalogue (a business function code):
/// non-empty, no separators, at most 64 characters. Permission identity ids,
/// which enterprises choose, are the stricter [`PermissionIdentityId`].
pub fn check_local_key(s: &str) -> Result<(), IdError> {
    let len = s.chars().count();
    if len == 0 || len > 64 {
        return Err(IdError::Length {
            expected: "1 to 64",
            got: len,
        });
    }
    if s.chars()
        .any(|c| c == '/' || c == ':' || c.is_control() || c == '"')
    {
        return Err(IdError::Separator);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_identity_ids_refuse_look_alikes() {
        assert!(PermissionIdentityId::parse("all-business_2").is_ok());
        for (s, position, found) in [("filing ", 7, ' '), ("ｆiling", 1, 'ｆ'), ("a/b", 2, '/')] {
            assert_eq!(
                PermissionIdentityId::parse(s),
                Err(IdError::Character { position, found }),
                "{s:?}"
            );
        }
        assert!(matches!(
            PermissionIdentityId::parse(""),
            Err(IdError::Length { .. })
        ));
        assert!(PermissionIdentityId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn credit_code_check_character() {
        assert!(CreditCode::parse("91350100M000100Y43").is_ok());
        assert!(matches!(
            CreditCode::parse("91350100M000100Y44"),
            Err(IdError::CheckCharacter { .. })
        ));
        assert!(matches!(
            CreditCode::parse("91350100M00010"),
            Err(IdError::Length { .. })
        ));
        assert!(matches!(
            CreditCode::parse("91350100I000100Y43"),
            Err(IdError::Character { position: 9, .. })
        ));
    }

    #[test]
    fn resident_id_check_digit() {
        assert!(PersonKey::new(IdType::ResidentId, "11010519491231002X").is_ok());
        assert!(PersonKey::new(IdType::ResidentId, "11010519491231002x").is_ok());
        assert!(matches!(
            PersonKey::new(IdType::ResidentId, "110105194912310021"),
            Err(IdError::CheckCharacter { .. })
        ));
    }

    #[test]
    fn person_key_round_trips_and_masks() {
        let k = PersonKey::parse_key("resident_id:11010519491231002X").unwrap();
        assert_eq!(k.key(), "resident_id:11010519491231002X");
        assert_eq!(k.masked(), "resident_id:1101**********002X");
        assert_eq!(k.to_string(), k.masked());
    }

    #[test]
    fn phone_rules_and_mask() {
        assert_eq!(Phone::parse("13812345678").unwrap().masked(), "138****5678");
        assert!(Phone::parse("12812345678").is_err());
        assert!(Phone::parse("1381234567").is_err());
    }

    #[test]
    fn taxpayer_ref_accepts_both_forms() {
        assert!(matches!(
            TaxpayerRef::parse("91350100M000100Y43"),
            Ok(TaxpayerRef::CreditCode(_))
        ));
        assert!(matches!(
            TaxpayerRef::parse("210102123456789"),
            Ok(TaxpayerRef::TaxpayerId(_))
        ));
        assert!(TaxpayerRef::parse("91350100M000100Y44").is_err());
    }

    #[test]
    fn text_mask_hides_id_numbers_and_phones() {
        let t = r#"entity `Etax::Staff::"91210102MA0TAX001F/resident_id:210102199001015035"` and passport:E12345678, call 13812345678 or 210102199001015035"#;
        let m = mask_text(t);
        assert!(!m.contains("210102199001015035"), "{m}");
        assert!(!m.contains("E12345678"), "{m}");
        assert!(!m.contains("13812345678"), "{m}");
        assert!(
            m.contains("91210102MA0TAX001F/resident_id:2101**********5035"),
            "{m}"
        );
        assert!(m.contains("138****5678"), "{m}");
        // Credit codes and other numbers stay readable.
        assert_eq!(
            mask_text("order 12345 of 91210102MA0TAX001F"),
            "order 12345 of 91210102MA0TAX001F"
        );
    }

    #[test]
    fn text_mask_catches_the_red_team_forms() {
        for (text, masked) in [
            (
                "resident_id:２１０１０２１９８００３１２４０１１",
                "resident_id:2101**********4011",
            ),
            ("a210102198003124011", "a2101**********4011"),
            ("ID210102198003124011", "ID2101**********4011"),
            (
                "13800000001x210102198003124011",
                "138****0001x2101**********4011",
            ),
            (
                "resident_id:210102-19800312-4011",
                "resident_id:2101**********4011",
            ),
            ("210102 19800312 4011", "2101**********4011"),
            ("２１０１０２１９９２１１１１４０４Ｘ", "2101**********404X"),
            ("8613800000001", "86138****0001"),
            ("008613800000001", "0086138****0001"),
            ("138 0000 0001", "138 **** 0001"),
            ("+86-138-0000-0001", "+86-138-****-0001"),
            ("+86 13800000001", "+86 138****0001"),
            ("tel:+8613800000001;", "tel:+86138****0001;"),
            ("6222020200112233445566", "6222**************5566"),
        ] {
            assert_eq!(mask_text(text), masked, "{text}");
            assert_eq!(mask_text(masked), masked, "{masked}");
        }
        // Hashes and pseudonyms stay whole;
        // short numbers, dates and millisecond times stay readable.
        let version = "6a966f50c03bba5a2a41ad11bdaeb118365f2cf7f8497c25e005bba31493e9ac";
        assert_eq!(mask_text(version), version);
        let pseudonym = "3f1ace48239ce75ac11ede0c4cb57ea4";
        assert_eq!(mask_text(pseudonym), pseudonym);
        // But an ID written inside a hex-looking token is masked (second
        // red-team round), and 32 digits are no hash.
        assert_eq!(
            mask_text("abcdefab210102198003124011abcdef"),
            "abcdefab2101**********4011abcdef"
        );
        assert!(!mask_text("21010219800312401112345678901234").contains("198003124011"));
        for kept in [
            "2026-11-27 19:13",
            "1795807093972",
            "order 12345",
            "20261127",
        ] {
            assert_eq!(mask_text(kept), kept);
        }
    }

    /// A valid resident ID number from 17 digits: the check character
    /// appended, lower-case `x` when `lower` (as users type it).
    fn resident_id(digits: &[u32], lower: bool) -> String {
        let sum: u32 = digits
            .iter()
            .zip(RESIDENT_ID_WEIGHTS)
            .map(|(d, w)| d * w)
            .sum();
        let check = RESIDENT_ID_CHECK[(sum % 11) as usize] as char;
        let check = if lower {
            check.to_ascii_lowercase()
        } else {
            check
        };
        digits
            .iter()
            .map(|d| char::from_digit(*d, 10).unwrap())
            .chain([check])
            .collect()
    }

    /// Text around an ID number, never a letter or digit next to it.
    const BEFORE: &[&str] = &[
        "",
        "Staff::\"91210102MA0TAX001F/",
        "no person ",
        "证件号码 ",
        "`",
        "[\"",
    ];
    const AFTER: &[&str] = &[
        "",
        "\"",
        " is not real-name collected",
        "，已锁定",
        "`",
        "/x",
    ];

    proptest::proptest! {
        /// Whatever the text around it, prefixed or bare, an ID number in
        /// free text masks exactly as the typed key masks it.
        #[test]
        fn text_mask_is_the_typed_mask(
            digits in proptest::collection::vec(0u32..10, 17),
            lower in proptest::bool::ANY,
            other in "[A-Z0-9]{5,20}",
            other_type in proptest::sample::select(&IdType::ALL_CODES[1..]),
            before in proptest::sample::select(BEFORE),
            after in proptest::sample::select(AFTER),
        ) {
            let number = resident_id(&digits, lower);
            let key = PersonKey::new(IdType::ResidentId, &number).unwrap();
            let typed = key.masked();
            let bare_mask = mask_id_number(key.id_number());
            proptest::prop_assert_eq!(&typed, &format!("resident_id:{bare_mask}"));
            for (text, mask) in [
                (format!("{before}{}{after}", key.key()), format!("{before}{typed}{after}")),
                (format!("{before}resident_id:{number}{after}"), format!("{before}{typed}{after}")),
                (format!("{before}{number}{after}"), format!("{before}{bare_mask}{after}")),
            ] {
                proptest::prop_assert_eq!(mask_text(&text), mask.clone());
                // Masked text masks to itself: a record's reason or an
                // error message masked twice still shows the one mask.
                proptest::prop_assert_eq!(mask_text(&mask), mask);
            }
            let other = PersonKey::new(IdType::parse(other_type).unwrap(), &other).unwrap();
            let text = format!("{before}{}{after}", other.key());
            proptest::prop_assert_eq!(mask_text(&text), format!("{before}{}{after}", other.masked()));
            proptest::prop_assert!(!mask_text(&text).contains(other.id_number()));
        }

        #[test]
        fn masking_twice_changes_nothing(
            text in "((resident_id:|passport:|[0-9]{11}|[0-9]{17}[0-9Xx]|1[0-9]{10}|[0-9A-Za-z]{1,4}|[ /:\"`*]|张|伟|::))*"
        ) {
            let once = mask_text(&text);
            proptest::prop_assert_eq!(mask_text(&once), once);
        }
    }

    proptest::proptest! {
        /// However an ID number is written — glued to letters, in groups,
        /// in full-width digits — free text shows only its one mask.
        #[test]
        fn every_written_form_of_an_id_masks_to_the_one_mask(
            digits in proptest::collection::vec(0u32..10, 17),
            lower in proptest::bool::ANY,
            before in "[A-Za-z]{0,3}",
            after in "[A-Za-z]{0,3}",
            sep in proptest::sample::select(&["-", " "][..]),
            form in 0usize..3,
        ) {
            let number = resident_id(&digits, lower);
            let mask = mask_id_number(&number);
            let written = match form {
                0 => number.clone(),
                1 => format!("{}{sep}{}{sep}{}", &number[..6], &number[6..14], &number[14..]),
                _ => number
                    .chars()
                    .map(|c| c.to_digit(10).map_or(c, |d| char::from_u32(0xFF10 + d).unwrap()))
                    .collect(),
            };
            let text = format!("{before}{written}{after}");
            let once = mask_text(&text);
            proptest::prop_assert_eq!(&once, &format!("{before}{mask}{after}"));
            proptest::prop_assert_eq!(mask_text(&once), once);
        }

        /// A mobile number with or without country code and separators:
        /// its middle four digits hidden, the rest as written.
        #[test]
        fn every_written_form_of_a_phone_is_masked(
            second in 3u32..10,
            rest in proptest::collection::vec(0u32..10, 9),
            prefix in proptest::sample::select(&["", "+86", "86", "0086", "+86-", "+86 "][..]),
            sep in proptest::sample::select(&["", "-", " "][..]),
        ) {
            let d: String = [1, second].iter().chain(&rest).map(|d| char::from_digit(*d, 10).unwrap()).collect();
            let written = format!("{prefix}{}{sep}{}{sep}{}", &d[..3], &d[3..7], &d[7..]);
            let once = mask_text(&format!("call {written}."));
            proptest::prop_assert_eq!(&once, &format!("call {prefix}{}{sep}****{sep}{}.", &d[..3], &d[7..]));
            proptest::prop_assert_eq!(mask_text(&once), once);
        }
    }

    #[test]
    fn mask_rule_by_length() {
        assert_eq!(mask_id_number("210102198003124011"), "2101**********4011");
        assert_eq!(mask_id_number("210102800312401"), "2101*******2401");
        assert_eq!(mask_id_number("E12345678"), "E1*****78");
        assert_eq!(mask_id_number("H1234567890"), "H1*******90");
        assert_eq!(mask_id_number("12345678"), "********");
        assert_eq!(mask_id_number("11010519491231002x"), "1101**********002X");
        // The masks of the issue (#11 item 4): one form, prefixed or not.
        let masked = mask_text("resident_id:210301199001010048");
        assert_eq!(masked, "resident_id:2103**********0048");
        assert_eq!(mask_text(&masked), masked);
        assert_eq!(mask_text("210301199001010048"), "2103**********0048");
        assert_eq!(
            mask_text("13800000001"),
            Phone::parse("13800000001").unwrap().masked()
        );
    }

    #[test]
    fn name_mask() {
        assert_eq!(mask_name("张三"), "*三");
        assert_eq!(mask_name("欧阳小明"), "***明");
    }
}
