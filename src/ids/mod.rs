//! Identifiers of the tax domain, checked once at the edge.
//!
//! Each newtype can only be built from a string that passes its format and
//! check-character rules, so inner code never re-checks strings. The `masked`
//! forms are what logs and the decision log may show.

use std::fmt;

use serde::{Deserialize, Serialize};

mod mask;
use mask::mask_phone;
pub use mask::{mask_changed, mask_id_number, mask_name, mask_text};

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
            // At most 32 characters of it: the error is answered and
            // recorded, and anyone may send one of kilobytes (a login step).
            other if other.chars().count() > 32 => {
                let head: String = other.chars().take(32).collect();
                return Err(IdError::UnknownIdType(format!(
                    "{head}… ({} characters)",
                    other.chars().count()
                )));
            }
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
}
