//! Safety steps that run whatever else happens: a refused licence keeps no enabled account,
//! and `Plan` or `Observe` mode never holds back disabling an account that has lost its
//! barrier, its vendor or its namespace, or is suspended. Barriers fail closed: when in doubt,
//! an account stays disabled. Nothing here deletes, and only the operator's own users (created
//! or adopted by this licence, by the mark on them) are touched.

use super::act;
use super::plan::{Desired, Plan, Step};
use crate::context::Context;
use crate::crd::RemoteAssistLicense;
use crate::error::Error;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use serde_json::json;

/// Disables the account a refused licence is bound to, if it is enabled and still carries
/// this licence's mark. Reads the user from Graph (not the view): a refusal is rare and the
/// decision must rest on what the tenant shows.
pub async fn disable_bound_account(
    ctx: &Context,
    ral: &RemoteAssistLicense,
    reason: &str,
) -> Result<(), Error> {
    let Some(user_id) = ral.status.as_ref().and_then(|s| s.user_id.clone()) else {
        return Ok(());
    };
    let Some(user) = ctx.directory.user(&user_id).await? else {
        return Ok(());
    };
    if user.managed_by() != ral.uid().as_deref() || user.account_enabled != Some(true) {
        return Ok(());
    }
    ctx.directory
        .update_user(&user_id, &json!({"accountEnabled": false}))
        .await?;
    let note =
        format!("disabled sign-in of user {user_id}: the licence is refused ({reason}); the user is kept");
    tracing::warn!(namespace = ral.namespace().unwrap_or_default(), name = %ral.name_any(), reason, "disabled a refused licence's account");
    ctx.event(ral, EventType::Warning, "Disabled", "Disable", note)
        .await;
    Ok(())
}

/// In `Plan` and `Observe` mode: carries out the plan's disabling step (if any) and takes it
/// out of the plan, so the rest is only reported.
pub async fn run_safety_steps(
    ctx: &Context,
    ral: &RemoteAssistLicense,
    desired: &Desired,
    plan: &mut Plan,
) -> Result<(), Error> {
    let safety: Vec<Step> = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Step::Disable { .. }))
        .cloned()
        .collect();
    if safety.is_empty() {
        return Ok(());
    }
    let outcome = act::act(ctx, ral, desired, &safety).await?;
    for done in &outcome.done {
        let note = format!("{}: a safety step, carried out in every mode", done.note);
        ctx.event(ral, EventType::Warning, "Disabled", "Disable", note)
            .await;
    }
    plan.actions.retain(|a| !matches!(a, Step::Disable { .. }));
    plan.enablement_settled = true;
    Ok(())
}
