//! `GET /openapi.json`: the OpenAPI 3.1 document, built from the route
//! table (`routes::ROUTES`) and the wire types' `utoipa::ToSchema` derives,
//! so it names exactly the routes that are served with the types they parse.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::routes::{ParamKind, Route, ROUTES};

/// Schemas collected while the document is built, by component name.
pub type Components = Vec<(String, RefOr<Schema>)>;

/// Adds a type's schema (and those it refers to) to the components and
/// returns its component name.
pub type SchemaFn = fn(&mut Components) -> String;

/// The [`SchemaFn`] of `T`.
pub fn schema_of<T: ToSchema>(out: &mut Components) -> String {
    let name = T::name().into_owned();
    out.push((name.clone(), T::schema()));
    T::schemas(out);
    name
}

/// `/openapi.json`'s own answer: an OpenAPI 3.1 document (its full schema
/// is the OpenAPI specification's, not repeated here).
pub fn document_schema(out: &mut Components) -> String {
    let name = "OpenApiDocument".to_owned();
    let schema = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Object)
        .property("openapi", String::schema())
        .property("info", utoipa::openapi::ObjectBuilder::new())
        .property("paths", utoipa::openapi::ObjectBuilder::new())
        .required("openapi")
        .required("info")
        .required("paths")
        .into();
    out.push((name.clone(), schema));
    name
}

/// `POST /v1/authorize`'s answer: the plain answer, or with `?explain=true`
/// the answer and its trace. `anyOf`, not `oneOf`: an explained answer is
/// also a plain answer with one more field.
pub fn authorize_answer(out: &mut Components) -> String {
    let plain = schema_of::<super::authorize::AuthorizeResponse>(out);
    let explained = schema_of::<super::policies::Explained>(out);
    let name = "AuthorizeAnswer".to_owned();
    let schema = utoipa::openapi::schema::AnyOfBuilder::new()
        .item(utoipa::openapi::Ref::from_schema_name(plain))
        .item(utoipa::openapi::Ref::from_schema_name(explained))
        .into();
    out.push((name.clone(), schema));
    name
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let mut components = Components::new();
    let error = schema_of::<super::error::ErrorBody>(&mut components);
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for r in ROUTES {
        let op = operation(r, &error, &mut components);
        paths
            .entry(r.path.to_owned())
            .or_default()
            .insert(r.method.as_str().to_ascii_lowercase(), op);
    }
    let schemas: Map<String, Value> = components
        .into_iter()
        .map(|(name, s)| (name, serde_json::to_value(s).expect("schemas serialize")))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "etax-authz",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Authorization sidecar of the electronic tax bureau. Each \
                operation's `x-etax-scope` names the API-key scope it needs (none: open).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer" } },
        },
    })
}

fn operation(r: &Route, error: &str, components: &mut Components) -> Value {
    let ok = match r.response {
        Some(f) => reference(&f(components)),
        // Text (metrics, an export's lines): `routes` tests that only a
        // route whose media is not JSON lacks a schema.
        None => String::schema_json(),
    };
    let request_id = json!({
        "description": "The request's id: the caller's X-Request-Id when sane, else generated",
        "schema": { "type": "string" },
    });
    let err = json!({
        "description": "An error: the status says which kind, the body names the field",
        "headers": { "X-Request-Id": request_id },
        "content": { "application/json": { "schema": reference(error) } },
    });
    let mut responses = json!({
        "200": {
            "description": "Answered",
            "headers": { "X-Request-Id": request_id },
            "content": r.media.iter().map(|m| (m.to_string(), json!({ "schema": ok }))).collect::<Map<_, _>>(),
        },
        "default": err,
    });
    // JSON lines: each line's schema. OpenAPI 3.2 names this `itemSchema`;
    // the document says 3.1, where only an extension field is valid.
    if let Some(line) = r.lines {
        let line = reference(&line(components));
        for m in r.media {
            responses["200"]["content"][*m]["x-etax-item-schema"] = line.clone();
        }
    }
    for status in ["400", "404", "405", "413"] {
        responses[status] = err.clone();
    }
    let mut op = json!({
        "operationId": operation_id(r),
        "summary": r.summary,
        "parameters": parameters(r, components),
        "responses": responses,
        "x-etax-scope": r.scope.map(|s| s.as_str()),
    });
    if r.scope.is_some() {
        op["security"] = json!([{ "apiKey": [] }]);
        for status in ["401", "403"] {
            op["responses"][status] = err.clone();
        }
    }
    if let Some(body) = r.body {
        op["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": reference(&body(components)) } },
        });
    }
    op
}

