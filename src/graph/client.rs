//! The Graph client: every call goes through the shared budget, carries a cached token, and is
//! retried within bounds — 429 after its `Retry-After` (per item inside `$batch`), 5xx and
//! transport failures with exponential backoff and jitter. Collections are paged by following
//! `@odata.nextLink` verbatim.

use super::batcher::{Batcher, Linger, MAX_BATCH, split};
use super::body::Body;
use super::budget::{Budget, cost};
use super::credentials::TokenProvider;
use super::error::GraphError;
use super::transport::Transport;
use rand::Rng;
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Bounds on retrying one request.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter for attempt `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let ceiling = self.base_delay.saturating_mul(1 << n.min(16)).min(self.max_delay);
        let ms = rand::rng().random_range(ceiling.as_millis() as u64 / 2..=ceiling.as_millis() as u64);
        Duration::from_millis(ms)
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Body,
    pub request_id: Option<String>,
}

/// One request of a `$batch`.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub method: Method,
    /// Relative to the API version, e.g. `/users/{id}`.
    pub path: String,
    pub body: Option<Value>,
}

pub struct GraphClient {
    transport: Arc<Transport>,
    /// Coalesces concurrent requests into `$batch`es; `None` sends each request on its own.
    batcher: Option<Batcher>,
    budget: Arc<Budget>,
    policy: RetryPolicy,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// One page of a collection.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// A request path without its query (for messages: a query can hold a UPN).
fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn same_origin(link: &str, base: &str) -> bool {
    !link.contains("://") || origin(link).eq_ignore_ascii_case(origin(base))
}

/// How long the first request of a batch waits for others to join it...
pub const BATCH_LINGER: Duration = Duration::from_millis(60);
/// ... and while writes wait for the write budget (about ten writes at its pace).
pub const BATCH_LINGER_SATURATED: Duration = Duration::from_millis(500);

impl GraphClient {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        tokens: Arc<TokenProvider>,
        budget: Arc<Budget>,
        policy: RetryPolicy,
    ) -> Self {
        GraphClient {
            transport: Arc::new(Transport {
                http,
                base: base.trim_end_matches('/').to_owned(),
                tokens,
                timeout: policy.timeout,
            }),
            batcher: None,
            budget,
            policy,
            metrics: None,
        }
    }

    /// Sends requests made at about the same time together, as one `$batch` (after
    /// [`Self::with_metrics`], so the batches are counted).
    pub fn with_batching(mut self) -> Self {
        let linger = Linger {
            usual: BATCH_LINGER,
            saturated: BATCH_LINGER_SATURATED,
            budget: self.budget.clone(),
        };
        self.batcher = Some(Batcher::spawn(
            self.transport.clone(),
            linger,
            self.metrics.clone(),
        ));
        self
    }

    /// Counts every request by route and status, and time spent waiting after throttling.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.metrics.as_deref()
    }

    /// The API base, e.g. `https://graph.microsoft.com/v1.0`; references (`@odata.id`) use it.
    pub fn base(&self) -> &str {
        &self.transport.base
    }

    /// The tenant-wide budget this client draws on.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Waits for and takes a request's share of the budget, and counts it.
    async fn take_budget(&self, units: f64, write: bool) {
        self.budget.acquire(units, write).await;
        if let Some(m) = &self.metrics {
            m.budget_consumed(units, write);
        }
    }

    /// One attempt, without retries: the budget first, then the request, alone or batched.
    async fn attempt(&self, method: &Method, path: &str, body: Option<&Value>) -> Result<Answer, GraphError> {
        let relative = path.strip_prefix(self.base()).unwrap_or(path);
        let (units, write) = cost(method, relative);
        self.take_budget(units, write).await;
        // Absolute links (`@odata.nextLink`) and `$batch` itself go alone.
        let raw = match &self.batcher {
            Some(b) if relative.starts_with('/') && relative != "/$batch" => {
                b.send(method, relative, body).await
            }
            _ => self.transport.send(method, &self.transport.url(path), body).await,
        };
        let status = raw.as_ref().map_or(0, |r| r.status);
        if let Some(m) = &self.metrics {
            m.graph_request(method.as_str(), relative, status);
        }
        let raw = raw?;
        if raw.status >= 400 {
            return Err(GraphError::from_response(
                raw.status,
                raw.request_id,
                raw.retry_after,
                &raw.body.value(),
            ));
        }
        Ok(Answer {
            status: raw.status,
            body: raw.body,
            request_id: raw.request_id,
        })
    }

    /// Sends a request, retrying transient failures within the policy's bounds.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, GraphError> {
        let mut reauthenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(&method, path, body).await {
                Ok(answer) => return Ok(answer),
                Err(e) if e.status() == Some(401) && !reauthenticated => {
                    // The cached token was revoked or expired early: fetch a new one once.
                    reauthenticated = true;
                    self.transport.tokens.invalidate().await;
                }
                Err(e) if e.is_transient() && attempt < self.policy.max_attempts => {
                    let wait = e.retry_after().unwrap_or_else(|| self.policy.backoff(attempt));
                    if e.is_throttled() {
                        self.budget.pause(wait).await;
                        if let Some(m) = &self.metrics {
                            m.throttle_wait(wait);
                        }
                    }
                    tracing::debug!(%method, status = ?e.status(), attempt, ?wait, request_id = ?e.request_id(), "retrying Graph request");
                    tokio::time::sleep(wait).await;
                }
                Err(e) if e.is_transient() => {
                    return Err(GraphError::Exhausted {
                        attempts: attempt,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, GraphError> {
        Ok(self.call(Method::GET, path, None).await?.body.value())
    }

    /// A GET answer decoded as `T`, without building a `Value` on the way.
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T, GraphError> {
        let body = self.call(Method::GET, path, None).await?.body;
        // The route, not the path: a path can hold a user principal name.
        body.decode().map_err(|e| {
            GraphError::Decode(format!(
                "the answer of {}: {e}",
                crate::metrics::route_template(path)
            ))
        })
    }

    /// Every item of a collection, following `@odata.nextLink` until it is absent.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, GraphError> {
        self.list_as(path).await
    }

    /// Every item of a collection decoded as `T` page by page, so no more than one page's JSON
    /// is held at a time however long the collection.
    pub async fn list_as<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, GraphError> {
        self.list_map(path, |item: T| item).await
    }

    /// [`Self::list_as`], each item turned into what the caller keeps as its page arrives, so
    /// a long listing is never held whole in its decoded form.
    pub async fn list_map<T: DeserializeOwned, U>(
        &self,
        path: &str,
        mut keep: impl FnMut(T) -> U,
    ) -> Result<Vec<U>, GraphError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_owned());
        let mut seen = std::collections::HashSet::new();
        while let Some(url) = next {
            let page: Page<T> = self
                .call(Method::GET, &url, None)
                .await?
                .body
                .decode()
                .map_err(|e| GraphError::Decode(format!("a page of {}: {e}", path_only(path))))?;
            items.extend(page.value.into_iter().map(&mut keep));
            next = page.next_link;
            if let Some(link) = &next {
                // The token goes wherever the link points: only ever to the configured Graph,
                // and a link seen before would page forever.
                if !same_origin(link, self.base()) {
                    return Err(GraphError::Decode(format!(
                        "a nextLink leaves {}: refused",
                        origin(self.base())
                    )));
                }
                if !seen.insert(link.clone()) {
                    return Err(GraphError::Decode("a nextLink repeats: paging stopped".into()));
                }
            }
        }
        Ok(items)
    }

    /// Runs requests through `$batch`, 20 at a time; items throttled or failing transiently are
    /// sent again after their own `Retry-After` (or backoff), within the retry bounds. Results
    /// come back in the order of `requests`.
    pub async fn batch(&self, requests: &[BatchRequest]) -> Vec<Result<Answer, GraphError>> {
        let mut results: Vec<Option<Result<Answer, GraphError>>> =
            (0..requests.len()).map(|_| None).collect();
        for chunk_start in (0..requests.len()).step_by(MAX_BATCH) {
            let mut pending: Vec<usize> =
                (chunk_start..(chunk_start + MAX_BATCH).min(requests.len())).collect();
            // Counts rounds without progress: a round where some items succeed starts over, so a
            // throttled batch drains at Graph's pace instead of giving up.
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                let before = pending.len();
                let (retry, wait) = self.batch_round(requests, &pending, attempt, &mut results).await;
                if !retry.is_empty() {
                    tokio::time::sleep(wait).await;
                }
                if retry.len() < before {
                    attempt = 0;
                }
                pending = retry;
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every item has a result"))
            .collect()
    }

    /// Sends `pending` as one `$batch`, fills in the final results, and returns the items to
    /// send again with how long to wait first.
    async fn batch_round(
        &self,
        requests: &[BatchRequest],
        pending: &[usize],
        attempt: u32,
        results: &mut [Option<Result<Answer, GraphError>>],
    ) -> (Vec<usize>, Duration) {
        // Item ids are positions in this round; `split` matches the answers back by them.
        let items: Vec<Value> = pending
            .iter()
            .enumerate()
            .map(|(k, i)| {
                let r = &requests[*i];
                let mut item = json!({"id": k.to_string(), "method": r.method.as_str(), "url": r.path});
                if let Some(b) = &r.body {
                    item["body"] = b.clone();
                    item["headers"] = json!({"Content-Type": "application/json"});
                }
                item
            })
            .collect();
        // Graph charges each item as if sent alone; the `$batch` itself costs nothing.
        for i in pending {
            let (units, write) = cost(&requests[*i].method, &requests[*i].path);
            self.take_budget(units, write).await;
        }
        let outer = match self
            .call(Method::POST, "/$batch", Some(&json!({"requests": items})))
            .await
        {
            Ok(a) => a,
            Err(e) => {
                let message = e.to_string();
                for i in pending {
                    results[*i] = Some(Err(GraphError::Decode(format!("batch failed: {message}"))));
                }
                return (Vec::new(), Duration::ZERO);
            }
        };
        let mut retry = Vec::new();
        let mut wait = Duration::ZERO;
        for (i, answer) in pending.iter().copied().zip(split(&outer.body, pending.len())) {
            let e = match answer {
                Ok(raw) if raw.status < 400 => {
                    results[i] = Some(Ok(Answer {
                        status: raw.status,
                        body: raw.body,
                        request_id: raw.request_id,
                    }));
                    continue;
                }
                Ok(raw) => {
                    GraphError::from_response(raw.status, raw.request_id, raw.retry_after, &raw.body.value())
                }
                Err(e) => e,
            };
            if e.is_transient() && attempt < self.policy.max_attempts {
                wait = wait.max(e.retry_after().unwrap_or_else(|| self.policy.backoff(attempt)));
                if e.is_throttled() {
                    self.budget.pause(wait).await;
                }
                retry.push(i);
            } else if e.is_transient() {
                results[i] = Some(Err(GraphError::Exhausted {
                    attempts: attempt,
                    last: Box::new(e),
                }));
            } else {
                results[i] = Some(Err(e));
            }
        }
        (retry, wait)
    }
}

/// An OData string literal: quoted, with quotes inside doubled, so a value is never read as
/// filter syntax.
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A `$filter` value encoded for a URL query.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_strings_escape_quotes() {
        assert_eq!(odata_string("O'Brien"), "'O''Brien'");
        assert_eq!(
            odata_string("x' or displayName eq 'y"),
            "'x'' or displayName eq ''y'"
        );
    }

    #[test]
    fn next_links_stay_on_the_graph_origin() {
        let base = "https://graph.microsoft.com/v1.0";
        assert!(same_origin(
            "https://graph.microsoft.com/v1.0/users?$skiptoken=x",
            base
        ));
        assert!(same_origin("/users?$skiptoken=x", base));
        assert!(!same_origin("https://evil.example/v1.0/users", base));
        assert!(!same_origin(
            "https://graph.microsoft.com.evil.example/v1.0",
            base
        ));
        assert_eq!(origin("http://127.0.0.1:8080/v1.0/x"), "http://127.0.0.1:8080");
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy::default();
        assert!(p.backoff(1) <= Duration::from_millis(400));
        assert!(p.backoff(20) <= p.max_delay);
        assert!(p.backoff(5) >= Duration::from_millis(3200));
    }
}
