//! The HTTP service: routing, the per-request pipeline (request ids, latency, bearer check,
//! random failures, throttling, counters), and starting it on an address or in-process.

use crate::auth::{self, App, IssuedToken};
use crate::journal::{Journal, What};
use crate::misbehave::{self, Misbehaviour};
use crate::model::Tenant;
use crate::odata::GraphError;
use crate::seed::Seed;
use crate::{admin, batch, compliance, groups, licensing, users};
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The whole simulated tenant.
pub struct Sim {
    pub seed: Seed,
    pub apps: Vec<App>,
    pub tenant: Mutex<Tenant>,
    pub misbehaviour: Mutex<Misbehaviour>,
    pub tokens: Mutex<HashMap<String, IssuedToken>>,
    pub counters: Mutex<Counters>,
    /// The Graph router, kept so `$batch` can run its items through the same pipeline.
    pub graph: OnceLock<Router>,
}

/// Request counters, for tests and benchmarks.
#[derive(Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// HTTP requests to Graph (a `$batch` counts once).
    pub http_requests: u64,
    /// Requests inside `$batch` bodies.
    pub batch_items: u64,
    /// Writes (POST/PATCH/PUT/DELETE), direct or inside a batch.
    pub writes: u64,
    /// 429 answers, direct or inside a batch.
    pub throttled: u64,
    /// Token requests answered.
    pub token_requests: u64,
    /// By `METHOD /route`, then by status code.
    pub by_route: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Every write counted above (and every changing compliance command), in order; served by
    /// `GET /_sim/journal`, not by `GET /_sim/counters`.
    #[serde(skip)]
    pub journal: Journal,
}

impl Counters {
    /// Zeroes the counters and empties the journal (whose sequence goes on).
    pub fn reset(&mut self) {
        let mut journal = std::mem::take(&mut self.journal);
        journal.clear();
        *self = Counters {
            journal,
            ..Counters::default()
        };
    }
}

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

impl Sim {
    pub fn new(seed: Seed) -> anyhow::Result<Arc<Sim>> {
        let apps = auth::load_apps(&seed)?;
        let tenant = Tenant::from_seed(&seed);
        let misbehaviour = Misbehaviour::new(seed.misbehaviour.clone());
        Ok(Arc::new(Sim {
            seed,
            apps,
            tenant: Mutex::new(tenant),
            misbehaviour: Mutex::new(misbehaviour),
            tokens: Mutex::new(HashMap::new()),
            counters: Mutex::new(Counters::default()),
            graph: OnceLock::new(),
        }))
    }

    /// Back to the seed: directory, settings, tokens and counters.
    pub fn reset(&self) {
        *self.tenant.lock().unwrap() = Tenant::from_seed(&self.seed);
        self.misbehaviour
            .lock()
            .unwrap()
            .set(self.seed.misbehaviour.clone());
        self.tokens.lock().unwrap().clear();
        self.counters.lock().unwrap().reset();
    }

