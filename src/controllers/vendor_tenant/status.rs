//! The VendorTenant's status from its plan and what acting did: the bound group ids,
//! `GroupsReady`, `LicensesAssigned`, the seat table, the accounts roll-up and `Ready`.

use super::act::Outcome;
use super::plan::{GroupRef, Plan, Role};
use crate::crd::conditions::{ConditionUpdate, Status, find, ready_rollup, set_condition, types};
use crate::crd::vendor_tenant::AccountsSummary;
use crate::crd::{RemoteAssistLicense, VendorTenant, VendorTenantStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::sync::Arc;

const ASPECTS: [&str; 2] = [types::GROUPS_READY, types::LICENSES_ASSIGNED];

/// The new status of `vt` (pure).
pub fn status(
    vt: &VendorTenant,
    plan: &Plan,
    outcome: &Outcome,
    accounts: &[Arc<RemoteAssistLicense>],
    now: &Time,
) -> VendorTenantStatus {
    let mut s = vt.status.clone().unwrap_or_default();
    let generation = vt.metadata.generation;
    let set = |s: &mut VendorTenantStatus, type_: &str, status: Status, reason: &str, message: String| {
        let update = ConditionUpdate::new(type_, status, reason, message);
        set_condition(&mut s.conditions, update, generation, now);
    };
    s.observed_generation = generation;
    let bound = |g: &Option<GroupRef>, role: Role| match g {
        Some(GroupRef::Existing { id, .. }) => Some(id.clone()),
        Some(GroupRef::New { .. }) => outcome.created.get(&role).map(|g| g.id.clone()),
        None => None,
    };
    s.accounts_group_id = bound(&plan.accounts_group, Role::Accounts);
    s.engineers_group_id = bound(&plan.engineers_group, Role::Engineers);
    match plan.problems.first() {
        Some(p) => set(
            &mut s,
            types::GROUPS_READY,
            Status::False,
            p.reason,
            p.message.clone(),
        ),
        None => set(
            &mut s,
            types::GROUPS_READY,
            Status::True,
            "Bound",
            "both groups exist and the engineers are members".into(),
        ),
    }
    s.seats = plan.seats.seats.clone();
    let (status, reason, message) = match &outcome.group_license_refused {
        Some(message) => (Status::False, "GroupLicenseRefused", message.clone()),
        None => plan.seats.condition.clone(),
    };
    set(&mut s, types::LICENSES_ASSIGNED, status, reason, message);
    let summary = accounts_summary(accounts);
    let rollup = ready_rollup(&s.conditions, &ASPECTS);
    s.message = Some(if rollup.status == Status::True {
        format!(
            "groups bound; {} of {} accounts ready",
            summary.ready, summary.total
        )
    } else {
        rollup.message.clone()
    });
    s.accounts = Some(summary);
    set_condition(&mut s.conditions, rollup, generation, now);
    s
}

/// How many of the vendor's accounts are Ready.
fn accounts_summary(accounts: &[Arc<RemoteAssistLicense>]) -> AccountsSummary {
    let ready = accounts
        .iter()
        .filter(|a| {
            a.status
                .as_ref()
                .and_then(|s| find(&s.conditions, types::READY))
                .is_some_and(|c| c.status == "True")
        })
        .count() as i32;
    let total = accounts.len() as i32;
    AccountsSummary {
        ready,
        total,
        summary: format!("{ready}/{total}"),
    }
}
