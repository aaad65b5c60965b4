//! The BarrierSegment reconciler: the organization segment and its policy in the tenant, the
//! `PolicyApplied` condition from the application coordinator, and removal in the safe order
//! (policy Inactive, policy removed, segment removed).
//!
//! Observe (the cluster's BarrierSegments, then the tenant's definitions) → decide, purely
//! ([`ownership`]: the name is this object's and the tenant objects of that name are the
//! operator's or adopted; [`plan`]: the commands) → act → status. A BarrierSegment refused for
//! its name writes nothing to the tenant; deletion removes only what the operator created.

pub mod act;
pub mod application;
pub mod applied;
pub mod cleanup;
pub mod invariant;
pub mod members;
pub mod observe;
pub mod ownership;
pub mod pairing;
pub mod plan;
pub mod preview;
pub mod status;
pub mod tenant_mode;

use crate::context::Context;
use crate::controllers::reconcile::error_policy;
use crate::crd::BarrierSegment;
use crate::error::Error;
use crate::watch;
use futures::StreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use plan::Rejection;
use std::sync::Arc;

/// Runs the controller on `stream`, the main watch `run.rs` built with the segment cache (which
/// the coordinator shares).
pub async fn run(
    ctx: Arc<Context>,
    stream: impl futures::Stream<Item = Result<BarrierSegment, kube::runtime::watcher::Error>> + Send + 'static,
) {
    let wc = watch::config(&ctx.config);
    let reader = ctx.caches().segments.current().clone();
    let vendors = watch::filtered_stream(
        Api::all(ctx.kube.clone()),
        wc,
        watch::vendor_binding,
        &ctx.metrics,
    );
    let store = reader.clone();
    // A host segment's allow list follows the engineers' segments, and theirs follows it.
    let peers = watch::filtered_stream(
        Api::<BarrierSegment>::all(ctx.kube.clone()),
        watch::config(&ctx.config),
        watch::actionable::<BarrierSegment>,
        &ctx.metrics,
    );
    let (segments, vendor_cache) = (reader.clone(), ctx.caches().vendors.clone());
    Controller::for_stream(stream, reader)
        .watches_stream(vendors, move |v| {
            let name = v.name_any();
            store
                .state()
                .into_iter()
                .filter(|s| {
                    // A host segment's filter names every vendor.
                    let m = &s.spec.members;
                    m.vendor_accounts.as_deref() == Some(&name)
                        || m.vendor_engineers.as_deref() == Some(&name)
                        || m.vendor.as_deref() == Some(&name)
                        || m.host_staff.is_some()
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(peers, move |changed| {
            pairing::partners(&changed, &segments.state(), &vendor_cache.current().state())
        })
        .reconcile_all_on(futures::stream::select(
            ctx.coordinator().changes(),
            ctx.coordinator().mode.changes(),
        ))
        .with_config(ControllerConfig::default().concurrency(4))
        .shutdown_on_signal()
        .run(
            |obj, ctx| async move {
                crate::controllers::reconcile::instrumented::<BarrierSegment, _>(
                    &ctx.clone(),
                    reconcile(obj, ctx),
                )
                .await
            },
            error_policy,
            ctx,
        )
        .for_each(watch::log_controller_outcome)
        .await;
}

pub async fn reconcile(bs: Arc<BarrierSegment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<BarrierSegment> = Api::all(ctx.kube.clone());
    crate::controllers::reconcile::with_finalizer(
        &api,
        bs,
        async |s| apply(&s, &ctx, &api).await,
        async |s| cleanup::cleanup(&s, &ctx).await,
    )
    .await
}

/// Observe → plan (pure) → act → status.
async fn apply(bs: &BarrierSegment, ctx: &Context, api: &Api<BarrierSegment>) -> Result<Action, Error> {
    let cluster = observe::cluster(ctx).await?;
    let mut status = status::start(bs);
    let desired = match plan::admit(bs, &cluster.segments, cluster.scope()) {
        Ok(d) => d,
        Err(Rejection::Refused(r)) => return status::refuse(bs, ctx, api, status, r).await,
        Err(Rejection::Invalid(r)) => return status::invalid(bs, ctx, api, status, r).await,
    };
    let (segments, policies) = observe::tenant(ctx).await?;
    let uid = bs.uid().unwrap_or_default();
    let record = status.created.clone().unwrap_or_default();
    let adopt = bs.adopts_existing();
    let (bound, steps) = match plan::tenant_steps(&desired, &uid, &record, adopt, &segments, &policies) {
        Ok(planned) => planned,
        Err(r) => return status::refuse(bs, ctx, api, status, r).await,
    };
    status::bound(&mut status, &bound, record);
    let adopted = if bound.segment.is_some() && !bound.segment_created {
        " (adopted)"
    } else {
        ""
    };
    let defined = format!("segment {}{adopted} filters on {}", desired.name, desired.filter);
    let (done, halt) = act::act(bs, ctx, api, &mut status, &steps).await?;
    status::conclude(bs, ctx, api, status, done, halt, defined).await
}
