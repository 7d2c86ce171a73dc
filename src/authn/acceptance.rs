//! The one acceptance function for every password the service stores:
//! personal passwords set, changed or recovered over the API, one-time
//! passwords from resets (R12), agreement passwords (R17) and passwords
//! given in clear to `import`. Each passes the configured rule (R10 by
//! default) and then the deny list of common passwords (OWASP ASVS 5.0
//! 6.2.4), so no path stores a password another path would refuse.

use super::common_passwords::DenyList;
use super::password::{PasswordRule, PasswordRuleError};

/// Why a password is refused: the rule, or a password on the deny list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewPasswordError {
    #[error(transparent)]
    Rule(#[from] PasswordRuleError),
    /// Kept apart from the rule: such a password may meet R10 (`Abc12345`),
    /// and the user should learn that it is too common, not that it breaks
    /// the bureau's rule.
    #[error(
        "password is on the list of the most common passwords and easy to guess; choose another"
    )]
    Common,
}

/// The configured rule and deny list.
#[derive(Debug, Clone, Default)]
pub struct PasswordPolicy {
    pub rule: PasswordRule,
    pub deny_list: DenyList,
}

impl PasswordPolicy {
    /// Whether `password` may be stored.
    pub fn accept(&self, password: &str) -> Result<(), NewPasswordError> {
        self.rule.check(password)?;
        if self.deny_list.contains(password) {
            return Err(NewPasswordError::Common);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_then_deny_list() {
        let policy = PasswordPolicy::default();
        assert!(matches!(
            policy.accept("111111"),
            Err(NewPasswordError::Rule(_))
        ));
        assert!(matches!(
            policy.accept("      "),
            Err(NewPasswordError::Rule(_))
        ));
        assert_eq!(policy.accept("Abc12345"), Err(NewPasswordError::Common));
        assert_eq!(policy.accept("Xieyi#2027"), Ok(()));
        let open = PasswordPolicy {
            deny_list: DenyList::None,
            ..PasswordPolicy::default()
        };
        assert_eq!(open.accept("Abc12345"), Ok(()));
    }
}
