//! Coalescing: requests that different reconciles make at about the same moment travel together
//! in one `$batch` (Graph takes up to 20 per batch). Each caller still gets its own answer and
//! keeps its own retry loop, so a throttled or failed item is retried alone, after its own
//! `Retry-After`; nothing in the reconcilers knows its request was batched.
//!
//! Graph charges every item against the throttling budgets as if it had been sent alone, so
//! batching saves round trips and connections, not budget; the budget is taken per item before
//! it is queued.

use super::body::{Body, batch_items};
use super::budget::Budget;
use super::error::GraphError;
use super::transport::{Raw, Transport};
use crate::metrics::Metrics;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Graph's limit on the number of requests in one `$batch`.
pub const MAX_BATCH: usize = 20;

struct Item {
    method: Method,
    /// Relative to the API version, e.g. `/users/{id}`.
    path: String,
    body: Option<Value>,
    reply: oneshot::Sender<Result<Raw, GraphError>>,
}

/// How long the first request of a batch waits for others to join it.
#[derive(Clone)]
pub struct Linger {
    /// Long enough for concurrent reconciles to join, short against Graph's latency. (A batch
    /// that went once no request joined it for 10 ms was measured: 100 accounts were Ready
    /// 0.8 s sooner, and 1,000 took twice the HTTP requests.)
    pub usual: Duration,
    /// While writes wait for the write budget: they then go at the budget's pace whatever the
    /// batcher does, so waiting longer fills batches that would go out with a write or two,
    /// and costs the accounts waiting nothing.
    pub saturated: Duration,
    pub budget: Arc<Budget>,
}

impl Linger {
    /// How long a batch starting now waits to fill (see [`Budget::writes_saturated`]).
    fn now(&self) -> Duration {
        if self.budget.writes_saturated() {
            self.saturated
        } else {
            self.usual
        }
    }
}

/// The sending side; the collecting task runs until every sender is dropped.
pub struct Batcher {
    queue: mpsc::UnboundedSender<Item>,
}

impl Batcher {
    /// Starts the collector; `metrics` counts how full its sends are.
    pub fn spawn(transport: Arc<Transport>, linger: Linger, metrics: Option<Arc<Metrics>>) -> Batcher {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(collect(rx, transport, linger, metrics));
        Batcher { queue }
    }

    /// Sends one request, possibly together with others; the answer is this request's own.
    pub async fn send(&self, method: &Method, path: &str, body: Option<&Value>) -> Result<Raw, GraphError> {
        let (reply, answer) = oneshot::channel();
        let item = Item {
            method: method.clone(),
            path: path.to_owned(),
            body: body.cloned(),
            reply,
        };
        if self.queue.send(item).is_err() {
            return Err(GraphError::Transport {
                what: "Microsoft Graph",
                message: "the request queue has shut down".into(),
            });
        }
        answer.await.unwrap_or_else(|_| {
            Err(GraphError::Transport {
                what: "Microsoft Graph",
                message: "the batch carrying this request was dropped".into(),
            })
        })
    }
}

async fn collect(
    mut rx: mpsc::UnboundedReceiver<Item>,
    transport: Arc<Transport>,
    linger: Linger,
    metrics: Option<Arc<Metrics>>,
) {
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        let deadline = Instant::now() + linger.now();
        while items.len() < MAX_BATCH {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(item) => items.push(item),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if let Some(m) = &metrics {
            m.graph_batch(items.len());
        }
        // Batches go out concurrently: a slow one never holds up the next.
        tokio::spawn(dispatch(items, transport.clone()));
    }
}

async fn dispatch(mut items: Vec<Item>, transport: Arc<Transport>) {
    if items.len() == 1 {
        let item = items.pop().expect("one item");
        let url = transport.url(&item.path);
        let answer = transport.send(&item.method, &url, item.body.as_ref()).await;
        let _ = item.reply.send(answer);
        return;
    }
    let requests: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut r = json!({"id": i.to_string(), "method": item.method.as_str(), "url": item.path});
            if let Some(b) = &item.body {
                r["body"] = b.clone();
                r["headers"] = json!({"Content-Type": "application/json"});
            }
            r
        })
        .collect();
    let url = transport.url("/$batch");
    let outer = transport
        .send(&Method::POST, &url, Some(&json!({ "requests": requests })))
        .await;
    let answers = match outer {
        // The batch itself was refused (throttled, unavailable): every item carries that answer
        // back to its own caller, whose retry loop decides.
        Ok(raw) if raw.status >= 400 => items.iter().map(|_| Ok(raw.clone())).collect(),
        Ok(raw) => split(&raw.body, items.len()),
        Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
    };
    for (item, answer) in items.into_iter().zip(answers) {
        let _ = item.reply.send(answer);
    }
}