/// Path parameters named by the pattern's `{name}` segments, the query
/// parameters the route's handler accepts, and the session header of staff
/// maintenance.
fn parameters(r: &Route, components: &mut Components) -> Vec<Value> {
    let mut params: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({ "name": name, "in": "path", "required": true,
                    "schema": path_schema(name, components) })
        })
        .collect();
    for p in r.params.iter().flat_map(|g| g.iter()) {
        let schema = match p.kind {
            ParamKind::String => json!({ "type": "string" }),
            ParamKind::Integer => json!({ "type": "integer", "minimum": 0 }),
            ParamKind::Boolean => json!({ "type": "boolean" }),
            ParamKind::OneOf(names) => json!({ "type": "string", "enum": names }),
        };
        // An example of the parameter's own type: `0`, `true`, `"csv"`.
        let example = match p.kind {
            ParamKind::Integer | ParamKind::Boolean => {
                serde_json::from_str(p.example).unwrap_or_else(|_| json!(p.example))
            }
            _ => json!(p.example),
        };
        params.push(json!({
            "name": p.name, "in": "query", "required": p.required,
            "description": p.description, "schema": schema, "example": example,
        }));
    }
    if r.handler == super::routes::Handler::Maintenance {
        params.push(json!({
            "name": "X-Etax-Session", "in": "header", "required": true,
            "description": "The session token of the staff member acting",
            "schema": { "type": "string" },
        }));
    }
    params
}

/// A path segment's schema: the id type its handler parses it as, where
/// that type has one, so a fuzzer reaches past the parse.
fn path_schema(name: &str, components: &mut Components) -> Value {
    match name {
        "credit_code" | "agency" => reference(&schema_of::<crate::ids::CreditCode>(components)),
        "id" => reference(&schema_of::<crate::ids::PermissionIdentityId>(components)),
        "asset" => json!({ "type": "string", "enum": super::console::asset_names() }),
        _ => json!({ "type": "string", "minLength": 1 }),
    }
}

/// `post_v1_login_enterprise_code`, unique since (method, path) is.
fn operation_id(r: &Route) -> String {
    let path: String = r
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{}{}", r.method.as_str().to_ascii_lowercase(), path)
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

trait SchemaJson {
    fn schema_json() -> Value;
}

impl<T: PartialSchema> SchemaJson for T {
    fn schema_json() -> Value {
        serde_json::to_value(T::schema()).expect("schemas serialize")
    }
}

// The ids and store types the wire types parse, as JSON strings (their
// serde forms). Here rather than beside the types: `ids` and `store` know
// nothing of HTTP.

impl PartialSchema for crate::ids::PermissionIdentityId {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^[A-Za-z0-9_-]{1,64}$"))
            .description(Some(
                "A permission identity's id: ASCII letters, digits, - and _",
            ))
            .into()
    }
}
impl ToSchema for crate::ids::PermissionIdentityId {}

impl PartialSchema for crate::store::IdentityType {
    fn schema() -> RefOr<Schema> {
        let names = [
            "legal_rep",
            "finance_head",
            "tax_clerk",
            "invoice_buyer",
            "tax_agent_staff",
            "other",
        ];
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(names))
            .into()
    }
}
impl ToSchema for crate::store::IdentityType {}

/// A string schema with a pattern and a description.
fn pattern_string(pattern: &str, description: &str) -> RefOr<Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .into()
}

/// A string schema naming its values.
fn enum_string(names: &[&str]) -> RefOr<Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(names.iter().copied()))
        .into()
}

impl PartialSchema for crate::ids::IdType {
    fn schema() -> RefOr<Schema> {
        enum_string(&crate::ids::IdType::ALL_CODES)
    }
}
impl ToSchema for crate::ids::IdType {}

impl PartialSchema for crate::ids::CreditCode {
    fn schema() -> RefOr<Schema> {
        pattern_string(
            "^[0-9A-HJ-NPQRTUWXY]{18}$",
            "统一社会信用代码: 18 characters, the last a check character (GB 32100-2015)",
        )
    }
}
impl ToSchema for crate::ids::CreditCode {}

impl PartialSchema for crate::ids::Phone {
    fn schema() -> RefOr<Schema> {
        pattern_string(
            "^1[3-9][0-9]{9}$",
            "A mainland mobile number: 11 digits starting 13–19",
        )
    }
}
impl ToSchema for crate::ids::Phone {}

impl PartialSchema for crate::flows::password::Holder {
    fn schema() -> RefOr<Schema> {
        enum_string(&["staff", "agent_staff", "natural_person"])
    }
}
impl ToSchema for crate::flows::password::Holder {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_type_names_are_its_serde_names() {
        let doc = serde_json::to_value(crate::store::IdentityType::schema()).unwrap();
        for name in doc["enum"].as_array().unwrap() {
            let parsed: Result<crate::store::IdentityType, _> =
                serde_json::from_value(name.clone());
            assert!(parsed.is_ok(), "{name} is not an IdentityType");
        }
    }

    #[test]
    fn id_type_and_holder_names_are_their_serde_names() {
        let ids = serde_json::to_value(crate::ids::IdType::schema()).unwrap();
        for name in ids["enum"].as_array().unwrap() {
            let parsed: Result<crate::ids::IdType, _> = serde_json::from_value(name.clone());
            assert!(parsed.is_ok(), "{name} is not an IdType");
        }
        let holders = serde_json::to_value(crate::flows::password::Holder::schema()).unwrap();
        for name in holders["enum"].as_array().unwrap() {
            let parsed: Result<crate::flows::password::Holder, _> =
                serde_json::from_value(name.clone());
            assert!(parsed.is_ok(), "{name} is not a Holder");
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{name} is referenced but not defined"
            );
        }
    }
}
