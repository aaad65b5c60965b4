//! The identity platform's token endpoint (client credentials with a secret, a certificate-signed
//! client assertion, or a federated token) and the bearer check every Graph call goes through.

use crate::seed::{Seed, SeedApp};
use crate::state::Sim;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use sha1::Digest as _;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
pub const COMPLIANCE_RESOURCE: &str = "https://ps.compliance.protection.outlook.com";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a valid access token stands for.
#[derive(Clone, Debug)]
pub struct Principal {
    pub app_id: String,
    pub resource: String,
    pub roles: BTreeSet<String>,
}

pub struct IssuedToken {
    pub principal: Principal,
    pub expires: Instant,
}

/// An app registration with its certificate keys parsed.
pub struct App {
    pub seed: SeedApp,
    /// (SHA-1 thumbprint, SHA-256 thumbprint, key) per certificate.
    pub certificates: Vec<(Vec<u8>, Vec<u8>, DecodingKey)>,
    pub federated: Vec<(crate::seed::SeedFederatedCredential, Vec<DecodingKey>)>,
}

pub fn load_apps(seed: &Seed) -> anyhow::Result<Vec<App>> {
    seed.apps
        .iter()
        .map(|a| {
            let certificates = a
                .certificates
                .iter()
                .map(|pem| {
                    let der = pem_body(pem)?;
                    Ok((
                        sha1::Sha1::digest(&der).to_vec(),
                        sha2::Sha256::digest(&der).to_vec(),
                        DecodingKey::from_rsa_pem(pem.as_bytes())?,
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let federated = a
                .federated_credentials
                .iter()
                .map(|f| {
                    let keys = f
                        .issuer_keys
                        .iter()
                        .map(|k| DecodingKey::from_rsa_pem(k.as_bytes()))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((f.clone(), keys))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(App {
                seed: a.clone(),
                certificates,
                federated,
            })
        })
        .collect()
}

fn pem_body(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body.trim())?)
}

/// An AADSTS-style error of the token endpoint.
struct TokenError {
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
    match issue(&sim, &tenant, &headers, &form) {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn issue(
    sim: &Sim,
    tenant: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Value, TokenError> {
    check_tenant(sim, tenant)?;
    let resource = requested_resource(tenant, form)?;
    let app = client_app(sim, tenant, form)?;
    check_credential(app, tenant, headers, form)?;
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
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    Ok(())
}

/// The grant type, then the resource named by a `<resource>/.default` scope.
fn requested_resource<'a>(tenant: &str, form: &'a HashMap<String, String>) -> Result<&'a str, TokenError> {
    if field(form, "grant_type") != "client_credentials" {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        ));
    }
    let scope = field(form, "scope");
    let Some(resource) = scope.strip_suffix("/.default") else {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    let resource = resource.trim_end_matches('/');
    if resource != GRAPH_RESOURCE && resource != COMPLIANCE_RESOURCE {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!("The resource principal named {resource} was not found in the tenant named {tenant}."),
        ));
    }
    Ok(resource)
}

/// The app registration the request is for.
fn client_app<'a>(sim: &'a Sim, tenant: &str, form: &HashMap<String, String>) -> Result<&'a App, TokenError> {
    let assertion = form.get("client_assertion");
    // The client id may be omitted with an assertion; it is then the assertion's subject.
    let client_id = match (form.get("client_id"), assertion) {
        (Some(c), _) => c.clone(),
        (None, Some(a)) => unverified_claims(a)
            .and_then(|c| c["sub"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        (None, None) => String::new(),
    };
    sim.apps
        .iter()
        .find(|a| a.seed.client_id.eq_ignore_ascii_case(&client_id))
        .ok_or_else(|| {
            token_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            )
        })
}

/// Exactly one credential: a client secret or a client assertion.
fn check_credential(
    app: &App,
    tenant: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), TokenError> {
    match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), None) => {
            if !app
                .seed
                .secrets
                .iter()
                .any(|s| constant_time_eq(s.as_bytes(), secret.as_bytes()))
            {
                return Err(token_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                        app.seed.client_id
                    ),
                ));
            }
            Ok(())
        }
        (None, Some(jwt)) => {
            if field(form, "client_assertion_type") != ASSERTION_TYPE {
                return Err(token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    700025,
                    "client_assertion_type is missing or invalid.",
                ));
            }
            verify_assertion(app, tenant, headers, jwt)
        }
        (Some(_), Some(_)) => Err(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90015,
            "Requested query string is too long or has both a client secret and a client assertion.",
        )),
        (None, None) => Err(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
    }
}

/// Issues an access token for `resource` holding the app's roles for that resource.
fn mint(sim: &Sim, app: &App, resource: &str) -> Value {
    let roles: BTreeSet<String> = app
        .seed
        .permissions
        .iter()
        .filter(|p| (resource == COMPLIANCE_RESOURCE) == (p.as_str() == "Exchange.ManageAsApp"))
        .cloned()
        .collect();
    let lifetime = sim.seed.token_lifetime_seconds;
    let token = jwt_shaped(sim, app, resource, &roles, lifetime);
    sim.tokens.lock().unwrap().insert(
        token.clone(),
        IssuedToken {
            principal: Principal {
                app_id: app.seed.client_id.clone(),
                resource: resource.to_owned(),
                roles,
            },
            expires: Instant::now() + Duration::from_secs(lifetime),
        },
    );
    json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token})
}

