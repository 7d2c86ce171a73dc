//! argon2id password hashes and the bureau's password rule (R10).
//!
//! Hashing is CPU- and memory-heavy by design (tens of ms, 19 MiB each):
//! callers on the async runtime run it on [`super::hash_pool`], which also
//! keeps each thread's working memory ([`HashMemory`]) between hashes.

use argon2::password_hash::phc::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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
        self.hash_in(password, &mut HashMemory::default())
    }

    /// Whether `password` matches `phc`. A malformed stored hash never matches.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        self.verify_in(password, phc, &mut HashMemory::default())
    }

    /// [`Self::hash`] in `memory`, which is kept for the next hash.
    pub fn hash_in(&self, password: &str, memory: &mut HashMemory) -> String {
        let salt = argon2::password_hash::generate_salt();
        let params = self.argon.params();
        let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
        self.argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                &salt,
                &mut out,
                memory.blocks(params.block_count()),
            )
            .expect("argon2id hashing with validated parameters cannot fail");
        PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: params.try_into().expect("validated parameters render"),
            salt: Some(Salt::new(&salt).expect("a generated salt is valid")),
            hash: Some(Output::new(&out).expect("argon2 output length is valid")),
        }
        .to_string()
    }

    /// [`Self::verify`] in `memory`, which is kept for the next one. Uses
    /// the parameters stored in `phc` (hashes imported from another system
    /// may have other costs); the memory grows to the largest seen.
    pub fn verify_in(&self, password: &str, phc: &str, memory: &mut HashMemory) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        let computed = argon.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            memory.blocks(params.block_count()),
        );
        // `Output`'s equality is constant-time.
        computed.is_ok() && Output::new(&out).is_ok_and(|o| &o == expected)
    }
}

/// argon2 working memory (19 MiB at the default cost) kept between hashes.
/// A fresh 19 MiB buffer per hash, freed on whichever thread ran it, stays
/// in that thread's allocator arena: a login burst over many blocking-pool
/// threads left ~800 MB resident. Reusing one buffer per hashing thread
/// bounds it to one per core (BENCHMARKS.md, "Memory after login storms").
#[derive(Default)]
pub struct HashMemory(Vec<Block>);

impl HashMemory {
    /// `count` blocks, grown (never shrunk) as needed.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.0.len() < count {
            self.0.resize(count, Block::default());
        }
        &mut self.0[..count]
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
/// three of upper case, lower case, digits and special characters. Every
/// character is one of those four classes, all printable ASCII: a space, a
/// control or invisible character, a full-width or non-Latin letter would
/// otherwise count as "special" and let `Abcdefg` plus a NUL, or a
/// deny-listed password plus a zero-width space, pass.
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
    #[error(
        "character {position} of the password is not an upper- or lower-case letter, digit or \
         special character (printable ASCII such as !@#$%^&*-_=+, no spaces); the password may \
         contain only those (R10)"
    )]
    Character { position: usize },
}

impl PasswordRule {
    pub fn check(&self, password: &str) -> Result<(), PasswordRuleError> {
        if let Some(i) = password.chars().position(|c| !c.is_ascii_graphic()) {
            return Err(PasswordRuleError::Character { position: i + 1 });
        }
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
            password.chars().any(|c| c.is_ascii_punctuation()),
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
    fn only_printable_ascii_counts() {
        let rule = PasswordRule::default();
        for (password, position) in [
            ("Abcdefg\u{0}1", 8),
            ("Abcdefg\n1", 8),
            ("Abcdefg\u{7f}1", 8),
            ("Abc12345\u{200b}", 9),
            ("Abc12345 ", 9),
            (" Abc12345", 1),
            ("\u{ff21}bcdefg1", 1),
            ("密码密码密码1a", 1),
            ("Abcdefgh😀", 9),
        ] {
            assert_eq!(
                rule.check(password),
                Err(PasswordRuleError::Character { position }),
                "{password:?}"
            );
        }
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
