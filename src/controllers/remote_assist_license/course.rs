//! The whole course of an account (pure): the plan, then the plan again on the account as the
//! steps leave it, until nothing is left. The reconciler acts one plan per pass and observes
//! in between; the `plan` command shows the whole course, so it lists every write the account
//! will need and not only the first pass's.

use super::plan::{Desired, Licensing, Observed, SecretState, Step, plan};
use crate::directory::view::{apply_licenses, apply_patch};
use crate::directory::{AssignedLicense, DirUser, LicenseState};

/// Passes before giving up: a new account needs three (create; join and license; enable).
const PASSES: usize = 6;

/// Every step of every pass, in order, and the last pass's plan (its problems and status).
pub fn course(d: &Desired, observed: &Observed) -> (Vec<Step>, super::plan::Plan) {
    let mut o = observed.clone();
    let mut steps = Vec::new();
    let mut last = plan(d, &o);
    for _ in 0..PASSES {
        if last.actions.is_empty() || last.blocked.is_some() {
            break;
        }
        for step in &last.actions {
            if !apply(d, &mut o, step) {
                steps.extend(last.actions.iter().cloned());
                return (steps, last);
            }
        }
        steps.extend(last.actions.iter().cloned());
        last = plan(d, &o);
    }
    (steps, last)
}

/// The account as `step` leaves it; false when the effect cannot be foreseen (a restore).
fn apply(d: &Desired, o: &mut Observed, step: &Step) -> bool {
    match step {
        Step::WriteCredentials => {
            o.secret = SecretState::Ready {
                pending: false,
                rotated_for: None,
            }
        }
        // Whether the account gets its licence this time is group licensing's to decide.
        Step::RestoreUser { .. } | Step::ReprocessLicenses { .. } => return false,
        Step::CreateUser { body } => {
            let mut user = body.clone();
            user["id"] = format!("(new user {})", d.upn).into();
            match serde_json::from_value::<DirUser>(user) {
                Ok(u) => o.user = Some(u),
                Err(_) => return false,
            }
        }
        Step::Adopt { mark, .. } => with_user(o, |u| u.employee_type = Some(mark.clone())),
        Step::UpdateUser { patch, .. } => with_user(o, |u| apply_patch(u, patch)),
        Step::AddToGroup { .. } => {
            o.in_group = true;
            if let Licensing::Group(skus) = &d.licensing {
                with_user(o, |u| inherit(u, skus, &d.accounts_group_id));
            }
        }
        Step::RemoveFromGroup { .. } => o.in_group = false,
        Step::AssignLicenses { add, remove, .. } => with_user(o, |u| apply_licenses(u, add, remove)),
        Step::RotatePassword { token, .. } => {
            o.secret = SecretState::Ready {
                pending: false,
                rotated_for: token.clone(),
            };
            o.rotation_request = token.clone();
        }
        Step::Enable { .. } => with_user(o, |u| u.account_enabled = Some(true)),
        Step::Disable { .. } => with_user(o, |u| u.account_enabled = Some(false)),
    }
    true
}

fn with_user(o: &mut Observed, change: impl FnOnce(&mut DirUser)) {
    if let Some(u) = o.user.as_mut() {
        change(u);
    }
}

/// The group's licences, as Entra shows them on a member once it has passed them on.
fn inherit(u: &mut DirUser, skus: &[String], group: &str) {
    for sku in skus {
        if !u.assigned_licenses.iter().any(|a| &a.sku_id == sku) {
            u.assigned_licenses.push(AssignedLicense {
                sku_id: sku.clone(),
                disabled_plans: vec![],
            });
            u.license_assignment_states.push(LicenseState {
                sku_id: sku.clone(),
                assigned_by_group: Some(group.to_owned()),
                ..LicenseState::default()
            });
        }
    }
}
