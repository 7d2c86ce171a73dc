//! Every integration test, in one test binary.
//!
//! Each `tests/*.rs` file is a module of this one crate rather than a binary
//! of its own: ~50 binaries that each link the service, Cedar and tokio took
//! gigabytes of disk and most of the test build's link time; one binary
//! links once. Run one file's tests by its module name, for example
//! `cargo test --test integration decision_cache::`.

mod common;
mod login_support;

mod admin_feeds;
mod audit;
mod audit_forensics;
mod audit_kinds;
mod audit_outcomes;
mod audit_privacy;
mod audit_reads;
mod audit_signing;
mod authorize;
mod calendar;
mod console;
mod console_api;
mod decision_cache;
mod explain;
mod fleet;
mod fleet_export;
mod fleet_keys;
mod fleet_log;
mod fleet_pool;
mod fleet_redteam;
mod fleet_store;
mod fuzz_http;
mod impact;
mod import_and_check;
mod import_scale;
mod login;
mod maintenance;
mod maintenance_flows;
mod one_mask;
mod ops_config;
mod ops_health;
mod ops_keys;
mod ops_logs;
mod ops_metrics;
mod ops_openapi;
mod ops_redteam;
mod ops_routes;
mod ops_shutdown;
mod passwords;
mod policy_authoring;
mod policy_index;
mod policy_refusals;
mod policy_reload;
mod policy_suite_schema;
mod policy_suites;
mod prove;
mod sessions;
mod slices;
mod trust_authorize;
mod trust_credentials;
mod trust_sessions;
mod trust_transport;
