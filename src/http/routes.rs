//! The one route table: method, path pattern, handler, the key scope it
//! needs and its OpenAPI description. Dispatch, 404 against 405 (with
//! `Allow`), the scope a request is authenticated for and `/openapi.json`
//! all read this table, so a route cannot exist in one and not the others.

use hyper::Method;

use super::callers::Scope;
use super::maintenance::answers as maint_answers;
use super::openapi::{schema_of, SchemaFn};
use super::{admin, audit, authorize, console, fleet, login, maintenance, policies, status};
use crate::audit::summary::Summary;
use crate::audit::{Checkpoint, Page, VerifyReport};
use crate::flows::feeds::FeedOutcome;
use crate::flows::login::{
    ClientSelection, EnterpriseLoginOutcome, IssuedCode, SessionGrant, StaffSelection,
};
use crate::flows::maintenance::PermissionIdentityView;
use crate::flows::password::PasswordSet;
use crate::policy::archive::ArchivedSet;

/// What serves a route; `http::dispatch` matches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Authorize,
    AuthorizeBatch,
    /// Every login and password step (`login::handle` picks the step by
    /// path).
    Login,
    RealName,
    CoreOfficers,
    Calendar,
    /// The policies the index holds for an action (`http::policies`).
    Policies,
    Functions,
    /// Staff maintenance and agency recognition (`maintenance::route`).
    Maintenance,
    AuditDecisions,
    AuditVerify,
    AuditCheckpoint,
    AuditSummary,
    AuditExport,
    AuditPolicy,
    /// Fleet mode's reads (`http::fleet`).
    FleetStatus,
    FleetDecisions,
    /// Streamed: answered before dispatch, as `AuditExport`.
    FleetExport,
    FleetVerify,
    AuditOverview,
    /// The auditor console's page and files (`http::console`).
    Console,
    Status,
    Metrics,
    Healthz,
    Readyz,
    OpenApi,
}

/// One route.
pub struct Route {
    pub method: Method,
    /// matchit 0.9 syntax: `{name}` is one path segment.
    pub path: &'static str,
    pub handler: Handler,
    /// `None`: answered without an API key (probes, the API's description).
    pub scope: Option<Scope>,
    /// The operation's one-line summary in the OpenAPI document.
    pub summary: &'static str,
    /// The JSON request body, when the route takes one.
    pub body: Option<SchemaFn>,
    /// The 200 answer's JSON schema; `None` only for a `media` that is not
    /// JSON (a test holds every JSON route to it).
    pub response: Option<SchemaFn>,
    /// The query parameters the handler reads: the very lists it checks a
    /// request's parameters against, so the two cannot drift.
    pub params: &'static [&'static [Param]],
    /// The 200 answer's media types: `[JSON]`, or what a route that is not
    /// one JSON value sends (the export's by `format`).
    pub media: &'static [&'static str],
    /// A JSON-lines answer: the schema every line follows.
    pub lines: Option<SchemaFn>,
}

pub const JSON: &str = "application/json";
/// JSON lines: one JSON value a line.
pub const JSON_LINES: &str = "application/x-ndjson";

/// A query parameter, as documented and as its handler accepts it.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    pub required: bool,
    pub description: &'static str,
    /// A value the handler accepts (the tests send it).
    pub example: &'static str,
}

#[derive(Debug)]
pub enum ParamKind {
    String,
    Integer,
    Boolean,
    OneOf(&'static [&'static str]),
}

impl Param {
    /// An optional parameter.
    pub const fn new(
        name: &'static str,
        kind: ParamKind,
        description: &'static str,
        example: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            required: false,
            description,
            example,
        }
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// Whether `name` is one of `groups`' parameters.
pub fn documents(groups: &[&[Param]], name: &str) -> bool {
    groups.iter().flat_map(|g| g.iter()).any(|p| p.name == name)
}

const fn route(
    method: Method,
    path: &'static str,
    handler: Handler,
    scope: Option<Scope>,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        handler,
        scope,
        summary,
        body: None,
        response: None,
        params: &[],
        media: &[JSON],
        lines: None,
    }
}

impl Route {
    const fn body(mut self, body: SchemaFn) -> Self {
        self.body = Some(body);
        self
    }

    const fn answers(mut self, response: SchemaFn) -> Self {
        self.response = Some(response);
        self
    }

