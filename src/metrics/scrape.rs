//! The gauges that describe objects, recomputed at each scrape from what the operator already
//! holds (the watch caches, the application coordinator, the Graph budget): a scrape costs no
//! request to the API server or the tenant, and a gauge never lags the caches.

use super::Metrics;
use crate::context::Context;
use crate::controllers::barrier_segment::application::State as Application;
use crate::crd::conditions::{self, types};
use crate::crd::{RemoteAssistLicense, VendorTenant};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The vendor label of licences that name no existing VendorTenant.
pub const UNKNOWN_VENDOR: &str = "(unknown)";

/// Accounts of one vendor in one state for one reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountCount {
    pub vendor: String,
    pub state: &'static str,
    pub reason: String,
    pub count: i64,
}

/// Refreshes every scrape-time gauge from the context.
pub async fn refresh(metrics: &Metrics, ctx: &Context) {
    let licenses = ctx.caches().licenses.current().state();
    let vendors = ctx.caches().vendors.current().state();
    let names: Vec<String> = vendors.iter().map(|v| v.name_any()).collect();
    let (counts, oldest) = accounts(&licenses, &names, Timestamp::now());
    metrics.set_accounts(&counts, &oldest);
    metrics.set_seats_needed(&seats_needed(&vendors));
    let (state, reason, percent) = application(&ctx.coordinator().snapshot());
    metrics.set_application(state, reason, percent);
    metrics.set_budget(&ctx.directory.graph.budget().usage().await);
}

/// Per vendor and SKU in its status, the seats still needed.
fn seats_needed(vendors: &[Arc<VendorTenant>]) -> Vec<(String, String, i64)> {
    vendors
        .iter()
        .flat_map(|v| {
            let name = v.name_any();
            v.status.iter().flat_map(move |s| {
                let name = name.clone();
                s.seats
                    .iter()
                    .map(move |seat| (name.clone(), seat.sku_part_number.clone(), i64::from(seat.needed)))
            })
        })
        .collect()
}

/// The state of one licence for the metrics: (state, reason, not Ready since).
fn classify(l: &RemoteAssistLicense) -> (&'static str, String, Option<Timestamp>) {
    let created = l.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let ready = l
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, types::READY));
    match ready {
        Some(c) if c.status == "True" => ("ready", c.reason.clone(), None),
        Some(c) if c.reason == "Suspended" => ("suspended", c.reason.clone(), None),
        Some(c) => ("not_ready", c.reason.clone(), Some(c.last_transition_time.0)),
        None => ("not_ready", "Pending".to_owned(), created),
    }
}

