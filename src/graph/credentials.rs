//! How the operator proves who it is to the token endpoint: a client secret, a certificate
//! (signed client assertion), or workload identity federation (a Kubernetes service-account
//! token, re-read from its file for every token request because the kubelet rotates it).
//! Tokens are cached and renewed before they expire, without a lock held over a request.

use super::error::GraphError;
use super::transport::{BodyError, read_capped};
use base64::Engine;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde_json::Value;
use sha1::Digest;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// A signed-in administrator's delegated grant: a refresh token kept in a store, redeemed
    /// for access tokens and replaced by the new one each answer brings.
    Delegated {
        store: Arc<dyn RefreshTokenStore>,
    },
}

/// Where a delegated credential's refresh token lives (a Kubernetes Secret in the operator).
pub trait RefreshTokenStore: Send + Sync + fmt::Debug {
    /// The current refresh token; read again for every redemption, so a new sign-in takes
    /// effect without a restart.
    fn load(&self) -> BoxFuture<'_, Result<Secret, String>>;
    /// Keeps the refresh token a redemption returned.
    fn save(&self, token: Secret) -> BoxFuture<'_, Result<(), String>>;
    /// Records why the grant cannot be used (`None`: it works), for a condition.
    fn report(&self, problem: Option<String>);
    /// Why the grant cannot be used, if it cannot.
    fn problem(&self) -> Option<String>;
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

/// The largest token answer read. An access token is a JWT of a few KiB (under ~10 KiB even
/// with many claims) and error answers are smaller; anything near this is not a token answer.
pub const MAX_TOKEN_BODY: usize = 64 << 10;

/// After a background renewal failed, the next one waits this long: the cached token is still
/// valid, and a failing endpoint is not asked again by every caller.
const RENEWAL_RETRY: Duration = Duration::from_secs(5);

/// How token requests are bounded and when cached tokens are renewed.
#[derive(Clone, Copy, Debug)]
pub struct TokenTiming {
    /// The whole token request (connect, answer, body); a hung endpoint fails after this.
    pub timeout: Duration,
    /// Renew a token when less than this fraction of its lifetime is left. Callers keep getting
    /// the cached token while it renews in the background, so renewal starts early.
    pub renew_at_remaining: f64,
}

impl Default for TokenTiming {
    fn default() -> Self {
        TokenTiming {
            timeout: Duration::from_secs(30),
            renew_at_remaining: 0.2,
        }
    }
}

/// A token with its lifetime on the local monotonic clock.
#[derive(Clone)]
struct Cached {
    token: Secret,
    issued: Instant,
    expires: Instant,
}

impl Cached {
    fn is_valid(&self, now: Instant) -> bool {
        now < self.expires
    }

    fn is_due(&self, now: Instant, renew_at_remaining: f64) -> bool {
        let lifetime = self.expires.saturating_duration_since(self.issued).as_secs_f64();
        self.expires.saturating_duration_since(now).as_secs_f64() <= lifetime * renew_at_remaining
    }
}

/// One token request in progress, shared by every caller that has to wait for it.
type Flight = Shared<BoxFuture<'static, Result<Cached, GraphError>>>;

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    flight: Option<Flight>,
    /// When the last request failed, for [`RENEWAL_RETRY`].
    failed_at: Option<Instant>,
}

/// What a token request needs; owned by the request task, so no caller's lock is held over it.
struct Requester {
    http: reqwest::Client,
    identity: AppIdentity,
    scope: String,
}

/// Issues and caches access tokens for one resource (`scope` = `<resource>/.default`).
///
/// The cache lock is held only to read or write the cache, never across a request: a caller
/// with a valid token never waits, even while a renewal hangs, and callers without one share a
/// single request that ends within [`TokenTiming::timeout`].
pub struct TokenProvider {
    requester: Arc<Requester>,
    state: Arc<Mutex<State>>,
    timing: TokenTiming,
    /// Failed requests are counted here, under this resource label.
    failures: Option<(Arc<crate::metrics::Metrics>, &'static str)>,
}

impl TokenProvider {
    pub fn new(http: reqwest::Client, identity: AppIdentity, resource: &str) -> Self {
        TokenProvider {
            requester: Arc::new(Requester {
                http,
                identity,
                scope: format!("{}/.default", resource.trim_end_matches('/')),
            }),
            state: Arc::default(),
            timing: TokenTiming::default(),
            failures: None,
        }
    }

    /// Counts failed token requests in `remoteassist_token_failures_total{resource}`.
    pub fn with_failure_metric(
        mut self,
        metrics: Arc<crate::metrics::Metrics>,
        resource: &'static str,
    ) -> Self {
        metrics.declare_token_resource(resource);
        self.failures = Some((metrics, resource));
        self
    }

    pub fn with_timing(mut self, timing: TokenTiming) -> Self {
        self.timing = timing;
        self
    }

    /// A valid token: the cached one (renewed in the background when it nears expiry), or,
    /// when there is none, the answer of the one request in flight.
    pub async fn token(&self) -> Result<Secret, GraphError> {
        let flight = {
            let mut state = lock(&self.state);
            let now = Instant::now();
            match state.cached.clone() {
                Some(c) if !c.is_due(now, self.timing.renew_at_remaining) => return Ok(c.token),
                Some(c) if c.is_valid(now) => {
                    let backing_off = state.failed_at.is_some_and(|t| now < t + RENEWAL_RETRY);
                    if !backing_off {
                        // The renewal runs as its own task; nobody needs to wait for it.
                        drop(self.flight(&mut state));
                    }
                    return Ok(c.token);
                }
                _ => self.flight(&mut state),
            }
        };
        flight.await.map(|c| c.token)
    }

