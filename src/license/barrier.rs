//! Whether an account's information barrier is in force: its vendor's accounts segment has an
//! applied policy, and a policy application that started after the account joined the segment
//! has completed. Only then is the account enabled (barrier-first activation).

use crate::context::Context;
use crate::crd::conditions::{self, kinds};
use crate::crd::{RemoteAssistLicense, VendorTenant};

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

pub fn enforcement(ctx: &Context, ral: &RemoteAssistLicense, vendor: &VendorTenant) -> Enforcement {
    if !vendor.barriers_required() {
        return Enforcement::NotRequired;
    }
    let name = vendor.metadata.name.clone().unwrap_or_default();
    let segments = ctx.segments().state();
    let Some(segment) = segments.iter().find(|s| {
        s.spec.members.vendor_accounts.as_deref() == Some(&name) && s.metadata.deletion_timestamp.is_none()
    }) else {
        let hint = if vendor.generates_segments() {
            "it is being generated"
        } else {
            "write one (generateSegments is false)"
        };
        return pending(
            "NoSegment",
            format!("no BarrierSegment holds VendorTenant {name}'s accounts; {hint}"),
        );
    };
    let applied = segment
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, kinds::POLICY_APPLIED))
        .filter(|c| c.status == "True");
    if applied.is_none() {
        return pending(
            "SegmentNotApplied",
            format!(
                "BarrierSegment {}'s policy is not applied yet",
                segment.metadata.name.clone().unwrap_or_default()
            ),
        );
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
    if let Some(run) = state.applied.as_ref().filter(|r| r.started_at > since.0) {
        return Enforcement::Enforced(run.id.clone());
    }
    if let Some(run) = state.running.as_ref().filter(|r| r.started_at > since.0) {
        return pending(
            "Applying",
            format!(
                "policy application {} is {} ({}%)",
                run.id, run.status, run.percent
            ),
        );
    }
    if let Some(run) = state.failed.as_ref().filter(|r| r.started_at > since.0) {
        return pending(
            "ApplicationFailed",
            format!(
                "policy application {} failed: {}",
                run.id,
                run.failure.clone().unwrap_or_default()
            ),
        );
    }
    if state.requested.is_none() && state.running.is_none() {
        ctx.coordinator().request();
    }
    pending(
        "AwaitingApplication",
        "waiting for a policy application that starts after the account joined its segment; it stays disabled until then".into(),
    )
}
