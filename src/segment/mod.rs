//! The BarrierSegment reconciler: the organization segment and its policy in the tenant, the
//! `PolicyApplied` condition from the application coordinator, and removal in the safe order
//! (policy Inactive, policy removed, segment removed).
//!
//! Observe (the cluster's BarrierSegments, then the tenant's definitions) → decide, purely
//! ([`ownership`]: the name is this object's and the tenant objects of that name are the
//! operator's or adopted; [`plan`]: the commands) → act → status. A BarrierSegment refused for
//! its name writes nothing to the tenant; deletion removes only what the operator created.

pub mod application;
pub mod applied;
pub mod invariant;
pub mod ownership;
pub mod plan;

use crate::compliance::ComplianceError;
use crate::compliance::barriers::owner_marker;
use crate::context::{Context, Error, error_policy, now, write_status};
use crate::crd::barrier_segment::CreatedObjects;
use crate::crd::conditions::{ConditionUpdate, Status, kinds, ready_rollup, set_condition};
use crate::crd::{BarrierSegment, BarrierSegmentStatus};
use crate::watch;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use plan::Action as Step;
use std::sync::Arc;
use std::time::Duration;

const ASPECTS: [&str; 2] = [kinds::SEGMENT_READY, kinds::POLICY_APPLIED];

