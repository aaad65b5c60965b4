//! Prometheus metrics: what the reconcilers do, what they ask of Graph and the compliance
//! endpoint, how much throttling costs, and the state of seats and accounts. Route labels are
//! templates (`/users/{id}`), never ids or names, so cardinality stays small and no personal
//! data reaches the metrics.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

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
    seats_free: Family<Labels, Gauge>,
    accounts: Family<Labels, Gauge>,
    leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("remoteassist");
        let reconciles = Family::<Labels, Counter>::default();
        registry.register("reconciles", "Reconciles by kind and result", reconciles.clone());
        let reconcile_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            reconcile_seconds.clone(),
        );
        let errors = Family::<Labels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile errors by kind and reason",
            errors.clone(),
        );
        let watch_errors = Family::<Labels, Counter>::default();
        registry.register(
            "watch_errors",
            "Kubernetes watch errors by kind, watch (controller, trigger, cache) and error",
            watch_errors.clone(),
        );
        let graph_requests = Family::<Labels, Counter>::default();
        registry.register(
            "graph_requests",
            "Microsoft Graph HTTP requests by method, route and status",
            graph_requests.clone(),
        );
        let compliance_requests = Family::<Labels, Counter>::default();
        registry.register(
            "compliance_requests",
            "Compliance endpoint commands by cmdlet and status",
            compliance_requests.clone(),
        );
        let throttled = Counter::default();
        registry.register(
            "graph_throttled",
            "Graph answers with status 429",
            throttled.clone(),
        );
        let throttle_wait = Counter::<f64, AtomicU64>::default();
        registry.register(
            "graph_throttle_wait_seconds",
            "Time spent waiting after throttling",
            throttle_wait.clone(),
        );
        let seats_free = Family::<Labels, Gauge>::default();
        registry.register(
            "seats_free",
            "Seats free per SKU, from the last subscribedSkus read",
            seats_free.clone(),
        );
        let accounts = Family::<Labels, Gauge>::default();
        registry.register("accounts", "RemoteAssistLicenses by state", accounts.clone());
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica holds the leader lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            errors,
            watch_errors,
            graph_requests,
            compliance_requests,
            throttled,
            throttle_wait,
            seats_free,
            accounts,
            leader,
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

    pub fn accounts(&self, state: &str, count: i64) {
        self.accounts
            .get_or_create(&labels(&[("state", state)]))
            .set(count);
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
