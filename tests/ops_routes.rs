//! The one route table against the real binary: every route is served,
//! documented in `/openapi.json`, and answers 405 with `Allow` for another
//! method; unknown paths are 404; key scopes come from the table.

use crate::common;

use common::*;
use etax_authz::http::routes::{lookup, Lookup, ROUTES};
use serde_json::Value;

/// A concrete path for a pattern: each `{param}` becomes `x`.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_is_served_and_documented_and_every_document_names_a_route() {
    let server = Server::demo();
    let (status, doc) = server.get("/openapi.json");
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for r in ROUTES {
        let method = r.method.as_str().to_ascii_lowercase();
        let op = &paths
            .get(r.path)
            .unwrap_or_else(|| panic!("{} has no document", r.path))[&method];
        assert!(op.is_object(), "{} {} has no document", r.method, r.path);
        assert_eq!(op["summary"], r.summary);
        assert_eq!(
            op["x-etax-scope"],
            r.scope.map_or(Value::Null, |s| s.as_str().into())
        );
        if r.body.is_some() {
            assert!(
                op["requestBody"].is_object(),
                "{} {} body",
                r.method,
                r.path
            );
        }
        // Served: whatever the answer, it is not "no such route".
        let (status, text) = http(
            server.addr,
            r.method.as_str(),
            &concrete(r.path),
            Some(b"{}"),
        );
        assert!(
            status != 404 || !text.contains("no route"),
            "{} {}: {text}",
            r.method,
            r.path
        );
        assert_ne!(status, 405, "{} {}: {text}", r.method, r.path);
        assert!(status < 500, "{} {}: {status} {text}", r.method, r.path);
    }
    let mut documented = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let m: hyper::Method = method.to_ascii_uppercase().parse().unwrap();
            assert!(
                matches!(lookup(&m, &concrete(path)), Lookup::Found(r) if r.path == path),
                "{method} {path} is documented but not a route"
            );
            documented += 1;
        }
    }
    assert_eq!(documented, ROUTES.len());
    // Every error answer is documented with the one error body.
    let error = &paths["/v1/authorize"]["post"]["responses"]["default"];
    assert_eq!(
        error["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
}

#[test]
fn wrong_methods_are_405_with_allow_and_unknown_paths_404() {
    let server = Server::demo();
    let (status, head, body) = exchange_tcp(server.addr, "GET", "/v1/authorize", &[], "");
    assert_eq!(status, 405, "{body}");
    assert_eq!(header(&head, "allow"), Some("POST"));
    let staff = "/v1/maintenance/staff/resident_id:210102199001015035";
    let (status, head, _) = exchange_tcp(server.addr, "GET", staff, &[], "");
    assert_eq!(status, 405);
    assert_eq!(header(&head, "allow"), Some("PATCH, DELETE"));
    let (status, head, _) = exchange_tcp(server.addr, "DELETE", "/v1/maintenance/staff", &[], "");
    assert_eq!(status, 405);
    assert_eq!(header(&head, "allow"), Some("GET, POST"));
    for path in [
        "/v1/authorizeX",
        "/v1/maintenance/nothing",
        "/v1/audit/policy/a/b",
        "/",
    ] {
        let (status, body) = server.get(path);
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    // The wrong method on a real route answers before reading a body.
    let (status, _) = server.request("PUT", "/v1/login/enterprise", Some(b"{}"));
    assert_eq!(status, 405);
}

#[test]
fn key_scopes_come_from_the_route_table() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_file(
        dir.path(),
        &[
            ("core", "authz-key", &["authorize"]),
            ("ops", "admin-key", &["admin"]),
        ],
    );
    let server = Server::start_with(&["--api-keys", keys.to_str().unwrap()]);
    // Open routes: probes and the API's description.
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(server.request_as(None, "GET", path, None).0, 200, "{path}");
    }
    assert_eq!(
        server
            .request_as(Some("authz-key"), "GET", "/v1/status", None)
            .0,
        403
    );
    assert_eq!(
        server
            .request_as(Some("admin-key"), "GET", "/v1/status", None)
            .0,
        200
    );
    // An unknown path is a 404 for every caller, with a key or without:
    // `/openapi.json` already says which paths exist.
    for key in [None, Some("authz-key"), Some("admin-key")] {
        assert_eq!(server.request_as(key, "GET", "/v1/nope", None).0, 404);
    }
    // A wrong method needs the path's scope before it learns the methods.
    let (status, _) = server.request_as(Some("admin-key"), "GET", "/v1/authorize", None);
    assert_eq!(status, 403);
    let (status, _) = server.request_as(Some("authz-key"), "GET", "/v1/authorize", None);
    assert_eq!(status, 405);
}
