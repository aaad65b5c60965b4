//! Conformance tests for the token endpoint and the bearer check of Graph (see
//! entra-sim/docs/wire-protocol.md#token-endpoint and #access-tokens-audience-and-roles):
//! client secrets, certificate-signed client assertions, federated (workload identity) tokens,
//! AADSTS error shapes, token lifetime, permissions and audiences.

mod common;

use base64::Engine;
use common::{Answer, auditor_id, auditor_secret, operator_id, operator_secret, tenant};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::Digest as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ISSUER: &str = "https://oidc.sim-cluster.example/3f2b8c1e";
const SUBJECT: &str = "system:serviceaccount:remote-assist:operator";
const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Key material made with `openssl` once per test binary.
struct Keys {
    /// Self-signed certificate registered on the operator app, and its private key.
    cert_pem: String,
    cert_key_pem: String,
    /// A second key pair: signs the "wrong key" assertion and acts as the OIDC issuer's key.
    other_key_pem: String,
    other_public_pem: String,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("entra-sim-auth-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "cert.key",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-sha256",
                "-subj",
                "/CN=entra-sim-conformance",
            ],
        );
        openssl(
            &dir,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "other.key",
            ],
        );
        openssl(
            &dir,
            &["pkey", "-in", "other.key", "-pubout", "-out", "other.pub"],
        );
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let keys = Keys {
            cert_pem: read("cert.pem"),
            cert_key_pem: read("cert.key"),
            other_key_pem: read("other.key"),
            other_public_pem: read("other.pub"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        keys
    })
}

