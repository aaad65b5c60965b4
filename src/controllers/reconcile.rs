//! What the three controllers share around one reconcile: the error policy (an Event, a log
//! line and a per-object backoff), the finalizer dispatch, the status write that skips
//! unchanged statuses, and the reconcile metrics.

use crate::context::{Context, FINALIZER, MANAGER};
use crate::error::Error;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

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
    Ok(write_status_versioned(api, obj, current, status).await?.is_some())
}

/// [`write_status`], returning the object's resourceVersion after the write when it wrote.
pub async fn write_status_versioned<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<Option<String>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(Some(written.resource_version().unwrap_or_default()))
}

/// Now, as a Kubernetes timestamp.
pub fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())
}

/// Now, rounded up to the whole second, for a time that policy applications are compared with.
/// A `Time` is stored with whole seconds only: rounded down, it could read earlier than the
/// write it records, and an application that started between the two would count as covering
/// an account its snapshot never saw.
pub fn now_for_barriers() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(round_up_to_second(
        k8s_openapi::jiff::Timestamp::now(),
    ))
}

/// `t`, or the next whole second if it has a fraction.
pub fn round_up_to_second(t: k8s_openapi::jiff::Timestamp) -> k8s_openapi::jiff::Timestamp {
    if t.subsec_nanosecond() > 0 {
        k8s_openapi::jiff::Timestamp::from_second(t.as_second() + 1).unwrap_or(t)
    } else {
        t
    }
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

#[cfg(test)]
mod tests {
    use super::round_up_to_second;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn a_barrier_time_read_back_is_never_earlier_than_the_event() {
        for event in [
            "2026-12-02T10:00:00.900Z",
            "2026-12-02T10:00:00.000000001Z",
            "2026-12-02T10:00:00Z",
        ] {
            let event: Timestamp = event.parse().unwrap();
            let stored = serde_json::to_value(Time(round_up_to_second(event))).unwrap();
            let read: Time = serde_json::from_value(stored).unwrap();
            assert!(read.0 >= event, "{event} read back as {}", read.0);
            assert!(read.0.duration_since(event).as_secs_f64() < 1.0);
        }
        // Rounded down, as a plain `Time` stores it, the first one would read earlier.
        let event: Timestamp = "2026-12-02T10:00:00.900Z".parse().unwrap();
        let read: Time = serde_json::from_value(serde_json::to_value(Time(event)).unwrap()).unwrap();
        assert!(read.0 < event);
    }
}
