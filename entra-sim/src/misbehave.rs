//! Realistic misbehaviour, all off by default and seeded for reproducible runs: latency with
//! jitter, throttling by Graph's resource-unit model, random 5xx, replication delay, and other
//! forms of the compliance endpoint's answers about policies applications.

use crate::odata::GraphError;
use axum::http::{Method, StatusCode};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Settings {
    /// Seed of the random generator behind every random choice.
    pub seed: u64,
    /// Added to every Graph request (a `$batch` counts once).
    pub latency_ms: u64,
    /// Uniform jitter of +/- this many milliseconds around `latencyMs`.
    pub jitter_ms: u64,
    /// Throttling by the resource-unit model.
    pub throttling: Throttling,
    /// Fraction (0..1) of Graph requests answered with a random 500/502/503/504.
    pub error_rate: f64,
    /// A new object stays invisible to reads and references for a random time up to this.
    pub replication_delay_ms: u64,
    /// Cap on page size, to force `@odata.nextLink` paging (0: Graph's defaults).
    pub max_page_size: usize,
    /// How long group-based licensing takes to reach members.
    pub group_licensing_delay_ms: u64,
    /// How long soft-deleted users stay restorable (default 30 days).
    pub deleted_retention_seconds: u64,
    /// Speed-up of the information-barrier clock (1.0: real time; 3600.0: an hour per second).
    /// Each policies application keeps the value in effect when it was started.
    pub barrier_time_scale: f64,
    /// How the compliance endpoint writes policies applications: `{"times": "iso" |
    /// "isoOffset" | "msDate" | "msDateOffset" | "missing" | "unparseable", "status": "normal"
    /// | "missing" | "unparseable"}` (default iso and normal). See [`crate::compliance::answers`].
    pub application_answers: crate::compliance::answers::ApplicationAnswers,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            seed: 1,
            latency_ms: 0,
            jitter_ms: 0,
            throttling: Throttling::default(),
            error_rate: 0.0,
            replication_delay_ms: 0,
            max_page_size: 0,
            group_licensing_delay_ms: 200,
            deleted_retention_seconds: 30 * 24 * 3600,
            barrier_time_scale: 1.0,
            application_answers: Default::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Throttling {
    pub enabled: bool,
    /// Resource units per 10 s per app and tenant; 0 picks Graph's value by tenant size
    /// (S < 50 users: 3,500; M <= 500: 5,000; L: 8,000).
    pub resource_units_per_10s: u64,
    /// Writes per 150 s per app and tenant (Graph: 3,000).
    pub writes_per_150s: u64,
    /// Writes per 300 s per tenant across apps (Graph: 18,000).
    pub tenant_writes_per_300s: u64,
    /// Fraction (0..1) of 429s sent without `Retry-After`, as some identity services do.
    pub omit_retry_after_rate: f64,
}

impl Default for Throttling {
    fn default() -> Self {
        Throttling {
            enabled: false,
            resource_units_per_10s: 0,
            writes_per_150s: 3000,
            tenant_writes_per_300s: 18000,
            omit_retry_after_rate: 0.0,
        }
    }
}

/// A token bucket that refills continuously; usage keeps accruing while throttled (the bucket
/// may go negative), as Graph documents.
#[derive(Debug, Clone)]
struct Bucket {
    level: f64,
    capacity: f64,
    per_second: f64,
    at: Instant,
}

impl Bucket {
    fn new(capacity: f64, window: Duration, now: Instant) -> Self {
        Bucket {
            level: capacity,
            capacity,
            per_second: capacity / window.as_secs_f64(),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * self.per_second).min(self.capacity);
        self.at = now;
    }

    /// Seconds until `cost` fits again.
    fn wait_for(&self, cost: f64) -> f64 {
        ((cost - self.level) / self.per_second).max(0.0)
    }

    fn usage(&self) -> f64 {
        1.0 - self.level / self.capacity
    }
}

/// Mutable misbehaviour state: the random generator and the throttling buckets.
pub struct Misbehaviour {
    pub settings: Settings,
    rng: StdRng,
    buckets: HashMap<(String, &'static str), Bucket>,
}

/// The outcome of charging one request.
pub struct Charge {
    pub resource_units: u64,
    pub limit_percentage: Option<f64>,
}

impl Misbehaviour {
    pub fn new(settings: Settings) -> Self {
        let rng = StdRng::seed_from_u64(settings.seed);
        Misbehaviour {
            settings,
            rng,
            buckets: HashMap::new(),
        }
    }

    pub fn set(&mut self, settings: Settings) {
        self.rng = StdRng::seed_from_u64(settings.seed);
        self.buckets.clear();
        self.settings = settings;
    }

    pub fn latency(&mut self) -> Duration {
        let s = &self.settings;
        if s.latency_ms == 0 && s.jitter_ms == 0 {
            return Duration::ZERO;
        }
        let jitter = if s.jitter_ms > 0 {
            self.rng.random_range(-(s.jitter_ms as i64)..=s.jitter_ms as i64)
        } else {
            0
        };
        Duration::from_millis((s.latency_ms as i64 + jitter).max(0) as u64)
    }

    pub fn random_failure(&mut self) -> Option<GraphError> {
        if self.settings.error_rate <= 0.0 || !self.rng.random_bool(self.settings.error_rate.min(1.0)) {
            return None;
        }
        let (status, code, message) = match self.rng.random_range(0..4) {
            0 => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                "An internal server error occurred.",
            ),
            1 => (
                StatusCode::BAD_GATEWAY,
                "badGateway",
                "The server received an invalid response from an upstream server.",
            ),
            2 => (
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please retry later.",
            ),
            _ => (StatusCode::GATEWAY_TIMEOUT, "timeout", "The request timed out."),
        };
        Some(GraphError::new(status, code, message))
    }

    pub fn replication_delay(&mut self) -> Duration {
        match self.settings.replication_delay_ms {
            0 => Duration::ZERO,
            max => Duration::from_millis(self.rng.random_range(0..=max)),
        }
    }

    /// Charges one request against the app+tenant resource-unit and write budgets and the
    /// tenant write budget. Returns the 429 to send when a budget is exhausted.
    pub fn charge(
        &mut self,
        app: &str,
        tenant: &str,
        cost: u64,
        write: bool,
        users: usize,
    ) -> Result<Charge, GraphError> {
        let t = self.settings.throttling.clone();
        if !t.enabled {
            return Ok(Charge {
                resource_units: cost,
                limit_percentage: None,
            });
        }
        let now = Instant::now();
        let checks = budgets(&t, app, tenant, write, users);
        let (refusal, usage) = self.draw(checks, cost, now);
        if let Some(refusal) = refusal {
            return Err(self.too_many_requests(&t, refusal));
        }
        Ok(Charge {
            resource_units: cost,
            limit_percentage: (usage >= 0.8).then_some((usage * 10.0).round() / 10.0),
        })
    }

    /// Takes the request's share from every budget; gives the budget that refuses it for
    /// longest, if any, and the highest usage afterwards.
    fn draw(&mut self, checks: Vec<Check>, cost: u64, now: Instant) -> (Option<Refusal>, f64) {
        let mut worst: Option<Refusal> = None;
        let mut usage: f64 = 0.0;
        for Check {
            key,
            capacity,
            window,
            information,
            scope,
        } in checks
        {
            let amount = if key.1 == "ru" { cost as f64 } else { 1.0 };
            let bucket = self
                .buckets
                .entry(key)
                .or_insert_with(|| Bucket::new(capacity, window, now));
            bucket.refill(now);
            if bucket.level < amount {
                let wait = bucket.wait_for(amount);
                if worst.as_ref().is_none_or(|w| wait > w.wait) {
                    worst = Some(Refusal {
                        wait,
                        information,
                        scope,
                    });
                }
            }
            // Usage accrues even when the request is refused.
            bucket.level = (bucket.level - amount).max(-bucket.capacity);
            usage = usage.max(bucket.usage());
        }
        (worst, usage)
    }

    /// Graph's 429, `Retry-After` left out at the configured rate.
    fn too_many_requests(&mut self, t: &Throttling, refusal: Refusal) -> GraphError {
        let mut e = GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Please retry again later.",
        );
        if !self.rng.random_bool(t.omit_retry_after_rate.clamp(0.0, 1.0)) {
            e.retry_after = Some(refusal.wait.ceil().max(1.0) as u64);
        }
        e.extra_headers.push(("x-ms-throttle-scope", refusal.scope));
        e.extra_headers
            .push(("x-ms-throttle-information", refusal.information.to_owned()));
        e
    }
}