/// base64url(SHA-1(DER of the certificate)), the `x5t` JWT header.
fn x5t(cert_pem: &str) -> String {
    let body: String = cert_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An RS256 JWT over `claims`, with `x5t` in the header when given.
fn sign(claims: &Value, key_pem: &str, x5t: Option<String>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = x5t;
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Claims of a certificate credential: iss = sub = client id, aud = this token endpoint.
fn cert_claims(env: &common::Env, exp_offset: i64) -> Value {
    let t = now();
    json!({
        "iss": operator_id(), "sub": operator_id(),
        "aud": format!("{}/{}/oauth2/v2.0/token", env.url(), tenant()),
        "exp": t + exp_offset, "nbf": t - 60 + exp_offset.min(0), "iat": t - 60 + exp_offset.min(0),
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn federated_claims(subject: &str, audience: &str) -> Value {
    let t = now();
    json!({
        "iss": ISSUER, "sub": subject, "aud": [audience],
        "exp": t + 3600, "nbf": t - 10, "iat": t - 10,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// The default seed with the test certificate and a federated credential on the operator app.
async fn start_with_credentials() -> common::Env {
    let k = keys();
    common::start_with(common::seed_with(|s| {
        let app = s.apps.iter_mut().find(|a| a.client_id == operator_id()).unwrap();
        app.certificates.push(k.cert_pem.clone());
        app.federated_credentials
            .push(entra_sim::seed::SeedFederatedCredential {
                issuer: ISSUER.into(),
                subject: SUBJECT.into(),
                audiences: vec![EXCHANGE_AUDIENCE.into()],
                issuer_keys: vec![k.other_public_pem.clone()],
            });
    }))
    .await
}

async fn assertion_request(env: &common::Env, assertion: &str) -> Answer {
    env.token_request(
        tenant(),
        &[
            ("client_id", operator_id()),
            ("scope", GRAPH_SCOPE),
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

async fn secret_request(
    env: &common::Env,
    tenant: &str,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> Answer {
    env.token_request(
        tenant,
        &[
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ],
    )
    .await
}

/// Checks the AADSTS error shape (entra-sim/docs/wire-protocol.md#token-response-and-errors):
/// `error`, `error_description` starting with `AADSTS<code>:`, `error_codes: [code]`,
/// `timestamp`, `trace_id`, `correlation_id`.
fn assert_aadsts(a: &Answer, status: StatusCode, error: &str, code: u64) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.body["error"], error, "{:?}", a.body);
    assert_eq!(a.body["error_codes"], json!([code]), "{:?}", a.body);
    let description = a.body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "error_description: {description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(
            a.body[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing: {:?}",
            a.body
        );
    }
    assert!(a.body.get("access_token").is_none());
}

/// Asserts a token answer is a success and the token works on Graph; returns the token.
async fn assert_token_works(env: &common::Env, a: &Answer) -> String {
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["token_type"], "Bearer");
    let token = a.body["access_token"].as_str().expect("access_token").to_owned();
    let users = env.graph_as(&token, Method::GET, "/users", None, &[]).await;
    assert_eq!(users.status, StatusCode::OK, "{:?}", users.body);
    token
}

#[tokio::test]
async fn client_secret_gets_a_bearer_token_valid_for_3599_seconds() {
    let env = common::start().await;
    let a = secret_request(&env, tenant(), operator_id(), operator_secret(), GRAPH_SCOPE).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 3599);
    assert!(
        a.body.get("refresh_token").is_none(),
        "client credentials give no refresh token"
    );
    assert_token_works(&env, &a).await;
}

#[tokio::test]
async fn a_domain_name_works_as_the_tenant() {
    let env = common::start().await;
    let a = secret_request(
        &env,
        "abcsim.onmicrosoft.com",
        operator_id(),
        operator_secret(),
        GRAPH_SCOPE,
    )
    .await;
    assert_token_works(&env, &a).await;
}

#[tokio::test]
async fn wrong_secret_is_invalid_client_7000215() {
    let env = common::start().await;
    let a = secret_request(&env, tenant(), operator_id(), "not-the-secret", GRAPH_SCOPE).await;
    assert_aadsts(&a, StatusCode::UNAUTHORIZED, "invalid_client", 7000215);
    // The other app's secret is no good either.
    let a = secret_request(&env, tenant(), operator_id(), auditor_secret(), GRAPH_SCOPE).await;
    assert_aadsts(&a, StatusCode::UNAUTHORIZED, "invalid_client", 7000215);
}

#[tokio::test]
async fn unknown_client_id_is_700016() {
    let env = common::start().await;
    let a = secret_request(
        &env,
        tenant(),
        "00000000-1111-2222-3333-444444444444",
        operator_secret(),
        GRAPH_SCOPE,
    )
    .await;
    assert_aadsts(&a, StatusCode::BAD_REQUEST, "unauthorized_client", 700016);
}

#[tokio::test]
async fn unknown_tenant_is_90002() {
    let env = common::start().await;
    let a = secret_request(
        &env,
        "11111111-2222-3333-4444-555555555555",
        operator_id(),
        operator_secret(),
        GRAPH_SCOPE,
    )
    .await;
    assert_aadsts(&a, StatusCode::BAD_REQUEST, "invalid_request", 90002);
}

#[tokio::test]
async fn scope_without_default_suffix_is_1002012() {
    let env = common::start().await;
    for scope in [
        "https://graph.microsoft.com/User.Read.All",
        "https://graph.microsoft.com",
    ] {
        let a = secret_request(&env, tenant(), operator_id(), operator_secret(), scope).await;
        assert_aadsts(&a, StatusCode::BAD_REQUEST, "invalid_scope", 1002012);
    }
}

#[tokio::test]
async fn certificate_signed_assertion_is_accepted() {
    let env = start_with_credentials().await;
    let k = keys();
    let jwt = sign(&cert_claims(&env, 600), &k.cert_key_pem, Some(x5t(&k.cert_pem)));
    let a = assertion_request(&env, &jwt).await;
    assert_eq!(a.body["expires_in"], 3599);
    assert_token_works(&env, &a).await;
}

#[tokio::test]
async fn assertion_signed_by_another_key_is_700027() {
    let env = start_with_credentials().await;
    let k = keys();
    // Claims the registered certificate's thumbprint but is signed by a different key.
    let jwt = sign(&cert_claims(&env, 600), &k.other_key_pem, Some(x5t(&k.cert_pem)));
    let a = assertion_request(&env, &jwt).await;
    assert_aadsts(&a, StatusCode::UNAUTHORIZED, "invalid_client", 700027);
}

#[tokio::test]
async fn expired_assertion_is_700024() {
    let env = start_with_credentials().await;
    let k = keys();
    // Expired an hour ago: well outside any clock-skew allowance.
    let jwt = sign(&cert_claims(&env, -3600), &k.cert_key_pem, Some(x5t(&k.cert_pem)));
    let a = assertion_request(&env, &jwt).await;
    assert_aadsts(&a, StatusCode::BAD_REQUEST, "invalid_client", 700024);
}

#[tokio::test]
async fn federated_token_from_the_registered_issuer_is_accepted() {
    let env = start_with_credentials().await;
    let jwt = sign(
        &federated_claims(SUBJECT, EXCHANGE_AUDIENCE),
        &keys().other_key_pem,
        None,
    );
    let a = assertion_request(&env, &jwt).await;
    assert_token_works(&env, &a).await;
}

#[tokio::test]
async fn federated_token_with_wrong_subject_is_70021() {
    let env = start_with_credentials().await;
    let jwt = sign(
        &federated_claims("system:serviceaccount:other-ns:operator", EXCHANGE_AUDIENCE),
        &keys().other_key_pem,
        None,
    );
    let a = assertion_request(&env, &jwt).await;
    assert_aadsts(&a, StatusCode::BAD_REQUEST, "invalid_request", 70021);
}

#[tokio::test]
async fn federated_token_with_wrong_audience_is_700212() {
    let env = start_with_credentials().await;
    let jwt = sign(
        &federated_claims(SUBJECT, "api://SomethingElse"),
        &keys().other_key_pem,
        None,
    );
    let a = assertion_request(&env, &jwt).await;
    assert_aadsts(&a, StatusCode::BAD_REQUEST, "invalid_request", 700212);
}

#[tokio::test]
async fn federated_token_signed_by_another_key_is_refused() {
    let env = start_with_credentials().await;
    // Right issuer, subject and audience, but not signed by the issuer's key.
    let jwt = sign(
        &federated_claims(SUBJECT, EXCHANGE_AUDIENCE),
        &keys().cert_key_pem,
        None,
    );
    let a = assertion_request(&env, &jwt).await;
    assert_aadsts(&a, StatusCode::BAD_REQUEST, "invalid_request", 700027);
}

#[tokio::test]
async fn an_expired_access_token_is_refused_by_graph() {
    let env = common::start_with(common::seed_with(|s| s.token_lifetime_seconds = 1)).await;
    let a = secret_request(&env, tenant(), operator_id(), operator_secret(), GRAPH_SCOPE).await;
    assert_eq!(a.body["expires_in"], 1);
    let token = a.body["access_token"].as_str().unwrap().to_owned();
    let expired = common::eventually(5, || async {
        let a = env.graph_as(&token, Method::GET, "/users", None, &[]).await;
        (a.status == StatusCode::UNAUTHORIZED).then_some(a)
    })
    .await;
    assert_eq!(expired.error_code(), "InvalidAuthenticationToken");
    assert_eq!(
        expired.error_message(),
        "Lifetime validation failed, the token is expired."
    );
}

#[tokio::test]
async fn no_token_is_401_access_token_is_empty() {
    let env = common::start().await;
    let r = env
        .http
        .get(format!("{}/v1.0/users", env.url()))
        .send()
        .await
        .unwrap();
    let a = common::answer(r).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_code(), "InvalidAuthenticationToken");
    assert_eq!(a.error_message(), "Access token is empty.");
}

#[tokio::test]
async fn read_only_app_may_read_but_not_write_users() {
    let env = common::start().await;
    let token = env.token_for(auditor_id(), auditor_secret()).await;
    let read = env.graph_as(&token, Method::GET, "/users", None, &[]).await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
    let body = json!({
        "accountEnabled": true, "displayName": "Nope", "mailNickname": "nope",
        "userPrincipalName": "nope@vendors.abc.example",
        "passwordProfile": {"password": common::GOOD_PASSWORD, "forceChangePasswordNextSignIn": false},
    });
    let write = env
        .graph_as(&token, Method::POST, "/users", Some(body), &[])
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN, "{:?}", write.body);
    assert_eq!(write.error_code(), "Authorization_RequestDenied");
    assert_eq!(
        write.error_message(),
        "Insufficient privileges to complete the operation."
    );
    // Nothing was created.
    let check = env
        .graph(Method::GET, "/users/nope@vendors.abc.example", None)
        .await;
    assert_eq!(check.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_token_for_another_resource_is_refused_by_graph() {
    let env = common::start().await;
    let a = secret_request(
        &env,
        tenant(),
        operator_id(),
        operator_secret(),
        "https://ps.compliance.protection.outlook.com/.default",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let token = a.body["access_token"].as_str().unwrap();
    let g = env.graph_as(token, Method::GET, "/users", None, &[]).await;
    assert_eq!(g.status, StatusCode::UNAUTHORIZED, "{:?}", g.body);
    assert_eq!(g.error_code(), "InvalidAuthenticationToken");
    assert_eq!(g.error_message(), "Invalid audience.");
}

/// The payload of a JWT-shaped access token.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn access_tokens_are_jwts_naming_resource_app_principal_and_roles() {
    let env = common::start().await;
    let graph = claims(&env.token);
    assert_eq!(graph["aud"], "https://graph.microsoft.com");
    assert_eq!(graph["tid"], tenant());
    assert_eq!(graph["appid"], operator_id());
    assert_eq!(graph["idtyp"], "app");
    let roles: Vec<&str> = graph["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(roles.contains(&"User.ReadWrite.All") && !roles.contains(&"Exchange.ManageAsApp"));
    assert!(graph["exp"].as_i64().unwrap() > graph["iat"].as_i64().unwrap());
    let auditor = claims(&env.token_for(auditor_id(), auditor_secret()).await);
    assert_ne!(
        auditor["oid"], graph["oid"],
        "each app has its own service principal"
    );
    let compliance = claims(&env.compliance_token_for(operator_id(), operator_secret()).await);
    assert_eq!(compliance["roles"], json!(["Exchange.ManageAsApp"]));
    assert_eq!(compliance["aud"], "https://ps.compliance.protection.outlook.com");
}
