//! The bureau's multi-step operations: login and password steps (R1–R11),
//! staff maintenance and agency recognition (R12–R17), and the feeds from
//! other systems. Each step establishes the facts in Rust — which credentials
//! were verified, who the principal is — asks Cedar whether they are enough,
//! records the decision in the decision log, and only then answers. No rule
//! is decided here: the rules are in `policies/`.

pub mod clock;
pub mod decide;
pub mod feeds;
pub mod login;
pub mod maintenance;
pub mod metrics;
mod persons;
pub mod sweep;
#[cfg(test)]
pub(crate) mod test_support;

pub use login::{password, FlowError, Login, Quota};
