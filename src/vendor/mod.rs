//! The VendorTenant reconciler: the two groups, the engineers' membership, group licences in
//! `Group` mode, a seat pre-flight per SKU, and the roll-up of the vendor's accounts.

pub mod barriers;
pub mod groups;
pub mod holders;
pub mod seats;

use crate::context::{Context, Error, error_policy, now, write_status};
use crate::crd::conditions::{ConditionUpdate, Status, kinds, ready_rollup, set_condition};
use crate::crd::vendor_tenant::{AccountsSummary, LicenseMode, MembershipMode};
use crate::crd::{RemoteAssistLicense, VendorTenant, VendorTenantStatus};
use crate::watch;
use futures::StreamExt;
use groups::Binding;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const ASPECTS: [&str; 2] = [kinds::GROUPS_READY, kinds::LICENSES_ASSIGNED];

/// Runs the controller on `stream`, the main watch `run.rs` built with the vendor cache.
pub async fn run(
    ctx: Arc<Context>,
    reader: kube::runtime::reflector::Store<VendorTenant>,
    stream: impl futures::Stream<Item = Result<VendorTenant, kube::runtime::watcher::Error>> + Send + 'static,
) {
    let wc = watch::config(&ctx.config);
    // Any change to a vendor's accounts (their status included) updates its roll-up; the
    // debounce folds a burst of account changes into one vendor reconcile.
    let accounts = watch::related(
        Api::<RemoteAssistLicense>::all(ctx.kube.clone()),
        wc,
        &ctx.metrics,
    );
    Controller::for_stream(stream, reader)
        .watches_stream(accounts, |ral| {
            Some(ObjectRef::<VendorTenant>::new(&ral.spec.vendor_ref.name))
        })
        .with_config(
            ControllerConfig::default()
                .concurrency(ctx.config.concurrency)
                .debounce(Duration::from_secs(1)),
        )
        .shutdown_on_signal()
        .run(
            |obj, ctx| async move {
                crate::context::instrumented::<VendorTenant, _>(&ctx.clone(), reconcile(obj, ctx)).await
            },
            error_policy,
            ctx,
        )
        .for_each(watch::log_controller_outcome)
        .await;
}

pub async fn reconcile(vt: Arc<VendorTenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<VendorTenant> = Api::all(ctx.kube.clone());
    crate::context::with_finalizer(
        &api,
        vt,
        async |v| apply(&v, &ctx, &api).await,
        async |v| cleanup(&v, &ctx, &api).await,
    )
    .await
}

/// This vendor's RemoteAssistLicenses, from the licence cache once it holds a full list: after
/// a restart, an empty cache must not read as "no accounts left".
async fn accounts(ctx: &Context, vendor: &str) -> Result<Vec<Arc<RemoteAssistLicense>>, Error> {
    Ok(watch::licences_of(ctx.licenses().await?, vendor))
}

