//! The shared state of the simulated tenant: the [`Sim`] every handler gets, its request
//! counters, and the way back into the Graph router for `$batch` items.

use crate::auth::{self, App, IssuedToken};
use crate::compliance;
use crate::journal::{Journal, What};
use crate::misbehave::Misbehaviour;
use crate::model::Tenant;
use crate::seed::Seed;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The whole simulated tenant.
pub struct Sim {
    pub seed: Seed,
    pub apps: Vec<App>,
    pub tenant: Mutex<Tenant>,
    /// Administrative units and the apps' directory roles (from the seed; tests may change
    /// them). Locked after `tenant` when both are needed.
    pub roles: Mutex<crate::roles::Roles>,
    pub misbehaviour: Mutex<Misbehaviour>,
    pub tokens: Mutex<HashMap<String, IssuedToken>>,
    /// Device codes and refresh tokens of signed-in users. Never locked before `tenant`.
    pub grants: Mutex<auth::delegated::Grants>,
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

impl Sim {
    pub fn new(seed: Seed) -> anyhow::Result<Arc<Sim>> {
        let apps = auth::load_apps(&seed)?;
        let tenant = Tenant::from_seed(&seed);
        let roles = crate::roles::Roles::from_seed(&seed)?;
        let misbehaviour = Misbehaviour::new(seed.misbehaviour.clone());
        Ok(Arc::new(Sim {
            seed,
            apps,
            tenant: Mutex::new(tenant),
            roles: Mutex::new(roles),
            misbehaviour: Mutex::new(misbehaviour),
            tokens: Mutex::new(HashMap::new()),
            grants: Mutex::default(),
            counters: Mutex::new(Counters::default()),
            graph: OnceLock::new(),
        }))
    }

    /// Back to the seed: directory, settings, tokens and counters.
    pub fn reset(&self) {
        *self.tenant.lock().unwrap() = Tenant::from_seed(&self.seed);
        *self.roles.lock().unwrap() =
            crate::roles::Roles::from_seed(&self.seed).expect("the seed's roles were read at start");
        self.misbehaviour
            .lock()
            .unwrap()
            .set(self.seed.misbehaviour.clone());
        self.tokens.lock().unwrap().clear();
        *self.grants.lock().unwrap() = auth::delegated::Grants::default();
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
    pub(crate) fn count(
        &self,
        method: &Method,
        path: &str,
        route: String,
        status: StatusCode,
        write: bool,
        item: bool,
    ) {
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

/// Lets handlers run a request body through the Graph router (used by `$batch`).
pub async fn dispatch(sim: &Sim, request: axum::http::Request<Body>) -> Response {
    use tower::ServiceExt;
    let router = sim.graph.get().expect("router built").clone();
    router.oneshot(request).await.unwrap_or_else(|e| match e {})
}
