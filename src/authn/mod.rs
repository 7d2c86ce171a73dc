//! Credentials: password hashing and the password rule.

pub mod password;

pub use password::{PasswordHasher, PasswordRule, PasswordRuleError};
