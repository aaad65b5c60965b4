//! One HTTP exchange with Graph: a cached token, a fresh `client-request-id`, a timeout, and the
//! answer as status, body and the headers that matter. Interpreting the status (errors, retries,
//! budget) is the client's job, so a `$batch` item and a direct request are read the same way.

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
    pub body: Value,
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
}

/// A `Retry-After` beyond this is read as this: a reconcile never sleeps for hours on one word
/// from the server.
pub const MAX_RETRY_AFTER_SECS: u64 = 300;

pub fn retry_after_secs(n: u64) -> Duration {
    Duration::from_secs(n.min(MAX_RETRY_AFTER_SECS))
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
        let bytes = response.bytes().await.map_err(transport_error)?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok(Raw {
            status,
            body,
            request_id,
            retry_after,
        })
    }
}
