//! Typed errors from Graph's OData envelope and the token endpoint's AADSTS body.

use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with an error envelope.
    #[error("Graph answered {status} {code}: {message} (request-id {})", request_id.as_deref().unwrap_or("none"))]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        retry_after: Option<Duration>,
        /// `details[].code`, e.g. `ObjectConflict`.
        detail_codes: Vec<String>,
    },
    /// The token endpoint refused to issue a token.
    #[error("token request refused ({status} {error}, AADSTS{}): {description}", codes.first().copied().unwrap_or_default())]
    Auth {
        status: u16,
        error: String,
        codes: Vec<u64>,
        description: String,
    },
    /// The request never got an HTTP answer (connect error, timeout).
    #[error("could not reach {what}: {message}")]
    Transport { what: &'static str, message: String },
    /// An answer that is not what Graph documents.
    #[error("unexpected answer from Graph: {0}")]
    Decode(String),
    /// A credential could not be loaded (bad PEM, unreadable token file).
    #[error("credential error: {0}")]
    Credential(String),
    /// An answer longer than the limit for its endpoint; nothing beyond the limit was read.
    #[error("the answer from {what} is larger than the {} limit: refused", bytes(*limit))]
    TooLarge { what: String, limit: usize },
    /// Retries ran out; carries the last error.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: Box<GraphError> },
}

/// A byte count for messages: `16 MiB`, `64 KiB`, or bytes.
pub fn bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

impl GraphError {
    /// Parses an error answer. A body that is not the envelope still yields a typed error.
    pub fn from_response(
        status: u16,
        request_id: Option<String>,
        retry_after: Option<Duration>,
        body: &Value,
    ) -> Self {
        let e = &body["error"];
        GraphError::Api {
            status,
            code: e["code"].as_str().unwrap_or("UnknownError").to_owned(),
            message: e["message"].as_str().unwrap_or_default().to_owned(),
            request_id: request_id.or_else(|| e["innerError"]["request-id"].as_str().map(str::to_owned)),
            retry_after,
            detail_codes: e["details"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .filter_map(|x| x["code"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn from_token_response(status: u16, body: &Value) -> Self {
        GraphError::Auth {
            status,
            error: body["error"].as_str().unwrap_or("unknown_error").to_owned(),
            codes: body["error_codes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
            // The description names the app and tenant but never a secret.
            description: body["error_description"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Api { status, .. } | GraphError::Auth { status, .. } => Some(*status),
            GraphError::Exhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Whether waiting and trying again can help: throttling, 5xx, transport failures.
    pub fn is_transient(&self) -> bool {
        match self {
            GraphError::Api { status, .. } => *status == 429 || *status >= 500,
            GraphError::Transport { .. } => true,
            _ => false,
        }
    }

    pub fn is_throttled(&self) -> bool {
        self.status() == Some(429)
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn has_detail(&self, code: &str) -> bool {
        match self {
            GraphError::Api { detail_codes, .. } => detail_codes.iter().any(|c| c == code),
            GraphError::Exhausted { last, .. } => last.has_detail(code),
            _ => false,
        }
    }

    pub fn message_contains(&self, text: &str) -> bool {
        match self {
            GraphError::Api { message, .. } => message.contains(text),
            GraphError::Exhausted { last, .. } => last.message_contains(text),
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The Graph `request-id`, for support cases.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            GraphError::Api { request_id, .. } => request_id.as_deref(),
            GraphError::Exhausted { last, .. } => last.request_id(),
            _ => None,
        }
    }
}