    /// Locks the tenant after settling replication and group licensing that are due.
    pub fn tenant(&self) -> std::sync::MutexGuard<'_, Tenant> {
        let mut t = self.tenant.lock().unwrap();
        t.settle_replication(Instant::now());
        // Information-barrier applications progress with the clock; deciding an application's
        // outcome here, before any change under this lock, snapshots the tenant as it was
        // when processing began.
        compliance::state::advance(&mut t, jiff::Timestamp::now());
        t
    }

    pub fn replication_delay(&self) -> Duration {
        self.misbehaviour.lock().unwrap().replication_delay()
    }

    pub fn page_size(&self, top: Option<usize>) -> usize {
        let cap = self.misbehaviour.lock().unwrap().settings.max_page_size;
        let size = top.unwrap_or(100);
        if cap > 0 { size.min(cap) } else { size }
    }

    /// Counts one routed Graph request and journals it if it is a write, under one lock.
    fn count(&self, method: &Method, path: &str, route: String, status: StatusCode, write: bool, item: bool) {
        let mut c = self.counters.lock().unwrap();
        if item {
            c.batch_items += 1;
        } else {
            c.http_requests += 1;
        }
        if write {
            c.writes += 1;
            c.journal.record(What::Graph {
                method: method.to_string(),
                path: path.to_owned(),
                route: route.clone(),
                status: status.as_u16(),
                batch: item,
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            c.throttled += 1;
        }
        *c.by_route
            .entry(route)
            .or_default()
            .entry(status.as_u16())
            .or_default() += 1;
    }
}

/// Builds the full router: Graph under `/v1.0`, the token endpoint, the admin API under `/_sim`.
pub fn router(sim: Arc<Sim>) -> Router {
    let graph = Router::new()
        .route("/v1.0/users", get(users::list).post(users::create))
        .route(
            "/v1.0/users/{id}",
            get(users::get_one).patch(users::update).delete(users::delete),
        )
        .route("/v1.0/users/{id}/assignLicense", post(licensing::assign_to_user))
        .route("/v1.0/users/{id}/licenseDetails", get(licensing::license_details))
        .route("/v1.0/users/{id}/memberOf", get(groups::member_of))
        .route(
            "/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole",
            get(groups::directory_roles),
        )
        .route(
            "/v1.0/directory/deletedItems/microsoft.graph.user",
            get(users::list_deleted),
        )
        .route(
            "/v1.0/directory/deletedItems/{id}",
            get(users::get_deleted).delete(users::purge),
        )
        .route("/v1.0/directory/deletedItems/{id}/restore", post(users::restore))
        .route("/v1.0/groups", get(groups::list).post(groups::create))
        .route(
            "/v1.0/groups/{id}",
            get(groups::get_one).patch(groups::update).delete(groups::delete),
        )
        .route("/v1.0/groups/{id}/members", get(groups::members))
        .route("/v1.0/groups/{id}/members/$ref", post(groups::add_member))
        .route(
            "/v1.0/groups/{id}/members/{member}/$ref",
            axum::routing::delete(groups::remove_member),
        )
        .route(
            "/v1.0/groups/{id}/assignLicense",
            post(licensing::assign_to_group),
        )
        .route("/v1.0/subscribedSkus", get(licensing::subscribed_skus))
        .route("/v1.0/$batch", post(batch::batch))
        .route_layer(middleware::from_fn_with_state(sim.clone(), graph_pipeline))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_segment)
        // Outermost, so 405s and unknown segments carry request ids too.
        .layer(middleware::from_fn(request_ids))
        .with_state(sim.clone());
    let _ = sim.graph.set(graph.clone());
    let rest = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token_endpoint))
        .nest("/_sim", admin::router())
        .with_state(sim.clone());
    // Security & Compliance InvokeCommand; request ids give it `base_url()` and `request-id`.
    let compliance = compliance::router()
        .layer(middleware::from_fn(request_ids))
        .with_state(sim.clone());
    Router::new()
        .merge(graph)
        .merge(rest)
        .merge(compliance)
        .layer(middleware::from_fn_with_state(sim, count_tokens))
}

/// Every Graph answer (also 405s, unknown segments and `$batch` items): a fresh `request-id`,
/// the client's `client-request-id` echoed, both available to error rendering.
async fn request_ids(req: Request, next: Next) -> Response {
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

async fn method_not_allowed() -> Response {
    GraphError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
    .into_response()
}

async fn unknown_segment(req: Request) -> Response {
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

async fn count_tokens(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let is_token = req.uri().path().ends_with("/oauth2/v2.0/token");
    let response = next.run(req).await;
    if is_token {
        sim.counters.lock().unwrap().token_requests += 1;
    }
    response
}

/// Every routed Graph request: latency, bearer check, random failure, throttling, counters
/// (inside `request_ids`).
async fn graph_pipeline(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
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

/// A simulator bound to a local address, running until dropped or stopped.
pub struct RunningSim {
    pub sim: Arc<Sim>,
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningSim {
    /// `http://127.0.0.1:<port>`: Graph is at `<url>/v1.0`, the authority at `<url>/`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the simulator on `addr` (use port 0 for a free port) inside the current runtime.
pub async fn start(seed: Seed, addr: SocketAddr) -> anyhow::Result<RunningSim> {
    serve(Sim::new(seed)?, addr).await
}

/// Serves an existing tenant on `addr`: after [`RunningSim::stop`], the same tenant can come back
/// on the same address (an outage, not a reset).
pub async fn serve(sim: Arc<Sim>, addr: SocketAddr) -> anyhow::Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = router(sim.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let background = sim.clone();
    let task = tokio::spawn(async move {
        let ticker = tokio::spawn(group_licensing_loop(background));
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        ticker.abort();
    });
    Ok(RunningSim {
        sim,
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Group-based licensing reaches members asynchronously, as in Entra.
async fn group_licensing_loop(sim: Arc<Sim>) {
    loop {
        let delay = sim
            .misbehaviour
            .lock()
            .unwrap()
            .settings
            .group_licensing_delay_ms
            .max(10);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let retention = Duration::from_secs(
            sim.misbehaviour
                .lock()
                .unwrap()
                .settings
                .deleted_retention_seconds,
        );
        let mut t = sim.tenant();
        t.process_group_licensing();
        t.purge_expired(retention, Instant::now());
    }
}

/// Lets handlers run a request body through the Graph router (used by `$batch`).
pub async fn dispatch(sim: &Sim, request: axum::http::Request<Body>) -> Response {
    use tower::ServiceExt;
    let router = sim.graph.get().expect("router built").clone();
    router.oneshot(request).await.unwrap_or_else(|e| match e {})
}
