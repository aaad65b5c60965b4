//! The BarrierSegment reconciler: the organization segment and its policy in the tenant, the
//! `PolicyApplied` condition from the application coordinator, and removal in the safe order
//! (policy Inactive, policy removed, segment removed).

pub mod application;
pub mod plan;

use crate::compliance::ComplianceError;
use crate::context::{Context, Error, error_policy, now, write_status};
use crate::crd::barrier_segment::PolicyType;
use crate::crd::conditions::{ConditionUpdate, Status, kinds, ready_rollup, set_condition};
use crate::crd::{BarrierSegment, BarrierSegmentStatus};
use crate::watch;
use futures::StreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use plan::Action as Step;
use std::sync::Arc;
use std::time::Duration;

const ASPECTS: [&str; 2] = [kinds::SEGMENT_READY, kinds::POLICY_APPLIED];

/// Runs the controller; `reader` and `stream` come from [`watch::filtered`] so the coordinator
/// can share the cache.
pub async fn run(
    ctx: Arc<Context>,
    reader: Store<BarrierSegment>,
    stream: impl futures::Stream<Item = Result<BarrierSegment, kube::runtime::watcher::Error>> + Send + 'static,
) {
    let wc = watch::config(&ctx.config);
    let vendors = watch::filtered_stream(Api::all(ctx.kube.clone()), wc, watch::vendor_binding);
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
        .for_each(|_| futures::future::ready(()))
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

async fn apply(bs: &BarrierSegment, ctx: &Context, api: &Api<BarrierSegment>) -> Result<Action, Error> {
    let all = ctx.segments().state();
    let mut status = bs.status.clone().unwrap_or_default();
    status.observed_generation = bs.metadata.generation;
    status.segment_name = Some(bs.segment_name());
    let t = now();
    let set = |status: &mut BarrierSegmentStatus, type_: &str, s: Status, reason: &str, message: String| {
        set_condition(
            &mut status.conditions,
            ConditionUpdate::new(type_, s, reason, message),
            bs.metadata.generation,
            &t,
        );
    };
    let desired = match plan::desired(bs, &all, &|n| ctx.vendor(n)) {
        Ok(d) => d,
        Err((reason, message)) => {
            set(
                &mut status,
                kinds::SEGMENT_READY,
                Status::False,
                reason,
                message.clone(),
            );
            return finish(bs, ctx, api, status, Some((reason, message))).await;
        }
    };
    let compliance = ctx.compliance();
    let (segments, policies) = compliance.definitions().await?;
    let segment = segments
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(&desired.name));
    let policy = policies
        .iter()
        .find(|p| p.assigned_segment.eq_ignore_ascii_case(&desired.name));
    let steps = plan::plan(&desired, segment, policy);
    status.segment_id = segment.map(|s| s.identity.clone());
    status.policy_id = policy.map(|p| p.identity.clone());
    let mut done = Vec::new();
    for step in &steps {
        let result = match step {
            Step::CreateSegment { name, filter } => compliance.new_segment(name, filter).await.map(|s| {
                status.segment_id = Some(s.identity);
            }),
            Step::UpdateSegment { id, filter } => compliance.set_segment(id, filter).await,
            Step::CreatePolicy { segment, policy } => compliance
                .new_policy(segment, segment, policy.allowed, &policy.segments, policy.state)
                .await
                .map(|p| status.policy_id = Some(p.identity)),
            Step::UpdatePolicy { id, policy } => {
                compliance
                    .set_policy(id, policy.allowed, &policy.segments, policy.state)
                    .await
            }
        };
        match result {
            Ok(()) => done.push(step.describe()),
            Err(e) if waiting(&e) => {
                set(
                    &mut status,
                    kinds::SEGMENT_READY,
                    Status::False,
                    "WaitingForApplication",
                    "a policy application is running; the tenant accepts no definition changes until it ends"
                        .into(),
                );
                break;
            }
            Err(ComplianceError::Command {
                exception, message, ..
            }) => {
                let reason = "Refused";
                let message = format!(
                    "{}: {message}",
                    exception.rsplit('.').next().unwrap_or(&exception)
                );
                set(
                    &mut status,
                    kinds::SEGMENT_READY,
                    Status::False,
                    reason,
                    message.clone(),
                );
                return finish(bs, ctx, api, status, Some((reason, message))).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
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
    if done.len() == steps.len() {
        status.policy_type = Some(bs.policy_type());
        set(
            &mut status,
            kinds::SEGMENT_READY,
            Status::True,
            "Defined",
            format!("segment {} filters on {}", desired.name, desired.filter),
        );
    }
    let pending = done.len() < steps.len();
    policy_applied(bs, ctx, &mut status, &t);
    let action = finish(bs, ctx, api, status, None).await?;
    Ok(if pending {
        Action::requeue(Duration::from_secs(5).min(ctx.config.resync))
    } else {
        action
    })
}

/// `PolicyApplied` from the coordinator: True once an application that started after the last
/// change to this segment or its policy has completed, and it stays True while later
/// applications run or fail (the applied state stays in effect until a newer one completes).
fn policy_applied(
    bs: &BarrierSegment,
    ctx: &Context,
    status: &mut BarrierSegmentStatus,
    t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) {
    let state = ctx.coordinator().snapshot();
    let changed = status.last_changed.as_ref().map(|c| c.0);
    let after = |run: &application::Run| changed.is_none_or(|c| run.started_at > c);
    let name = bs.metadata.name.clone().unwrap_or_default();
    let (s, reason, message) = if bs.policy_type() == PolicyType::None {
        (
            Status::True,
            "NoPolicy",
            "this segment has no policy of its own".to_owned(),
        )
    } else if let Some(run) = state.applied.as_ref().filter(|r| after(r)) {
        status.applied_by = Some(run.id.clone());
        (
            Status::True,
            "Applied",
            format!("in effect since application {} completed", run.id),
        )
    } else if let Some(held) = state.held.as_ref().filter(|h| h.contains(&name)) {
        (
            Status::False,
            "Asymmetric",
            format!("not applied: {held}; barriers are bidirectional, so add the missing direction"),
        )
    } else if let Some(run) = state.running.as_ref().filter(|r| after(r)) {
        (
            Status::False,
            "Applying",
            format!("application {} is {} ({}%)", run.id, run.status, run.percent),
        )
    } else if let Some(run) = state.failed.as_ref().filter(|r| after(r)) {
        (
            Status::False,
            "ApplicationFailed",
            format!(
                "application {} failed: {}",
                run.id,
                run.failure.clone().unwrap_or_default()
            ),
        )
    } else {
        if state.requested.is_none() && state.running.is_none() {
            ctx.coordinator().request();
        }
        (
            Status::False,
            "Pending",
            "waiting for a policy application that includes the latest definition".to_owned(),
        )
    };
    set_condition(
        &mut status.conditions,
        ConditionUpdate::new(kinds::POLICY_APPLIED, s, reason, message),
        bs.metadata.generation,
        t,
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

/// Safe order: the policy goes Inactive, then the policy is removed, then the segment.
async fn cleanup(bs: &BarrierSegment, ctx: &Context) -> Result<Action, Error> {
    let compliance = ctx.compliance();
    let name = bs.segment_name();
    let result: Result<(), ComplianceError> = async {
        if let Some(p) = compliance
            .policies()
            .await?
            .into_iter()
            .find(|p| p.assigned_segment.eq_ignore_ascii_case(&name))
        {
            if !p.state.eq_ignore_ascii_case("Inactive") {
                compliance.set_policy_state(&p.identity, "Inactive").await?;
            }
            compliance.remove_policy(&p.identity).await?;
        }
        if let Some(s) = compliance
            .segments()
            .await?
            .into_iter()
            .find(|s| s.name.eq_ignore_ascii_case(&name))
        {
            compliance.remove_segment(&s.identity).await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            ctx.coordinator().request();
            ctx.event(
                bs,
                EventType::Normal,
                "SegmentRemoved",
                "Cleanup",
                format!("removed the policy and segment {name}"),
            )
            .await;
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
