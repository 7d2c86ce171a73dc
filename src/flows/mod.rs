//! The bureau's multi-step operations: each establishes facts from the store
//! and credentials, asks Cedar, writes, and records the decision.

pub mod feeds;
pub mod maintenance;
