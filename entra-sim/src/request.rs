//! What a handler knows about the request it answers beyond its extractors: the ids and base
//! URL set by the `request_ids` layer, the `$batch` item marker, and how Graph errors and bad
//! JSON bodies are rendered with them.

use crate::odata::GraphError;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Per-request context available to handlers and error rendering.
#[derive(Clone)]
pub struct Ctx {
    pub request_id: String,
    pub client_request_id: Option<String>,
    pub base_url: String,
}

tokio::task_local! {
    pub static CTX: Ctx;
}

/// Marks a request that came from inside a `$batch` body.
#[derive(Clone, Copy)]
pub struct BatchItem;

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let ctx = CTX.try_with(|c| c.clone()).ok();
        match ctx {
            Some(c) => self.render(&c.request_id, c.client_request_id.as_deref()),
            None => self.render(&uuid::Uuid::new_v4().to_string(), None),
        }
    }
}

/// The base URL of the current request, for `@odata.nextLink`.
pub fn base_url() -> String {
    CTX.try_with(|c| c.base_url.clone())
        .unwrap_or_else(|_| "http://localhost".into())
}

/// Parses a JSON body the way Graph reports a bad one.
pub fn json_body(bytes: &[u8]) -> Result<Value, GraphError> {
    serde_json::from_slice(bytes).map_err(|_| {
        GraphError::bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    })
}