/// The budgets a request is checked against: resource units per app and tenant (by tenant
/// size unless configured), and for a write the app's and the tenant's write budgets.
fn budgets(t: &Throttling, app: &str, tenant: &str, write: bool, users: usize) -> Vec<Check> {
    let ru = if t.resource_units_per_10s > 0 {
        t.resource_units_per_10s
    } else if users < 50 {
        3500
    } else if users <= 500 {
        5000
    } else {
        8000
    } as f64;
    let check = |key: (String, &'static str), capacity: f64, secs: u64, information, scope| Check {
        key,
        capacity,
        window: Duration::from_secs(secs),
        information,
        scope,
    };
    let mut checks = vec![check(
        (app.to_owned(), "ru"),
        ru,
        10,
        "ResourceUnitLimitExceeded",
        format!("Tenant_Application/ReadWrite/{app}/{tenant}"),
    )];
    if write {
        checks.push(check(
            (app.to_owned(), "write"),
            t.writes_per_150s as f64,
            150,
            "WriteLimitExceeded",
            format!("Tenant_Application/Write/{app}/{tenant}"),
        ));
        checks.push(check(
            (String::new(), "tenant-write"),
            t.tenant_writes_per_300s as f64,
            300,
            "WriteLimitExceeded",
            format!("Tenant/Write/{app}/{tenant}"),
        ));
    }
    checks
}

