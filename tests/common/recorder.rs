//! A recording pass-through in front of the simulated tenant: every HTTP request is forwarded
//! unchanged and remembered with its timing and, for `$batch`, each item's answer. Tests use it
//! to check *when* and *how often* the client sent something, which the tenant's counters
//! cannot tell.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One answered item: a direct request, or one request inside a `$batch`.
#[derive(Clone, Debug)]
pub struct Item {
    /// When the HTTP request carrying it arrived, and when its answer left.
    pub sent: Instant,
    pub answered: Instant,
    pub url: String,
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// Whether it travelled inside a `$batch`.
    pub batched: bool,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    items: Arc<Mutex<Vec<Item>>>,
}

pub struct Recorder {
    pub url: String,
    items: Arc<Mutex<Vec<Item>>>,
}

impl Recorder {
    /// Listens on a free loopback port and forwards to `upstream` (scheme and authority).
    pub async fn start(upstream: &str) -> Recorder {
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            items: Arc::default(),
        };
        let items = shared.items.clone();
        let app = axum::Router::new().fallback(forward).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Recorder { url, items }
    }

    /// Every Graph item answered so far (token requests left out), in order of arrival.
    pub fn items(&self) -> Vec<Item> {
        let mut items = self.items.lock().unwrap().clone();
        items.sort_by_key(|i| i.sent);
        items
    }

    /// The items as lines of `+<ms since the first> <status> [retry-after] direct|batched`.
    pub fn timeline(&self) -> String {
        let items = self.items();
        let Some(first) = items.first().map(|i| i.sent) else {
            return "(nothing sent)".into();
        };
        let line = |i: &Item| {
            let wait = i
                .retry_after
                .map(|w| format!(" retry-after {w:?}"))
                .unwrap_or_default();
            let how = if i.batched { "batched" } else { "direct" };
            format!("+{}ms {}{wait} {how}", (i.sent - first).as_millis(), i.status)
        };
        items.iter().map(line).collect::<Vec<_>>().join("\n")
    }
}

async fn forward(State(s): State<Shared>, req: Request) -> Response {
    let sent = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut out = s
        .http
        .request(parts.method.clone(), format!("{}{path}", s.upstream))
        .body(body.clone());
    for (name, value) in &parts.headers {
        if name != "host" {
            out = out.header(name, value);
        }
    }
    let answer = out.send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap();
    let answered = Instant::now();
    if path.starts_with("/v1.0") {
        let recorded = items_of(&path, &body, status.as_u16(), &headers, &bytes, sent, answered);
        s.items.lock().unwrap().extend(recorded);
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(bytes)).unwrap()
}

fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse().ok().map(Duration::from_secs)
}

fn items_of(
    path: &str,
    request: &Bytes,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    answer: &Bytes,
    sent: Instant,
    answered: Instant,
) -> Vec<Item> {
    let item = |url: String, status: u16, retry_after: Option<Duration>, batched: bool| Item {
        sent,
        answered,
        url,
        status,
        retry_after,
        batched,
    };
    let header = headers.get("retry-after").and_then(|v| v.to_str().ok());
    if !path.starts_with("/v1.0/$batch") || status != 200 {
        return vec![item(path.to_owned(), status, retry_after(header), false)];
    }
    let asked: Value = serde_json::from_slice(request).unwrap();
    let answers: Value = serde_json::from_slice(answer).unwrap();
    let answers = answers["responses"].as_array().unwrap();
    asked["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let a = answers.iter().find(|a| a["id"] == r["id"]).unwrap();
            let wait = a["headers"]["Retry-After"]
                .as_str()
                .or(a["headers"]["retry-after"].as_str());
            item(
                r["url"].as_str().unwrap().to_owned(),
                a["status"].as_u64().unwrap() as u16,
                retry_after(wait),
                true,
            )
        })
        .collect()
}
