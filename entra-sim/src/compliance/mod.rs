//! The Security & Compliance "InvokeCommand" REST endpoint, for information barriers (IB).
//!
//! Microsoft does not document this wire protocol; the simulator reproduces the shape public
//! clients rely on (see entra-sim/docs/wire-protocol.md#compliance-invokecommand-endpoint):
//!
//! - `POST /adminapi/beta/{tenantId}/InvokeCommand` (the global host) answers 302 with
//!   `Location: {base}/{region}/adminapi/beta/{tenantId}/InvokeCommand` and an empty body. The
//!   region is the seed's `complianceRegion` (default `eur03b`). An unknown tenant (id or
//!   verified domain) gets 500 "Could not find the organization container ...".
//! - `POST /{region}/adminapi/beta/{tenantId}/InvokeCommand` runs one cmdlet (a wrong region
//!   is redirected the same way). It needs a bearer token issued for
//!   `https://ps.compliance.protection.outlook.com/.default` to an app holding
//!   `Exchange.ManageAsApp`, else 401 `{"error":{"code":"Unauthorized",...}}`. The body is
//!   `{"CmdletInput":{"CmdletName":"...","Parameters":{...}}}`; switches are booleans,
//!   multi-valued parameters arrays of strings. Success is 200
//!   `{"@odata.context":...,"value":[...PascalCase objects...]}`; a cmdlet error is 400
//!   `{"error":{"code":"<short exception type>","message":"<ErrorId>|<exception type>|<text>"}}`.
//!   Latency and the random 5xx of the misbehaviour settings apply; throttling does not.
//! - Cmdlets: New-/Set-/Get-/Remove-OrganizationSegment, New-/Set-/Get-/Remove-
//!   InformationBarrierPolicy, Start-InformationBarrierPoliciesApplication,
//!   Get-InformationBarrierPoliciesApplicationStatus, Stop-InformationBarrierPoliciesApplication
//!   (rules in [`cmdlets`], timing and the applied state in [`state`]). The misbehaviour setting
//!   `barrierTimeScale` speeds up the IB clock; `applicationAnswers` changes how applications
//!   are written (times as `/Date(ms)/`, with offsets, missing or unreadable; status and
//!   progress missing or unreadable; see [`answers`]).
//! - Microsoft's own shape, for requests whose `Host` header (port ignored) is a
//!   `*.compliance.protection.outlook.com` name, e.g. a client reaching the simulator through
//!   a TLS terminator with those names resolved to it. The region is then in the host name, as
//!   Microsoft has it, not in the path: on the global host `ps.compliance.protection.outlook.com`,
//!   `POST /adminapi/beta/{tenantId}/InvokeCommand` answers 302 with
//!   `Location: https://{region}.admin.protection.outlook.com/adminapi/beta/{tenantId}/InvokeCommand`
//!   (https, no port), and clients call that region through
//!   `{region}.ps.compliance.protection.outlook.com`, where the same path runs the cmdlet as the
//!   regional route above does (a wrong region host is redirected the same way). The path-based
//!   regional route and any other name under `compliance.protection.outlook.com` answer 404
//!   there. `byRoute` counts these requests with the host appended, as
//!   `POST /adminapi/beta/{tenant}/InvokeCommand on ps.compliance.protection.outlook.com` and
//!   `InvokeCommand <cmdlet> on eur03b.ps.compliance.protection.outlook.com`; the journal is
//!   written as for the regional route. Any other `Host` (loopback) gets the routes above.
//! - Admin API (unauthenticated, under `/_sim`): `GET /barriers` (segments, policies,
//!   applications, the applied state), `GET /barriers/reachable?from=&to=` (whether two users
//!   can communicate under the applied state) and `GET /barriers/timeline` (per UPN: when the
//!   account was last enabled and since when an applied policy covers it). `POST /reset`
//!   resets IB state with the tenant.

pub mod admin;
pub mod answers;
pub mod cmdlets;
pub mod opath;
mod params;
pub mod state;

pub use params::Params;

