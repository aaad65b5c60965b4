//! Plan and Observe modes. With the annotation `remoteassist.dev/mode: Plan` the reconciler
//! observes and plans but changes nothing, and lists the plan in `status.plannedActions` with a
//! `Planned` condition; removing the annotation carries out the same plan, recomputed from a
//! fresh observation (so exactly that plan if nothing changed in between). `Observe` does the
//! same for an adopted or sensitive account: drift is reported, never corrected.

use super::enforcement::Enforcement;
use super::plan::{Desired, Plan};
use super::status::StatusBuilder;
use crate::context::Context;
use crate::crd::RemoteAssistLicense;
use crate::crd::conditions::{Conditions, Status, types};
use crate::directory::SkuTable;
use crate::error::Error;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

pub const MODE_ANNOTATION: &str = "remoteassist.dev/mode";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Plan,
    Observe,
}

impl Mode {
    pub fn of(ral: &RemoteAssistLicense) -> Mode {
        match ral
            .annotations()
            .get(MODE_ANNOTATION)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("plan") => Mode::Plan,
            Some("observe") => Mode::Observe,
            _ => Mode::Apply,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn plan_only(
    ral: &RemoteAssistLicense,
    ctx: &Context,
    api: &Api<RemoteAssistLicense>,
    mode: Mode,
    desired: &Desired,
    plan: &Plan,
    skus: &SkuTable,
    enforcement: &Enforcement,
) -> Result<Action, Error> {
    let mut builder = StatusBuilder::new(
        ral.status.as_ref(),
        ral.metadata.generation,
        crate::controllers::reconcile::now(),
    );
    builder.from_plan(desired, plan, &Default::default(), skus);
    builder.barrier(enforcement, &ral.spec.vendor_ref.name);
    builder.status.planned_actions = plan.actions.iter().map(|a| a.describe()).collect();
    let n = plan.actions.len();
    let (reason, message) = match (mode, n) {
        (Mode::Observe, 0) => ("NoDrift", "observe mode: the account matches its spec".to_owned()),
        (Mode::Observe, _) => (
            "DriftObserved",
            format!("observe mode: {n} difference(s) found and left as they are"),
        ),
        (_, 0) => ("NothingToDo", "plan mode: nothing would change".to_owned()),
        _ => (
            "Planned",
            format!(
                "plan mode: {n} action(s) planned, nothing was changed; remove the annotation to carry them out"
            ),
        ),
    };
    builder.set(types::PLANNED, Status::True, reason, message.clone());
    let mut status = builder.finish(plan.enablement_settled, desired.suspended);
    if n > 0 {
        let c = Conditions::new(ral.metadata.generation, crate::controllers::reconcile::now());
        c.set(
            &mut status.conditions,
            types::READY,
            Status::False,
            reason,
            message.clone(),
        );
        status.message = Some(message.clone());
    }
    if super::write_license_status(ctx, api, ral, &status).await? && n > 0 {
        ctx.event(
            ral,
            EventType::Normal,
            reason,
            "Plan",
            status.planned_actions.join("; "),
        )
        .await;
    }
    ctx.succeeded(ral);
    Ok(super::resync(ctx, ral))
}