    /// Why a delegated credential cannot be used, if it cannot (always `None` for an app's).
    pub fn credential_problem(&self) -> Option<String> {
        match &self.requester.identity.credential {
            Credential::Delegated { store } => store.problem(),
            _ => None,
        }
    }

    /// Drops the cached token (after Graph said it is no longer valid).
    pub async fn invalidate(&self) {
        lock(&self.state).cached = None;
    }

    /// The request in flight, or a new one. It runs as its own task, so it finishes (within the
    /// timeout) and fills the cache even when every caller has stopped waiting.
    fn flight(&self, state: &mut State) -> Flight {
        if let Some(f) = &state.flight {
            return f.clone();
        }
        let requester = self.requester.clone();
        let shared = self.state.clone();
        let timeout = self.timing.timeout;
        let failures = self.failures.clone();
        let task = tokio::spawn(async move {
            let result = requester.bounded(timeout).await;
            let mut state = lock(&shared);
            state.flight = None;
            match &result {
                Ok(c) => {
                    state.cached = Some(c.clone());
                    state.failed_at = None;
                }
                Err(e) => {
                    if let Some((metrics, resource)) = &failures {
                        metrics.token_failure(resource);
                    }
                    let now = Instant::now();
                    // A caller that waited reports the error itself; a background renewal has
                    // nobody else to tell.
                    if state.cached.as_ref().is_some_and(|c| c.is_valid(now)) {
                        tracing::warn!(scope = %requester.scope, error = %e, "token renewal failed; the cached token is still valid");
                    }
                    state.failed_at = Some(now);
                }
            }
            result
        });
        let flight = async move {
            task.await
                .unwrap_or_else(|e| Err(GraphError::Credential(format!("the token request stopped: {e}"))))
        }
        .boxed()
        .shared();
        state.flight = Some(flight.clone());
        flight
    }
}

/// The cache lock; a panic elsewhere never leaves the cache unusable.
fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Requester {
    /// One token request, bounded as a whole by `timeout`.
    async fn bounded(&self, timeout: Duration) -> Result<Cached, GraphError> {
        let issued = Instant::now();
        match tokio::time::timeout(timeout, self.request()).await {
            Ok(answer) => answer.map(|(token, lifetime)| Cached {
                token,
                issued,
                expires: issued + lifetime,
            }),
            Err(_) => Err(GraphError::Transport {
                what: "the token endpoint",
                message: format!("no answer within {}", humantime::format_duration(timeout)),
            }),
        }
    }

    async fn request(&self) -> Result<(Secret, Duration), GraphError> {
        if let Credential::Delegated { store } = &self.identity.credential {
            return self.redeem(store.as_ref()).await;
        }
        let id = &self.identity;
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", id.client_id.clone()),
            ("scope", self.scope.clone()),
            ("grant_type", "client_credentials".into()),
        ];
        match &id.credential {
            Credential::Delegated { .. } => unreachable!("redeemed above"),
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
        let body = self.post(&form).await?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| GraphError::Decode("token response without access_token".into()))?;
        let expires_in = body["expires_in"].as_u64().unwrap_or(3599);
        Ok((Secret::new(token), Duration::from_secs(expires_in)))
    }

    /// The refresh-token grant: the stored token for an access token (and a new refresh
    /// token, which replaces it). A refused grant is reported to the store with the command
    /// that signs in again.
    async fn redeem(&self, store: &dyn RefreshTokenStore) -> Result<(Secret, Duration), GraphError> {
        let refresh = store.load().await.map_err(|why| {
            store.report(Some(why.clone()));
            GraphError::Credential(why)
        })?;
        let form: Vec<(&str, String)> = vec![
            ("client_id", self.identity.client_id.clone()),
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh.expose().to_owned()),
            ("scope", format!("{} offline_access", self.scope)),
        ];
        let body = match self.post(&form).await {
            Ok(body) => body,
            Err(e) => {
                if let GraphError::Auth { error, .. } = &e
                    && error == "invalid_grant"
                {
                    store.report(Some(format!("the sign-in was refused: {e}")));
                }
                return Err(e);
            }
        };
        if let Some(next) = body["refresh_token"].as_str()
            && let Err(why) = store.save(Secret::new(next)).await
        {
            // The token just used stays valid; the next redemption uses it again.
            tracing::warn!(error = %why, "could not keep the new refresh token");
        }
        store.report(None);
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| GraphError::Decode("token response without access_token".into()))?;
        let expires_in = body["expires_in"].as_u64().unwrap_or(3599);
        Ok((Secret::new(token), Duration::from_secs(expires_in)))
    }

    /// One POST to the token endpoint; the JSON of a 200, else the endpoint's error.
    async fn post(&self, form: &[(&str, String)]) -> Result<Value, GraphError> {
        let response = self
            .http
            .post(self.identity.token_url())
            .form(form)
            .send()
            .await
            .map_err(|e| GraphError::Transport {
                what: "the token endpoint",
                message: e.without_url().to_string(),
            })?;
        let status = response.status().as_u16();
        let bytes = read_capped(response, MAX_TOKEN_BODY).await.map_err(|e| match e {
            BodyError::TooLarge => GraphError::TooLarge {
                what: "the token endpoint".into(),
                limit: MAX_TOKEN_BODY,
            },
            BodyError::Read(e) => GraphError::Transport {
                what: "the token endpoint",
                message: e.without_url().to_string(),
            },
        })?;
        let body: Value =
            serde_json::from_slice(&bytes).map_err(|e| GraphError::Decode(format!("token response: {e}")))?;
        if status != 200 {
            return Err(GraphError::from_token_response(status, &body));
        }
        Ok(body)
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