use crate::auth::{self, COMPLIANCE_RESOURCE};
use crate::journal;
use crate::request::base_url;
use crate::state::Sim;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// An error kind: its stable ErrorId and the .NET exception type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    NotFound,
    AlreadyExists,
    SelfSegment,
    SegmentHasPolicy,
    PolicyTypeFixed,
    PolicyActive,
    SegmentInUse,
    ApplicationRunning,
    ApplicationNotRunning,
    InvalidFilter,
    InvalidGroupId,
    Parameter,
    UnknownCmdlet,
    BadRequest,
    Unauthorized,
    NoOrganization,
    Transient,
    /// Set-PolicyConfig could not change the IB mode.
    ConfigUpdate,
    /// New-OrganizationSegment beyond the mode's segment limit.
    SegmentLimit,
    /// A block policy in multi-segment mode.
    AllowOnly,
}

impl Kind {
    pub fn error_id(self) -> &'static str {
        match self {
            Kind::NotFound => "Ex6F9304",
            Kind::AlreadyExists => "ExB7E5B2",
            Kind::SelfSegment => "Ex3A1C7D",
            Kind::SegmentHasPolicy => "Ex9D42E8",
            Kind::PolicyTypeFixed => "Ex51B0F6",
            Kind::PolicyActive => "ExC8264A",
            Kind::SegmentInUse => "Ex7E93D1",
            Kind::ApplicationRunning => "ExE04B5C",
            Kind::ApplicationNotRunning => "Ex2F6A83",
            Kind::InvalidFilter => "ExA5D217",
            Kind::InvalidGroupId => "Ex84C3EE",
            Kind::Parameter => "Ex1B7D40",
            Kind::UnknownCmdlet => "Ex0D9E62",
            Kind::BadRequest => "ExF3187B",
            Kind::Unauthorized => "Ex4C02A9",
            Kind::NoOrganization => "ExD61F07",
            Kind::Transient => "Ex5E8A0C",
            Kind::ConfigUpdate => "Ex42E1F2",
            Kind::SegmentLimit => "Ex6C1D93",
            Kind::AllowOnly => "ExA47E0B",
        }
    }

    pub fn exception(self) -> &'static str {
        match self {
            Kind::NotFound => "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
            Kind::AlreadyExists => {
                "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAlreadyExistsException"
            }
            Kind::SelfSegment => {
                "Microsoft.Exchange.Management.Tasks.SegmentCannotCommunicateWithItselfException"
            }
            Kind::SegmentHasPolicy => "Microsoft.Exchange.Management.Tasks.SegmentAlreadyHasPolicyException",
            Kind::PolicyTypeFixed => {
                "Microsoft.Exchange.Management.Tasks.InformationBarrierPolicyTypeCannotBeChangedException"
            }
            Kind::PolicyActive => {
                "Microsoft.Exchange.Management.Tasks.CannotRemoveActiveInformationBarrierPolicyException"
            }
            Kind::SegmentInUse => "Microsoft.Exchange.Management.Tasks.OrganizationSegmentInUseException",
            Kind::ApplicationRunning => {
                "Microsoft.Exchange.Management.Tasks.InformationBarrierPoliciesApplicationInProgressException"
            }
            Kind::ApplicationNotRunning => {
                "Microsoft.Exchange.Management.Tasks.InformationBarrierPoliciesApplicationNotRunningException"
            }
            Kind::InvalidFilter => "Microsoft.Exchange.Management.Tasks.InvalidUserGroupFilterException",
            Kind::InvalidGroupId => "Microsoft.Exchange.Management.Tasks.InvalidMemberOfGroupIdException",
            Kind::Parameter => "System.Management.Automation.ParameterBindingException",
            Kind::UnknownCmdlet => "System.Management.Automation.CommandNotFoundException",
            Kind::BadRequest => "System.ArgumentException",
            Kind::Unauthorized => "System.UnauthorizedAccessException",
            Kind::NoOrganization => {
                "Microsoft.Exchange.Configuration.Tasks.OrganizationContainerNotFoundException"
            }
            Kind::Transient => "Microsoft.Exchange.Data.TransientException",
            // The exception Set-PolicyConfig reported in microsoft-365-docs #11597.
            Kind::ConfigUpdate => "Microsoft.Office.CompliancePolicy.Tasks.IBConfigUpdateFailureException",
            Kind::SegmentLimit => {
                "Microsoft.Exchange.Management.Tasks.OrganizationSegmentLimitExceededException"
            }
            Kind::AllowOnly => {
                "Microsoft.Exchange.Management.Tasks.BlockPolicyNotSupportedInMultiSegmentModeException"
            }
        }
    }
}

