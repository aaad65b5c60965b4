//! How the operator proves who it is to the token endpoint: a client secret, a certificate
//! (signed client assertion), or workload identity federation (a Kubernetes service-account
//! token, re-read from its file for every token request because the kubelet rotates it).
//! Tokens are cached and renewed before they expire.

use super::error::GraphError;
use base64::Engine;
use serde_json::Value;
use sha1::Digest;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A secret value that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One way of authenticating the app.
#[derive(Clone, Debug)]
pub enum Credential {
    ClientSecret {
        secret: Secret,
    },
    /// A private key (PEM) and the certificate registered on the app (PEM), whose SHA-1
    /// thumbprint goes into the assertion's `x5t` header.
    Certificate {
        private_key_pem: Secret,
        certificate_pem: String,
    },
    /// Workload identity: the file holding the projected service-account token.
    WorkloadIdentity {
        token_file: PathBuf,
    },
}

/// Everything needed to obtain tokens for one app in one tenant.
#[derive(Clone, Debug)]
pub struct AppIdentity {
    /// e.g. `https://login.microsoftonline.com/` (or the simulated tenant's URL).
    pub authority: String,
    pub tenant_id: String,
    pub client_id: String,
    pub credential: Credential,
}

impl AppIdentity {
    /// Workload identity from the variables the azure-workload-identity webhook injects.
    pub fn from_workload_identity_env() -> Option<AppIdentity> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(AppIdentity {
            authority: var("AZURE_AUTHORITY_HOST")
                .unwrap_or_else(|| "https://login.microsoftonline.com/".into()),
            tenant_id: var("AZURE_TENANT_ID")?,
            client_id: var("AZURE_CLIENT_ID")?,
            credential: Credential::WorkloadIdentity {
                token_file: var("AZURE_FEDERATED_TOKEN_FILE")?.into(),
            },
        })
    }

    fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority.trim_end_matches('/'),
            self.tenant_id
        )
    }
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Renew a token when less than this fraction of its lifetime is left.
const RENEW_AT_REMAINING: f64 = 0.2;

/// Issues and caches access tokens for one resource (`scope` = `<resource>/.default`).
pub struct TokenProvider {
    http: reqwest::Client,
    identity: AppIdentity,
    scope: String,
    cache: Mutex<Option<(Secret, Instant, Instant)>>, // token, issued, expires
}

impl TokenProvider {
    pub fn new(http: reqwest::Client, identity: AppIdentity, resource: &str) -> Self {
        TokenProvider {
            http,
            identity,
            scope: format!("{}/.default", resource.trim_end_matches('/')),
            cache: Mutex::new(None),
        }
    }

    /// A valid token, from the cache unless it is near expiry.
    pub async fn token(&self) -> Result<Secret, GraphError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some((token, issued, expires)) = cache.as_ref() {
            let lifetime = expires.saturating_duration_since(*issued).as_secs_f64();
            if expires.saturating_duration_since(now).as_secs_f64() > lifetime * RENEW_AT_REMAINING {
                return Ok(token.clone());
            }
        }
        let (token, expires_in) = self.request().await?;
        *cache = Some((token.clone(), now, now + expires_in));
        Ok(token)
    }

    /// Drops the cached token (after Graph said it is no longer valid).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    async fn request(&self) -> Result<(Secret, Duration), GraphError> {
        let id = &self.identity;
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", id.client_id.clone()),
            ("scope", self.scope.clone()),
            ("grant_type", "client_credentials".into()),
        ];
        match &id.credential {
            Credential::ClientSecret { secret } => form.push(("client_secret", secret.expose().to_owned())),
            Credential::Certificate {
                private_key_pem,
                certificate_pem,
            } => {
                form.push(("client_assertion_type", ASSERTION_TYPE.into()));
                form.push((
                    "client_assertion",
                    self.signed_assertion(private_key_pem, certificate_pem)?,
                ));
            }
            Credential::WorkloadIdentity { token_file } => {
                // Re-read on every request: the kubelet rotates the projected token.
                let token = std::fs::read_to_string(token_file).map_err(|e| {
                    GraphError::Credential(format!("cannot read {}: {e}", token_file.display()))
                })?;
                form.push(("client_assertion_type", ASSERTION_TYPE.into()));
                form.push(("client_assertion", token.trim().to_owned()));
            }
        }
        let response = self
            .http
            .post(id.token_url())
            .form(&form)
            .send()
            .await
            .map_err(|e| GraphError::Transport {
                what: "the token endpoint",
                message: e.without_url().to_string(),
            })?;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| GraphError::Decode(format!("token response: {e}")))?;
        if status != 200 {
            return Err(GraphError::from_token_response(status, &body));
        }
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| GraphError::Decode("token response without access_token".into()))?;
        let expires_in = body["expires_in"].as_u64().unwrap_or(3599);
        Ok((Secret::new(token), Duration::from_secs(expires_in)))
    }

    /// A client assertion signed with the certificate's key, as the identity platform expects.
    fn signed_assertion(&self, key_pem: &Secret, certificate_pem: &str) -> Result<String, GraphError> {
        let der: String = certificate_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der.trim())
            .map_err(|_| GraphError::Credential("the certificate is not valid PEM".into()))?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der)));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = serde_json::json!({
            "aud": self.identity.token_url(),
            "iss": self.identity.client_id,
            "sub": self.identity.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose().as_bytes())
            .map_err(|_| GraphError::Credential("the private key is not a valid RSA PEM key".into()))?;
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| GraphError::Credential(format!("cannot sign the client assertion: {e}")))
    }
}