/// Accounts by vendor, state and reason, and per vendor the age in seconds of its account that
/// has waited longest to be Ready (0 for a vendor whose accounts are all Ready or suspended).
pub fn accounts(
    licenses: &[Arc<RemoteAssistLicense>],
    vendors: &[String],
    now: Timestamp,
) -> (Vec<AccountCount>, Vec<(String, f64)>) {
    let mut counts: BTreeMap<(String, &'static str, String), i64> = BTreeMap::new();
    let mut oldest: BTreeMap<String, f64> = vendors.iter().map(|v| (v.clone(), 0.0)).collect();
    for l in licenses {
        // A licence's author picks `vendorRef.name`: only the platform team's vendors become
        // label values, so licences naming made-up vendors cannot grow the metrics.
        let named = &l.spec.vendor_ref.name;
        let vendor = if vendors.contains(named) {
            named.clone()
        } else {
            UNKNOWN_VENDOR.to_owned()
        };
        let (state, reason, since) = classify(l);
        *counts.entry((vendor.clone(), state, reason)).or_default() += 1;
        let age = since.map_or(0.0, |t| now.duration_since(t).as_secs_f64().max(0.0));
        let entry = oldest.entry(vendor).or_default();
        *entry = entry.max(age);
    }
    let counts = counts
        .into_iter()
        .map(|((vendor, state, reason), count)| AccountCount {
            vendor,
            state,
            reason,
            count,
        })
        .collect();
    (counts, oldest.into_iter().collect())
}

/// The application's state for the metrics: (state, reason, percent done).
pub fn application(app: &Application) -> (&'static str, &'static str, i64) {
    if let Some(run) = &app.running {
        return ("running", "", run.percent.clamp(0, 100));
    }
    if app.held.is_some() {
        return ("held", app.held_reason.unwrap_or("HeldBack"), 0);
    }
    if app.requested.is_some() {
        return ("requested", "", 0);
    }
    if let Some(failed) = &app.failed {
        let reason = if failed.unreadable() {
            "UnreadableAnswer"
        } else {
            "Failed"
        };
        return ("failed", reason, failed.percent.clamp(0, 100));
    }
    if app.applied.is_some() {
        return ("applied", "", 100);
    }
    ("none", "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::barrier_segment::application::Run;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn licence(vendor: &str, ready: Option<(&str, &str, i64)>, created: i64) -> Arc<RemoteAssistLicense> {
        let mut l: RemoteAssistLicense = serde_json::from_value(serde_json::json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "RemoteAssistLicense",
            "metadata": {"name": "x", "namespace": "ns"},
            "spec": {"vendorRef": {"name": vendor}, "displayName": "Tech", "mailNickname": "tech", "usageLocation": "US"}
        }))
        .unwrap();
        l.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        if let Some((status, reason, since)) = ready {
            l.status = Some(crate::crd::RemoteAssistLicenseStatus {
                conditions: vec![Condition {
                    type_: types::READY.into(),
                    status: status.into(),
                    reason: reason.into(),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: Time(Timestamp::from_second(since).unwrap()),
                }],
                ..Default::default()
            });
        }
        Arc::new(l)
    }

    #[test]
    fn accounts_count_by_vendor_state_and_reason_and_age_the_longest_waiting() {
        let now = Timestamp::from_second(10_000).unwrap();
        let licenses = [
            licence("v1", Some(("True", "Converged", 100)), 50),
            licence("v1", Some(("False", "NoSeats", 9_000)), 50),
            licence("v1", Some(("False", "NoSeats", 9_400)), 50),
            licence("v2", None, 9_900),
            licence("v2", Some(("False", "Suspended", 10)), 5),
            licence("made-up-1", None, 9_950),
            licence("made-up-2", None, 9_990),
        ];
        let (counts, oldest) = accounts(&licenses, &["v1".into(), "v2".into(), "v3".into()], now);
        let count = |v: &str, s: &str, r: &str| {
            counts
                .iter()
                .find(|c| c.vendor == v && c.state == s && c.reason == r)
                .map(|c| c.count)
        };
        assert_eq!(count("v1", "ready", "Converged"), Some(1));
        assert_eq!(count("v1", "not_ready", "NoSeats"), Some(2));
        assert_eq!(count("v2", "not_ready", "Pending"), Some(1));
        assert_eq!(count("v2", "suspended", "Suspended"), Some(1));
        // Licences naming vendors that do not exist share one label value.
        assert_eq!(count(UNKNOWN_VENDOR, "not_ready", "Pending"), Some(2));
        assert_eq!(counts.len(), 5);
        // v1's oldest waits since 9,000; v2's since its creation; v3 has none waiting.
        assert_eq!(
            oldest,
            vec![
                (UNKNOWN_VENDOR.into(), 50.0),
                ("v1".into(), 1_000.0),
                ("v2".into(), 100.0),
                ("v3".into(), 0.0)
            ]
        );
    }

    fn run(percent: i64, failure: Option<&str>) -> Run {
        Run {
            id: "a".into(),
            started_at: Timestamp::from_second(1).unwrap(),
            status: "Running".into(),
            percent,
            failure: failure.map(str::to_owned),
            asked_at: None,
        }
    }

    #[test]
    fn the_application_state_prefers_what_is_happening_now() {
        let mut app = Application::default();
        assert_eq!(application(&app), ("none", "", 0));
        app.applied = Some(run(100, None));
        assert_eq!(application(&app), ("applied", "", 100));
        app.failed = Some(run(40, Some("Failed: segment missing")));
        assert_eq!(application(&app), ("failed", "Failed", 40));
        app.held = Some("v1 and v2 can reach each other".into());
        app.held_reason = Some("CrossVendorPath");
        assert_eq!(application(&app), ("held", "CrossVendorPath", 0));
        app.running = Some(run(250, None));
        assert_eq!(application(&app), ("running", "", 100));
    }
}
