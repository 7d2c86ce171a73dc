//! argon2id password hashes and the bureau's password rule (R10).
//!
//! Hashing is CPU- and memory-heavy by design (tens of ms, 19 MiB each):
//! callers on the async runtime must run it on the blocking pool.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

/// argon2id cost parameters. The default is OWASP's minimum for argon2id
/// (m = 19 MiB, t = 2, p = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("argon2 parameters rejected: {0}")]
pub struct HashCostError(String);

/// Hashes and verifies passwords with argon2id.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Argon2<'static>,
}

impl PasswordHasher {
    pub fn new(cost: HashCost) -> Result<Self, HashCostError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| HashCostError(e.to_string()))?;
        Ok(Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=…`) with a fresh random salt.
    pub fn hash(&self, password: &str) -> String {
        self.argon
            .hash_password(password.as_bytes())
            .expect("argon2id hashing with validated parameters cannot fail")
            .to_string()
    }

    /// Whether `password` matches `phc`. A malformed stored hash never matches.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => self
                .argon
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new(HashCost::default()).expect("default argon2 parameters are valid")
    }
}

/// Whether `phc` is a well-formed argon2id hash string (for imports that
/// carry hashes from another system).
pub fn is_argon2id_phc(phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| h.algorithm.as_str() == "argon2id")
        .unwrap_or(false)
}

/// The password rule. The default is R10: 8 to 15 characters, with at least
/// three of upper case, lower case, digits and special characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordRule {
    pub min_len: usize,
    pub max_len: usize,
    pub min_classes: usize,
}

impl Default for PasswordRule {
    fn default() -> Self {
        Self {
            min_len: 8,
            max_len: 15,
            min_classes: 3,
        }
    }
}

/// Which part of the password rule a password fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRuleError {
    #[error("password is {got} characters long; it must be {min} to {max} characters (R10)")]
    Length { got: usize, min: usize, max: usize },
    #[error(
        "password uses {got} of the four character classes (upper case, lower case, digits, \
         special characters); it must use at least {min} (R10)"
    )]
    Classes { got: usize, min: usize },
}

impl PasswordRule {
    pub fn check(&self, password: &str) -> Result<(), PasswordRuleError> {
        let len = password.chars().count();
        if len < self.min_len || len > self.max_len {
            return Err(PasswordRuleError::Length {
                got: len,
                min: self.min_len,
                max: self.max_len,
            });
        }
        let classes = [
            password.chars().any(|c| c.is_ascii_uppercase()),
            password.chars().any(|c| c.is_ascii_lowercase()),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_ascii_alphanumeric()),
        ]
        .iter()
        .filter(|&&present| present)
        .count();
        if classes < self.min_classes {
            return Err(PasswordRuleError::Classes {
                got: classes,
                min: self.min_classes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = PasswordHasher::default();
        let phc = h.hash("Tax@2026pass");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(is_argon2id_phc(&phc));
        assert!(h.verify("Tax@2026pass", &phc));
        assert!(!h.verify("Tax@2026pasS", &phc));
        assert!(!h.verify("Tax@2026pass", "not a hash"));
    }

    #[test]
    fn r10_rule() {
        let rule = PasswordRule::default();
        assert!(rule.check("Abcdef12").is_ok());
        assert!(rule.check("abcdef1!").is_ok());
        assert_eq!(
            rule.check("Ab1!"),
            Err(PasswordRuleError::Length {
                got: 4,
                min: 8,
                max: 15
            })
        );
        assert!(matches!(
            rule.check("Abcdefgh12345678"),
            Err(PasswordRuleError::Length { got: 16, .. })
        ));
        assert_eq!(
            rule.check("abcdefgh1"),
            Err(PasswordRuleError::Classes { got: 2, min: 3 })
        );
        assert_eq!(
            rule.check("111111"),
            Err(PasswordRuleError::Length {
                got: 6,
                min: 8,
                max: 15
            })
        );
    }
}
