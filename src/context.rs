//! What every reconciler shares: the Kubernetes client, the directory, the Event recorder, the
//! configuration and the watch caches; plus the error type, its classification into a per-object
//! backoff, and the status-writing helper that skips writes when nothing changed.

use crate::compliance::ComplianceClient;
use crate::config::Config;
use crate::crd::{BarrierSegment, RemoteAssistLicense, VendorTenant};
use crate::directory::Directory;
use crate::graph::GraphError;
use crate::segment::application::Coordinator;
use crate::watch::Cache;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Field manager (and Event reporter) name.
pub const MANAGER: &str = "remote-assist-operator";
/// The finalizer on VendorTenants and RemoteAssistLicenses.
pub const FINALIZER: &str = "remoteassist.dev/cleanup";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Compliance(#[from] crate::compliance::ComplianceError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The reconcile must wait for something else first (cleanup for other objects, or a cache
    /// for its first full list). An error because the finalizer helper removes the finalizer on
    /// any `Ok`: this keeps it, and is retried quietly.
    #[error("waiting: {0}")]
    Waiting(String, Duration),
}

impl Error {
    /// A CamelCase reason for Events and conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Graph(e) if e.is_throttled() => "Throttled",
            Error::Graph(GraphError::Auth { .. } | GraphError::Credential(_)) => "AuthenticationFailed",
            Error::Graph(GraphError::Transport { .. }) => "TenantUnreachable",
            Error::Graph(GraphError::Exhausted { last, .. })
                if matches!(**last, GraphError::Transport { .. }) =>
            {
                "TenantUnreachable"
            }
            Error::Graph(GraphError::Exhausted { last, .. }) if last.is_throttled() => "Throttled",
            Error::Graph(e) if e.status() == Some(403) => "PermissionDenied",
            Error::Graph(e) if e.is_transient() => "GraphUnavailable",
            Error::Graph(GraphError::Exhausted { .. }) => "GraphUnavailable",
            Error::Graph(_) => "GraphError",
            Error::Compliance(crate::compliance::ComplianceError::Transport(_)) => "ComplianceUnreachable",
            Error::Compliance(_) => "ComplianceError",
            Error::Kube(_) => "KubernetesError",
            Error::Finalizer(_) => "FinalizerUpdateFailed",
            Error::Waiting(..) => "Waiting",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Graph(GraphError::Exhausted { last, .. }) => last.retry_after(),
            Error::Graph(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// The watch caches the reconcilers read, built by `run.rs` before any controller starts.
#[derive(Clone)]
pub struct Caches {
    pub vendors: Cache<VendorTenant>,
    pub licenses: Cache<RemoteAssistLicense>,
    pub segments: Cache<BarrierSegment>,
}

pub struct Context {
    pub kube: kube::Client,
    pub metrics: Arc<crate::telemetry::Metrics>,
    pub directory: Directory,
    pub config: Config,
    reporter: Reporter,
    caches: Caches,
    compliance: Arc<ComplianceClient>,
    coordinator: Arc<Coordinator>,
    failures: Mutex<HashMap<String, u32>>,
    /// Consecutive passes per object that found the directory not caught up yet.
    lags: Mutex<HashMap<String, u32>>,
}

/// What a [`Context`] is made of.
pub struct Parts {
    pub kube: kube::Client,
    pub directory: Directory,
    pub compliance: Arc<ComplianceClient>,
    pub coordinator: Arc<Coordinator>,
    pub caches: Caches,
    pub config: Config,
    pub metrics: Arc<crate::telemetry::Metrics>,
}

impl Context {
    pub fn new(parts: Parts) -> Self {
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

/// The error policy shared by the controllers: an Event, a log line, and a per-object backoff.
pub fn error_policy<K>(obj: std::sync::Arc<K>, error: &Error, ctx: std::sync::Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    if let Error::Waiting(what, retry) = error {
        tracing::debug!(kind = %K::kind(&()), name = %obj.name_any(), %what, "waiting");
        return Action::requeue(*retry);
    }
    ctx.metrics.error(&K::kind(&()), error.reason());
    let wait = ctx.backoff(obj.as_ref(), error);
    tracing::warn!(
        kind = %K::kind(&()), namespace = obj.namespace().unwrap_or_default(), name = %obj.name_any(),
        reason = error.reason(), error = %error, retry_in = ?wait, "reconcile failed"
    );
    let (ctx2, obj2, reason, note) = (ctx.clone(), obj.clone(), error.reason(), error.to_string());
    tokio::spawn(async move {
        ctx2.event(obj2.as_ref(), EventType::Warning, reason, "Reconcile", note)
            .await;
    });
    Action::requeue(wait)
}

/// Runs `apply` or `cleanup` behind the operator's finalizer and unwraps the finalizer helper's
/// errors: the reconcilers' own errors as they are, a stale-cache race quietly retried.
pub async fn with_finalizer<K, A, C>(api: &Api<K>, obj: Arc<K>, apply: A, cleanup: C) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug
        + Send
        + Sync
        + 'static,
    A: AsyncFnOnce(Arc<K>) -> Result<Action, Error>,
    C: AsyncFnOnce(Arc<K>) -> Result<Action, Error>,
{
    use kube::runtime::finalizer::{Error as F, Event, finalizer};
    let result = finalizer(api, FINALIZER, obj, |event| async move {
        match event {
            Event::Apply(o) => apply(o).await,
            Event::Cleanup(o) => cleanup(o).await,
        }
    })
    .await;
    match result {
        Ok(action) => Ok(action),
        Err(F::ApplyFailed(e) | F::CleanupFailed(e)) => Err(e),
        Err(e) => finalizer_race(e),
    }
}

/// A finalizer patch refused because the cached object was older than the server's (its JSON
/// patch `test` failed, 422) is a race the next event resolves: look again shortly, quietly.
/// Anything else is an error.
pub fn finalizer_race(e: kube::runtime::finalizer::Error<Error>) -> Result<Action, Error> {
    use kube::runtime::finalizer::Error as F;
    match e {
        F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s))
            if s.code == 422 || s.code == 409 =>
        {
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        other => Err(Error::Finalizer(other.to_string())),
    }
}

/// Writes `status` with server-side apply when it differs from `current`. Returns whether it
/// wrote. The operator's own status writes do not retrigger reconciles (the watch filters on
/// generation, annotations and deletion), so an unchanged status costs nothing.
pub async fn write_status<K, S>(api: &Api<K>, obj: &K, current: Option<&S>, status: &S) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(true)
}

/// Now, as a Kubernetes timestamp.
pub fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())
}

/// Runs one reconcile and records its duration and result.
pub async fn instrumented<K, F>(ctx: &Context, fut: F) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let start = std::time::Instant::now();
    let result = fut.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(Error::Waiting(..)) => "waiting",
        Err(_) => "error",
    };
    ctx.metrics.reconciled(&K::kind(&()), outcome, start.elapsed());
    result
}
