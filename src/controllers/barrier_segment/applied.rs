//! `PolicyApplied` from the coordinator's state (pure): True once an application that
//! certainly started after the last change to this segment or its policy has completed, and it
//! stays True while later applications run or fail (the applied state stays in effect until a
//! newer one completes). A run whose start is unknown (the endpoint's answer could not be read
//! or believed) never counts.

use super::application::{Run, State};
use crate::crd::barrier_segment::PolicyType;
use crate::crd::conditions::Status;
use k8s_openapi::jiff::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub reason: &'static str,
    pub message: String,
    /// The application whose completion put the policy into effect.
    pub applied_by: Option<String>,
    /// Whether to ask the coordinator for an application.
    pub request: bool,
}

fn verdict(status: Status, reason: &'static str, message: String) -> Verdict {
    Verdict {
        status,
        reason,
        message,
        applied_by: None,
        request: false,
    }
}

/// The verdict for the BarrierSegment `name` whose segment or policy last changed at
/// `changed` (never, if `None`).
pub fn policy_applied(policy: PolicyType, name: &str, changed: Option<Timestamp>, state: &State) -> Verdict {
    let after = |run: &Run| run.start_known() && changed.is_none_or(|c| run.started_at > c);
    // Asked for only once the history is read, and when nothing is asked for or running.
    let idle = state.recovered && state.requested.is_none() && state.running.is_none();
    if policy == PolicyType::None {
        return verdict(
            Status::True,
            "NoPolicy",
            "this segment has no policy of its own".into(),
        );
    }
    if let Some(run) = state.applied.as_ref().filter(|r| after(r)) {
        return Verdict {
            applied_by: Some(run.id.clone()),
            ..verdict(
                Status::True,
                "Applied",
                format!("in effect since application {} completed", run.id),
            )
        };
    }
    if let Some(held) = state.held.as_ref().filter(|h| h.contains(name)) {
        return match state.held_reason {
            Some("CrossVendorPath") => verdict(
                Status::False,
                "CrossVendorPath",
                format!(
                    "not applied: {held}; a vendor's accounts may reach only that vendor's accounts and engineers, so no policy is applied until the path is removed"
                ),
            ),
            _ => verdict(
                Status::False,
                "Asymmetric",
                format!("not applied: {held}; barriers are bidirectional, so add the missing direction"),
            ),
        };
    }
    if let Some(run) = state.running.as_ref().filter(|r| after(r)) {
        return verdict(
            Status::False,
            "Applying",
            format!("application {} is {} ({}%)", run.id, run.status, run.percent),
        );
    }
    if let Some(run) = state.failed.as_ref().filter(|r| r.unreadable()) {
        return Verdict {
            request: idle,
            ..verdict(
                Status::False,
                "Unverified",
                format!(
                    "application {} does not count as applied: {}",
                    run.id,
                    run.failure.clone().unwrap_or_default()
                ),
            )
        };
    }
    if let Some(run) = state.failed.as_ref().filter(|r| after(r)) {
        return verdict(
            Status::False,
            "ApplicationFailed",
            format!(
                "application {} failed: {}",
                run.id,
                run.failure.clone().unwrap_or_default()
            ),
        );
    }
    Verdict {
        request: idle,
        ..verdict(
            Status::False,
            "Pending",
            "waiting for a policy application that includes the latest definition".into(),
        )
    }
}
