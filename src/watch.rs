//! Watches shared by the controllers. The main streams pass an object on only when something the
//! reconciler acts on changed (generation, annotations, finalizers, deletion), so the operator's
//! own status writes never retrigger it; drift is found by the periodic resync instead.

use crate::config::Config;
use crate::crd::VendorTenant;
use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, utils::PredicateConfig, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};

/// How many controller watches have completed a full list (each controller's cache counts once
/// per list). Read by `/readyz`; `Store::wait_until_ready` wakes only its latest waiter, so a
/// second waiter beside the controller could stall it.
pub static SYNCED_LISTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The controllers' main watches: VendorTenant, RemoteAssistLicense, BarrierSegment.
pub const CONTROLLER_WATCHES: usize = 3;

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

/// A cached, filtered watch for a controller's main kind.
pub fn filtered<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, wc)
        .default_backoff()
        .inspect(|e| {
            if matches!(e, Ok(watcher::Event::InitDone)) {
                SYNCED_LISTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .modify(forget_managed_fields)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(actionable::<K>, PredicateConfig::default());
    (reader, stream)
}

/// An uncached watch of a related kind, passed on only when `predicate` changes.
pub fn filtered_stream<K>(
    api: Api<K>,
    wc: watcher::Config,
    predicate: fn(&K) -> Option<u64>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watcher(api, wc)
        .default_backoff()
        .applied_objects()
        .predicate_filter(predicate, PredicateConfig::default())
}

/// A cache of every VendorTenant, for lookups from the licence reconciler.
pub fn vendor_cache(
    api: Api<VendorTenant>,
    wc: watcher::Config,
) -> (Store<VendorTenant>, impl std::future::Future<Output = ()>) {
    let (reader, writer) = reflector::store();
    let run = watcher(api, wc)
        .default_backoff()
        .modify(forget_managed_fields)
        .reflect(writer)
        .for_each(|_| futures::future::ready(()));
    (reader, run)
}

/// A vendor's RemoteAssistLicenses, from a licence cache.
pub fn licences_of(
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
