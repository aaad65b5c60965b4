//! What every reconciler shares: the Kubernetes client, the directory, the Event recorder, the
//! configuration, the watch caches and the application coordinator, and the per-object backoff.

use crate::compliance::ComplianceClient;
use crate::config::Config;
use crate::controllers::barrier_segment::application::Coordinator;
use crate::controllers::pacer::{Pacer, resync_limit};
use crate::crd::{BarrierSegment, RemoteAssistLicense, VendorTenant};
use crate::directory::Directory;
use crate::error::Error;
use crate::watch::Cache;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Field manager (and Event reporter) name.
pub const MANAGER: &str = "remote-assist-operator";
/// The finalizer on VendorTenants and RemoteAssistLicenses.
pub const FINALIZER: &str = "remoteassist.dev/cleanup";

/// The watch caches the reconcilers read, built by `run.rs` before any controller starts.
#[derive(Clone)]
pub struct Caches {
    pub vendors: Cache<VendorTenant>,
    pub licenses: Cache<RemoteAssistLicense>,
    pub segments: Cache<BarrierSegment>,
}

pub struct Context {
    pub kube: kube::Client,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub directory: Directory,
    pub config: Config,
    reporter: Reporter,
    caches: Caches,
    compliance: Arc<ComplianceClient>,
    coordinator: Arc<Coordinator>,
    failures: Mutex<HashMap<String, u32>>,
    /// Consecutive passes per object that found the directory not caught up yet.
    lags: Mutex<HashMap<String, u32>>,
    /// Resyncs of done licences, released when real work leaves room.
    pub license_resyncs: Arc<Pacer<ObjectRef<RemoteAssistLicense>>>,
    /// Per object, the newest resourceVersion the operator read from the API server or wrote:
    /// a cached object at that version is as fresh as a read.
    versions: Mutex<HashMap<String, String>>,
}

/// What a [`Context`] is made of.
pub struct Parts {
    pub kube: kube::Client,
    pub directory: Directory,
    pub compliance: Arc<ComplianceClient>,
    pub coordinator: Arc<Coordinator>,
    pub caches: Caches,
    pub config: Config,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Context {
    pub fn new(parts: Parts) -> Self {
        let concurrency = parts.config.concurrency;
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: parts.config.instance.clone(),
        };
        Context {
            reporter,
            kube: parts.kube,
            metrics: parts.metrics,
            directory: parts.directory,
            config: parts.config,
            caches: parts.caches,
            compliance: parts.compliance,
            coordinator: parts.coordinator,
            failures: Mutex::new(HashMap::new()),
            lags: Mutex::new(HashMap::new()),
            license_resyncs: Arc::new(Pacer::new(resync_limit(concurrency))),
            versions: Mutex::new(HashMap::new()),
        }
    }

    pub fn compliance(&self) -> &ComplianceClient {
        &self.compliance
    }

    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// Every RemoteAssistLicense, once the cache holds a full list (see [`listed`]).
    pub async fn licenses(&self) -> Result<&Store<RemoteAssistLicense>, Error> {
        listed(&self.caches.licenses).await
    }

    /// Every BarrierSegment, once the cache holds a full list (see [`listed`]).
    pub async fn segments(&self) -> Result<&Store<BarrierSegment>, Error> {
        listed(&self.caches.segments).await
    }

    pub fn coordinator(&self) -> &Arc<Coordinator> {
        &self.coordinator
    }

    /// A VendorTenant by name. The vendor cache is synced before any controller starts.
    pub fn vendor(&self, name: &str) -> Option<std::sync::Arc<VendorTenant>> {
        self.caches.vendors.current().get(&ObjectRef::new(name))
    }

    /// Publishes an Event on `obj`. Failing to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        // A recorder per Event: kube's recorder keeps every Event it sent for six minutes (to
        // count repeats) and scans them all on each publish, which grows with thousands of
        // accounts; the operator already publishes an Event only when something changed.
        let recorder = Recorder::new(self.kube.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    }

    /// After a successful reconcile: forget earlier failures.
    pub fn succeeded<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        self.failures.lock().expect("lock").remove(&key(obj));
    }

    /// How long to wait before looking again at an object whose last write found the directory
    /// not caught up: 2 s, doubling with each consecutive time, up to 5 min. A new object is
    /// usually visible within seconds; one the directory keeps refusing (an `ObjectConflict`
    /// on a name someone else holds) must not be retried every 2 s forever.
    pub fn lagging<K: Resource<DynamicType = ()>>(&self, obj: &K) -> Duration {
        let mut lags = self.lags.lock().expect("lock");
        let n = lags.entry(key(obj)).or_insert(0);
        *n += 1;
        Duration::from_secs(2u64.saturating_pow((*n).min(9))).min(Duration::from_secs(300))
    }

    /// Whether `obj` (from a cache) is at the newest version the operator has read or written.
    pub fn is_known_version<K: Resource<DynamicType = ()>>(&self, obj: &K) -> bool {
        let versions = self.versions.lock().expect("lock");
        obj.resource_version()
            .is_some_and(|v| versions.get(&key(obj)) == Some(&v))
    }

    /// Records the version of `obj` just read from the API server or written (`None`: forget it).
    pub fn saw_version<K: Resource<DynamicType = ()>>(&self, obj: &K, version: Option<String>) {
        let mut versions = self.versions.lock().expect("lock");
        match version {
            Some(v) => versions.insert(key(obj), v),
            None => versions.remove(&key(obj)),
        };
    }

    /// The object's writes went through: forget its lag.
    pub fn caught_up<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        self.lags.lock().expect("lock").remove(&key(obj));
    }

    /// Per-object backoff: Graph's `Retry-After` when it gave one, otherwise exponential in the
    /// number of consecutive failures of this object, from 2 s up to 5 min.
    pub fn backoff<K: Resource<DynamicType = ()>>(&self, obj: &K, error: &Error) -> Duration {
        let mut failures = self.failures.lock().expect("lock");
        let n = failures.entry(key(obj)).or_insert(0);
        *n += 1;
        if let Some(wait) = error.retry_after() {
            return wait;
        }
        Duration::from_secs(2u64.saturating_pow((*n).min(9))).min(Duration::from_secs(300))
    }
}

/// How long a decision waits for a cache's first full list before it is retried.
const LIST_WAIT: Duration = Duration::from_secs(10);

/// A cache's store once it holds a full list. After a restart, or while the watch cannot list
/// (a 403, an unreachable API server), an empty cache means "not listed yet", never "nothing
/// there": the decision waits and is retried, and nothing is deleted or counted on it.
async fn listed<K: Resource<DynamicType = ()> + Clone + 'static>(
    cache: &Cache<K>,
) -> Result<&Store<K>, Error> {
    cache.listed(LIST_WAIT).await.ok_or_else(|| {
        Error::Waiting(
            format!("the {} cache has not been listed yet", K::kind(&())),
            Duration::from_secs(2),
        )
    })
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}
