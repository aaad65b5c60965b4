//! `POST /$batch`: up to 20 requests, run through the same pipeline as direct requests (so each
//! item is authorised, charged and possibly throttled on its own), `dependsOn` with 424 on a
//! failed dependency, responses in no particular order.

use crate::odata::GraphError;
use crate::request::{BatchItem, json_body};
use crate::state::{Sim, dispatch};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const MAX_REQUESTS: usize = 20;
/// Response headers copied into an item's `headers`.
const ITEM_HEADERS: &[&str] = &[
    "content-type",
    "retry-after",
    "location",
    "request-id",
    "client-request-id",
    "x-ms-resource-unit",
    "x-ms-throttle-scope",
    "x-ms-throttle-information",
    "x-ms-throttle-limit-percentage",
];

struct Item {
    id: String,
    method: Method,
    url: String,
    headers: Map<String, Value>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn invalid(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn parse(body: &Value) -> Result<Vec<Item>, GraphError> {
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Invalid batch payload format."))?;
    if requests.is_empty() {
        return Err(invalid(
            "Invalid batch payload format: at least one request is required.",
        ));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(invalid(format!(
            "The number of batch requests exceeds the maximum of {MAX_REQUESTS}."
        )));
    }
    let mut seen = HashSet::new();
    let mut items = Vec::new();
    for r in requests {
        let id = r
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("Invalid batch payload format: every request needs an id."))?;
        if !seen.insert(id.to_lowercase()) {
            return Err(invalid(format!(
                "Batch request contains duplicate request id '{id}'."
            )));
        }
        let method = r
            .get("method")
            .and_then(Value::as_str)
            .and_then(|m| m.to_uppercase().parse().ok())
            .ok_or_else(|| invalid(format!("Invalid or missing method for request id {id}.")))?;
        let url = r
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("Missing url for request id {id}.")))?;
        let depends_on = r
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|d| d.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        items.push(Item {
            id: id.to_owned(),
            method,
            url: url.to_owned(),
            headers: r
                .get("headers")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            body: r.get("body").cloned(),
            depends_on,
        });
    }
    for item in &items {
        if let Some(d) = item.depends_on.iter().find(|d| !seen.contains(&d.to_lowercase())) {
            return Err(invalid(format!(
                "Request id {} depends on unknown request id {d}.",
                item.id
            )));
        }
    }
    Ok(items)
}

pub async fn batch(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let body = json_body(&body)?;
    let items = parse(&body)?;
    let mut status: HashMap<String, u16> = HashMap::new();
    let mut responses: Vec<Value> = Vec::new();
    let mut pending: Vec<&Item> = items.iter().collect();
    while !pending.is_empty() {
        // Run every item whose dependencies have completed; fail those whose dependency failed.
        let (ready, waiting): (Vec<&Item>, Vec<&Item>) = pending.into_iter().partition(|i| {
            i.depends_on
                .iter()
                .all(|d| status.contains_key(&d.to_lowercase()))
        });
        if ready.is_empty() {
            return Err(invalid("Batch request dependencies form a cycle."));
        }
        let mut runs = Vec::new();
        for item in ready {
            if item.depends_on.iter().any(|d| status[&d.to_lowercase()] >= 400) {
                status.insert(item.id.to_lowercase(), 424);
                responses.push(json!({"id": item.id, "status": 424, "headers": {"content-type": "application/json"},
                    "body": {"error": {"code": "FailedDependency", "message": "The request failed because of a failed dependency."}}}));
                continue;
            }
            runs.push(run_item(&sim, &headers, item));
        }
        for (id, code, value) in futures::future::join_all(runs).await {
            status.insert(id.to_lowercase(), code);
            responses.push(value);
        }
        pending = waiting;
    }
    // Graph does not promise any order: clients must correlate by id.
    responses.shuffle(&mut *sim.misbehaviour.lock().unwrap().rng());
    Ok((StatusCode::OK, axum::Json(json!({"responses": responses}))).into_response())
}

async fn run_item(sim: &Sim, outer: &HeaderMap, item: &Item) -> (String, u16, Value) {
    let has_content_type = item
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"));
    if item.body.is_some() && !has_content_type {
        let body = json!({"error": {"code": "BadRequest", "message": format!("Write request id : {} does not contain Content-Type header or body.", item.id)}});
        return (
            item.id.clone(),
            400,
            json!({"id": item.id, "status": 400, "body": body}),
        );
    }
    let url = if item.url.starts_with('/') {
        format!("/v1.0{}", item.url)
    } else {
        format!("/v1.0/{}", item.url)
    };
    let mut builder = Request::builder().method(item.method.clone()).uri(url);
    for (k, v) in &item.headers {
        if let Some(v) = v.as_str() {
            builder = builder.header(k.as_str(), v);
        }
    }
    for name in ["authorization", "host"] {
        if let Some(v) = outer.get(name) {
            builder = builder.header(name, v.clone());
        }
    }
    let body = item
        .body
        .as_ref()
        .map(|b| Body::from(b.to_string()))
        .unwrap_or_else(Body::empty);
    let mut request = match builder.body(body) {
        Ok(r) => r,
        Err(_) => {
            return (
                item.id.clone(),
                400,
                json!({"id": item.id, "status": 400, "body": {"error": {"code": "BadRequest", "message": "Invalid request url."}}}),
            );
        }
    };
    request.extensions_mut().insert(BatchItem);
    let response = dispatch(sim, request).await;
    let code = response.status().as_u16();
    let mut headers = Map::new();
    for name in ITEM_HEADERS {
        if let Some(v) = response.headers().get(*name).and_then(|v| v.to_str().ok()) {
            headers.insert((*name).to_owned(), json!(v));
        }
    }
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut value = json!({"id": item.id, "status": code, "headers": headers});
    if !bytes.is_empty() {
        value["body"] =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    }
    (item.id.clone(), code, value)
}
