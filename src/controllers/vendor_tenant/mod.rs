//! The VendorTenant reconciler: the two groups, the engineers' membership, group licences in
//! `Group` mode, a seat pre-flight per SKU, and the roll-up of the vendor's accounts.

pub mod act;
pub mod cleanup;
pub mod generated_segments;
pub mod groups;
pub mod holders;
pub mod observe;
pub mod plan;
pub mod seats;
pub mod status;

use crate::context::Context;
use crate::controllers::reconcile::{error_policy, now, write_status};
use crate::crd::{RemoteAssistLicense, VendorTenant};
use crate::error::Error;
use crate::watch;
use futures::StreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// Runs the controller on `stream`, the main watch `run.rs` built with the vendor cache.
pub async fn run(
    ctx: Arc<Context>,
    reader: kube::runtime::reflector::Store<VendorTenant>,
    stream: impl futures::Stream<Item = Result<VendorTenant, kube::runtime::watcher::Error>> + Send + 'static,
) {
    let wc = watch::config(&ctx.config);
    // Any change to a vendor's accounts (their status included) updates its roll-up; the
    // debounce folds a burst of account changes into one vendor reconcile.
    let accounts = watch::related(
        Api::<RemoteAssistLicense>::all(ctx.kube.clone()),
        wc,
        &ctx.metrics,
    );
    Controller::for_stream(stream, reader)
        .watches_stream(accounts, |ral| {
            Some(ObjectRef::<VendorTenant>::new(&ral.spec.vendor_ref.name))
        })
        .reconcile_all_on(ctx.coordinator().mode.changes())
        .with_config(
            ControllerConfig::default()
                .concurrency(ctx.config.concurrency)
                .debounce(Duration::from_secs(1)),
        )
        .shutdown_on_signal()
        .run(
            |obj, ctx| async move {
                crate::controllers::reconcile::instrumented::<VendorTenant, _>(
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

pub async fn reconcile(vt: Arc<VendorTenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<VendorTenant> = Api::all(ctx.kube.clone());
    crate::controllers::reconcile::with_finalizer(
        &api,
        vt,
        async |v| apply(&v, &ctx, &api).await,
        async |v| cleanup::cleanup(&v, &ctx, &api).await,
    )
    .await
}

/// This vendor's RemoteAssistLicenses, from the license cache once it holds a full list: after
/// a restart, an empty cache must not read as "no accounts left".
async fn accounts(ctx: &Context, vendor: &str) -> Result<Vec<Arc<RemoteAssistLicense>>, Error> {
    Ok(watch::licenses_of(ctx.licenses().await?, vendor))
}

/// Observe → plan (pure) → act → status.
async fn apply(vt: &VendorTenant, ctx: &Context, api: &Api<VendorTenant>) -> Result<Action, Error> {
    let uid = vt.uid().unwrap_or_default();
    let name = vt.name_any();
    let observed = observe::observe(ctx, vt).await?;
    let status_ids = vt.status.as_ref().map_or([None, None], |s| {
        [s.accounts_group_id.as_deref(), s.engineers_group_id.as_deref()]
    });
    let plan = plan::plan(vt, Some(&uid), status_ids, &observed);
    let mut outcome = act::act(ctx, &uid, &plan.steps).await?;
    for (group, id) in &plan.rebound {
        let message = format!("group {group} was gone; bound to {id}");
        outcome.done.insert(0, ("GroupRebound", message));
    }
    let mut new_status = status::status(vt, &plan, &outcome, &observed.accounts, &now());
    new_status.information_barrier_mode = observed.mode;
    for (reason, note) in &outcome.done {
        tracing::info!(vendor = %name, reason, note = %note, "acted on the tenant");
        ctx.event(vt, EventType::Normal, reason, reason, note.clone())
            .await;
    }
    if write_status(api, vt, vt.status.as_ref(), &new_status).await? {
        for p in &plan.problems {
            ctx.event(vt, EventType::Warning, p.reason, "Reconcile", p.message.clone())
                .await;
        }
    }
    ctx.succeeded(vt);
    Ok(Action::requeue(if outcome.done.is_empty() {
        ctx.config.resync
    } else {
        Duration::from_secs(1)
    }))
}
