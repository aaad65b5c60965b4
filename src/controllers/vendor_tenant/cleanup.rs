//! VendorTenant deletion: it waits until no RemoteAssistLicense refers to the vendor (their
//! users are handled by their own deletion policies) and no account of its group is enabled,
//! removes the generated BarrierSegments, then deletes the groups the operator created.
//! Groups it adopted stay.

use super::{accounts, generated_segments, holders};
use crate::context::Context;
use crate::controllers::reconcile::{now, write_status};
use crate::crd::VendorTenant;
use crate::crd::conditions::{Conditions, Status, types};
use crate::error::Error;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use std::time::Duration;

pub async fn cleanup(vt: &VendorTenant, ctx: &Context, api: &Api<VendorTenant>) -> Result<Action, Error> {
    wait_for_accounts(vt, ctx, api).await?;
    wait_for_holders(vt, ctx, api).await?;
    if !generated_segments::delete_generated(ctx, vt).await? {
        return Err(Error::Waiting(
            "the generated BarrierSegments are being removed".into(),
            Duration::from_secs(2),
        ));
    }
    delete_groups(vt, ctx).await?;
    Ok(Action::await_change())
}

/// `Ready` False with `reason` while deletion waits, and its Event once.
async fn waiting(
    vt: &VendorTenant,
    ctx: &Context,
    api: &Api<VendorTenant>,
    reason: &'static str,
    message: &str,
    warn: bool,
) -> Result<(), Error> {
    let mut status = vt.status.clone().unwrap_or_default();
    let c = Conditions::new(vt.metadata.generation, now());
    c.set(
        &mut status.conditions,
        types::READY,
        Status::False,
        reason,
        message,
    );
    if warn {
        status.message = Some(message.to_owned());
    }
    if write_status(api, vt, vt.status.as_ref(), &status).await? {
        let kind = if warn {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.event(vt, kind, reason, "Cleanup", message.to_owned()).await;
    }
    Ok(())
}

/// Waits while any RemoteAssistLicense of the vendor exists.
async fn wait_for_accounts(vt: &VendorTenant, ctx: &Context, api: &Api<VendorTenant>) -> Result<(), Error> {
    let remaining = accounts(ctx, &vt.name_any()).await?.len();
    if remaining == 0 {
        return Ok(());
    }
    let message =
        format!("waiting for {remaining} RemoteAssistLicense(s) of this vendor to be deleted first");
    waiting(vt, ctx, api, "Terminating", &message, false).await?;
    Err(Error::Waiting(
        format!("{remaining} RemoteAssistLicense(s) of this vendor still exist"),
        Duration::from_secs(3),
    ))
}

/// Orphaned accounts stay behind a barrier: nothing of the vendor's goes while one is enabled.
async fn wait_for_holders(vt: &VendorTenant, ctx: &Context, api: &Api<VendorTenant>) -> Result<(), Error> {
    let holders = holders::enabled_holders(ctx, vt).await?;
    if holders.is_empty() {
        return Ok(());
    }
    let message = holders::holding_message(&holders);
    waiting(vt, ctx, api, "AccountsHoldSegments", &message, true).await?;
    Err(Error::Waiting(
        message,
        Duration::from_secs(30).min(ctx.config.resync),
    ))
}

/// Deletes the groups the operator created; an adopted group is kept.
async fn delete_groups(vt: &VendorTenant, ctx: &Context) -> Result<(), Error> {
    let uid = vt.uid().unwrap_or_default();
    let status = vt.status.clone().unwrap_or_default();
    for id in [status.accounts_group_id, status.engineers_group_id]
        .into_iter()
        .flatten()
    {
        let Some(g) = ctx.directory.group(&id).await? else {
            continue;
        };
        if g.managed_by() == Some(uid.as_str()) {
            ctx.directory.delete_group(&id).await?;
            let note = format!("deleted group {}", g.display_name);
            ctx.event(vt, EventType::Normal, "GroupDeleted", "Cleanup", note)
                .await;
        } else {
            let note = format!("group {} was adopted, so it is kept", g.display_name);
            ctx.event(vt, EventType::Normal, "GroupKept", "Cleanup", note)
                .await;
        }
    }
    Ok(())
}
