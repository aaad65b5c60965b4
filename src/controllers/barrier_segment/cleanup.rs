//! BarrierSegment deletion: only what the operator created goes, in the safe order, and not
//! while an account the segment isolates is enabled.

use super::act::waiting;
use super::ownership;
use crate::compliance::ComplianceError;
use crate::context::Context;
use crate::controllers::reconcile::{now, write_status};
use crate::crd::BarrierSegment;
use crate::crd::conditions::{Conditions, Status, types};
use crate::error::Error;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use std::time::Duration;

/// Removes only what the operator created for this BarrierSegment ([`ownership::removal`]),
/// in the safe order: the policy goes Inactive, then the policy is removed, then the segment.
/// Anything else of its name stays in the tenant as it is.
/// A segment that holds a vendor's accounts goes only once none of them is enabled: an
/// orphaned or adopted account never outlives the barrier that keeps it from other vendors.
async fn wait_for_holders(bs: &BarrierSegment, ctx: &Context) -> Result<(), Error> {
    use crate::controllers::remote_assist_license::enforcement::selects_accounts;
    let vendors = ctx.caches().vendors.current().state();
    let Some(vendor) = vendors.iter().find(|v| selects_accounts(bs, v)) else {
        return Ok(());
    };
    let holders = crate::controllers::vendor_tenant::holders::enabled_holders(ctx, vendor).await?;
    if holders.is_empty() {
        return Ok(());
    }
    let message = crate::controllers::vendor_tenant::holders::holding_message(&holders);
    let api: Api<BarrierSegment> = Api::all(ctx.kube.clone());
    let mut status = bs.status.clone().unwrap_or_default();
    let c = Conditions::new(bs.metadata.generation, now());
    c.set(
        &mut status.conditions,
        types::READY,
        Status::False,
        "AccountsHoldSegment",
        message.clone(),
    );
    status.message = Some(message.clone());
    if write_status(&api, bs, bs.status.as_ref(), &status).await? {
        ctx.event(
            bs,
            EventType::Warning,
            "AccountsHoldSegment",
            "Cleanup",
            message.clone(),
        )
        .await;
    }
    Err(Error::Waiting(
        message,
        std::time::Duration::from_secs(30).min(ctx.config.resync),
    ))
}

pub async fn cleanup(bs: &BarrierSegment, ctx: &Context) -> Result<Action, Error> {
    wait_for_holders(bs, ctx).await?;
    let compliance = ctx.compliance();
    let name = bs.segment_name();
    let uid = bs.uid().unwrap_or_default();
    let record = bs
        .status
        .as_ref()
        .and_then(|s| s.created.clone())
        .unwrap_or_default();
    let result: Result<(Vec<String>, Vec<String>), ComplianceError> = async {
        let (policies, segments) = (compliance.policies().await?, compliance.segments().await?);
        let r = ownership::removal(&name, &uid, &record, &segments, &policies);
        let mut removed = Vec::new();
        if let Some(p) = r.policy {
            if !p.state.eq_ignore_ascii_case("Inactive") {
                compliance.set_policy_state(&p.identity, "Inactive").await?;
            }
            compliance.remove_policy(&p.identity).await?;
            removed.push(format!("policy {}", p.name));
        }
        if let Some(s) = r.segment {
            compliance.remove_segment(&s.identity).await?;
            removed.push(format!("segment {}", s.name));
        }
        Ok((removed, r.left))
    }
    .await;
    match result {
        Ok((removed, left)) => {
            if !removed.is_empty() {
                ctx.coordinator().request("a segment or policy was removed");
                let note = format!("removed {}", removed.join(" and "));
                ctx.event(bs, EventType::Normal, "SegmentRemoved", "Cleanup", note)
                    .await;
            }
            if !left.is_empty() {
                let note = format!("left in the tenant: {}", left.join("; "));
                ctx.event(bs, EventType::Normal, "SegmentReleased", "Cleanup", note)
                    .await;
            }
            Ok(Action::await_change())
        }
        Err(e) if waiting(&e) => Err(Error::Waiting(
            "a policy application is running".into(),
            Duration::from_secs(5),
        )),
        // Another segment's policy still names this one: it goes once that policy is removed.
        Err(e) if e.exception_name().is_some_and(|n| n.contains("InUse")) => {
            Err(Error::Waiting(e.to_string(), Duration::from_secs(1)))
        }
        Err(e) => Err(e.into()),
    }
}
