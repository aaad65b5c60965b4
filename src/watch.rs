//! Watches shared by the controllers, all built by `run.rs`. The main streams pass an object on
//! only when something the reconciler acts on changed (generation, annotations, finalizers,
//! deletion), so the operator's own status writes never retrigger it; drift is found by the
//! periodic resync instead. Each cache says when its first full list has arrived
//! ([`Cache::synced`]): a decision that reads a cache waits for that, because an empty cache
//! after a restart means "not listed yet", not "nothing there". Every watch error is logged
//! with its kind and counted (`remoteassist_watch_errors_total`).

use crate::config::Config;
use crate::crd::VendorTenant;
use crate::metrics::Metrics;
use futures::{Stream, StreamExt};
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::{PredicateConfig, ResetTimerBackoff};
use kube::runtime::watcher::ExponentialBackoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// How many controller watches have completed a full list (each controller's cache counts once
/// per list). Read by `/readyz`.
pub static SYNCED_LISTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The controllers' main watches: VendorTenant, RemoteAssistLicense, BarrierSegment.
pub const CONTROLLER_WATCHES: usize = 3;

/// A watch cache and whether its first full list has arrived.
pub struct Cache<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    synced: tokio::sync::watch::Receiver<bool>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            store: self.store.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Cache<K> {
    fn new(store: Store<K>) -> (Self, tokio::sync::watch::Sender<bool>) {
        let (tx, synced) = tokio::sync::watch::channel(false);
        (Cache { store, synced }, tx)
    }

    /// The store, once it holds a full list. Every waiter is woken (unlike
    /// `Store::wait_until_ready`, which wakes one); a stopped watch releases them too.
    pub async fn synced(&self) -> &Store<K> {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|listed| *listed).await;
        &self.store
    }

    /// The store if it holds a full list within `within`.
    pub async fn listed(&self, within: std::time::Duration) -> Option<&Store<K>> {
        let mut rx = self.synced.clone();
        match tokio::time::timeout(within, rx.wait_for(|listed| *listed)).await {
            Ok(Ok(_)) => Some(&self.store),
            _ => None,
        }
    }

    /// The store as it is, for what only hints (metrics, which objects to look at again).
    pub fn current(&self) -> &Store<K> {
        &self.store
    }
}

/// A short, fixed name for a watch error (a metric label).
fn error_kind(e: &watcher::Error) -> &'static str {
    match e {
        watcher::Error::InitialListFailed(_) => "InitialListFailed",
        watcher::Error::WatchStartFailed(_) => "WatchStartFailed",
        watcher::Error::WatchError(_) => "WatchError",
        watcher::Error::WatchFailed(_) => "WatchFailed",
        watcher::Error::NoResourceVersion => "NoResourceVersion",
    }
}

/// Logs and counts a watch's errors; `purpose` says which watch of the kind it is.
fn reported<K, S>(
    stream: S,
    purpose: &'static str,
    metrics: &Arc<Metrics>,
) -> impl Stream<Item = S::Item> + Send + 'static + use<K, S>
where
    K: Resource<DynamicType = ()>,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let metrics = metrics.clone();
    stream.inspect(move |e| {
        if let Err(e) = e {
            let kind = K::kind(&());
            tracing::warn!(%kind, watch = purpose, error = %e, "watch failed; retrying with backoff");
            metrics.watch_error(&kind, purpose, error_kind(e));
        }
    })
}

/// The watches' retry policy. kube's default (client-go's) waits up to 30 s and resets only
/// after 120 s without an error, so after an API server restart a watch can take a minute and
/// a half of 403s, expired resource versions and relists before its cache is current again,
/// while reconciles read the stale cache: an account's own status writes go unseen and its
/// barrier is judged on old data. Barrier decisions read these caches, so retry within 5 s;
/// eight watches retrying that often cost the API server nothing.
pub fn backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    let policy = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(500))
        .with_max_delay(std::time::Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(policy.into(), std::time::Duration::from_secs(30))
}

pub fn config(config: &Config) -> watcher::Config {
    let wc = watcher::Config::default();
    match &config.watch_selector {
        Some(s) => wc.labels(s),
        None => wc,
    }
}

fn hash(value: impl Hash) -> Option<u64> {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    Some(h.finish())
}