    const fn params(mut self, params: &'static [&'static [Param]]) -> Self {
        self.params = params;
        self
    }

    const fn media(mut self, media: &'static [&'static str]) -> Self {
        self.media = media;
        self
    }

    /// JSON lines, each following `line`.
    const fn json_lines(mut self, line: SchemaFn) -> Self {
        self.media = &[JSON_LINES];
        self.lines = Some(line);
        self
    }
}

use Handler as H;
use Method as M;

const AUTHZ: Option<Scope> = Some(Scope::Authorize);
const LOGIN: Option<Scope> = Some(Scope::Login);
const MAINTAIN: Option<Scope> = Some(Scope::Maintain);
const ADMIN: Option<Scope> = Some(Scope::Admin);
const AUDIT: Option<Scope> = Some(Scope::Audit);

/// A login step: POST, scope `login`, body and answer.
const fn step(
    path: &'static str,
    summary: &'static str,
    body: SchemaFn,
    answer: SchemaFn,
) -> Route {
    route(M::POST, path, H::Login, LOGIN, summary)
        .body(body)
        .answers(answer)
}

/// A maintenance operation: scope `maintain`, session in `X-Etax-Session`.
const fn maint(
    method: Method,
    path: &'static str,
    summary: &'static str,
    answer: SchemaFn,
) -> Route {
    route(method, path, H::Maintenance, MAINTAIN, summary).answers(answer)
}

/// A read of the decision log: scope `audit`, its parameters and answer.
const fn audit_read(
    path: &'static str,
    handler: Handler,
    summary: &'static str,
    params: &'static [&'static [Param]],
) -> Route {
    route(M::GET, path, handler, AUDIT, summary).params(params)
}

