//! The per-request pipeline around the handlers: request ids, latency, the bearer check,
//! random failures, throttling and counters, and Graph's answers for a wrong method or an
//! unknown segment.

use crate::auth;
use crate::misbehave;
use crate::odata::GraphError;
use crate::request::{BatchItem, CTX, Ctx};
use crate::state::Sim;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// Every Graph answer (also 405s, unknown segments and `$batch` items): a fresh `request-id`,
/// the client's `client-request-id` echoed, both available to error rendering.
pub(crate) async fn request_ids(req: Request, next: Next) -> Response {
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let ctx = Ctx {
        request_id: uuid::Uuid::new_v4().to_string(),
        client_request_id,
        base_url: format!("http://{host}"),
    };
    let request_id = ctx.request_id.clone();
    let echo = ctx.client_request_id.clone();
    let mut response = CTX.scope(ctx, next.run(req)).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", v);
    }
    if let Some(v) = echo.and_then(|e| HeaderValue::from_str(&e).ok()) {
        headers.insert("client-request-id", v);
    }
    response
}

pub(crate) async fn method_not_allowed() -> Response {
    GraphError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
    .into_response()
}

pub(crate) async fn unknown_segment(req: Request) -> Response {
    let segment = req
        .uri()
        .path()
        .trim_start_matches("/v1.0")
        .trim_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
    .into_response()
}

pub(crate) async fn count_tokens(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let is_token = req.uri().path().ends_with("/oauth2/v2.0/token");
    let response = next.run(req).await;
    if is_token {
        sim.counters.lock().unwrap().token_requests += 1;
    }
    response
}

/// Every routed Graph request: latency, bearer check, random failure, throttling, counters
/// (inside `request_ids`).
pub(crate) async fn graph_pipeline(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let item = req.extensions().get::<BatchItem>().is_some();
    let is_batch = req.uri().path() == "/v1.0/$batch";
    let route = format!(
        "{} {}",
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| req.uri().path().to_owned())
    );
    let (cost, write) = misbehave::cost(req.method(), req.uri().path(), req.uri().query());
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = async {
        let (delay, throttling) = {
            let mut m = sim.misbehaviour.lock().unwrap();
            let delay = if item { Duration::ZERO } else { m.latency() };
            (delay, m.settings.throttling.enabled)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let principal = match auth::authenticate(&sim, req.headers()) {
            Ok(p) => p,
            Err(e) => return (e.into_response(), None),
        };
        if is_batch {
            let mut req = req;
            req.extensions_mut().insert(principal);
            return (next.run(req).await, None);
        }
        // The tenant size picks the throttling tier; only look it up when throttling is on,
        // so the common path takes no tenant lock here.
        let users = if throttling {
            sim.tenant.lock().unwrap().users.len()
        } else {
            0
        };
        let (failure, charge) = {
            let mut m = sim.misbehaviour.lock().unwrap();
            match m.charge(&principal.app_id, &sim.seed.tenant_id, cost, write, users) {
                Err(e) => (Some(e), None),
                Ok(c) => (m.random_failure(), Some(c)),
            }
        };
        if let Some(e) = failure {
            return (e.into_response(), charge);
        }
        let mut req = req;
        req.extensions_mut().insert(principal);
        (next.run(req).await, charge)
    }
    .await;
    let (mut response, charge) = response;
    let headers = response.headers_mut();
    if let Some(c) = charge {
        headers.insert("x-ms-resource-unit", HeaderValue::from(c.resource_units));
        if let Some(p) = c
            .limit_percentage
            .and_then(|p| HeaderValue::from_str(&format!("{p:.1}")).ok())
        {
            headers.insert("x-ms-throttle-limit-percentage", p);
        }
    }
    sim.count(&method, &path, route, response.status(), write && !is_batch, item);
    response
}