/// What a reconciler reacts to: spec (generation), annotations, finalizers and deletion.
pub fn actionable<K: Resource>(obj: &K) -> Option<u64> {
    let m = obj.meta();
    hash((
        m.generation,
        m.annotations.as_ref().map(|a| a.iter().collect::<Vec<_>>()),
        &m.finalizers,
        m.deletion_timestamp.is_some(),
    ))
}

/// What a RemoteAssistLicense needs from its vendor: the spec and the groups' ids.
pub fn vendor_binding(v: &VendorTenant) -> Option<u64> {
    let s = v.status.as_ref();
    hash((
        v.metadata.generation,
        s.and_then(|s| s.accounts_group_id.clone()),
        s.and_then(|s| s.engineers_group_id.clone()),
    ))
}

/// Server-side apply's bookkeeping is often the largest part of an object and nothing here
/// reads it: caches of thousands of objects keep far less without it.
pub fn forget_managed_fields<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// The prefix of the annotations the operator reads on its objects.
const OWN_ANNOTATIONS: &str = "remoteassist.dev/";

/// What the licence cache keeps of a licence's metadata: no reconciler reads a licence's
/// labels or annotations other than the operator's own, and thousands of licences each with
/// a GitOps tool's labels (or `kubectl apply`'s copy of the whole object in an annotation)
/// would otherwise cost more than their specs and statuses together.
pub fn forget_unread_license_metadata(ral: &mut crate::crd::RemoteAssistLicense) {
    forget_managed_fields(ral);
    let meta = &mut ral.metadata;
    meta.labels = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.retain(|k, _| k.starts_with(OWN_ANNOTATIONS));
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A cached, filtered watch for a controller's main kind; `slim` takes out of each object
/// what no reader of the cache needs.
pub fn filtered<K>(
    api: Api<K>,
    wc: watcher::Config,
    slim: fn(&mut K),
    metrics: &Arc<Metrics>,
) -> (
    Cache<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static + use<K>,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    cached_and_filtered(reader, writer, api, wc, slim, metrics)
}

/// How many updates a subscription to a cache may fall behind before the cache's watch waits.
const SUBSCRIPTION_BUFFER: usize = 1024;

/// [`filtered`], with a subscription that yields each object once the cache holds it: a
/// reconciler triggered by it and reading the cache never sees an older version than the one
/// that triggered it (an uncached watch of its own can be ahead of the cache).
pub fn filtered_subscribed<K>(
    api: Api<K>,
    wc: watcher::Config,
    metrics: &Arc<Metrics>,
) -> (
    Cache<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static + use<K>,
    reflector::ReflectHandle<K>,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store_shared(SUBSCRIPTION_BUFFER);
    let subscription = writer.subscribe().expect("a shared store can be subscribed to");
    let (cache, stream) = cached_and_filtered(reader, writer, api, wc, forget_managed_fields, metrics);
    (cache, stream, subscription)
}

fn cached_and_filtered<K>(
    reader: reflector::Store<K>,
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    wc: watcher::Config,
    slim: fn(&mut K),
    metrics: &Arc<Metrics>,
) -> (
    Cache<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static + use<K>,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (cache, listed) = Cache::new(reader);
    let stream = reported(watcher(api, wc).backoff(backoff()), "controller", metrics)
        .inspect(move |e| {
            if matches!(e, Ok(watcher::Event::InitDone)) {
                SYNCED_LISTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                listed.send_replace(true);
            }
        })
        .modify(slim)
        // `reflect_shared` tells a subscription (if any) once the store holds the object.
        .reflect_shared(writer)
        .applied_objects()
        .predicate_filter(actionable::<K>, PredicateConfig::default());
    (cache, stream)
}

/// An uncached watch of a related kind, passed on only when `predicate` changes.
pub fn filtered_stream<K>(
    api: Api<K>,
    wc: watcher::Config,
    predicate: fn(&K) -> Option<u64>,
    metrics: &Arc<Metrics>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static + use<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reported(watcher(api, wc).backoff(backoff()), "trigger", metrics)
        .applied_objects()
        .predicate_filter(predicate, PredicateConfig::default())
}

/// An uncached watch of a related kind, every change passed on.
pub fn related<K>(
    api: Api<K>,
    wc: watcher::Config,
    metrics: &Arc<Metrics>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static + use<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reported(watcher(api, wc).backoff(backoff()), "trigger", metrics).applied_objects()
}

/// A cache of every VendorTenant, for lookups from the licence reconciler.
pub fn vendor_cache(
    api: Api<VendorTenant>,
    wc: watcher::Config,
    metrics: &Arc<Metrics>,
) -> (Cache<VendorTenant>, impl std::future::Future<Output = ()> + use<>) {
    let (reader, writer) = reflector::store();
    let (cache, listed) = Cache::new(reader);
    let run = reported(watcher(api, wc).backoff(backoff()), "cache", metrics)
        .inspect(move |e| {
            if matches!(e, Ok(watcher::Event::InitDone)) {
                listed.send_replace(true);
            }
        })
        .modify(forget_managed_fields)
        .reflect(writer)
        .for_each(|_| futures::future::ready(()));
    (cache, run)
}

/// What a controller's run yields besides reconciles that went well. Watch errors were logged
/// and counted where they arose, reconcile failures by the error policy; what is left is a
/// reconcile of an object gone from the cache (expected) or the runner failing (not expected).
pub fn log_controller_outcome<K, E: std::fmt::Display, Q: std::fmt::Display>(
    result: Result<(ObjectRef<K>, Action), controller::Error<E, Q>>,
) -> futures::future::Ready<()>
where
    K: Resource<DynamicType = ()>,
{
    match result {
        Ok(_) | Err(controller::Error::ReconcilerFailed(..) | controller::Error::QueueError(_)) => {}
        Err(controller::Error::ObjectNotFound(obj)) => {
            tracing::debug!(object = %obj, "a scheduled reconcile found its object gone")
        }
        Err(e @ controller::Error::RunnerError(_)) => {
            tracing::error!(kind = %K::kind(&()), error = %e, "controller runner failed")
        }
    }
    futures::future::ready(())
}

/// A vendor's RemoteAssistLicenses, from a licence cache.
pub fn licenses_of(
    store: &Store<crate::crd::RemoteAssistLicense>,
    vendor: &str,
) -> Vec<std::sync::Arc<crate::crd::RemoteAssistLicense>> {
    store
        .state()
        .into_iter()
        .filter(|l| l.spec.vendor_ref.name == vendor)
        .collect()
}

/// Name of an object for logs: `namespace/name` or `name`.
pub fn display_name<K: Resource>(obj: &K) -> String {
    match obj.namespace() {
        Some(ns) => format!("{ns}/{}", obj.name_any()),
        None => obj.name_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;
    use std::time::Duration;

    #[test]
    fn the_licence_cache_keeps_only_the_operator_s_own_annotations() {
        let mut ral: crate::crd::RemoteAssistLicense = serde_json::from_value(serde_json::json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "RemoteAssistLicense",
            "metadata": {"name": "t1", "namespace": "v1", "labels": {"app": "x"},
                "annotations": {"remoteassist.dev/mode": "plan",
                    "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "managedFields": [{"manager": "kubectl"}], "finalizers": ["remoteassist.dev/cleanup"]},
            "spec": {"vendorRef": {"name": "v1"}, "displayName": "T", "mailNickname": "t1",
                "usageLocation": "US"},
        }))
        .unwrap();
        forget_unread_license_metadata(&mut ral);
        let m = &ral.metadata;
        assert!(m.labels.is_none() && m.managed_fields.is_none());
        let kept: Vec<&String> = m.annotations.iter().flatten().map(|(k, _)| k).collect();
        assert_eq!(kept, ["remoteassist.dev/mode"]);
        assert_eq!(
            m.finalizers.as_deref(),
            Some(&["remoteassist.dev/cleanup".to_owned()][..])
        );
        ral.metadata.annotations = Some([("a/b".to_owned(), String::new())].into());
        forget_unread_license_metadata(&mut ral);
        assert!(ral.metadata.annotations.is_none());
    }

    #[test]
    fn a_failing_watch_is_retried_within_seconds_however_long_it_fails() {
        let mut b = backoff();
        // Jitter adds up to the delay itself, so no wait exceeds twice the 5 s cap.
        let waits: Vec<Duration> = (0..50).map(|_| b.next().expect("never gives up")).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(10)), "{waits:?}");
        assert!(waits[0] < Duration::from_secs(1), "{waits:?}");
        b.reset();
        assert!(b.next().unwrap() < Duration::from_secs(1), "a reset starts over");
    }
}