/// The `$batch` answer, item by item, in request order (item `i` has the id `"i"`).
/// Each item's body is copied out as text, never parsed here: a batch of twenty pages of users
/// is a sizeable document, and each reader decodes its own into the type it wants.
/// An item without a valid HTTP status is an error: read as success, a refused write would be
/// reported as done.
pub(super) fn split(body: &Body, n: usize) -> Vec<Result<Raw, GraphError>> {
    let mut out: Vec<Result<Raw, GraphError>> = (0..n)
        .map(|i| Err(GraphError::Decode(format!("the $batch answer lacks item {i}"))))
        .collect();
    for r in batch_items(body) {
        let Some(i) =
            r.id.as_str()
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|i| *i < n)
        else {
            continue;
        };
        let header = |name: &str| {
            r.headers
                .as_object()
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .map(|(_, v)| v)
        };
        let retry_after = header("retry-after")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
            .map(super::transport::retry_after_secs);
        let request_id = header("request-id").and_then(|v| v.as_str()).map(str::to_owned);
        let status = r
            .status
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..=599).contains(s));
        out[i] = match status {
            Some(status) => Ok(Raw {
                status,
                body: r.body.map(Body::from).unwrap_or_default(),
                request_id,
                retry_after,
            }),
            None => Err(GraphError::Decode(format!(
                "the $batch answer for item {i} has no valid status (request-id {})",
                request_id.as_deref().unwrap_or("none")
            ))),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(v: &Value) -> Body {
        Body::from_bytes(serde_json::to_vec(v).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn batches_wait_longer_only_while_writes_wait_for_the_budget() {
        let budget = Arc::new(Budget::new(super::super::budget::BudgetConfig {
            resource_units_per_10s: 1000.0,
            writes_per_150s: 1.0,
        }));
        let linger = Linger {
            usual: Duration::from_millis(60),
            saturated: Duration::from_millis(500),
            budget: budget.clone(),
        };
        budget.acquire(1.0, true).await;
        assert_eq!(
            linger.now(),
            Duration::from_millis(60),
            "the last write went at once"
        );
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire(1.0, true).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(
            linger.now(),
            Duration::from_millis(500),
            "a write waits for the budget"
        );
        waiting.abort();
    }

    #[test]
    fn batch_answers_are_matched_to_items_by_id() {
        let body = json!({"responses": [
            {"id": "1", "status": 429, "headers": {"Retry-After": "7"}, "body": {"error": {"code": "TooManyRequests"}}},
            {"id": "0", "status": 200, "headers": {"request-id": "r0"}, "body": {"id": "u0"}},
            {"id": "9", "status": 200, "body": {}},
        ]});
        let out = split(&body_of(&body), 3);
        let first = out[0].as_ref().unwrap();
        assert_eq!(
            (first.status, first.body.value()["id"].as_str()),
            (200, Some("u0"))
        );
        assert_eq!(first.request_id.as_deref(), Some("r0"));
        let second = out[1].as_ref().unwrap();
        assert_eq!(
            (second.status, second.retry_after),
            (429, Some(Duration::from_secs(7)))
        );
        assert!(
            out[2].is_err(),
            "an item without an answer is an error, not a success"
        );
    }

    #[test]
    fn an_item_without_a_valid_status_is_an_error_not_a_success() {
        let body = json!({"responses": [
            {"id": "0", "body": {"id": "u0"}},
            {"id": "1", "status": "200", "body": {}},
            {"id": "2", "status": 70000, "body": {}},
            {"id": "3", "status": 204},
        ]});
        let out = split(&body_of(&body), 4);
        for (i, r) in out[..3].iter().enumerate() {
            let e = r.as_ref().expect_err("no valid status");
            assert!(e.to_string().contains("no valid status"), "item {i}: {e}");
            assert!(!e.is_transient(), "item {i}: retrying cannot help");
        }
        assert_eq!(out[3].as_ref().unwrap().status, 204);
    }

    #[test]
    fn answers_of_any_shape_are_errors_not_panics() {
        for body in [
            json!(false),
            json!([1]),
            json!({"responses": [true, "x", {"id": "0"}]}),
        ] {
            assert!(split(&body_of(&body), 2).iter().all(Result::is_err), "{body}");
        }
    }
}