// One row a route, so the table reads as a table.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    route(M::GET, "/healthz", H::Healthz, None, "Liveness: the process answers")
        .answers(schema_of::<status::Health>),
    route(M::GET, "/readyz", H::Readyz, None, "Readiness: store, policies, decision log")
        .answers(schema_of::<status::Readiness>),
    route(M::GET, "/openapi.json", H::OpenApi, None, "This API's OpenAPI 3.1 document")
        .answers(super::openapi::document_schema),
    route(M::GET, "/metrics", H::Metrics, ADMIN, "Prometheus metrics")
        .media(&["text/plain; version=0.0.4; charset=utf-8"]),
    route(M::GET, "/v1/status", H::Status, ADMIN, "Active policy set and reloads")
        .answers(schema_of::<status::Status>),
    route(M::POST, "/v1/authorize", H::Authorize, AUTHZ, "Ask one authorization question")
        .body(schema_of::<authorize::AuthorizeRequest>)
        .params(&[policies::AUTHORIZE_PARAMS])
        .answers(super::openapi::authorize_answer),
    route(M::POST, "/v1/authorize/batch", H::AuthorizeBatch, AUTHZ, "Ask up to 100 questions")
        .body(schema_of::<authorize::BatchRequest>)
        .answers(schema_of::<authorize::BatchResponse>),
    step("/v1/login/enterprise", "Enterprise login: account and password",
         schema_of::<login::AccountLogin>, schema_of::<EnterpriseLoginOutcome>),
    step("/v1/login/enterprise/sync", "Enterprise login: sync staff from the core system",
         schema_of::<login::FlowOnly>, schema_of::<StaffSelection>),
    step("/v1/login/enterprise/code", "Enterprise login: send the staff member's SMS code",
         schema_of::<login::FlowStaff>, schema_of::<IssuedCode>),
    step("/v1/login/enterprise/complete", "Enterprise login: the staff member's factors",
         schema_of::<login::Personal>, schema_of::<SessionGrant>),
    step("/v1/login/enterprise/cancel", "Enterprise login: abandon the flow",
         schema_of::<login::FlowOnly>, schema_of::<StaffSelection>),
    step("/v1/login/quick/code", "Quick login: send the SMS code",
         schema_of::<login::QuickCode>, schema_of::<login::QuickIssued>),
    step("/v1/login/quick", "Quick login: answer the SMS code",
         schema_of::<login::CodeAnswer>, schema_of::<SessionGrant>),
    step("/v1/login/captcha", "Natural-person login: issue a captcha",
         schema_of::<login::CaptchaRequest>, schema_of::<IssuedCode>),
    step("/v1/login/natural-person", "Natural-person login",
         schema_of::<login::NaturalPerson>, schema_of::<SessionGrant>),
    step("/v1/login/agency", "Agency login: account and password",
         schema_of::<login::AccountLogin>, schema_of::<StaffSelection>),
    step("/v1/login/agency/code", "Agency login: send the agent's SMS code",
         schema_of::<login::FlowAgent>, schema_of::<IssuedCode>),
    step("/v1/login/agency/agent", "Agency login: the agent's factors",
         schema_of::<login::Personal>, schema_of::<ClientSelection>),
    step("/v1/login/agency/client", "Agency login: pick the client enterprise",
         schema_of::<login::ClientStep>, schema_of::<SessionGrant>),
    step("/v1/password", "Set a new password in a session",
         schema_of::<login::SetPassword>, schema_of::<PasswordSet>),
    step("/v1/password/forgot/code", "Forgotten password: send the SMS code",
         schema_of::<login::ForgotCode>, schema_of::<IssuedCode>),
    step("/v1/password/forgot/reset", "Forgotten password: reset with the code",
         schema_of::<login::ForgotReset>, schema_of::<PasswordSet>),
    step("/v1/logout", "End a session",
         schema_of::<login::SessionOnly>, schema_of::<login::LoggedOut>),
    route(M::POST, "/v1/admin/real-name", H::RealName, ADMIN, "Feed a real-name verification result")
        .body(schema_of::<admin::RealNameBody>)
        .answers(schema_of::<FeedOutcome>),
    route(M::PUT, "/v1/admin/enterprises/{credit_code}/core-officers", H::CoreOfficers, ADMIN,
          "Feed an enterprise's officers from the core system")
        .body(schema_of::<admin::CoreOfficersBody>)
        .answers(schema_of::<FeedOutcome>),
    route(M::PUT, "/v1/admin/calendar/{year}", H::Calendar, ADMIN,
          "Feed a year's workday calendar (adjusted workdays and holidays)")
        .body(schema_of::<admin::CalendarBody>)
        .answers(schema_of::<FeedOutcome>),
    // The rules a caller is decided by are not secret: see `http::policies`.
    route(M::GET, "/v1/policies", H::Policies, AUTHZ, "The policies indexed for an action")
        .params(&[policies::LIST_PARAMS])
        .answers(schema_of::<policies::PolicyList>),
    route(M::GET, "/v1/functions", H::Functions, MAINTAIN, "The business-function catalogue")
        .answers(schema_of::<maint_answers::FunctionList>),
    maint(M::GET, "/v1/maintenance/staff", "List the enterprise's staff",
          schema_of::<maint_answers::StaffList>),
    maint(M::POST, "/v1/maintenance/staff", "Add a staff member",
          schema_of::<maint_answers::StaffAdded>)
        .body(schema_of::<maintenance::AddStaff>),
    maint(M::POST, "/v1/maintenance/staff/search", "Find a person by name and ID",
          schema_of::<maint_answers::PersonFound>)
        .body(schema_of::<maintenance::PersonSearch>),
    maint(M::PATCH, "/v1/maintenance/staff/{person}", "Change a staff member's identity or roles",
          schema_of::<maint_answers::StaffRoles>)
        .body(schema_of::<maintenance::EditStaff>),
    maint(M::DELETE, "/v1/maintenance/staff/{person}", "Remove a staff member",
          schema_of::<maint_answers::StaffRemoved>),
    maint(M::POST, "/v1/maintenance/staff/{person}/reset-password", "Reset a staff member's password",
          schema_of::<maint_answers::PasswordReset>),
    maint(M::GET, "/v1/maintenance/permission-identities", "List permission identities",
          schema_of::<maint_answers::PermissionIdentityList>),
    maint(M::POST, "/v1/maintenance/permission-identities", "Create a permission identity",
          schema_of::<PermissionIdentityView>)
        .body(schema_of::<maintenance::PermissionIdentityBody>),
    maint(M::PUT, "/v1/maintenance/permission-identities/{id}", "Replace a permission identity",
          schema_of::<PermissionIdentityView>)
        .body(schema_of::<maintenance::PermissionIdentityBody>),
    maint(M::DELETE, "/v1/maintenance/permission-identities/{id}", "Delete a permission identity",
          schema_of::<maint_answers::PermissionIdentityDeleted>)
        .params(&[maintenance::DELETE_IDENTITY_PARAMS]),
    maint(M::POST, "/v1/maintenance/agencies", "Recognize an agency",
          schema_of::<maint_answers::AgencyRecognized>)
        .body(schema_of::<maintenance::Recognize>),
    maint(M::DELETE, "/v1/maintenance/agencies/{agency}", "End an agency's recognition",
          schema_of::<maint_answers::AgencyCancelled>),
    audit_read("/v1/audit/decisions", H::AuditDecisions, "Query decision records", audit::DECISIONS_PARAMS)
        .answers(schema_of::<Page>),
    audit_read("/v1/audit/verify", H::AuditVerify, "Verify the decision log's chain", audit::VERIFY_PARAMS)
        .answers(schema_of::<VerifyReport>),
    audit_read("/v1/audit/checkpoint", H::AuditCheckpoint, "The log's current head", &[])
        .answers(schema_of::<Checkpoint>),
    audit_read("/v1/audit/summary", H::AuditSummary, "Counts of decision records", audit::SUMMARY_PARAMS)
        .answers(schema_of::<Summary>),
    // JSON lines by default, CSV with `format=csv`: not one JSON value.
    audit_read("/v1/audit/export", H::AuditExport, "Stream decision records", audit::EXPORT_PARAMS)
        .media(&["application/x-ndjson", "text/csv; charset=utf-8"]),
    audit_read("/v1/audit/policy/{version}", H::AuditPolicy, "An archived policy set", &[])
        .answers(schema_of::<ArchivedSet>),
    route(M::GET, "/v1/fleet/status", H::FleetStatus, ADMIN, "Fleet mode: every host's policy version, last seen, shipping")
        .answers(schema_of::<crate::fleet::status::FleetStatus>),
    audit_read("/v1/fleet/decisions", H::FleetDecisions, "Fleet mode: decision records of every host", fleet::DECISIONS_PARAMS)
        .answers(schema_of::<crate::fleet::log::FleetPage>),
    audit_read("/v1/fleet/decisions/export", H::FleetExport, "Fleet mode: stream decision records of every host", fleet::EXPORT_PARAMS)
        .json_lines(schema_of::<crate::fleet::log::FleetRecord>),
    audit_read("/v1/fleet/verify", H::FleetVerify, "Fleet mode: verify every host's chain in the fleet's table", fleet::VERIFY_PARAMS)
        .answers(schema_of::<crate::fleet::log::FleetVerify>),
    audit_read("/v1/audit/overview", H::AuditOverview, "Decisions over time and by policy, kind, caller", audit::OVERVIEW_PARAMS)
        .answers(schema_of::<audit::AuditOverview>),
    // A static page: the data it shows needs an `audit` key.
    route(M::GET, "/console/", H::Console, None, "The auditor console").media(console::PAGE_MEDIA),
    route(M::GET, "/console/{asset}", H::Console, None, "The auditor console's files")
        .media(console::ASSET_MEDIA),
];

