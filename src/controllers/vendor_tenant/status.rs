//! The VendorTenant's status from its plan and what acting did: the bound group ids,
//! `GroupsReady`, `LicensesAssigned`, the seat table, the accounts roll-up and `Ready`.

use super::act::Outcome;
use super::plan::{GroupRef, Plan, Role};
use crate::crd::conditions::{Conditions, Status, find, types};
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
    let c = Conditions::new(vt.metadata.generation, now.clone());
    s.observed_generation = vt.metadata.generation;
    let bound = |g: &Option<GroupRef>, role: Role| match g {
        Some(GroupRef::Existing { id, .. }) => Some(id.clone()),
        Some(GroupRef::New { .. }) => outcome.created.get(&role).map(|g| g.id.clone()),
        None => None,
    };
    s.accounts_group_id = bound(&plan.accounts_group, Role::Accounts);
    s.engineers_group_id = bound(&plan.engineers_group, Role::Engineers);
    match plan.problems.first() {
        Some(p) => c.set(
            &mut s.conditions,
            types::GROUPS_READY,
            Status::False,
            p.reason,
            p.message.clone(),
        ),
        None => c.set(
            &mut s.conditions,
            types::GROUPS_READY,
            Status::True,
            "Bound",
            "both groups exist and the engineers are members",
        ),
    };
    s.seats = plan.seats.seats.clone();
    let (status, reason, message) = match &outcome.group_license_refused {
        Some(message) => (Status::False, "GroupLicenseRefused", message.clone()),
        None => plan.seats.condition.clone(),
    };
    c.set(
        &mut s.conditions,
        types::LICENSES_ASSIGNED,
        status,
        reason,
        message,
    );
    let summary = accounts_summary(accounts);
    let rollup = c.ready(&mut s.conditions, &ASPECTS);
    let ready = find(&s.conditions, types::READY).is_some_and(|r| r.status == "True");
    s.message = Some(if ready {
        format!(
            "groups bound; {} of {} accounts ready",
            summary.ready, summary.total
        )
    } else {
        rollup
    });
    s.accounts = Some(summary);
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
