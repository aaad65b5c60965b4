//! The identity platform's token endpoint and the bearer check every Graph and compliance call
//! goes through. Confidential clients ([`client`]) get app-only tokens with the client-credentials
//! grant; a signed-in user ([`delegated`]) gets delegated tokens with the device-code and
//! refresh-token grants.

mod client;
pub mod delegated;

use crate::state::Sim;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
pub use client::{App, load_apps};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
pub const COMPLIANCE_RESOURCE: &str = "https://ps.compliance.protection.outlook.com";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What a valid access token stands for.
#[derive(Clone, Debug)]
pub struct Principal {
    pub app_id: String,
    pub resource: String,
    /// Application permissions (app-only tokens; empty for delegated ones).
    pub roles: BTreeSet<String>,
    /// The signed-in user's object id, for delegated tokens.
    pub user: Option<String>,
    /// Delegated scopes (`scp`).
    pub scopes: BTreeSet<String>,
}

pub struct IssuedToken {
    pub principal: Principal,
    pub expires: Instant,
}

/// An AADSTS-style error of the token endpoint.
pub(crate) struct TokenError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

fn token_error(
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: impl Into<String>,
) -> TokenError {
    TokenError {
        status,
        error,
        code,
        description: description.into(),
    }
}

/// A 400 answer: most refusals of the token endpoint are.
fn bad_request(error: &'static str, code: u32, description: impl Into<String>) -> TokenError {
    token_error(StatusCode::BAD_REQUEST, error, code, description)
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let trace = uuid::Uuid::new_v4().to_string();
        let correlation = uuid::Uuid::new_v4().to_string();
        let timestamp = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%SZ").to_string();
        let body = json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}", self.code, self.description),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub async fn token_endpoint(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let answer = check_tenant(&sim, &tenant).and_then(|()| match field(&form, "grant_type") {
        "client_credentials" => issue(&sim, &tenant, &headers, &form),
        DEVICE_CODE_GRANT => delegated::redeem_device_code(&sim, &tenant, &form),
        "refresh_token" => delegated::redeem_refresh_token(&sim, &tenant, &form),
        _ => Err(bad_request(
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        )),
    });
    match answer {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The client-credentials grant: an app-only token.
fn issue(
    sim: &Sim,
    tenant: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Value, TokenError> {
    let resource = requested_resource(tenant, form)?;
    let app = client::client_app(sim, tenant, form)?;
    client::check_credential(app, tenant, headers, form)?;
    Ok(mint(sim, app, resource))
}

/// A form field, empty when absent.
fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or_default()
}

/// The tenant in the path must be this tenant's id or one of its domains.
fn check_tenant(sim: &Sim, tenant: &str) -> Result<(), TokenError> {
    let known_tenant = {
        let t = sim.tenant.lock().unwrap();
        tenant.eq_ignore_ascii_case(&t.tenant_id) || t.domains.iter().any(|d| d.eq_ignore_ascii_case(tenant))
    };
    if !known_tenant {
        return Err(bad_request(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    Ok(())
}

/// The resource named by a client-credentials scope, which must be `<resource>/.default`.
fn requested_resource<'a>(tenant: &str, form: &'a HashMap<String, String>) -> Result<&'a str, TokenError> {
    let scope = field(form, "scope");
    let Some(resource) = scope.strip_suffix("/.default") else {
        return Err(bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    known_resource(tenant, resource)
}

/// A resource this tenant issues tokens for (Graph or the compliance endpoint).
fn known_resource<'a>(tenant: &str, resource: &'a str) -> Result<&'a str, TokenError> {
    let resource = resource.trim_end_matches('/');
    if resource != GRAPH_RESOURCE && resource != COMPLIANCE_RESOURCE {
        return Err(bad_request(
            "invalid_resource",
            500011,
            format!("The resource principal named {resource} was not found in the tenant named {tenant}."),
        ));
    }
    Ok(resource)
}

/// Issues an app-only access token for `resource` holding the app's roles for that resource.
fn mint(sim: &Sim, app: &App, resource: &str) -> Value {
    let roles: BTreeSet<String> = app
        .seed
        .permissions
        .iter()
        .filter(|p| (resource == COMPLIANCE_RESOURCE) == (p.as_str() == "Exchange.ManageAsApp"))
        .cloned()
        .collect();
    let lifetime = sim.seed.token_lifetime_seconds;
    let claims = json!({
        "appid": app.seed.client_id, "oid": crate::seed::service_principal_id(&app.seed),
        "idtyp": "app", "roles": roles,
    });
    let principal = Principal {
        app_id: app.seed.client_id.clone(),
        resource: resource.to_owned(),
        roles,
        user: None,
        scopes: BTreeSet::new(),
    };
    let token = record(sim, principal, claims);
    json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token})
}

/// Shapes an access token for `principal` with the given claims and records it, for the
/// token lifetime of the seed.
fn record(sim: &Sim, principal: Principal, claims: Value) -> String {
    let lifetime = sim.seed.token_lifetime_seconds;
    let token = jwt_shaped(sim, &principal.resource, claims, lifetime);
    sim.tokens.lock().unwrap().insert(
        token.clone(),
        IssuedToken {
            principal,
            expires: Instant::now() + Duration::from_secs(lifetime),
        },
    );
    token
}

/// An access token shaped as Entra's: a JWT whose claims name the resource, the tenant and the
/// holder (`claims`: an app and its roles, or a user and the scopes). Its signature is random:
/// the simulator checks tokens by looking them up, and clients only read the claims.
fn jwt_shaped(sim: &Sim, resource: &str, mut claims: Value, lifetime: u64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = jiff::Timestamp::now().as_second();
    let tenant = &sim.seed.tenant_id;
    let common = json!({
        "aud": resource, "iss": format!("https://sts.windows.net/{tenant}/"), "tid": tenant,
        "iat": now, "nbf": now, "exp": now + lifetime as i64,
    });
    for (k, v) in common.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let signature = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    format!(
        "{}.{}.{}",
        b64.encode(br#"{"typ":"JWT","alg":"RS256"}"#),
        b64.encode(claims.to_string()),
        b64.encode(signature)
    )
}

fn unverified_claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Checks a bearer token issued for `resource`; the error is the reason Graph gives in
/// `InvalidAuthenticationToken` (the compliance endpoint words it its own way).
pub fn bearer(sim: &Sim, headers: &HeaderMap, resource: &str) -> Result<Principal, &'static str> {
    let raw = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .unwrap_or_default()
        .trim();
    if token.is_empty() {
        return Err("Access token is empty.");
    }
    let tokens = sim.tokens.lock().unwrap();
    let Some(issued) = tokens.get(token) else {
        return Err("IDX14100: JWT is not well formed.");
    };
    if issued.expires <= Instant::now() {
        return Err("Lifetime validation failed, the token is expired.");
    }
    if issued.principal.resource != resource {
        return Err("Invalid audience.");
    }
    Ok(issued.principal.clone())
}

/// Checks the bearer token of a Graph request.
pub fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<Principal, crate::odata::GraphError> {
    bearer(sim, headers, GRAPH_RESOURCE)
        .map_err(|m| crate::odata::GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", m))
}

/// Fails with 403 `Authorization_RequestDenied` unless the principal holds one of `any_of`.
pub fn require(principal: &Principal, any_of: &[&str]) -> Result<(), crate::odata::GraphError> {
    if any_of.iter().any(|p| principal.roles.contains(*p)) {
        Ok(())
    } else {
        Err(crate::odata::GraphError::denied())
    }
}
