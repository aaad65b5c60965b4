//! One request budget for the whole tenant, shared by every reconciler: a token bucket over
//! Graph's resource units and one over writes, sized below Graph's documented limits so the
//! operator slows itself down before Graph throttles it; a 429 pauses everyone until its
//! `Retry-After` has passed, so a thousand objects never retry into a throttling storm.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct BudgetConfig {
    /// Resource units per 10 s (Graph: 3,500 for a small tenant, per app and tenant).
    pub resource_units_per_10s: f64,
    /// Writes per 150 s (Graph: 3,000 per app and tenant).
    pub writes_per_150s: f64,
}

impl Default for BudgetConfig {
    /// Resource units: 80 % of the smallest documented tier (the tenant's size is not known).
    /// Writes: 95 % of the per-app limit, which no other app shares; only the leader sends.
    fn default() -> Self {
        BudgetConfig {
            resource_units_per_10s: 2800.0,
            writes_per_150s: 2850.0,
        }
    }
}

struct Bucket {
    level: f64,
    capacity: f64,
    per_second: f64,
}

impl Bucket {
    fn new(capacity: f64, window: Duration) -> Self {
        Bucket {
            level: capacity,
            capacity,
            per_second: capacity / window.as_secs_f64(),
        }
    }
    fn refill(&mut self, dt: f64) {
        self.level = (self.level + dt * self.per_second).min(self.capacity);
    }
    fn wait_for(&self, amount: f64) -> f64 {
        ((amount - self.level) / self.per_second).max(0.0)
    }
}

struct State {
    units: Bucket,
    writes: Bucket,
    at: Instant,
    paused_until: Option<Instant>,
}

impl State {
    /// Refills both buckets up to now, and returns now.
    fn refill(&mut self) -> Instant {
        let now = Instant::now();
        let dt = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.units.refill(dt);
        self.writes.refill(dt);
        now
    }
}

/// The shared budget. Cheap to share behind an `Arc`.
pub struct Budget {
    state: Mutex<State>,
    enabled: bool,
    /// Writes waiting for a token right now: the write bucket is the bottleneck.
    writes_waiting: AtomicUsize,
    /// When a write last stopped waiting (see [`Budget::writes_saturated`]).
    last_waited: std::sync::Mutex<Option<Instant>>,
}

/// How long the write bucket counts as the bottleneck after a write last waited: between two
/// writes of a saturated budget a moment passes where none waits, and a membership PATCH
/// sent in that moment half empty would still take the next write's place.
pub const SATURATION_MEMORY: Duration = Duration::from_secs(2);

