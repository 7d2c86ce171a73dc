//! [`StaffKey`]: who a staff member is, `<credit code>/<person key>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{CreditCode, IdError, PersonKey};

/// A staff member of an enterprise (`Staff`), or of an agency
/// (`AgentStaff`: the agency's credit code is the owner). Its text form,
/// `<credit code>/<id_type>:<id_number>`, is the stored key and the Cedar
/// entity id; it holds a whole ID number, so like [`PersonKey::key`] it is
/// shown only through `ids::mask_text`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StaffKey {
    pub enterprise: CreditCode,
    pub person: PersonKey,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffKeyError {
    #[error("a staff key is `<credit code>/<id_type>:<id_number>`; no '/' in {0:?}")]
    NoSeparator(String),
    #[error("the enterprise of a staff key: {0}")]
    Enterprise(IdError),
    #[error("the person of a staff key: {0}")]
    Person(IdError),
}

impl fmt::Display for StaffKey {
    /// The stored form, unmasked (the person's [`PersonKey::key`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.enterprise.as_str(), self.person.key())
    }
}

impl FromStr for StaffKey {
    type Err = StaffKeyError;

    fn from_str(s: &str) -> Result<Self, StaffKeyError> {
        let (enterprise, person) = s
            .split_once('/')
            .ok_or_else(|| StaffKeyError::NoSeparator(s.to_owned()))?;
        Ok(Self {
            enterprise: CreditCode::parse(enterprise).map_err(StaffKeyError::Enterprise)?,
            person: PersonKey::parse_key(person).map_err(StaffKeyError::Person)?,
        })
    }
}

/// Stored (in a login flow) as its text form, the string the field held
/// before it was typed.
impl Serialize for StaffKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StaffKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serde_form_is_the_stored_string() {
        let stored = r#""91210100MA0AGT004B/resident_id:210105199303031080""#;
        let key: StaffKey = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&key).unwrap(), stored);
        assert!(serde_json::from_str::<StaffKey>(r#""91210100MA0AGT004B""#).is_err());
    }

    #[test]
    fn the_text_form_is_the_stored_key() {
        let text = "91210102MA0TAX001F/resident_id:21010219921111404X";
        let key: StaffKey = text.parse().unwrap();
        assert_eq!(key.enterprise.as_str(), "91210102MA0TAX001F");
        assert_eq!(key.person.key(), "resident_id:21010219921111404X");
        assert_eq!(key.to_string(), text);
        assert!(matches!(
            "91210102MA0TAX001F".parse::<StaffKey>(),
            Err(StaffKeyError::NoSeparator(_))
        ));
        assert!(matches!(
            "91210102MA0TAX001X/resident_id:21010219921111404X".parse::<StaffKey>(),
            Err(StaffKeyError::Enterprise(_))
        ));
        assert!(matches!(
            "91210102MA0TAX001F/resident_id:1".parse::<StaffKey>(),
            Err(StaffKeyError::Person(_))
        ));
    }
}