impl Misbehaviour {
    /// The seeded generator, for other random choices (e.g. batch response order).
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }
}

/// One budget a request is checked against.
struct Check {
    key: (String, &'static str),
    capacity: f64,
    window: Duration,
    information: &'static str,
    scope: String,
}

/// A budget that refuses a request: seconds until it fits, and the throttle headers.
struct Refusal {
    wait: f64,
    information: &'static str,
    scope: String,
}

/// The resource-unit cost of a request, from Graph's published table (with the `$select`,
/// `$expand` and small-`$top` modifiers; minimum 1).
pub fn cost(method: &Method, path: &str, query: Option<&str>) -> (u64, bool) {
    let write = !matches!(*method, Method::GET | Method::HEAD);
    if write {
        return (1, true);
    }
    let p = path.trim_end_matches('/').to_lowercase();
    let segments: Vec<&str> = p.trim_start_matches("/v1.0/").split('/').collect();
    let mut base: i64 = match segments.as_slice() {
        ["users"] => 2,
        ["subscribedskus"] => 3,
        ["groups", _, "members"] => 3,
        ["groups", _, "transitivemembers"] => 5,
        ["users", _, "licensedetails"] => 2,
        ["users", _, "memberof"] => 2,
        ["users", _, "transitivememberof"] => 2,
        _ => 1,
    };
    let q = query.unwrap_or_default();
    let params: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    if params.iter().any(|(k, _)| k == "$select") {
        base -= 1;
    }
    if params.iter().any(|(k, _)| k == "$expand") {
        base += 1;
    }
    if params
        .iter()
        .any(|(k, v)| k == "$top" && v.parse::<u64>().is_ok_and(|n| n < 20))
    {
        base -= 1;
    }
    (base.max(1) as u64, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_published_table() {
        assert_eq!(cost(&Method::GET, "/v1.0/users", None), (2, false));
        assert_eq!(cost(&Method::GET, "/v1.0/users", Some("$select=id")), (1, false));
        assert_eq!(cost(&Method::GET, "/v1.0/subscribedSkus", None), (3, false));
        assert_eq!(
            cost(&Method::GET, "/v1.0/groups/x/members", Some("$top=5")),
            (2, false)
        );
        assert_eq!(cost(&Method::POST, "/v1.0/users", None), (1, true));
    }

    /// Checks the table against figures read from Microsoft's documentation, not against the
    /// operator's copy (agreement between the two copies proves nothing about Graph).
    ///
    /// Source: "Microsoft Graph service-specific throttling limits", section "Identity and
    /// access service limits", table of base request costs and "Other factors that affect a
    /// request cost": <https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-service-limits>
    /// (markdown source: github.com/microsoftgraph/microsoft-graph-docs-contrib,
    /// concepts/throttling-limits.md, commit e62a3c1df706cc5487fc6095fc689734bb25d2f6), read
    /// 2026-12-02. The table has no `$batch` row: batch items are evaluated one by one
    /// ("Throttling and batching", <https://learn.microsoft.com/en-us/graph/throttling#throttling-and-batching>,
    /// same date), as `tests/batch.rs` checks of the pipeline.
    #[test]
    fn costs_match_the_figures_microsoft_publishes() {
        let get = |path: &str, query: Option<&str>| cost(&Method::GET, path, query);
        // (method, path, base resource units, write cost) as published; `me/...` costs apply
        // to `users/{id}/...` too, as the same page notes.
        let published: [(&str, &str, u64, bool); 8] = [
            ("GET", "/v1.0/users", 2, false),
            ("GET", "/v1.0/subscribedSkus", 3, false),
            ("GET", "/v1.0/groups/g/members", 3, false),
            ("GET", "/v1.0/groups/g/transitiveMembers", 5, false),
            ("GET", "/v1.0/users/u/licenseDetails", 2, false),
            ("GET", "/v1.0/users/u/memberOf", 2, false),
            ("GET", "/v1.0/users/u/transitiveMemberOf", 2, false),
            // Any identity path not listed: 1 (and a write cost of 1 for POST/PATCH/PUT/DELETE).
            ("GET", "/v1.0/users/u", 1, false),
        ];
        for (method, path, units, write) in published {
            let method: Method = method.parse().unwrap();
            assert_eq!(cost(&method, path, None), (units, write), "{method} {path}");
        }
        for method in [Method::POST, Method::PATCH, Method::PUT, Method::DELETE] {
            assert_eq!(cost(&method, "/v1.0/users/u", None), (1, true), "{method}");
        }
        // $select -1, $expand +1, $top below 20 -1, never below 1.
        assert_eq!(get("/v1.0/users", Some("$select=id")), (1, false));
        assert_eq!(get("/v1.0/users", Some("$expand=manager")), (3, false));
        assert_eq!(get("/v1.0/users", Some("$top=19")), (1, false));
        assert_eq!(get("/v1.0/users", Some("$top=20")), (2, false));
        assert_eq!(get("/v1.0/users/u", Some("$select=id&$top=5")), (1, false));
    }

    #[test]
    fn budget_exhaustion_gives_429_with_retry_after_and_scope() {
        let mut m = Misbehaviour::new(Settings {
            throttling: Throttling {
                enabled: true,
                resource_units_per_10s: 10,
                ..Throttling::default()
            },
            ..Settings::default()
        });
        for _ in 0..5 {
            m.charge("app", "t", 2, false, 10).map_err(|_| ()).unwrap();
        }
        let e = m.charge("app", "t", 2, false, 10).err().expect("throttled");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.retry_after.unwrap() >= 1);
        assert!(
            e.extra_headers
                .iter()
                .any(|(k, v)| *k == "x-ms-throttle-information" && v == "ResourceUnitLimitExceeded")
        );
    }
}