/// Counts a write as waiting for as long as it waits (also when its caller goes away).
struct Waiting<'a>(&'a Budget);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        *self.0.last_waited.lock().unwrap() = Some(Instant::now());
        self.0.writes_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Budget {
    pub fn new(config: BudgetConfig) -> Self {
        Budget {
            state: Mutex::new(State {
                units: Bucket::new(config.resource_units_per_10s, Duration::from_secs(10)),
                writes: Bucket::new(config.writes_per_150s, Duration::from_secs(150)),
                at: Instant::now(),
                paused_until: None,
            }),
            enabled: true,
            writes_waiting: AtomicUsize::new(0),
            last_waited: std::sync::Mutex::new(None),
        }
    }

    /// No budget at all (for the benchmark's baseline).
    pub fn unlimited() -> Self {
        Budget {
            enabled: false,
            ..Budget::new(BudgetConfig::default())
        }
    }

    /// Waits until `cost` resource units (and a write, if `write`) are available, then takes them.
    pub async fn acquire(&self, cost: f64, write: bool) {
        if !self.enabled {
            return;
        }
        let mut waiting = None;
        let mut short_of_writes;
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = s.refill();
                let paused = s
                    .paused_until
                    .map_or(0.0, |p| p.saturating_duration_since(now).as_secs_f64());
                let wait =
                    paused
                        .max(s.units.wait_for(cost))
                        .max(if write { s.writes.wait_for(1.0) } else { 0.0 });
                if wait <= 0.0 {
                    s.units.level -= cost;
                    if write {
                        s.writes.level -= 1.0;
                    }
                    return;
                }
                // Only the write bucket's shortage counts: waiting for resource units (reads)
                // or a pause does not make one more write take another's place.
                short_of_writes = write && s.writes.wait_for(1.0) > 0.0;
                wait
            };
            if !short_of_writes {
                waiting = None;
            } else if waiting.is_none() {
                self.writes_waiting.fetch_add(1, Ordering::Relaxed);
                waiting = Some(Waiting(self));
            }
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// Whether writes wait for the write bucket (not for resource units), now or within
    /// [`SATURATION_MEMORY`]: every write sent takes the place of another, so writes that can
    /// wait (membership written behind) should.
    pub fn writes_saturated(&self) -> bool {
        self.writes_waiting.load(Ordering::Relaxed) > 0
            || self
                .last_waited
                .lock()
                .unwrap()
                .is_some_and(|t| t.elapsed() < SATURATION_MEMORY)
    }

    /// Each bucket now: (name, capacity, window, share in use); nothing in use when disabled.
    pub async fn usage(&self) -> [(&'static str, f64, Duration, f64); 2] {
        let mut s = self.state.lock().await;
        s.refill();
        let used = |b: &Bucket| {
            if self.enabled {
                (1.0 - b.level / b.capacity).clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        [
            (
                "resource_units",
                s.units.capacity,
                Duration::from_secs(10),
                used(&s.units),
            ),
            (
                "writes",
                s.writes.capacity,
                Duration::from_secs(150),
                used(&s.writes),
            ),
        ]
    }

    /// Graph throttled a request: nobody sends until `retry_after` has passed.
    pub async fn pause(&self, retry_after: Duration) {
        let mut s = self.state.lock().await;
        let until = Instant::now() + retry_after;
        s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
    }
}

/// The resource-unit cost of a request, from Graph's published table, and whether it writes.
pub fn cost(method: &reqwest::Method, path: &str) -> (f64, bool) {
    if path == "/$batch" {
        // Its items are charged one by one, as Graph does.
        return (0.0, false);
    }
    if *method != reqwest::Method::GET {
        return (1.0, true);
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut units: f64 = match segments.as_slice() {
        ["users"] => 2.0,
        ["subscribedSkus"] => 3.0,
        ["groups", _, "members"] => 3.0,
        ["groups", _, "transitiveMembers"] => 5.0,
        ["users", _, "licenseDetails" | "memberOf" | "transitiveMemberOf"] => 2.0,
        _ => 1.0,
    };
    // $select -1, $expand +1, $top below 20 -1 (each counted once).
    let param = |name: &str| {
        query.split('&').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name || k.strip_prefix("%24") == name.strip_prefix('$')).then_some(v)
        })
    };
    if param("$select").is_some() {
        units -= 1.0;
    }
    if param("$expand").is_some() {
        units += 1.0;
    }
    if param("$top")
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|n| n < 20)
    {
        units -= 1.0;
    }
    (units.max(1.0), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn usage_is_the_share_of_each_bucket_taken() {
        let budget = Budget::new(BudgetConfig {
            resource_units_per_10s: 10.0,
            writes_per_150s: 100.0,
        });
        budget.acquire(5.0, true).await;
        let [units, writes] = budget.usage().await;
        assert_eq!(
            (units.0, units.1, units.2),
            ("resource_units", 10.0, Duration::from_secs(10))
        );
        assert!((units.3 - 0.5).abs() < 1e-6, "{units:?}");
        assert!((writes.3 - 0.01).abs() < 1e-6, "{writes:?}");
        assert_eq!(Budget::unlimited().usage().await[0].3, 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_when_the_bucket_is_empty() {
        let budget = Budget::new(BudgetConfig {
            resource_units_per_10s: 10.0,
            writes_per_150s: 100.0,
        });
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            budget.acquire(1.0, false).await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "the first 10 units are free"
        );
        budget.acquire(5.0, false).await;
        assert!(
            start.elapsed() >= Duration::from_secs(4),
            "5 more units take 5 s at 1 unit/s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn writes_count_as_saturated_while_one_waits_and_shortly_after() {
        let budget = std::sync::Arc::new(Budget::new(BudgetConfig {
            resource_units_per_10s: 100.0,
            writes_per_150s: 1.0,
        }));
        budget.acquire(1.0, true).await;
        assert!(
            !budget.writes_saturated(),
            "a write that got its token never waited"
        );
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire(1.0, true).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            budget.writes_saturated(),
            "the second write waits 150 s for its token"
        );
        waiter.abort();
        let _ = waiter.await;
        assert!(
            budget.writes_saturated(),
            "a write waited a moment ago: the next may come"
        );
        tokio::time::sleep(SATURATION_MEMORY).await;
        assert!(
            !budget.writes_saturated(),
            "a waiter that went away no longer counts"
        );
        let units = std::sync::Arc::new(Budget::new(BudgetConfig {
            resource_units_per_10s: 1.0,
            writes_per_150s: 100.0,
        }));
        units.acquire(1.0, true).await;
        let waiter = tokio::spawn({
            let units = units.clone();
            async move { units.acquire(1.0, true).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "no resource unit is left for 10 s");
        assert!(
            !units.writes_saturated(),
            "a write short of resource units, not of writes"
        );
        waiter.abort();
    }

    #[test]
    fn costs_follow_the_table() {
        assert_eq!(cost(&reqwest::Method::GET, "/users?$filter=x"), (2.0, false));
        assert_eq!(cost(&reqwest::Method::GET, "/users?$select=id"), (1.0, false));
        assert_eq!(cost(&reqwest::Method::GET, "/subscribedSkus"), (3.0, false));
        assert_eq!(cost(&reqwest::Method::PATCH, "/users/x"), (1.0, true));
        assert_eq!(cost(&reqwest::Method::POST, "/$batch"), (0.0, false));
    }

    /// Checks the table against figures read from Microsoft's documentation, not against the
    /// simulated tenant's copy (agreement between the two copies proves nothing about Graph).
    ///
    /// Source: "Microsoft Graph service-specific throttling limits", section "Identity and
    /// access service limits", table of base request costs and "Other factors that affect a
    /// request cost": <https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-service-limits>
    /// (markdown source: github.com/microsoftgraph/microsoft-graph-docs-contrib,
    /// concepts/throttling-limits.md, commit e62a3c1df706cc5487fc6095fc689734bb25d2f6), read
    /// 2026-12-02. Batch items are charged one by one ("Throttling and batching",
    /// <https://learn.microsoft.com/en-us/graph/throttling#throttling-and-batching>, same date),
    /// which is why `/$batch` itself is charged nothing here.
    #[test]
    fn costs_match_the_figures_microsoft_publishes() {
        use reqwest::Method;
        // (path, base resource units) for GET as published; `me/...` costs apply to
        // `users/{id}/...` too, as the same page notes. Any identity path not listed: 1.
        let published: [(&str, f64); 8] = [
            ("/users", 2.0),
            ("/subscribedSkus", 3.0),
            ("/groups/g/members", 3.0),
            ("/groups/g/transitiveMembers", 5.0),
            ("/users/u/licenseDetails", 2.0),
            ("/users/u/memberOf", 2.0),
            ("/users/u/transitiveMemberOf", 2.0),
            ("/users/u", 1.0),
        ];
        for (path, units) in published {
            assert_eq!(cost(&Method::GET, path), (units, false), "GET {path}");
        }
        // POST, PATCH, PUT, DELETE on any identity path not listed: 1 unit and a write cost of 1.
        for method in [Method::POST, Method::PATCH, Method::PUT, Method::DELETE] {
            assert_eq!(cost(&method, "/users/u"), (1.0, true), "{method}");
        }
        // $select -1, $expand +1, $top below 20 -1, never below 1.
        assert_eq!(cost(&Method::GET, "/users?$select=id"), (1.0, false));
        assert_eq!(cost(&Method::GET, "/users?%24select=id"), (1.0, false));
        assert_eq!(cost(&Method::GET, "/users?$expand=manager"), (3.0, false));
        assert_eq!(cost(&Method::GET, "/users?$top=19"), (1.0, false));
        assert_eq!(cost(&Method::GET, "/users?$top=999"), (2.0, false));
        assert_eq!(cost(&Method::GET, "/users/u?$select=id&$top=5"), (1.0, false));
    }
}