/// What the table says of a request.
pub enum Lookup {
    Found(&'static Route),
    /// The path exists, not with this method: the methods it has, and the
    /// scope its routes need (a caller without it learns nothing more).
    WrongMethod {
        allow: Vec<&'static Method>,
        scope: Option<Scope>,
        /// The path's pattern, which its routes share.
        pattern: &'static str,
    },
    NotFound,
}

impl Lookup {
    /// The scope a request is authenticated for. An unknown path needs
    /// none: it is a 404 for every caller. Which paths exist is no secret
    /// (`/openapi.json` lists them), and a `403 lacks admin` on a mistyped
    /// path would send an integrator looking for the wrong fault.
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Lookup::Found(r) => r.scope,
            Lookup::WrongMethod { scope, .. } => *scope,
            Lookup::NotFound => None,
        }
    }

    /// The label a request is counted and logged under: the pattern of the
    /// route-table row its path matches (`/v1/maintenance/staff/{person}`),
    /// or [`super::uri::UNMATCHED`]. Never caller text, so the set of labels
    /// is the table's and a made-up path cannot grow the metrics or hide a
    /// real route.
    pub fn label(&self) -> &'static str {
        match self {
            Lookup::Found(r) => r.path,
            Lookup::WrongMethod { pattern, .. } => pattern,
            Lookup::NotFound => super::uri::UNMATCHED,
        }
    }
}

