//! The VendorTenant reconciler: the two groups, the engineers' membership, group licences in
//! `Group` mode, a seat pre-flight per SKU, and the roll-up of the vendor's accounts.

pub mod act;
pub mod generated_segments;
pub mod groups;
pub mod holders;
pub mod observe;
pub mod plan;
pub mod seats;
pub mod status;

use crate::context::Context;
use crate::controllers::reconcile::{error_policy, now, write_status};
use crate::crd::conditions::{ConditionUpdate, Status, set_condition, types};
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
        async |v| cleanup(&v, &ctx, &api).await,
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
    let new_status = status::status(vt, &plan, &outcome, &observed.accounts, &now());
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

/// Deletion: waits until no RemoteAssistLicense refers to the vendor (their users are handled by
/// their own deletion policies), then deletes the groups the operator created. Groups it
/// adopted stay.
async fn cleanup(vt: &VendorTenant, ctx: &Context, api: &Api<VendorTenant>) -> Result<Action, Error> {
    let name = vt.name_any();
    let remaining = accounts(ctx, &name).await?.len();
    if remaining > 0 {
        let mut status = vt.status.clone().unwrap_or_default();
        let message =
            format!("waiting for {remaining} RemoteAssistLicense(s) of this vendor to be deleted first");
        let update = ConditionUpdate::new(types::READY, Status::False, "Terminating", message.clone());
        set_condition(&mut status.conditions, update, vt.metadata.generation, &now());
        if write_status(api, vt, vt.status.as_ref(), &status).await? {
            ctx.event(vt, EventType::Normal, "Terminating", "Cleanup", message)
                .await;
        }
        return Err(Error::Waiting(
            message_for_wait(remaining),
            Duration::from_secs(3),
        ));
    }
    // Orphaned accounts stay behind a barrier: nothing of the vendor's goes while one is enabled.
    let holders = holders::enabled_holders(ctx, vt).await?;
    if !holders.is_empty() {
        let message = holders::holding_message(&holders);
        let mut status = vt.status.clone().unwrap_or_default();
        let update = ConditionUpdate::new(
            types::READY,
            Status::False,
            "AccountsHoldSegments",
            message.clone(),
        );
        set_condition(&mut status.conditions, update, vt.metadata.generation, &now());
        status.message = Some(message.clone());
        if write_status(api, vt, vt.status.as_ref(), &status).await? {
            ctx.event(
                vt,
                EventType::Warning,
                "AccountsHoldSegments",
                "Cleanup",
                message.clone(),
            )
            .await;
        }
        return Err(Error::Waiting(
            message,
            Duration::from_secs(30).min(ctx.config.resync),
        ));
    }
    if !generated_segments::delete_generated(ctx, vt).await? {
        return Err(Error::Waiting(
            "the generated BarrierSegments are being removed".into(),
            Duration::from_secs(2),
        ));
    }
    let uid = vt.uid().unwrap_or_default();
    let status = vt.status.clone().unwrap_or_default();
    for id in [status.accounts_group_id, status.engineers_group_id]
        .into_iter()
        .flatten()
    {
        if let Some(g) = ctx.directory.group(&id).await? {
            if g.managed_by() == Some(uid.as_str()) {
                ctx.directory.delete_group(&id).await?;
                ctx.event(
                    vt,
                    EventType::Normal,
                    "GroupDeleted",
                    "Cleanup",
                    format!("deleted group {}", g.display_name),
                )
                .await;
            } else {
                ctx.event(
                    vt,
                    EventType::Normal,
                    "GroupKept",
                    "Cleanup",
                    format!("group {} was adopted, so it is kept", g.display_name),
                )
                .await;
            }
        }
    }
    Ok(Action::await_change())
}

fn message_for_wait(remaining: usize) -> String {
    format!("{remaining} RemoteAssistLicense(s) of this vendor still exist")
}
