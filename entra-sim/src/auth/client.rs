//! Confidential-client credentials of the token endpoint: which app registration a request is
//! for, and its client secret, certificate-signed client assertion or federated token.

use super::{TokenError, field, token_error, unverified_claims};
use crate::seed::{Seed, SeedApp};
use crate::state::Sim;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha1::Digest as _;
use std::collections::HashMap;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

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

/// The app registration the request is for.
pub(super) fn client_app<'a>(
    sim: &'a Sim,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<&'a App, TokenError> {
    let assertion = form.get("client_assertion");
    // The client id may be omitted with an assertion; it is then the assertion's subject.
    let client_id = match (form.get("client_id"), assertion) {
        (Some(c), _) => c.clone(),
        (None, Some(a)) => unverified_claims(a)
            .and_then(|c| c["sub"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        (None, None) => String::new(),
    };
    find_app(sim, tenant, &client_id)
}

/// The app registration with this client id; 700016 when the tenant has none.
pub(super) fn find_app<'a>(sim: &'a Sim, tenant: &str, client_id: &str) -> Result<&'a App, TokenError> {
    sim.apps
        .iter()
        .find(|a| a.seed.client_id.eq_ignore_ascii_case(client_id))
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
pub(super) fn check_credential(
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
