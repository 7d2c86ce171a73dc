//! The most common passwords, refused whenever a password is set (OWASP ASVS
//! 5.0 6.2.4). The list is bundled (`common-passwords.txt`) and compared
//! case-insensitively, since "Password1!" is as guessable as "password1!".

use std::collections::HashSet;
use std::sync::OnceLock;

const LIST: &str = include_str!("common-passwords.txt");

fn set() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        LIST.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect()
    })
}

/// Whether `password` is on the list.
pub fn is_common(password: &str) -> bool {
    set().contains(&password.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_large_and_matches_case_insensitively() {
        assert!(set().len() >= 1000);
        assert!(is_common("P@ssw0rd"));
        assert!(is_common("password123!"));
        assert!(is_common("QWERTY@123"));
        assert!(!is_common("Etax@2026"));
    }
}