/// The routes of one path pattern, in table order.
type SamePath = Vec<&'static Route>;

fn router() -> &'static matchit::Router<SamePath> {
    static ROUTER: std::sync::OnceLock<matchit::Router<SamePath>> = std::sync::OnceLock::new();
    ROUTER.get_or_init(|| {
        let mut by_path: Vec<(&'static str, SamePath)> = Vec::new();
        for r in ROUTES {
            match by_path.iter_mut().find(|(p, _)| *p == r.path) {
                Some((_, same)) => same.push(r),
                None => by_path.push((r.path, vec![r])),
            }
        }
        let mut router = matchit::Router::new();
        for (path, same) in by_path {
            router
                .insert(path, same)
                .unwrap_or_else(|e| panic!("route table: {path}: {e}"));
        }
        router
    })
}

/// Looks `method path` up in the table.
pub fn lookup(method: &Method, path: &str) -> Lookup {
    let Ok(matched) = router().at(path) else {
        return Lookup::NotFound;
    };
    let same = matched.value;
    match same.iter().find(|r| r.method == *method) {
        Some(r) => Lookup::Found(r),
        None => Lookup::WrongMethod {
            allow: same.iter().map(|r| &r.method).collect(),
            scope: same[0].scope,
            pattern: same[0].path,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_builds_and_its_routes_share_one_scope() {
        let _ = router();
        for r in ROUTES {
            for other in ROUTES.iter().filter(|o| o.path == r.path) {
                assert_eq!(r.scope, other.scope, "{} has two scopes", r.path);
                assert!(
                    std::ptr::eq(r, other) || r.method != other.method,
                    "{} {} is in the table twice",
                    r.method,
                    r.path
                );
            }
        }
    }

    #[test]
    fn every_json_route_documents_its_answer_and_others_their_media() {
        for r in ROUTES {
            match (r.response.is_some(), r.media == [JSON]) {
                (true, true) | (false, false) => {}
                (false, true) => panic!("{} {} answers JSON without a schema", r.method, r.path),
                (true, false) => {
                    panic!(
                        "{} {} has a JSON schema for {:?}",
                        r.method, r.path, r.media
                    )
                }
            }
        }
    }

    #[test]
    fn query_parameters_are_named_once_per_route_with_a_typed_example() {
        for r in ROUTES {
            let names: Vec<&str> = r
                .params
                .iter()
                .flat_map(|g| g.iter())
                .map(|p| p.name)
                .collect();
            for (i, name) in names.iter().enumerate() {
                assert!(!names[..i].contains(name), "{} names {name} twice", r.path);
            }
            for p in r.params.iter().flat_map(|g| g.iter()) {
                let fits = match p.kind {
                    ParamKind::String => !p.example.is_empty(),
                    ParamKind::Integer => p.example.parse::<u64>().is_ok(),
                    ParamKind::Boolean => matches!(p.example, "true" | "false"),
                    ParamKind::OneOf(names) => names.contains(&p.example),
                };
                assert!(
                    fits,
                    "{} {}: example {:?} is not a {:?}",
                    r.path, p.name, p.example, p.kind
                );
            }
        }
    }

    #[test]
    fn looks_up_found_wrong_method_and_unknown() {
        assert!(
            matches!(lookup(&M::POST, "/v1/authorize"), Lookup::Found(r) if r.handler == H::Authorize)
        );
        let staff = "/v1/maintenance/staff/resident_id:210102199001015035";
        assert!(
            matches!(lookup(&M::PATCH, staff), Lookup::Found(r) if r.handler == H::Maintenance)
        );
        match lookup(&M::GET, "/v1/authorize") {
            Lookup::WrongMethod {
                allow,
                scope,
                pattern,
            } => {
                assert_eq!(allow, vec![&M::POST]);
                assert_eq!(scope, AUTHZ);
                assert_eq!(pattern, "/v1/authorize");
            }
            _ => panic!("GET /v1/authorize is a wrong method"),
        }
        assert!(matches!(
            lookup(&M::GET, "/v1/authorizeX"),
            Lookup::NotFound
        ));
        assert_eq!(lookup(&M::GET, "/v1/authorizeX").scope(), None);
        assert_eq!(lookup(&M::GET, "/healthz").scope(), None);
        assert_eq!(lookup(&M::GET, "/v1/audit/policy/abc").scope(), AUDIT);
    }
}
