//! Whether an account's information barrier is in force. Fail closed: only when exactly one
//! BarrierSegment selects the vendor's accounts, its policy is an Active allow policy that is
//! applied for its current spec, and a policy application that started after the account joined
//! the segment has completed. Only then is the account enabled (barrier-first activation); in
//! every other case it stays disabled, and an enabled one is disabled at once.

use crate::context::Context;
use crate::controllers::barrier_segment::application::HISTORY_WAIT;
use crate::crd::barrier_segment::{PolicyState, PolicyType};
use crate::crd::conditions::{self, types};
use crate::crd::{BarrierSegment, RemoteAssistLicense, VendorTenant};
use crate::error::Error;
use kube::ResourceExt;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enforcement {
    NotRequired,
    /// In force since the named application completed.
    Enforced(String),
    Pending {
        reason: &'static str,
        message: String,
    },
}

impl Enforcement {
    pub fn enforced(&self) -> bool {
        matches!(self, Enforcement::Enforced(_))
    }
}

fn pending(reason: &'static str, message: String) -> Enforcement {
    Enforcement::Pending { reason, message }
}

/// Whether a segment's members are this vendor's accounts: by the vendor's name, its accounts
/// group's id, or the attribute value its accounts carry.
pub fn selects_accounts(segment: &BarrierSegment, vendor: &VendorTenant) -> bool {
    let placed = crate::controllers::barrier_segment::invariant::holder(
        &segment.spec.members,
        std::slice::from_ref(vendor),
    );
    use crate::controllers::barrier_segment::invariant::Holder;
    matches!(placed, Holder::Accounts(v) | Holder::Vendor(v) if v == vendor.name_any())
}

/// The one segment that isolates the vendor's accounts, or why there is none. Pure.
pub fn isolating_segment<'a>(
    segments: &'a [Arc<BarrierSegment>],
    vendor: &VendorTenant,
) -> Result<&'a BarrierSegment, Enforcement> {
    let name = vendor.name_any();
    let selecting: Vec<&BarrierSegment> = segments
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| s.metadata.deletion_timestamp.is_none() && selects_accounts(s, vendor))
        .collect();
    let segment = match selecting.as_slice() {
        [] => {
            let hint = if vendor.generates_segments() {
                "it is being generated"
            } else {
                "write one (generateSegments is false)"
            };
            return Err(pending(
                "NoSegment",
                format!("no BarrierSegment holds VendorTenant {name}'s accounts; {hint}"),
            ));
        }
        [one] => *one,
        many => {
            let names: Vec<String> = many.iter().map(|s| s.name_any()).collect();
            return Err(pending(
                "SegmentConflict",
                format!(
                    "BarrierSegments {} all select VendorTenant {name}'s accounts; exactly one may, so none is trusted",
                    names.join(", ")
                ),
            ));
        }
    };
    policy_in_force(segment)?;
    Ok(segment)
}

/// Whether `segment`'s policy keeps its members apart: an Active allow policy, applied for the
/// segment's current spec. Pure.
fn policy_in_force(segment: &BarrierSegment) -> Result<(), Enforcement> {
    let seg = segment.name_any();
    if segment.policy_type() != PolicyType::Allow
        || segment.spec.policy_state.unwrap_or_default() != PolicyState::Active
    {
        return Err(pending(
            "NotIsolating",
            format!(
                "BarrierSegment {seg} has no Active allow policy (only an Active allow policy keeps a vendor's accounts from everyone else; no policy, an Inactive one or a block list does not)"
            ),
        ));
    }
    let applied = segment
        .status
        .as_ref()
        .filter(|s| s.observed_generation == segment.metadata.generation)
        .and_then(|s| conditions::find(&s.conditions, types::POLICY_APPLIED))
        .filter(|c| c.status == "True");
    if applied.is_none() {
        return Err(pending(
            "SegmentNotApplied",
            format!("BarrierSegment {seg}'s policy is not applied yet"),
        ));
    }
    Ok(())
}

/// Whether a segment vouches for the accounts it holds: not being deleted, and its policy in
/// force. A change to one that does not reaches every licence of its vendor (so that each is
/// judged again, and disabled if need be); one that does, only the licences still waiting for
/// their barrier. Pure.
pub fn vouches(segment: &BarrierSegment) -> bool {
    segment.metadata.deletion_timestamp.is_none() && policy_in_force(segment).is_ok()
}

/// The licences a change of `segment` should bring back (see [`vouches`]). Pure.
pub fn brought_back_by(
    segment: &BarrierSegment,
    licences: &[Arc<RemoteAssistLicense>],
) -> Vec<kube::runtime::reflector::ObjectRef<RemoteAssistLicense>> {
    let everyone = !vouches(segment);
    licences
        .iter()
        .filter(|l| everyone || !super::held_before(l, types::BARRIER_ENFORCED))
        .map(|l| kube::runtime::reflector::ObjectRef::from_obj(l.as_ref()))
        .collect()
}

/// Whether the account's barrier is enforced. Never judged on a segment cache still filling
/// after a restart: that would find no segment and disable every account.
pub async fn enforcement(
    ctx: &Context,
    ral: &RemoteAssistLicense,
    vendor: &VendorTenant,
) -> Result<Enforcement, Error> {
    if !vendor.barriers_required() {
        return Ok(Enforcement::NotRequired);
    }
    let segments = ctx.segments().await?.state();
    // After a restart, the history is read first (bounded: past it, judged as not applied).
    ctx.coordinator().history_read(HISTORY_WAIT).await;
    Ok(judged(ctx, ral, vendor, &segments))
}

fn judged(
    ctx: &Context,
    ral: &RemoteAssistLicense,
    vendor: &VendorTenant,
    segments: &[Arc<BarrierSegment>],
) -> Enforcement {
    if let Err(verdict) = isolating_segment(segments, vendor) {
        return verdict;
    }
    let Some(since) = ral
        .status
        .as_ref()
        .and_then(|s| s.barrier_attribute_set_at.clone())
    else {
        return pending(
            "AttributePending",
            "the account has not been placed in its segment yet".into(),
        );
    };
    let state = ctx.coordinator().snapshot();
    if let Some(run) = state.applied.as_ref().filter(|r| r.started_after(since.0)) {
        return Enforcement::Enforced(run.id.clone());
    }
    if let Some(run) = state.running.as_ref().filter(|r| r.started_after(since.0)) {
        return pending(
            "Applying",
            // No percentage: it would rewrite every waiting account's status at each poll.
            format!("policy application {} is {}", run.id, run.status),
        );
    }
    if let Some(run) = state.failed.as_ref().filter(|r| r.started_after(since.0)) {
        return pending(
            "ApplicationFailed",
            format!(
                "policy application {} failed: {}",
                run.id,
                run.failure.clone().unwrap_or_default()
            ),
        );
    }
    if state.recovered && state.requested.is_none() && state.running.is_none() {
        ctx.coordinator()
            .request("an account awaits an application that covers it");
    }
    pending(
        "AwaitingApplication",
        "waiting for a policy application that starts after the account joined its segment; it stays disabled until then".into(),
    )
}

#[cfg(test)]
#[path = "enforcement_tests.rs"]
mod tests;
