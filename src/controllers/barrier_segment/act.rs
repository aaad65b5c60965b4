//! Runs a BarrierSegment's planned commands in order, recording before `New-OrganizationSegment`
//! that it is about to be sent, so a segment created just before a crash is recognised.

use super::ownership;
use super::plan::Step;
use crate::compliance::ComplianceError;
use crate::compliance::definitions::owner_marker;
use crate::context::Context;
use crate::controllers::reconcile::write_status;
use crate::controllers::refusal::{Refusal, refusal};
use crate::crd::barrier_segment::CreatedObjects;
use crate::crd::{BarrierSegment, BarrierSegmentStatus};
use crate::error::Error;
use kube::{Api, ResourceExt};

/// While a policy application runs the tenant refuses definition changes: wait for it.
pub fn waiting(e: &ComplianceError) -> bool {
    e.is_application_running()
}

/// Why acting stopped before the last step.
#[derive(Debug)]
pub enum Halt {
    /// A policy application is running.
    Waiting,
    /// The tenant refused a command.
    Refused(Refusal),
}

/// Records, before `New-OrganizationSegment` is sent, that it is about to be: a segment of
/// that name found after a crash is then recognised as the operator's.
async fn intend(
    bs: &BarrierSegment,
    api: &Api<BarrierSegment>,
    status: &mut BarrierSegmentStatus,
    name: &str,
) -> Result<(), Error> {
    let record = status.created.get_or_insert_with(CreatedObjects::default);
    if record.pending_segment.as_deref() == Some(name) {
        return Ok(());
    }
    record.pending_segment = Some(name.to_owned());
    write_status(api, bs, bs.status.as_ref(), status).await?;
    Ok(())
}

/// Runs the planned commands in order; returns what was done and why it stopped early.
pub async fn act(
    bs: &BarrierSegment,
    ctx: &Context,
    api: &Api<BarrierSegment>,
    status: &mut BarrierSegmentStatus,
    steps: &[Step],
) -> Result<(Vec<String>, Option<Halt>), Error> {
    let compliance = ctx.compliance();
    let comment = format!(
        "Managed by remote-assist-operator for BarrierSegment {}; do not edit. {}",
        bs.name_any(),
        owner_marker(&bs.uid().unwrap_or_default())
    );
    let mut done = Vec::new();
    for step in steps {
        if let Step::CreateSegment { name, .. } = step {
            intend(bs, api, status, name).await?;
        }
        let result = match step {
            Step::CreateSegment { name, filter } => compliance.new_segment(name, filter).await.map(|s| {
                let record = status.created.get_or_insert_with(CreatedObjects::default);
                record.segment_id = Some(s.identity.clone());
                record.pending_segment = None;
                status.segment_id = Some(s.identity);
            }),
            Step::UpdateSegment { id, filter } => compliance.set_segment(id, filter).await,
            Step::CreatePolicy { segment, policy } => compliance
                .new_policy_with_comment(
                    segment,
                    segment,
                    policy.allowed,
                    &policy.segments,
                    policy.state,
                    Some(&comment),
                )
                .await
                .map(|p| {
                    status
                        .created
                        .get_or_insert_with(CreatedObjects::default)
                        .policy_id = Some(p.identity.clone());
                    status.policy_id = Some(p.identity);
                }),
            Step::UpdatePolicy { id, policy } => {
                compliance
                    .set_policy(id, policy.allowed, &policy.segments, policy.state)
                    .await
            }
        };
        let e = match result {
            Ok(()) => {
                done.push(step.describe());
                continue;
            }
            Err(e) => e,
        };
        return halt(e, step, status).map(|h| (done, Some(h)));
    }
    Ok((done, None))
}

/// Why acting stops at `step`, which the tenant refused with `e`; an error for anything else.
fn halt(e: ComplianceError, step: &Step, status: &mut BarrierSegmentStatus) -> Result<Halt, Error> {
    if matches!(e, ComplianceError::Command { .. }) && matches!(step, Step::CreateSegment { .. }) {
        // Refused: nothing was created under the pending record.
        status
            .created
            .get_or_insert_with(CreatedObjects::default)
            .pending_segment = None;
    }
    match e {
        e if waiting(&e) => Ok(Halt::Waiting),
        ComplianceError::Command {
            exception, message, ..
        } => {
            let short = exception.rsplit('.').next().unwrap_or(&exception).to_owned();
            let reason = if short.contains("AlreadyExists") {
                ownership::CONFLICT
            } else {
                "Refused"
            };
            Ok(Halt::Refused(refusal(reason, format!("{short}: {message}"))))
        }
        e => Err(e.into()),
    }
}