/// A failed command: status, kind and text.
#[derive(Debug)]
pub struct CmdletError {
    pub status: StatusCode,
    pub kind: Kind,
    pub text: String,
}

pub fn error(kind: Kind, text: impl Into<String>) -> CmdletError {
    CmdletError {
        status: StatusCode::BAD_REQUEST,
        kind,
        text: text.into(),
    }
}

impl IntoResponse for CmdletError {
    fn into_response(self) -> Response {
        let exception = self.kind.exception();
        let code = match self.kind {
            Kind::Unauthorized => "Unauthorized",
            _ => exception.rsplit('.').next().unwrap_or(exception),
        };
        let message = format!("{}|{exception}|{}", self.kind.error_id(), self.text);
        (
            self.status,
            axum::Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

pub fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/adminapi/beta/{tenant}/InvokeCommand", post(global))
        .route("/{region}/adminapi/beta/{tenant}/InvokeCommand", post(regional))
}

/// The tenant id when `tenant` names this tenant (its id or one of its domains).
fn resolve_tenant(sim: &Sim, tenant: &str) -> Result<String, CmdletError> {
    let t = sim.tenant.lock().unwrap();
    if tenant.eq_ignore_ascii_case(&t.tenant_id) || t.domains.iter().any(|d| d.eq_ignore_ascii_case(tenant)) {
        return Ok(t.tenant_id.clone());
    }
    Err(CmdletError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        kind: Kind::NoOrganization,
        text: format!("Could not find the organization container for tenant '{tenant}'."),
    })
}

/// The host family of Microsoft's command endpoint.
const MICROSOFT_DOMAIN: &str = "compliance.protection.outlook.com";
/// Microsoft's global command host.
const MICROSOFT_GLOBAL: &str = "ps.compliance.protection.outlook.com";

/// Which shape a request is served in, by the host it names.
#[derive(Debug, PartialEq)]
enum Shape {
    /// Loopback or any other name: the region in the path.
    Sim,
    /// `ps.compliance.protection.outlook.com`.
    Global,
    /// `<region>.ps.compliance.protection.outlook.com`.
    Regional(String),
    /// Another `*.compliance.protection.outlook.com` name, which serves nothing.
    Unknown,
}

impl Shape {
    /// From the `Host` header (or, for HTTP/2, the URI's authority), without its port.
    fn of(headers: &HeaderMap, uri: &Uri) -> (Shape, String) {
        let authority = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        let host = authority
            .parse::<axum::http::uri::Authority>()
            .map(|a| a.host().trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        let shape = match host.strip_suffix(MICROSOFT_DOMAIN) {
            _ if host == MICROSOFT_GLOBAL => Shape::Global,
            Some(sub) if sub.ends_with('.') => match sub
                .strip_suffix(".ps.")
                .filter(|r| !r.is_empty() && !r.contains('.'))
            {
                Some(region) => Shape::Regional(region.to_owned()),
                None => Shape::Unknown,
            },
            _ => Shape::Sim,
        };
        (shape, host)
    }

    fn microsoft(&self) -> bool {
        *self != Shape::Sim
    }
}

/// The route `byRoute` counts: as named, with the host appended in Microsoft's shape.
fn route(shape: &Shape, host: &str, route: String) -> String {
    if shape.microsoft() {
        format!("{route} on {host}")
    } else {
        route
    }
}

/// Sends the client to the tenant's region: a path on this host, or in Microsoft's shape the
/// region's admin host (which clients call through its `ps.compliance` twin).
fn redirect(sim: &Sim, tenant: &str, shape: &Shape) -> Response {
    let region = sim.seed.region();
    let location = if shape.microsoft() {
        format!("https://{region}.admin.protection.outlook.com/adminapi/beta/{tenant}/InvokeCommand")
    } else {
        format!("{}/{region}/adminapi/beta/{tenant}/InvokeCommand", base_url())
    };
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// No such route on this host.
fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

/// Counts one request by route and status; a command that changes something (New-, Set-,
/// Remove-, Start-, Stop-, whatever its outcome) is journalled under the same lock.
fn count(sim: &Sim, route: String, status: StatusCode, command: Option<Invoked>) {
    let mut c = sim.counters.lock().unwrap();
    if let Some(Invoked {
        cmdlet,
        parameters,
        target,
    }) = command.filter(|i| journal::changes(&i.cmdlet))
    {
        let (target, assigned_segment) = target.unzip();
        let identity = ["Identity", "Name"].iter().find_map(|want| {
            parameters
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(want))
                .and_then(|(_, v)| v.as_str().map(str::to_owned))
        });
        c.journal.record(journal::What::Compliance {
            cmdlet,
            identity,
            target,
            assigned_segment: assigned_segment.flatten(),
            parameters,
            status: status.as_u16(),
        });
    }
    *c.by_route
        .entry(route)
        .or_default()
        .entry(status.as_u16())
        .or_default() += 1;
}

/// `POST /adminapi/beta/{tenant}/InvokeCommand`: the global host sends clients to their region;
/// in Microsoft's shape a regional host runs the cmdlet on this same path.
async fn global(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (shape, host) = Shape::of(&headers, &uri);
    let region = match &shape {
        Shape::Regional(region) => region.clone(),
        Shape::Unknown => return not_found(),
        Shape::Sim | Shape::Global => {
            let response = match resolve_tenant(&sim, &tenant) {
                Ok(_) => redirect(&sim, &tenant, &shape),
                Err(e) => e.into_response(),
            };
            let route = route(&shape, &host, "POST /adminapi/beta/{tenant}/InvokeCommand".into());
            count(&sim, route, response.status(), None);
            return response;
        }
    };
    let (invoked, response) = invoke(&sim, &shape, &region, &tenant, &headers, &body).await;
    let route = route(&shape, &host, format!("InvokeCommand {}", invoked.cmdlet));
    count(&sim, route, response.status(), Some(invoked));
    response
}

/// `POST /{region}/adminapi/beta/{tenant}/InvokeCommand`: runs one cmdlet (not a route of
/// Microsoft's hosts).
async fn regional(
    State(sim): State<Arc<Sim>>,
    Path((region, tenant)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (shape, _) = Shape::of(&headers, &uri);
    if shape.microsoft() {
        return not_found();
    }
    let (invoked, response) = invoke(&sim, &shape, &region, &tenant, &headers, &body).await;
    let route = format!("InvokeCommand {}", invoked.cmdlet);
    count(&sim, route, response.status(), Some(invoked));
    response
}

/// What a call asked for, as far as it was read: the cmdlet name (`?` if not read), its
/// parameters, and the segment or policy it names ([`cmdlets::target`]).
struct Invoked {
    cmdlet: String,
    parameters: Map<String, Value>,
    target: Option<(String, Option<String>)>,
}

impl Invoked {
    fn named(cmdlet: String) -> Self {
        Invoked {
            cmdlet,
            parameters: Map::new(),
            target: None,
        }
    }
}

async fn invoke(
    sim: &Sim,
    shape: &Shape,
    region: &str,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (Invoked, Response) {
    let tenant_id = match admit(sim, shape, region, tenant, headers).await {
        Ok(id) => id,
        Err(response) => return (Invoked::named(String::from("?")), response),
    };
    let (name, params) = match read_input(body) {
        Ok(input) => input,
        Err((name, e)) => return (Invoked::named(name), e.into_response()),
    };
    let (scale, answers) = {
        let m = sim.misbehaviour.lock().unwrap();
        (
            m.settings.barrier_time_scale,
            m.settings.application_answers.clone(),
        )
    };
    let (result, params, target) = {
        let mut t = sim.tenant();
        let params = Params(params);
        let target = cmdlets::target(&t.barriers, &name, &params);
        let result = cmdlets::run(&mut t, &name, &params, scale, jiff::Timestamp::now());
        (result, params.0, target)
    };
    let response = match result {
        Ok(value) => answer(shape, region, &tenant_id, &name, value, &answers),
        Err(e) => e.into_response(),
    };
    let invoked = Invoked {
        cmdlet: name,
        parameters: params,
        target,
    };
    (invoked, response)
}

/// Roles that may run the information-barrier cmdlets as a signed-in user.
const IB_ADMIN_ROLES: &[&str] = &["Compliance Administrator", "Global Administrator"];

/// An app-only token needs `Exchange.ManageAsApp` (and a tenant that accepts app-only tokens
/// here: `complianceAppOnly`); a delegated one a user holding a role of [`IB_ADMIN_ROLES`].
fn authorised(sim: &Sim, principal: &auth::Principal) -> Result<(), String> {
    let Some(user_id) = &principal.user else {
        if !sim.seed.compliance_app_only {
            return Err("App-only authentication is not supported for the information-barrier cmdlets in this organization; sign in as a Compliance Administrator (delegated).".into());
        }
        if !principal.roles.contains("Exchange.ManageAsApp") {
            return Err("The application lacks the role Exchange.ManageAsApp.".into());
        }
        return Ok(());
    };
    let t = sim.tenant.lock().unwrap();
    let user = t.users.get(user_id).filter(|u| u.deleted.is_none());
    let holds = user.is_some_and(|u| {
        u.directory_roles
            .iter()
            .any(|r| IB_ADMIN_ROLES.iter().any(|a| a.eq_ignore_ascii_case(r)))
    });
    if !holds {
        return Err("The signed-in user is not a Compliance Administrator.".into());
    }
    Ok(())
}

/// Everything before the body is read, in order: the tenant, the region (else a redirect),
/// latency, the bearer token and its role, a random failure. Gives the tenant id.
async fn admit(
    sim: &Sim,
    shape: &Shape,
    region: &str,
    tenant: &str,
    headers: &HeaderMap,
) -> Result<String, Response> {
    let tenant_id = resolve_tenant(sim, tenant).map_err(IntoResponse::into_response)?;
    if !region.eq_ignore_ascii_case(sim.seed.region()) {
        return Err(redirect(sim, tenant, shape));
    }
    let delay = sim.misbehaviour.lock().unwrap().latency();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let denied = |why: &str| {
        CmdletError {
            status: StatusCode::UNAUTHORIZED,
            kind: Kind::Unauthorized,
            text: format!("Access denied. {why}"),
        }
        .into_response()
    };
    let principal = auth::bearer(sim, headers, COMPLIANCE_RESOURCE).map_err(denied)?;
    authorised(sim, &principal).map_err(|why| denied(&why))?;
    let failure = sim.misbehaviour.lock().unwrap().random_failure();
    if let Some(f) = failure {
        let e = CmdletError {
            status: f.status,
            kind: Kind::Transient,
            text: f.message,
        };
        return Err(e.into_response());
    }
    Ok(tenant_id)
}

/// The cmdlet name and parameters of `{"CmdletInput":{"CmdletName":...,"Parameters":{...}}}`;
/// a failure comes with the name as far as it was read (`?` if not).
fn read_input(body: &[u8]) -> Result<(String, Map<String, Value>), (String, CmdletError)> {
    let input = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("CmdletInput").cloned());
    let name = input
        .as_ref()
        .and_then(|i| i["CmdletName"].as_str())
        .map(str::to_owned);
    let params = input.as_ref().map(|i| &i["Parameters"]);
    let (Some(name), Some(params)) = (name, params) else {
        let e = error(
            Kind::BadRequest,
            "The request body must be {\"CmdletInput\":{\"CmdletName\":\"<cmdlet>\",\"Parameters\":{...}}}.",
        );
        return Err((String::from("?"), e));
    };
    match params {
        Value::Null => Ok((name, Map::new())),
        Value::Object(m) => Ok((name, m.clone())),
        _ => Err((
            name,
            error(Kind::BadRequest, "CmdletInput.Parameters must be an object."),
        )),
    }
}

/// A cmdlet's 200: its objects in the endpoint's envelope, applications written as the
/// misbehaviour settings say.
fn answer(
    shape: &Shape,
    region: &str,
    tenant_id: &str,
    name: &str,
    mut value: Vec<Value>,
    answers: &answers::ApplicationAnswers,
) -> Response {
    if !answers.is_default() && answers::answers_applications(name) {
        value.iter_mut().for_each(|a| answers::reshape(a, answers));
    }
    let context = match shape {
        Shape::Regional(_) => format!(
            "https://{region}.{MICROSOFT_GLOBAL}/adminapi/beta/{tenant_id}/$metadata#Collection(Exchange.GenericHashTable)"
        ),
        _ => format!(
            "{}/{region}/adminapi/beta/{tenant_id}/$metadata#Collection(Exchange.GenericHashTable)",
            base_url()
        ),
    };
    axum::Json(json!({"@odata.context": context, "value": value})).into_response()
}
