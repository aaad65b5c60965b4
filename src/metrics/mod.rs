//! Prometheus metrics: what the reconcilers do, what they ask of Graph and the compliance
//! endpoint, how much throttling costs, and the state of seats, accounts, the policy
//! application and leadership. Labels are route templates (`/users/{id}`), vendors, SKUs,
//! reasons and states, never a UPN or a user id, so cardinality stays small and no personal data
//! reaches the metrics. The gauges that describe objects are refreshed at each scrape from the
//! watch caches ([`scrape`]).

pub mod scrape;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Requests per Graph send: 1 is a request sent alone, 20 a full `$batch`.
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 19.0, 20.0];
/// Buckets of the time from a licence's creation to Ready: 5 s to about 5.7 h.
const READY_BUCKETS: [f64; 13] = [
    5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 20480.0,
];

pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    reconcile_seconds: Family<Labels, Histogram>,
    errors: Family<Labels, Counter>,
    watch_errors: Family<Labels, Counter>,
    graph_requests: Family<Labels, Counter>,
    compliance_requests: Family<Labels, Counter>,
    throttled: Counter,
    throttle_wait: Counter<f64, AtomicU64>,
    budget_consumed: Family<Labels, Counter<f64, AtomicU64>>,
    budget_used: Family<Labels, FloatGauge>,
    budget_capacity: Family<Labels, FloatGauge>,
    token_failures: Family<Labels, Counter>,
    seats_free: Family<Labels, Gauge>,
    seats_needed: Family<Labels, Gauge>,
    accounts: Family<Labels, Gauge>,
    oldest_not_ready: Family<Labels, FloatGauge>,
    ready_seconds: Histogram,
    batch_size: Histogram,
    application_state: Family<Labels, Gauge>,
    application_percent: Gauge,
    leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Registers `metric` under `name` and hands it back, so the struct below reads as a table.