/// An access token shaped as Entra's: a JWT whose claims name the resource, the tenant, the
/// app, its service principal and its roles. Its signature is random: the simulator checks
/// tokens by looking them up, and clients only read the claims.
fn jwt_shaped(sim: &Sim, app: &App, resource: &str, roles: &BTreeSet<String>, lifetime: u64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = jiff::Timestamp::now().as_second();
    let tenant = &sim.seed.tenant_id;
    let claims = json!({
        "aud": resource, "iss": format!("https://sts.windows.net/{tenant}/"), "tid": tenant,
        "appid": app.seed.client_id, "oid": crate::seed::service_principal_id(&app.seed),
        "idtyp": "app", "roles": roles, "iat": now, "nbf": now, "exp": now + lifetime as i64,
    });
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies a client assertion: either signed with one of the app's certificates (issuer and
/// subject are the client id, audience is this token endpoint) or a federated token from a
/// registered issuer (issuer, subject and audience must match a federated credential).
fn verify_assertion(app: &App, tenant: &str, headers: &HeaderMap, jwt: &str) -> Result<(), TokenError> {
    let assertion = read_assertion(jwt)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    if assertion.iss.eq_ignore_ascii_case(&app.seed.client_id) {
        verify_certificate_assertion(app, tenant, headers, jwt, &assertion, &validation)
    } else {
        verify_federated_assertion(app, jwt, &assertion, &validation)
    }
}

/// What a client assertion says, read before its signature is checked.
struct Assertion {
    header: jsonwebtoken::Header,
    iss: String,
    sub: String,
    auds: Vec<String>,
    /// Not expired and already valid, with five minutes of clock skew either way.
    in_time: bool,
}

fn read_assertion(jwt: &str) -> Result<Assertion, TokenError> {
    let malformed = || {
        token_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed.",
        )
    };
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| malformed())?;
    let claims = unverified_claims(jwt).ok_or_else(malformed)?;
    let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
    let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
    let auds: Vec<String> = match &claims["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => vec![],
    };
    let now = jiff::Timestamp::now().as_second();
    let in_time = claims["exp"].as_i64().is_some_and(|e| e > now - 300)
        && claims["nbf"].as_i64().is_none_or(|n| n <= now + 300);
    Ok(Assertion {
        header,
        iss,
        sub,
        auds,
        in_time,
    })
}

fn not_in_time() -> TokenError {
    token_error(
        StatusCode::BAD_REQUEST,
        "invalid_client",
        700024,
        "Client assertion is not within its valid time range.",
    )
}

/// Certificate credential.
fn verify_certificate_assertion(
    app: &App,
    tenant: &str,
    headers: &HeaderMap,
    jwt: &str,
    assertion: &Assertion,
    validation: &Validation,
) -> Result<(), TokenError> {
    if !assertion.sub.eq_ignore_ascii_case(&app.seed.client_id) {
        return Err(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let suffix = format!("/{tenant}/oauth2/v2.0/token");
    if !assertion.auds.iter().any(|a| {
        a.ends_with(&suffix) && (a.contains(host) || a.starts_with("https://login.microsoftonline.com"))
    }) {
        return Err(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion contains an invalid audience: it must be this token endpoint's URL.",
        ));
    }
    let thumb = |name: &str| header_thumbprint(jwt, name);
    let candidates: Vec<&DecodingKey> = app
        .certificates
        .iter()
        .filter(|(s1, s256, _)| match (thumb("x5t"), thumb("x5t#S256")) {
            (Some(t), _) => &t == s1,
            (None, Some(t)) => &t == s256,
            (None, None) => true,
        })
        .map(|(_, _, k)| k)
        .collect();
    if candidates.is_empty() {
        return Err(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}']",
                assertion.header.x5t.clone().unwrap_or_default()
            ),
        ));
    }
    if !candidates
        .iter()
        .any(|k| jsonwebtoken::decode::<Value>(jwt, k, validation).is_ok())
    {
        return Err(token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    if !assertion.in_time {
        return Err(not_in_time());
    }
    Ok(())
}

/// Federated credential (workload identity).
fn verify_federated_assertion(
    app: &App,
    jwt: &str,
    assertion: &Assertion,
    validation: &Validation,
) -> Result<(), TokenError> {
    let Assertion { iss, sub, auds, .. } = assertion;
    let aud_text = auds.join(",");
    let Some((cred, keys)) = app
        .federated
        .iter()
        .find(|(f, _)| f.issuer == *iss && f.subject == *sub)
    else {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{aud_text}'."
            ),
        ));
    };
    if !auds.iter().any(|a| cred.audiences.contains(a)) {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{aud_text}'."
            ),
        ));
    }
    if !keys
        .iter()
        .any(|k| jsonwebtoken::decode::<Value>(jwt, k, validation).is_ok())
    {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    if !assertion.in_time {
        return Err(not_in_time());
    }
    Ok(())
}

fn header_thumbprint(jwt: &str, name: &str) -> Option<Vec<u8>> {
    let head = jwt.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let t = value[name].as_str()?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.trim_end_matches('='))
        .ok()
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