/// Runs the controller on `stream`, the main watch `run.rs` built with the segment cache (which
/// the coordinator shares).
pub async fn run(
    ctx: Arc<Context>,
    stream: impl futures::Stream<Item = Result<BarrierSegment, kube::runtime::watcher::Error>> + Send + 'static,
) {
    let wc = watch::config(&ctx.config);
    let reader = ctx.caches().segments.current().clone();
    let vendors = watch::filtered_stream(
        Api::all(ctx.kube.clone()),
        wc,
        watch::vendor_binding,
        &ctx.metrics,
    );
    let store = reader.clone();
    Controller::for_stream(stream, reader)
        .watches_stream(vendors, move |v| {
            let name = v.name_any();
            store
                .state()
                .into_iter()
                .filter(|s| {
                    let m = &s.spec.members;
                    m.vendor_accounts.as_deref() == Some(&name)
                        || m.vendor_engineers.as_deref() == Some(&name)
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .reconcile_all_on(ctx.coordinator().changes())
        .with_config(ControllerConfig::default().concurrency(4))
        .shutdown_on_signal()
        .run(
            |obj, ctx| async move {
                crate::context::instrumented::<BarrierSegment, _>(&ctx.clone(), reconcile(obj, ctx)).await
            },
            error_policy,
            ctx,
        )
        .for_each(watch::log_controller_outcome)
        .await;
}

pub async fn reconcile(bs: Arc<BarrierSegment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<BarrierSegment> = Api::all(ctx.kube.clone());
    crate::context::with_finalizer(
        &api,
        bs,
        async |s| apply(&s, &ctx, &api).await,
        async |s| cleanup(&s, &ctx).await,
    )
    .await
}

/// While a policy application runs the tenant refuses definition changes: wait for it.
fn waiting(e: &ComplianceError) -> bool {
    e.is_application_running()
}

fn set(
    status: &mut BarrierSegmentStatus,
    bs: &BarrierSegment,
    t: &Time,
    type_: &str,
    s: Status,
    reason: &str,
    message: String,
) {
    set_condition(
        &mut status.conditions,
        ConditionUpdate::new(type_, s, reason, message),
        bs.metadata.generation,
        t,
    );
}

async fn apply(bs: &BarrierSegment, ctx: &Context, api: &Api<BarrierSegment>) -> Result<Action, Error> {
    let all = ctx.segments().await?.state();
    let mut status = bs.status.clone().unwrap_or_default();
    status.observed_generation = bs.metadata.generation;
    status.segment_name = Some(bs.segment_name());
    let t = now();
    // The name first, from the cluster alone: a refused object never reaches the tenant.
    if let Some(holder) = ownership::name_holder(bs, &all) {
        let message = format!(
            "BarrierSegment {} holds the segment name {} (names are compared without regard to case and belong to the one created first); nothing is written to the tenant for this one",
            holder.name_any(),
            holder.segment_name()
        );
        return refuse(bs, ctx, api, status, ownership::NAME_TAKEN, message).await;
    }
    if let Some((vendor, others)) = invariant::rivals(bs, &all, &ctx.caches().vendors.current().state()) {
        let message = format!(
            "BarrierSegments {} also select VendorTenant {vendor}'s accounts; exactly one may isolate them, so none is trusted, its accounts stay disabled, and nothing is written to the tenant for this one",
            others.join(", ")
        );
        return refuse(bs, ctx, api, status, "Conflict", message).await;
    }
    let desired = match plan::desired(bs, &all, &|n| ctx.vendor(n)) {
        Ok(d) => d,
        Err((reason, message)) => {
            set(
                &mut status,
                bs,
                &t,
                kinds::SEGMENT_READY,
                Status::False,
                reason,
                message.clone(),
            );
            return finish(bs, ctx, api, status, Some((reason, message))).await;
        }
    };
    let (segments, policies) = ctx.compliance().definitions().await?;
    let uid = bs.uid().unwrap_or_default();
    let mut record = status.created.clone().unwrap_or_default();
    let bound = match ownership::bind(
        &desired.name,
        &uid,
        &record,
        bs.adopts_existing(),
        &segments,
        &policies,
    ) {
        Ok(b) => b,
        Err(message) => return refuse(bs, ctx, api, status, ownership::CONFLICT, message).await,
    };
    // What the records recognised (e.g. a create just before a crash) is recorded by identity.
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
    let steps = plan::plan(&desired, bound.segment, bound.policy);
    let adopted = if bound.segment.is_some() && !bound.segment_created {
        " (adopted)"
    } else {
        ""
    };
    let defined = format!("segment {}{adopted} filters on {}", desired.name, desired.filter);
    let (done, halt) = act(bs, ctx, api, &mut status, &steps).await?;
    conclude(bs, ctx, api, status, done, halt, defined).await
}

/// The status after acting: Events for what was done, `SegmentReady` from how acting ended,
/// `PolicyApplied` from the coordinator.
async fn conclude(
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
        status.last_changed = Some(now());
        ctx.coordinator().request();
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
    let ready = kinds::SEGMENT_READY;
    match &halt {
        Some(Halt::Refused(reason, message)) => {
            set(&mut status, bs, &t, ready, Status::False, reason, message.clone());
            return finish(bs, ctx, api, status, Some((reason, message.clone()))).await;
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
    policy_applied(bs, ctx, &mut status, &t);
    let action = finish(bs, ctx, api, status, None).await?;
    Ok(if halt.is_some() {
        Action::requeue(Duration::from_secs(5).min(ctx.config.resync))
    } else {
        action
    })
}

/// Refuses this BarrierSegment (`SegmentNameTaken`, `Conflict`): nothing in the tenant is
/// bound or changed, and its policy does not count as applied.
async fn refuse(
    bs: &BarrierSegment,
    ctx: &Context,
    api: &Api<BarrierSegment>,
    mut status: BarrierSegmentStatus,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    let t = now();
    status.segment_id = None;
    status.policy_id = None;
    status.applied_by = None;
    set(
        &mut status,
        bs,
        &t,
        kinds::SEGMENT_READY,
        Status::False,
        reason,
        message.clone(),
    );
    let not_applied = format!("not applied: this BarrierSegment is refused ({reason})");
    set(
        &mut status,
        bs,
        &t,
        kinds::POLICY_APPLIED,
        Status::False,
        reason,
        not_applied,
    );
    finish(bs, ctx, api, status, Some((reason, message))).await
}

/// Why acting stopped before the last step.
#[derive(Debug)]
enum Halt {
    /// A policy application is running.
    Waiting,
    /// The tenant refused a command.
    Refused(&'static str, String),
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
async fn act(
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
        if matches!(e, ComplianceError::Command { .. }) && matches!(step, Step::CreateSegment { .. }) {
            // Refused: nothing was created under the pending record.
            status
                .created
                .get_or_insert_with(CreatedObjects::default)
                .pending_segment = None;
        }
        return match e {
            e if waiting(&e) => Ok((done, Some(Halt::Waiting))),
            ComplianceError::Command {
                exception, message, ..
            } => {
                let short = exception.rsplit('.').next().unwrap_or(&exception).to_owned();
                let reason = if short.contains("AlreadyExists") {
                    ownership::CONFLICT
                } else {
                    "Refused"
                };
                Ok((done, Some(Halt::Refused(reason, format!("{short}: {message}")))))
            }
            e => Err(e.into()),
        };
    }
    Ok((done, None))
}

/// `PolicyApplied` from the coordinator's state ([`applied::policy_applied`]).
fn policy_applied(bs: &BarrierSegment, ctx: &Context, status: &mut BarrierSegmentStatus, t: &Time) {
    let state = ctx.coordinator().snapshot();
    let changed = status.last_changed.as_ref().map(|c| c.0);
    let name = bs.metadata.name.clone().unwrap_or_default();
    let v = applied::policy_applied(bs.policy_type(), &name, changed, &state);
    if v.request {
        ctx.coordinator().request();
    }
    if let Some(id) = v.applied_by {
        status.applied_by = Some(id);
    }
    set(
        status,
        bs,
        t,
        kinds::POLICY_APPLIED,
        v.status,
        v.reason,
        v.message,
    );
}

async fn finish(
    bs: &BarrierSegment,
    ctx: &Context,
    api: &Api<BarrierSegment>,
    mut status: BarrierSegmentStatus,
    refused: Option<(&str, String)>,
) -> Result<Action, Error> {
    let t = now();
    if status
        .created
        .as_ref()
        .is_some_and(|c| *c == CreatedObjects::default())
    {
        status.created = None;
    }
    let ready = ready_rollup(&status.conditions, &ASPECTS);
    status.message = Some(ready.message.clone());
    set_condition(&mut status.conditions, ready, bs.metadata.generation, &t);
    if write_status(api, bs, bs.status.as_ref(), &status).await?
        && let Some((reason, message)) = refused
    {
        ctx.event(bs, EventType::Warning, reason, "Reconcile", message)
            .await;
    }
    ctx.succeeded(bs);
    Ok(Action::requeue(ctx.config.resync))
}

/// Removes only what the operator created for this BarrierSegment ([`ownership::removal`]),
/// in the safe order: the policy goes Inactive, then the policy is removed, then the segment.
/// Anything else of its name stays in the tenant as it is.
/// A segment that holds a vendor's accounts goes only once none of them is enabled: an
/// orphaned or adopted account never outlives the barrier that keeps it from other vendors.
async fn wait_for_holders(bs: &BarrierSegment, ctx: &Context) -> Result<(), Error> {
    use crate::license::barrier::selects_accounts;
    let vendors = ctx.caches().vendors.current().state();
    let Some(vendor) = vendors.iter().find(|v| selects_accounts(bs, v)) else {
        return Ok(());
    };
    let holders = crate::vendor::holders::enabled_holders(ctx, vendor).await?;
    if holders.is_empty() {
        return Ok(());
    }
    let message = crate::vendor::holders::holding_message(&holders);
    let api: Api<BarrierSegment> = Api::all(ctx.kube.clone());
    let mut status = bs.status.clone().unwrap_or_default();
    let update = ConditionUpdate::new(
        kinds::READY,
        Status::False,
        "AccountsHoldSegment",
        message.clone(),
    );
    set_condition(&mut status.conditions, update, bs.metadata.generation, &now());
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

async fn cleanup(bs: &BarrierSegment, ctx: &Context) -> Result<Action, Error> {
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
                ctx.coordinator().request();
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
