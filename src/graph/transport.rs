//! One HTTP exchange with Graph: a cached token, a fresh `client-request-id`, a timeout, and the
//! answer as status, body and the headers that matter. Interpreting the status (errors, retries,
//! budget) is the client's job, so a `$batch` item and a direct request are read the same way.
//! Also the limits every outbound client shares: connect and total timeouts, and body caps.

use super::body::Body;
use super::credentials::TokenProvider;
use super::error::GraphError;
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// An answer of any status.
#[derive(Debug, Clone)]
pub struct Raw {
    pub status: u16,
    pub body: Body,
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
}

/// A `Retry-After` beyond this is read as this: a reconcile never sleeps for hours on one word
/// from the server.
pub const MAX_RETRY_AFTER_SECS: u64 = 300;

pub fn retry_after_secs(n: u64) -> Duration {
    Duration::from_secs(n.min(MAX_RETRY_AFTER_SECS))
}

/// A host that has not completed TCP and TLS in this long is down for our purposes; without a
/// bound a black-holed address holds a reconcile for the kernel's SYN retries (minutes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The ceiling for any request on the shared client. Graph requests carry their own, shorter
/// timeout ([`super::RetryPolicy::timeout`]); this catches any call that forgets one.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest Graph answer read. A page of 999 users with `$select` or a `$batch` of 20 items is
/// well under 2 MiB; an answer beyond 16 MiB is not one we asked for, and reading it unbounded
/// could exhaust the pod's memory limit.
pub const MAX_GRAPH_BODY: usize = 16 << 20;

/// The client for Graph and the token endpoint, with the timeouts above.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    client_builder().build()
}

/// [`http_client`]'s settings, for clients that need more (the compliance client's redirects).
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("remote-assist-operator/", env!("CARGO_PKG_VERSION")))
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the limit (announced or streamed); nothing beyond the limit is read.
    TooLarge,
    Read(reqwest::Error),
}

/// The whole body, or [`BodyError::TooLarge`] as soon as it passes `limit` bytes.
pub async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    // Sized once when the length is announced, instead of doubling towards it.
    let mut body = Vec::with_capacity(response.content_length().map_or(0, |n| n as usize));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `scheme://host/path` of a URL, without its query: enough to name the endpoint in an error
/// without repeating filter values.
fn endpoint(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

pub struct Transport {
    pub http: reqwest::Client,
    /// e.g. `https://graph.microsoft.com/v1.0`
    pub base: String,
    pub tokens: Arc<TokenProvider>,
    pub timeout: Duration,
}

impl Transport {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn send(&self, method: &Method, url: &str, body: Option<&Value>) -> Result<Raw, GraphError> {
        let token = self.tokens.token().await?;
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token.expose())
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .timeout(self.timeout);
        if let Some(b) = body {
            request = request.json(b);
        }
        let transport_error = |e: reqwest::Error| GraphError::Transport {
            what: "Microsoft Graph",
            message: e.without_url().to_string(),
        };
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let request_id = header("request-id").map(str::to_owned);
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(retry_after_secs);
        let bytes = read_capped(response, MAX_GRAPH_BODY).await.map_err(|e| match e {
            BodyError::TooLarge => GraphError::TooLarge {
                what: format!("Microsoft Graph ({method} {})", endpoint(url)),
                limit: MAX_GRAPH_BODY,
            },
            BodyError::Read(e) => transport_error(e),
        })?;
        Ok(Raw {
            status,
            body: Body::from_bytes(bytes),
            request_id,
            retry_after,
        })
    }
}
