//! The BarrierSegment's status: `SegmentReady` from how acting ended (or why it was refused),
//! `PolicyApplied` from the application coordinator, the `Ready` roll-up, and the Events.

use super::act::Halt;
use super::application::HISTORY_WAIT;
use super::applied;
use super::ownership::Bound;
use crate::context::Context;
use crate::controllers::reconcile::{now, now_for_barriers, write_status};
use crate::controllers::refusal::Refusal;
use crate::crd::barrier_segment::CreatedObjects;
use crate::crd::conditions::{Conditions, Status, types};
use crate::crd::{BarrierSegment, BarrierSegmentStatus};
use crate::error::Error;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use std::time::Duration;

const ASPECTS: [&str; 2] = [types::SEGMENT_READY, types::POLICY_APPLIED];

/// The status this reconcile starts from.
pub fn start(bs: &BarrierSegment) -> BarrierSegmentStatus {
    let mut status = bs.status.clone().unwrap_or_default();
    status.observed_generation = bs.metadata.generation;
    status.segment_name = Some(bs.segment_name());
    status
}

/// Records what `bound` found: the object ids, and by identity what the records recognised
/// (e.g. a create just before a crash).
pub fn bound(status: &mut BarrierSegmentStatus, bound: &Bound, mut record: CreatedObjects) {
    if let Some(s) = bound.segment.filter(|_| bound.segment_created) {
        record.segment_id = Some(s.identity.clone());
        record.pending_segment = None;
    }
    if let Some(p) = bound.policy.filter(|_| bound.policy_created) {
        record.policy_id = Some(p.identity.clone());
    }
    status.created = Some(record);
    status.segment_id = bound.segment.map(|s| s.identity.clone());
    status.policy_id = bound.policy.map(|p| p.identity.clone());
}

/// A spec that does not resolve: `SegmentReady` False, nothing written to the tenant.
pub async fn invalid(
    bs: &BarrierSegment,
    ctx: &Context,
    api: &Api<BarrierSegment>,
    mut status: BarrierSegmentStatus,
    r: Refusal,
) -> Result<Action, Error> {
    set(
        &mut status,
        bs,
        &now(),
        types::SEGMENT_READY,
        Status::False,
        r.reason,
        r.message.clone(),
    );
    finish(bs, ctx, api, status, Some(r)).await
}

pub fn set(
    status: &mut BarrierSegmentStatus,
    bs: &BarrierSegment,
    t: &Time,
    type_: &str,
    s: Status,
    reason: &str,
    message: String,
) {
    Conditions::new(bs.metadata.generation, t.clone()).set(&mut status.conditions, type_, s, reason, message);
}

/// The status after acting: Events for what was done, `SegmentReady` from how acting ended,
/// `PolicyApplied` from the coordinator.
pub async fn conclude(
    bs: &BarrierSegment,
    ctx: &Context,
    api: &Api<BarrierSegment>,
    mut status: BarrierSegmentStatus,
    done: Vec<String>,
    halt: Option<Halt>,
    defined: String,
) -> Result<Action, Error> {
    let t = now();
    if !done.is_empty() {
        status.last_changed = Some(now_for_barriers());
        status.pending_change = Some(format!(
            "the next policy application puts into effect: {}",
            done.join("; ")
        ));
        ctx.coordinator()
            .request("a segment or policy definition changed");
        for note in &done {
            ctx.event(
                bs,
                EventType::Normal,
                "SegmentChanged",
                "ApplyDefinition",
                note.clone(),
            )
            .await;
        }
    }
    let ready = types::SEGMENT_READY;
    match &halt {
        Some(Halt::Refused(r)) => {
            set(
                &mut status,
                bs,
                &t,
                ready,
                Status::False,
                r.reason,
                r.message.clone(),
            );
            return finish(bs, ctx, api, status, Some(r.clone())).await;
        }
        Some(Halt::Waiting) => set(
            &mut status,
            bs,
            &t,
            ready,
            Status::False,
            "WaitingForApplication",
            "a policy application is running; the tenant accepts no definition changes until it ends".into(),
        ),
        None => {
            status.policy_type = Some(bs.policy_type());
            set(&mut status, bs, &t, ready, Status::True, "Defined", defined);
        }
    }
    // After a restart, judged only once the history is read (bounded), so a policy applied
    // before the restart does not flip to not applied and take its accounts' sign-in with it.
    ctx.coordinator().history_read(HISTORY_WAIT).await;
    policy_applied(bs, ctx, &mut status, &t);
    let applied = crate::crd::conditions::find(&status.conditions, types::POLICY_APPLIED)
        .is_some_and(|c| c.status == "True");
    if applied {
        status.pending_change = None;
    }
    let action = finish(bs, ctx, api, status, None).await?;
    Ok(if halt.is_some() {
        Action::requeue(Duration::from_secs(5).min(ctx.config.resync))
    } else {
        action
    })
}

/// Refuses this BarrierSegment (`SegmentNameTaken`, `Conflict`): nothing in the tenant is
/// bound or changed, and its policy does not count as applied.
pub async fn refuse(
    bs: &BarrierSegment,
    ctx: &Context,
    api: &Api<BarrierSegment>,
    mut status: BarrierSegmentStatus,
    r: Refusal,
) -> Result<Action, Error> {
    let (reason, message) = (r.reason, r.message.clone());
    let t = now();
    status.segment_id = None;
    status.policy_id = None;
    status.applied_by = None;
    set(
        &mut status,
        bs,
        &t,
        types::SEGMENT_READY,
        Status::False,
        reason,
        message.clone(),
    );
    let not_applied = format!("not applied: this BarrierSegment is refused ({reason})");
    set(
        &mut status,
        bs,
        &t,
        types::POLICY_APPLIED,
        Status::False,
        reason,
        not_applied,
    );
    finish(bs, ctx, api, status, Some(r)).await
}

/// `PolicyApplied` from the coordinator's state ([`applied::policy_applied`]).
fn policy_applied(bs: &BarrierSegment, ctx: &Context, status: &mut BarrierSegmentStatus, t: &Time) {
    let state = ctx.coordinator().snapshot();
    let changed = status.last_changed.as_ref().map(|c| c.0);
    let name = bs.metadata.name.clone().unwrap_or_default();
    let v = applied::policy_applied(bs.policy_type(), &name, changed, &state);
    if v.request {
        ctx.coordinator()
            .request("a policy is not applied since its last change");
    }
    if let Some(id) = v.applied_by {
        status.applied_by = Some(id);
    }
    set(
        status,
        bs,
        t,
        types::POLICY_APPLIED,
        v.status,
        v.reason,
        v.message,
    );
}

pub async fn finish(
    bs: &BarrierSegment,
    ctx: &Context,
    api: &Api<BarrierSegment>,
    mut status: BarrierSegmentStatus,
    refused: Option<Refusal>,
) -> Result<Action, Error> {
    let t = now();
    if status
        .created
        .as_ref()
        .is_some_and(|c| *c == CreatedObjects::default())
    {
        status.created = None;
    }
    let ready = Conditions::new(bs.metadata.generation, t).ready(&mut status.conditions, &ASPECTS);
    status.message = Some(ready);
    if write_status(api, bs, bs.status.as_ref(), &status).await?
        && let Some(r) = refused
    {
        ctx.event(bs, EventType::Warning, r.reason, "Reconcile", r.message)
            .await;
    }
    ctx.succeeded(bs);
    Ok(Action::requeue(ctx.config.resync))
}