fn reg<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("remoteassist");
        let histogram = || Histogram::new(exponential_buckets(0.005, 2.0, 14));
        Metrics {
            reconciles: reg(
                &mut r,
                "reconciles",
                "Reconciles by kind and result",
                Family::default(),
            ),
            reconcile_seconds: reg(
                &mut r,
                "reconcile_duration_seconds",
                "Reconcile duration by kind",
                Family::new_with_constructor(histogram),
            ),
            errors: reg(
                &mut r,
                "reconcile_errors",
                "Reconcile errors by kind and reason",
                Family::default(),
            ),
            watch_errors: reg(
                &mut r,
                "watch_errors",
                "Kubernetes watch errors by kind, watch (controller, trigger, cache) and error",
                Family::default(),
            ),
            graph_requests: reg(
                &mut r,
                "graph_requests",
                "Microsoft Graph HTTP requests by method, route and status",
                Family::default(),
            ),
            compliance_requests: reg(
                &mut r,
                "compliance_requests",
                "Compliance endpoint commands by cmdlet and status",
                Family::default(),
            ),
            throttled: reg(
                &mut r,
                "graph_throttled",
                "Graph answers with status 429",
                Counter::default(),
            ),
            throttle_wait: reg(
                &mut r,
                "graph_throttle_wait_seconds",
                "Time spent waiting after throttling",
                Counter::default(),
            ),
            budget_consumed: reg(
                &mut r,
                "graph_budget_consumed",
                "Graph budget taken by requests, by bucket (resource_units, writes)",
                Family::default(),
            ),
            budget_used: reg(
                &mut r,
                "graph_budget_used_ratio",
                "Share of the operator's Graph budget in use now, by bucket: 1 means requests wait",
                Family::default(),
            ),
            budget_capacity: reg(
                &mut r,
                "graph_budget_capacity",
                "The operator's Graph budget per window, by bucket and window_seconds (below Graph's own limits)",
                Family::default(),
            ),
            token_failures: reg(
                &mut r,
                "token_failures",
                "Failed token requests by resource (graph, compliance)",
                Family::default(),
            ),
            seats_free: reg(
                &mut r,
                "seats_free",
                "Seats free per SKU, from the last subscribedSkus read",
                Family::default(),
            ),
            seats_needed: reg(
                &mut r,
                "seats_needed",
                "Per vendor and SKU it names, seats its accounts still need that are not assigned yet (from the VendorTenant's status)",
                Family::default(),
            ),
            accounts: reg(
                &mut r,
                "accounts",
                "RemoteAssistLicenses by vendor, state (ready, not_ready, suspended) and the Ready condition's reason",
                Family::default(),
            ),
            oldest_not_ready: reg(
                &mut r,
                "account_not_ready_oldest_seconds",
                "Per vendor, how long its longest-waiting account has not been Ready (0 when all are)",
                Family::default(),
            ),
            ready_seconds: reg(
                &mut r,
                "account_ready_seconds",
                "Time from a licence's creation to its first Ready",
                Histogram::new(READY_BUCKETS),
            ),
            batch_size: reg(
                &mut r,
                "graph_batch_size",
                "Requests the batcher sent together, per send (1: alone; 20: a full $batch)",
                Histogram::new(BATCH_BUCKETS),
            ),
            application_state: reg(
                &mut r,
                "policy_application_state",
                "1 for the information-barrier policy application's current state (none, requested, held, running, applied, failed), with the reason of a held or failed one",
                Family::default(),
            ),
            application_percent: reg(
                &mut r,
                "policy_application_percent",
                "How far the running (else the last) policy application has got, 0 to 100",
                Gauge::default(),
            ),
            leader: reg(
                &mut r,
                "leader",
                "1 when this replica holds the leader lease",
                Gauge::default(),
            ),
            registry: r,
        }
    }
}
/// A Graph path as a route template: ids, UPNs and query strings removed.
pub fn route_template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.split("/v1.0").last().unwrap_or(path);
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| {
            let generic = s.len() >= 16 && s.chars().filter(|c| *c == '-').count() >= 4
                || s.contains('@')
                || s.contains("%40");
            if generic { "{id}" } else { s }
        })
        .collect();
    segments.join("/")
}

impl Metrics {
    pub fn reconciled(&self, kind: &str, result: &str, took: Duration) {
        self.reconciles
            .get_or_create(&labels(&[("kind", kind), ("result", result)]))
            .inc();
        self.reconcile_seconds
            .get_or_create(&labels(&[("kind", kind)]))
            .observe(took.as_secs_f64());
    }

    pub fn error(&self, kind: &str, reason: &str) {
        self.errors
            .get_or_create(&labels(&[("kind", kind), ("reason", reason)]))
            .inc();
    }

    pub fn watch_error(&self, kind: &str, watch: &str, error: &str) {
        self.watch_errors
            .get_or_create(&labels(&[("kind", kind), ("watch", watch), ("error", error)]))
            .inc();
    }

    pub fn graph_request(&self, method: &str, path: &str, status: u16) {
        let route = route_template(path);
        let status = status.to_string();
        self.graph_requests
            .get_or_create(&labels(&[
                ("method", method),
                ("route", &route),
                ("status", &status),
            ]))
            .inc();
        if status == "429" {
            self.throttled.inc();
        }
    }

    pub fn throttle_wait(&self, wait: Duration) {
        self.throttle_wait.inc_by(wait.as_secs_f64());
    }

    pub fn compliance_request(&self, cmdlet: &str, status: u16) {
        let status = status.to_string();
        self.compliance_requests
            .get_or_create(&labels(&[("cmdlet", cmdlet), ("status", &status)]))
            .inc();
    }

    pub fn seats(&self, sku: &str, free: i64) {
        self.seats_free.get_or_create(&labels(&[("sku", sku)])).set(free);
    }