struct Builder {
    status: VendorTenantStatus,
    generation: Option<i64>,
    now: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

impl Builder {
    fn set(&mut self, type_: &str, status: Status, reason: &str, message: impl Into<String>) {
        let update = ConditionUpdate::new(type_, status, reason, message);
        set_condition(&mut self.status.conditions, update, self.generation, &self.now);
    }
}

async fn apply(vt: &VendorTenant, ctx: &Context, api: &Api<VendorTenant>) -> Result<Action, Error> {
    let dir = &ctx.directory;
    let uid = vt.uid().unwrap_or_default();
    let name = vt.name_any();
    let current = vt.status.clone().unwrap_or_default();
    let mut b = Builder {
        status: current.clone(),
        generation: vt.metadata.generation,
        now: now(),
    };
    b.status.observed_generation = vt.metadata.generation;
    dir.refresh().await?;
    let mut done: Vec<(&str, String)> = Vec::new();
    let mut problems: Vec<(&str, String)> = Vec::new();

    // Groups.
    let mut bound = Vec::new();
    for (group_name, status_id) in [
        (vt.accounts_group_name(), current.accounts_group_id.as_deref()),
        (vt.engineers_group_name(), current.engineers_group_id.as_deref()),
    ] {
        match groups::bind(dir, &group_name, status_id, &uid).await? {
            Binding::Bound(g, created) => {
                if created {
                    done.push(("GroupCreated", format!("created group {group_name} ({})", g.id)));
                } else if status_id.is_some_and(|id| id != g.id) {
                    done.push((
                        "GroupRebound",
                        format!("group {group_name} was gone; bound to {}", g.id),
                    ));
                }
                bound.push(Some(g));
            }
            Binding::Conflict(message) => {
                problems.push(("Conflict", message));
                bound.push(None);
            }
        }
    }
    let (accounts_group, engineers_group) = (bound[0].clone(), bound[1].clone());
    b.status.accounts_group_id = accounts_group.as_ref().map(|g| g.id.clone());
    b.status.engineers_group_id = engineers_group.as_ref().map(|g| g.id.clone());

    // Engineers' membership: known users only; unknown UPNs are reported, never created.
    if let (Some(g), Some(se)) = (&engineers_group, &vt.spec.support_engineers) {
        let mut wanted = BTreeSet::new();
        let mut unknown = Vec::new();
        let mut engineers = Vec::new();
        for upn in &se.members {
            match dir.cached_user(upn).await?.map(|seen| seen.user) {
                Some(u) => {
                    wanted.insert(u.id.clone());
                    engineers.push((upn.clone(), u));
                }
                None => unknown.push(upn.clone()),
            }
        }
        // Engineers join their segment through the barrier attribute, as the accounts do.
        let (write, shared) =
            barriers::engineer_changes(vt, &engineers, &ctx.caches().vendors.current().state());
        if let Some(attr) = barriers::engineer_attribute(vt) {
            for user in write {
                let mut patch = serde_json::Map::new();
                attr.patch(&mut patch);
                dir.update_user(&user.id, &serde_json::Value::Object(patch))
                    .await?;
                done.push((
                    "EngineerPlaced",
                    format!(
                        "set {}'s barrier attribute to {}",
                        user.user_principal_name, attr.value
                    ),
                ));
            }
        }
        if !shared.is_empty() {
            problems.push((
                "EngineerShared",
                format!("{} also serve another vendor; an engineer can be in one segment only, so their barrier attribute is left as it is", shared.join(", ")),
            ));
        }
        let current_members = dir.cached_members(&g.id).await?;
        let exclusive = se.membership.unwrap_or_default() == MembershipMode::Exclusive;
        // With unknown engineers, removing is unsafe: the list may just be mistyped.
        let (add, remove) =
            groups::membership_changes(&wanted, &current_members, exclusive && unknown.is_empty());
        if !add.is_empty() {
            dir.add_members(&g.id, &add).await?;
            done.push((
                "EngineersAdded",
                format!("added {} engineer(s) to {}", add.len(), g.display_name),
            ));
        }
        for id in &remove {
            dir.remove_member(&g.id, id).await?;
        }
        if !remove.is_empty() {
            done.push((
                "EngineersRemoved",
                format!(
                    "removed {} member(s) not listed from {}",
                    remove.len(),
                    g.display_name
                ),
            ));
        }
        if !unknown.is_empty() {
            problems.push((
                "EngineerNotFound",
                format!("no user {} in the tenant", unknown.join(", ")),
            ));
        }
    }
    if vt.generates_segments() {
        let (generated, taken) = barriers::ensure_generated(ctx, vt).await?;
        done.extend(generated.into_iter().map(|n| ("SegmentGenerated", n)));
        if let Some(message) = taken {
            problems.push(("SegmentNameTaken", message));
        }
    }
    match problems.first() {
        Some((reason, message)) => b.set(kinds::GROUPS_READY, Status::False, reason, message.clone()),
        None => b.set(
            kinds::GROUPS_READY,
            Status::True,
            "Bound",
            "both groups exist and the engineers are members",
        ),
    }

    // Licences: the seat pre-flight, and the group's own licences in Group mode.
    let accounts = accounts(ctx, &name).await?;
    let skus = dir.skus(false).await?;
    let licence = seats::evaluate(vt, &accounts, &skus);
    b.status.seats = licence.seats.clone();
    let mut licence_condition = licence.condition.clone();
    if vt.license_mode() == LicenseMode::Group
        && let (Some(g), Ok(wanted)) = (&accounts_group, &licence.resolved)
    {
        let (add, remove) = seats::group_changes(g, wanted, g.managed_by() == Some(uid.as_str()));
        if !add.is_empty() || !remove.is_empty() {
            match dir.assign_group_licenses(&g.id, &add, &remove).await {
                Ok(()) => done.push((
                    "GroupLicensesChanged",
                    format!("assigned {} licence(s) to {}", add.len(), g.display_name),
                )),
                Err(e) if e.status() == Some(400) => {
                    licence_condition = (Status::False, "GroupLicenseRefused", e.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let (status, reason, message) = licence_condition;
    b.set(kinds::LICENSES_ASSIGNED, status, reason, message);

    // Roll-up of the accounts.
    let ready = accounts
        .iter()
        .filter(|a| {
            a.status
                .as_ref()
                .and_then(|s| crate::crd::conditions::find(&s.conditions, kinds::READY))
                .is_some_and(|c| c.status == "True")
        })
        .count() as i32;
    let total = accounts.len() as i32;
    b.status.accounts = Some(AccountsSummary {
        ready,
        total,
        summary: format!("{ready}/{total}"),
    });

    let rollup = ready_rollup(&b.status.conditions, &ASPECTS);
    b.status.message = Some(if rollup.status == Status::True {
        format!("groups bound; {ready} of {total} accounts ready")
    } else {
        rollup.message.clone()
    });
    set_condition(&mut b.status.conditions, rollup, b.generation, &b.now);

    for (reason, note) in &done {
        tracing::info!(vendor = %name, reason, note = %note, "acted on the tenant");
        ctx.event(vt, EventType::Normal, reason, reason, note.clone())
            .await;
    }
    if write_status(api, vt, vt.status.as_ref(), &b.status).await? {
        for (reason, message) in &problems {
            ctx.event(vt, EventType::Warning, reason, "Reconcile", message.clone())
                .await;
        }
    }
    ctx.succeeded(vt);
    Ok(Action::requeue(if done.is_empty() {
        ctx.config.resync
    } else {
        Duration::from_secs(1)
    }))
}

/// Deletion: waits until no RemoteAssistLicense refers to the vendor (their users are handled by
/// their own deletion policies), then deletes the groups the operator created. Groups it
/// adopted stay.
async fn cleanup(vt: &VendorTenant, ctx: &Context, api: &Api<VendorTenant>) -> Result<Action, Error> {
    let name = vt.name_any();
    let remaining = accounts(ctx, &name).await?.len();
    if remaining > 0 {
        let mut status = vt.status.clone().unwrap_or_default();
        let message =
            format!("waiting for {remaining} RemoteAssistLicense(s) of this vendor to be deleted first");
        let update = ConditionUpdate::new(kinds::READY, Status::False, "Terminating", message.clone());
        set_condition(&mut status.conditions, update, vt.metadata.generation, &now());
        if write_status(api, vt, vt.status.as_ref(), &status).await? {
            ctx.event(vt, EventType::Normal, "Terminating", "Cleanup", message)
                .await;
        }
        return Err(Error::Waiting(
            message_for_wait(remaining),
            Duration::from_secs(3),
        ));
    }
    // Orphaned accounts stay behind a barrier: nothing of the vendor's goes while one is enabled.
    let holders = holders::enabled_holders(ctx, vt).await?;
    if !holders.is_empty() {
        let message = holders::holding_message(&holders);
        let mut status = vt.status.clone().unwrap_or_default();
        let update = ConditionUpdate::new(
            kinds::READY,
            Status::False,
            "AccountsHoldSegments",
            message.clone(),
        );
        set_condition(&mut status.conditions, update, vt.metadata.generation, &now());
        status.message = Some(message.clone());
        if write_status(api, vt, vt.status.as_ref(), &status).await? {
            ctx.event(
                vt,
                EventType::Warning,
                "AccountsHoldSegments",
                "Cleanup",
                message.clone(),
            )
            .await;
        }
        return Err(Error::Waiting(
            message,
            Duration::from_secs(30).min(ctx.config.resync),
        ));
    }
    if !barriers::delete_generated(ctx, vt).await? {
        return Err(Error::Waiting(
            "the generated BarrierSegments are being removed".into(),
            Duration::from_secs(2),
        ));
    }
    let uid = vt.uid().unwrap_or_default();
    let status = vt.status.clone().unwrap_or_default();
    for id in [status.accounts_group_id, status.engineers_group_id]
        .into_iter()
        .flatten()
    {
        if let Some(g) = ctx.directory.group(&id).await? {
            if g.managed_by() == Some(uid.as_str()) {
                ctx.directory.delete_group(&id).await?;
                ctx.event(
                    vt,
                    EventType::Normal,
                    "GroupDeleted",
                    "Cleanup",
                    format!("deleted group {}", g.display_name),
                )
                .await;
            } else {
                ctx.event(
                    vt,
                    EventType::Normal,
                    "GroupKept",
                    "Cleanup",
                    format!("group {} was adopted, so it is kept", g.display_name),
                )
                .await;
            }
        }
    }
    Ok(Action::await_change())
}

fn message_for_wait(remaining: usize) -> String {
    format!("{remaining} RemoteAssistLicense(s) of this vendor still exist")
}
