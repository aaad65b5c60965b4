//! The RemoteAssistLicense reconciler: observe → plan (pure) → act → status, behind a finalizer
//! that carries out the deletion policy.

pub mod act;
pub mod authority;
pub mod course;
pub mod credentials;
pub mod enforcement;
pub mod mode;
pub mod observe;
pub mod plan;
pub mod safety;
pub mod status;

use crate::context::Context;
use crate::controllers::reconcile::{error_policy, write_status_versioned};
use crate::crd::remote_assist_license::{AdoptionPolicy, DeletionPolicy};
use crate::crd::vendor_tenant::LicenseMode;
use crate::crd::{RemoteAssistLicense, RemoteAssistLicenseStatus, VendorTenant};
use crate::error::Error;
use crate::watch;
use authority::Refusal;
use credentials::Credentials;
use futures::StreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use mode::{Mode, plan_only};
use plan::Nature;
use serde_json::json;
use status::StatusBuilder;
use std::sync::Arc;
use std::time::Duration;

/// How soon to look again after acting, so the next step (which depends on what this one did)
/// follows quickly.
const STEP_REQUEUE: Duration = Duration::from_millis(500);
/// How soon to look again at an account whose add to its group is queued, should the
/// sender's answer not bring it back first.
const JOIN_FALLBACK: Duration = Duration::from_secs(60);
/// How soon to look again after a seat shortage.
const SEATS_REQUEUE: Duration = Duration::from_secs(30);

