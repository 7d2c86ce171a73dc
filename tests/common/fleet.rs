//! Sidecars of one fleet for the fleet tests: started over a fleet's
//! database, asked a question that is recorded, and waited on until their
//! decision log is in the fleet's table.

#![allow(dead_code)]

use std::path::Path;

use serde_json::{json, Value};

use super::{action, staff, wait_until, Server, E_SYNCED, P_NATURAL};

/// A `--demo` sidecar named `host` over the fleet at `url`.
pub fn sidecar(data: &Path, url: &str, host: &str) -> Server {
    sidecar_with(data, url, host, &[])
}

/// [`sidecar`] with `extra` flags.
pub fn sidecar_with(data: &Path, url: &str, host: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--demo", "--fleet", url, "--fleet-host", host];
    args.extend_from_slice(extra);
    Server::start_in(data, &args)
}

/// One recorded decision (a deny is recorded like an allow).
pub fn decide(server: &Server) {
    server.authorize(
        &staff(E_SYNCED, P_NATURAL),
        &action("useFunction"),
        "Function::\"vat_filing\"",
        json!({}),
    );
}

/// This sidecar's shipping position, from `/v1/status`.
pub fn shipping(server: &Server) -> Value {
    let (status, body) = server.get("/v1/status");
    assert_eq!(status, 200, "{body}");
    body["fleet_shipping"].clone()
}

/// Waits until everything this sidecar has written (at least `at_least`
/// records: an authorize record is durable a moment after its answer) is
/// in the fleet's table; returns the head.
pub fn shipped(server: &Server, at_least: u64) -> u64 {
    let mut head = 0;
    wait_until("the local log shipped", || {
        let l = shipping(server);
        head = l["head_seq"].as_u64().unwrap_or(0);
        head >= at_least && l["shipped_seq"] == l["head_seq"] && l["records"] == 0
    });
    head
}