    /// Replaces the account gauges with a fresh count (reasons that no longer occur vanish).
    pub fn set_accounts(&self, counts: &[scrape::AccountCount], oldest: &[(String, f64)]) {
        self.accounts.clear();
        for c in counts {
            self.accounts
                .get_or_create(&labels(&[
                    ("vendor", &c.vendor),
                    ("state", c.state),
                    ("reason", &c.reason),
                ]))
                .set(c.count);
        }
        self.oldest_not_ready.clear();
        for (vendor, seconds) in oldest {
            self.oldest_not_ready
                .get_or_create(&labels(&[("vendor", vendor)]))
                .set(*seconds);
        }
    }

    /// Replaces the per-vendor seat needs: (vendor, SKU part number, seats needed).
    pub fn set_seats_needed(&self, needs: &[(String, String, i64)]) {
        self.seats_needed.clear();
        for (vendor, sku, needed) in needs {
            self.seats_needed
                .get_or_create(&labels(&[("vendor", vendor), ("sku", sku)]))
                .set(*needed);
        }
    }

    /// A licence became Ready for the first time, `seconds` after its creation.
    pub fn account_ready(&self, seconds: f64) {
        self.ready_seconds.observe(seconds.max(0.0));
    }

    /// The batcher sent `n` requests together.
    pub fn graph_batch(&self, n: usize) {
        self.batch_size.observe(n as f64);
    }

    /// The policy application's state (one-hot), its reason when held or failed, and progress.
    pub fn set_application(&self, state: &str, reason: &str, percent: i64) {
        self.application_state.clear();
        self.application_state
            .get_or_create(&labels(&[("state", state), ("reason", reason)]))
            .set(1);
        self.application_percent.set(percent);
    }

    /// Budget taken by one request: its resource units, and a write when it writes.
    pub fn budget_consumed(&self, units: f64, write: bool) {
        self.budget_consumed
            .get_or_create(&labels(&[("bucket", "resource_units")]))
            .inc_by(units);
        if write {
            self.budget_consumed
                .get_or_create(&labels(&[("bucket", "writes")]))
                .inc_by(1.0);
        }
    }

    /// The budget's buckets now: (bucket, capacity, window, share in use).
    pub fn set_budget(&self, buckets: &[(&str, f64, Duration, f64)]) {
        for (bucket, capacity, window, used) in buckets {
            let window = window.as_secs().to_string();
            self.budget_capacity
                .get_or_create(&labels(&[("bucket", bucket), ("window_seconds", &window)]))
                .set(*capacity);
            self.budget_used
                .get_or_create(&labels(&[("bucket", bucket)]))
                .set(*used);
        }
    }

    /// Shows `resource`'s token failure count (0) before any failure, so dashboards and alerts
    /// see the series from the start.
    pub fn declare_token_resource(&self, resource: &str) {
        drop(
            self.token_failures
                .get_or_create(&labels(&[("resource", resource)])),
        );
    }

    /// A token request for `resource` (`graph`, `compliance`) failed.
    pub fn token_failure(&self, resource: &str) {
        self.token_failures
            .get_or_create(&labels(&[("resource", resource)]))
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_hide_ids_and_names() {
        assert_eq!(
            route_template("/users/0ce1bf79-073e-4e77-ba1b-cfd5f3e8a9e5/memberOf?$select=id"),
            "/users/{id}/memberOf"
        );
        assert_eq!(
            route_template("http://x/v1.0/users/v1-tech-01%40vendors.abc.example"),
            "/users/{id}"
        );
        assert_eq!(route_template("/subscribedSkus"), "/subscribedSkus");
    }

    #[test]
    fn rendering_has_the_families() {
        let m = Metrics::default();
        m.reconciled("RemoteAssistLicense", "ok", Duration::from_millis(20));
        m.graph_request("GET", "/users/a@b.c", 429);
        let text = m.render();
        assert!(
            text.contains("remoteassist_reconciles_total{kind=\"RemoteAssistLicense\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("remoteassist_graph_throttled_total 1"), "{text}");
        assert!(!text.contains("a@b.c"));
    }
}