/// Runs the controller on `stream`, the main watch `run.rs` built with the licence cache.
pub async fn run(
    ctx: Arc<Context>,
    stream: impl futures::Stream<Item = Result<RemoteAssistLicense, kube::runtime::watcher::Error>>
    + Send
    + 'static,
    segment_updates: kube::runtime::reflector::ReflectHandle<crate::crd::BarrierSegment>,
) {
    let client = ctx.kube.clone();
    let wc = watch::config(&ctx.config);
    let reader = ctx.caches().licenses.current().clone();
    let store = reader.clone();
    // A vendor's RemoteAssistLicenses are looked at again when its spec or its groups change,
    // not on every status update of the vendor.
    let vendors = watch::filtered_stream(Api::all(client), wc.clone(), watch::vendor_binding, &ctx.metrics);
    // An account's barrier is decided by its vendor's accounts segment, read from the segment
    // cache: look again when that segment changes, once the cache holds the change (every
    // licence of the vendor if the segment no longer vouches for its accounts, else those still
    // waiting for their barrier).
    let licenses = store.clone();
    // Adds to the accounts groups are written behind; each answer brings its licence back.
    let answered = ctx.directory.subscribe_joins().filter_map(|owner| async move {
        let (namespace, name) = owner.split_once('/')?;
        Some(ObjectRef::<RemoteAssistLicense>::new(name).within(namespace))
    });
    let controller = Controller::for_stream(stream, reader)
        .reconcile_on(answered)
        .reconcile_on(crate::controllers::pacer::released(ctx.license_resyncs.clone()))
        .watches_shared_stream(segment_updates, move |segment| {
            let vendor = segment.spec.members.vendor_accounts.clone().unwrap_or_default();
            enforcement::brought_back_by(&segment, &watch::licenses_of(&licenses, &vendor))
        })
        .watches_stream(vendors, move |vendor| {
            watch::licenses_of(&store, &vendor.name_any())
                .iter()
                .map(|l| ObjectRef::from_obj(l.as_ref()))
                .collect::<Vec<_>>()
        })
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        .shutdown_on_signal()
        .run(
            |obj, ctx| async move {
                let pacer = ctx.license_resyncs.clone();
                let _pass = pacer.enter(&ObjectRef::from_obj(obj.as_ref()));
                crate::controllers::reconcile::instrumented::<RemoteAssistLicense, _>(
                    &ctx.clone(),
                    reconcile(obj, ctx),
                )
                .await
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(watch::log_controller_outcome);
    tokio::select! {
        () = controller => {}
        () = ctx.directory.send_joins_behind() => {}
    }
}

pub async fn reconcile(cached: Arc<RemoteAssistLicense>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<RemoteAssistLicense> =
        Api::namespaced(ctx.kube.clone(), &cached.namespace().unwrap_or_default());
    let Some(ral) = current(&ctx, &api, cached).await? else {
        return Ok(Action::await_change());
    };
    crate::controllers::reconcile::with_finalizer(
        &api,
        ral,
        async |r| apply(&r, &ctx, &api).await,
        async |r| {
            // The finalizer's removal is the object's last version: nothing to remember.
            ctx.saw_version(r.as_ref(), None);
            cleanup(&r, &ctx).await
        },
    )
    .await
}

/// The licence as the API server holds it. The barrier decisions read this object's own last
/// status write (when the account was seen in its segment), and after an API server restart a
/// watch can stay on an expired resource version for minutes, so a cache could show a status
/// from before that write and the account would never count as behind its barrier. So the
/// cached object is used only at the version the operator last read or wrote; else it is read.
async fn current(
    ctx: &Context,
    api: &Api<RemoteAssistLicense>,
    cached: Arc<RemoteAssistLicense>,
) -> Result<Option<Arc<RemoteAssistLicense>>, Error> {
    if ctx.is_known_version(cached.as_ref()) {
        return Ok(Some(cached));
    }
    let fresh = api.get_opt(&cached.name_any()).await?;
    let version = fresh.as_ref().and_then(|r| r.resource_version());
    ctx.saw_version(cached.as_ref(), version);
    Ok(fresh.map(Arc::new))
}

/// Writes the licence's status when it changed, remembering the version written.
pub(crate) async fn write_license_status(
    ctx: &Context,
    api: &Api<RemoteAssistLicense>,
    ral: &RemoteAssistLicense,
    status: &RemoteAssistLicenseStatus,
) -> Result<bool, Error> {
    let written = write_status_versioned(api, ral, ral.status.as_ref(), status).await?;
    let wrote = written.is_some();
    if wrote {
        ctx.saw_version(ral, written);
    }
    Ok(wrote)
}

/// Nothing left to do: look again after the resync interval, when real work leaves room.
pub(super) fn resync(ctx: &Context, ral: &RemoteAssistLicense) -> Action {
    ctx.license_resyncs
        .park(ObjectRef::from_obj(ral), ctx.config.resync);
    Action::await_change()
}

/// Writes a refusal: status says why, an Event says it once.
async fn refuse(
    ral: &RemoteAssistLicense,
    ctx: &Context,
    api: &Api<RemoteAssistLicense>,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let status = StatusBuilder::new(
        ral.status.as_ref(),
        ral.metadata.generation,
        crate::controllers::reconcile::now(),
    )
    .refuse(reason, &message);
    if write_license_status(ctx, api, ral, &status).await? {
        // Waiting for the vendor's groups is part of normal start-up, not a fault.
        let type_ = if reason == "VendorNotReady" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(ral, type_, reason, "Refuse", message).await;
    }
    // A refused licence keeps no enabled account, in every mode (it is disabled, never deleted).
    safety::disable_bound_account(ctx, ral, reason).await?;
    ctx.succeeded(ral);
    Ok(resync(ctx, ral))
}

/// The vendor, the adoption policy in force and the accounts group, once every check that
/// needs nothing from the tenant has passed; else the refusal.
async fn admit(
    ral: &RemoteAssistLicense,
    ctx: &Context,
) -> Result<Result<(Arc<VendorTenant>, AdoptionPolicy, String), Refusal>, Error> {
    let vendor_name = &ral.spec.vendor_ref.name;
    let refused = |reason, message| Ok(Err(Refusal { reason, message }));
    let Some(vendor) = ctx.vendor(vendor_name) else {
        return refused(
            "VendorNotFound",
            format!("VendorTenant {vendor_name} does not exist"),
        );
    };
    let namespace = ral.namespace().unwrap_or_default();
    if !observe::namespace_allowed(ctx, &vendor, &namespace).await? {
        let message = format!(
            "VendorTenant {vendor_name} does not allow namespace {namespace} (spec.allowedNamespaces); nothing was created in the tenant"
        );
        return refused("NamespaceNotAllowed", message);
    }
    if vendor.license_mode() == LicenseMode::Group && ral.spec.licenses.is_some() {
        let message = format!(
            "VendorTenant {vendor_name} assigns licences to its accounts group (licenseMode: Group); remove spec.licenses from this RemoteAssistLicense"
        );
        return refused("LicenseOverrideRefused", message);
    }
    let peers = observe::counted_licenses(ctx, &vendor).await?;
    let peers: Vec<&RemoteAssistLicense> = peers.iter().map(|l| l.as_ref()).collect();
    let adoption = match authority::authorize(ral, &vendor, &peers) {
        Ok(a) => a,
        Err(r) => return Ok(Err(r)),
    };
    let Some(group_id) = vendor.status.as_ref().and_then(|s| s.accounts_group_id.clone()) else {
        return refused(
            "VendorNotReady",
            format!("VendorTenant {vendor_name} has no accounts group yet"),
        );
    };
    Ok(Ok((vendor, adoption, group_id)))
}

/// Admit → observe → plan (pure) → act → status.
async fn apply(
    ral: &RemoteAssistLicense,
    ctx: &Context,
    api: &Api<RemoteAssistLicense>,
) -> Result<Action, Error> {
    let (vendor, adoption, group_id) = match admit(ral, ctx).await? {
        Ok(admitted) => admitted,
        Err(r) => return refuse(ral, ctx, api, r.reason, r.message).await,
    };
    let skus = ctx.directory.skus(false).await?;
    let enforcement = enforcement::enforcement(ctx, ral, &vendor).await?;
    let desired = match observe::desired(ral, &vendor, adoption, &group_id, &skus, enforcement.enforced()) {
        Ok(d) => d,
        Err(message) => return refuse(ral, ctx, api, "UnknownLicense", message).await,
    };
    let (mut plan, confirmed) = observe_and_plan(ctx, ral, &desired).await?;
    let mode = Mode::of(ral);
    if mode != Mode::Apply {
        // Plan and Observe never hold back a safety step: disabling runs in every mode.
        safety::run_safety_steps(ctx, ral, &desired, &mut plan).await?;
        return plan_only(ral, ctx, api, mode, &desired, &plan, &skus, &enforcement).await;
    }
    let mut outcome = act::act(ctx, ral, &desired, &plan.actions).await?;
    joined_behind(ctx, &desired, &plan, &mut outcome);
    report_done(ctx, ral, &outcome).await;
    let mut builder = StatusBuilder::new(
        ral.status.as_ref(),
        ral.metadata.generation,
        crate::controllers::reconcile::now(),
    );
    builder.from_plan(&desired, &plan, &outcome, &skus);
    builder.barrier(&enforcement, &ral.spec.vendor_ref.name);
    builder.status.planned_actions.clear();
    crate::crd::conditions::remove_condition(
        &mut builder.status.conditions,
        crate::crd::conditions::types::PLANNED,
    );
    segment_seen(ctx, &mut builder, &desired, &plan, &outcome, confirmed);
    if outcome.password_set {
        builder.status.password_set_at = Some(crate::controllers::reconcile::now());
    }
    if let Some(previous) = &outcome.adopted_from {
        builder.status.previous_employee_type = previous.clone();
    }
    let status = builder.finish(plan.enablement_settled, desired.suspended);
    let written = write_license_status(ctx, api, ral, &status).await?;
    if written {
        observe_first_ready(ctx, ral, &status);
    }
    if written && let Some(b) = plan.blocked.as_ref().or(plan.refused.as_ref()) {
        ctx.event(ral, EventType::Warning, b.reason, "Refuse", b.message.clone())
            .await;
    }
    if let Some(m) = &outcome.no_seats {
        ctx.event(ral, EventType::Warning, "NoSeats", "AssignLicenses", m.clone())
            .await;
    }
    ctx.succeeded(ral);
    Ok(next_look(ctx, ral, &plan, &outcome))
}

/// Observes and plans; returns the plan and whether Graph (not the operator's own writes)
/// confirmed what it shows.
async fn observe_and_plan(
    ctx: &Context,
    ral: &RemoteAssistLicense,
    desired: &plan::Desired,
) -> Result<(plan::Plan, bool), Error> {
    let (observed, confirmed) = observe::observe(ctx, ral, desired, false).await?;
    let plan = plan::plan(desired, &observed);
    let stamped = ral
        .status
        .as_ref()
        .is_some_and(|s| s.barrier_attribute_set_at.is_some());
    if plan.actions.is_empty() && (!plan.licensed || (!confirmed && !stamped)) {
        // Nothing to write by what the view shows, but the view holds the operator's own
        // writes (or licenses a group has yet to pass on): before the account counts as in
        // its segment, read it back.
        let (observed, confirmed) = observe::observe(ctx, ral, desired, true).await?;
        return Ok((plan::plan(desired, &observed), confirmed));
    }
    Ok((plan, confirmed))
}

/// An add to the accounts group written behind since the last pass counts as done in this
/// one (its Event, and the segment change it makes).
fn joined_behind(ctx: &Context, desired: &plan::Desired, plan: &plan::Plan, outcome: &mut act::Outcome) {
    let group_id = &desired.accounts_group_id;
    let Some(user_id) = plan.user_id.clone() else {
        return;
    };
    if ctx.directory.take_joined(group_id, &user_id) {
        let step = plan::Step::AddToGroup {
            group_id: group_id.clone(),
            user_id,
        };
        outcome.joined_segment = true;
        outcome.done.push(act::Done {
            note: step.describe(),
            step,
        });
    }
}

/// Whether condition `type_` was True for the licence's current generation before this pass.
fn held_before(ral: &RemoteAssistLicense, type_: &str) -> bool {
    ral.status.as_ref().is_some_and(|s| {
        s.observed_generation == ral.metadata.generation
            && crate::crd::conditions::find(&s.conditions, type_).is_some_and(|c| c.status == "True")
    })
}

/// An Event per step done; a correction of drift on an account already provisioned for this
/// generation is reported as `DriftCorrected`.
async fn report_done(ctx: &Context, ral: &RemoteAssistLicense, outcome: &act::Outcome) {
    let (was_ready, was_provisioned) = (
        held_before(ral, crate::crd::conditions::types::READY),
        held_before(ral, crate::crd::conditions::types::ACCOUNT_READY),
    );
    let namespace = ral.namespace().unwrap_or_default();
    for done in &outcome.done {
        // A person's request is never drift; routine provisioning is drift only once Ready.
        let drift = match done.step.nature() {
            Nature::Requested => false,
            Nature::Routine => was_ready,
            Nature::Change => was_ready || was_provisioned,
        };
        let action = done.step.event_reason();
        let reason = if drift { "DriftCorrected" } else { action };
        tracing::info!(namespace, name = %ral.name_any(), action = %done.note, reason, "acted on the tenant");
        ctx.event(ral, EventType::Normal, reason, action, done.note.clone())
            .await;
    }
}

/// When the account was last *seen* in its segment: a write is not enough, because the
/// directory replicates it later and a policy application snapshots what it can see. So a
/// write clears the time, and a later observation that needs no segment change sets it; only
/// an application started after that covers the account.
fn segment_seen(
    ctx: &Context,
    builder: &mut StatusBuilder,
    desired: &plan::Desired,
    plan: &plan::Plan,
    outcome: &act::Outcome,
    confirmed: bool,
) {
    let joins_segment = plan.actions.iter().any(|a| {
        matches!(
            a,
            plan::Step::CreateUser { .. } | plan::Step::RestoreUser { .. } | plan::Step::AddToGroup { .. }
        ) || matches!(a, plan::Step::UpdateUser { what, .. } if what.contains(&"barrier attribute"))
    });
    if outcome.joined_segment || joins_segment {
        builder.status.barrier_attribute_set_at = None;
    } else if builder.status.barrier_attribute_set_at.is_none()
        && confirmed
        && plan.user_id.is_some()
        && plan.blocked.is_none()
    {
        builder.status.barrier_attribute_set_at = Some(crate::controllers::reconcile::now_for_barriers());
        if desired.barrier_required {
            ctx.coordinator().request("an account was seen in its segment");
        }
    }
}

/// When to look again. The directory catching up is retried with a growing wait, so nothing a
/// license's author writes (a name the directory keeps refusing, say) spends the write budget
/// in a loop.
fn next_look(ctx: &Context, ral: &RemoteAssistLicense, plan: &plan::Plan, outcome: &act::Outcome) -> Action {
    if outcome.replicating.is_some() {
        return Action::requeue(ctx.lagging(ral));
    }
    ctx.caught_up(ral);
    if outcome.joining.is_some() {
        // The sender's answer brings the licence back; this is in case it never comes.
        return Action::requeue(JOIN_FALLBACK.min(ctx.config.resync));
    }
    if let Some(wait) = plan.retry_in {
        Action::requeue(wait.min(ctx.config.resync))
    } else if outcome.no_seats.is_some() {
        Action::requeue(SEATS_REQUEUE.min(ctx.config.resync))
    } else if !outcome.done.is_empty() {
        Action::requeue(STEP_REQUEUE)
    } else {
        resync(ctx, ral)
    }
}

/// The deletion policy. Only users the operator created are deleted or disabled; an adopted
/// user is always left as it is.
async fn cleanup(ral: &RemoteAssistLicense, ctx: &Context) -> Result<Action, Error> {
    let creds = Credentials::new(ctx.kube.clone(), ral);
    let status = ral.status.clone().unwrap_or_default();
    let dir = &ctx.directory;
    let Some(user_id) = status.user_id.clone() else {
        creds.delete().await?;
        return Ok(Action::await_change());
    };
    let policy = ral.spec.deletion_policy.unwrap_or_default();
    if status.created_by_operator != Some(true) {
        release_adopted(ctx, &user_id, ral, &status).await?;
        creds.release().await?;
        let note = format!("user {user_id} was adopted, so it is left in the tenant as it is");
        ctx.event(ral, EventType::Normal, "Orphaned", "Cleanup", note)
            .await;
        return Ok(Action::await_change());
    }
    let note = match policy {
        DeletionPolicy::Delete => {
            dir.delete_user(&user_id).await?;
            creds.delete().await?;
            format!("deleted user {user_id} (restorable from deleted items for 30 days)")
        }
        DeletionPolicy::Disable => {
            if let Some(user) = dir.user(&user_id).await? {
                dir.update_user(&user_id, &json!({"accountEnabled": false}))
                    .await?;
                let direct = user.direct_skus();
                if !direct.is_empty() {
                    dir.assign_user_licenses(&user_id, &[], &direct).await?;
                }
                let group = ctx
                    .vendor(&ral.spec.vendor_ref.name)
                    .and_then(|v| v.status.clone()?.accounts_group_id);
                if let Some(g) = group {
                    dir.remove_member(&g, &user_id).await?;
                }
            }
            creds.delete().await?;
            format!("disabled user {user_id}, released its licences and removed it from the accounts group")
        }
        DeletionPolicy::Orphan => {
            if dir.user(&user_id).await?.is_some() {
                dir.update_user(&user_id, &json!({"employeeType": null})).await?;
            }
            creds.release().await?;
            format!("left user {user_id} in the tenant, no longer managed; its credentials Secret is kept")
        }
    };
    tracing::info!(namespace = ral.namespace().unwrap_or_default(), name = %ral.name_any(), note, "cleaned up");
    ctx.event(ral, EventType::Normal, "CleanedUp", "Cleanup", note)
        .await;
    Ok(Action::await_change())
}

/// Takes the operator's mark off an adopted user (putting back the `employeeType` it had),
/// if the mark is still this licence's: the user is otherwise left as it is.
async fn release_adopted(
    ctx: &Context,
    user_id: &str,
    ral: &RemoteAssistLicense,
    status: &crate::crd::RemoteAssistLicenseStatus,
) -> Result<(), Error> {
    let dir = &ctx.directory;
    let Some(user) = dir.user(user_id).await? else {
        return Ok(());
    };
    if user.managed_by() == ral.uid().as_deref() {
        let patch = json!({"employeeType": status.previous_employee_type});
        dir.update_user(user_id, &patch).await?;
    }
    Ok(())
}

/// Records the time from creation to Ready in the metrics when this status write made the
/// licence Ready for the first time (an upgraded licence that was Ready already is not counted).
fn observe_first_ready(ctx: &Context, ral: &RemoteAssistLicense, status: &RemoteAssistLicenseStatus) {
    let before = ral.status.as_ref();
    let was_ready = before
        .and_then(|s| crate::crd::conditions::find(&s.conditions, crate::crd::conditions::types::READY))
        .is_some_and(|c| c.status == "True");
    let had_first = before.is_some_and(|s| s.first_ready_time.is_some());
    if let (false, false, Some(first), Some(created)) = (
        was_ready,
        had_first,
        &status.first_ready_time,
        &ral.metadata.creation_timestamp,
    ) {
        ctx.metrics
            .account_ready(first.0.duration_since(created.0).as_secs_f64());
    }
}
