//! Turns a plan and its outcome into the RemoteAssistLicense's conditions and status fields.

use super::act::Outcome;
use super::enforcement::Enforcement;
use super::plan::{Desired, GroupLicenseError, Plan, Step};
use crate::crd::RemoteAssistLicenseStatus;
use crate::crd::conditions::{ConditionUpdate, Conditions, Status, ready_rollup, types};
use crate::directory::SkuTable;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const ASPECTS: [&str; 3] = [
    types::ACCOUNT_READY,
    types::LICENSES_ASSIGNED,
    types::BARRIER_ENFORCED,
];

/// Builds the next status from the current one: conditions keep their transition times.
pub struct StatusBuilder {
    pub status: RemoteAssistLicenseStatus,
    conditions: Conditions,
}

impl StatusBuilder {
    pub fn new(current: Option<&RemoteAssistLicenseStatus>, generation: Option<i64>, now: Time) -> Self {
        let mut status = current.cloned().unwrap_or_default();
        status.observed_generation = generation;
        StatusBuilder {
            status,
            conditions: Conditions::new(generation, now),
        }
    }

    pub fn set(&mut self, type_: &str, status: Status, reason: &str, message: impl Into<String>) {
        self.conditions
            .set(&mut self.status.conditions, type_, status, reason, message);
    }

    /// Every aspect False (or Unknown) for one reason: used when nothing can be observed.
    pub fn refuse(mut self, reason: &str, message: &str) -> RemoteAssistLicenseStatus {
        self.set(types::ACCOUNT_READY, Status::False, reason, message);
        self.finish(false, false)
    }

    /// The `Ready` roll-up and the summary message. `enabled_settled` tells whether sign-in is
    /// already as it should be; `suspended` reports a deliberate stop rather than a fault.
    pub fn finish(mut self, enabled_settled: bool, suspended: bool) -> RemoteAssistLicenseStatus {
        let mut ready = ready_rollup(&self.status.conditions, &ASPECTS);
        if suspended {
            ready = ConditionUpdate::new(
                types::READY,
                Status::False,
                "Suspended",
                "spec.suspended is true: sign-in is blocked and licences are released",
            );
        } else if ready.status == Status::True && !enabled_settled {
            ready = ConditionUpdate::new(
                types::READY,
                Status::False,
                "Enabling",
                "everything is in place; sign-in is being enabled",
            );
        }
        self.status.message = Some(ready.message.clone());
        self.conditions.put(&mut self.status.conditions, ready);
        if self.status.first_ready_time.is_none()
            && let Some(c) = crate::crd::conditions::find(&self.status.conditions, types::READY)
            && c.status == "True"
        {
            self.status.first_ready_time = Some(c.last_transition_time.clone());
        }
        self.status
    }

    /// `AccountReady`: blocked, partly refused, replicating, being created, or in place.
    fn account_ready(&mut self, d: &Desired, plan: &Plan, outcome: &Outcome) {
        if let Some(b) = &plan.blocked {
            let (reason, message) = (b.reason, b.message.clone());
            self.set(types::ACCOUNT_READY, Status::False, reason, message);
            self.set(
                types::LICENSES_ASSIGNED,
                Status::Unknown,
                reason,
                "no account to license",
            );
        } else if let Some(r) = &plan.refused {
            // The rest went ahead; this part of the request is refused (or deferred).
            self.set(types::ACCOUNT_READY, Status::False, r.reason, r.message.clone());
        } else if let Some(m) = &outcome.password_refused {
            self.set(
                types::ACCOUNT_READY,
                Status::False,
                "DirectoryRoleMissing",
                m.clone(),
            );
        } else if let Some(r) = &outcome.replicating {
            self.set(types::ACCOUNT_READY, Status::False, "Replicating", r.clone());
        } else if let Some(group) = &outcome.joining {
            let message = format!(
                "user {} joins group {group} together with other accounts (written behind, within {} s)",
                d.upn,
                crate::directory::write_behind::MAX_HOLD.as_secs()
            );
            self.set(types::ACCOUNT_READY, Status::False, "JoiningGroup", message);
        } else if plan.user_id.is_none() {
            // Created in this pass: group, attribute and licences follow in the next.
            self.set(
                types::ACCOUNT_READY,
                Status::False,
                "Creating",
                format!("creating user {}", d.upn),
            );
        } else {
            let how = if plan.created_by_operator == Some(false) {
                "Adopted"
            } else {
                "Provisioned"
            };
            self.set(
                types::ACCOUNT_READY,
                Status::True,
                how,
                format!("user {} is in the accounts group", d.upn),
            );
        }
    }

    /// `LicensesAssigned`, once there is an account to license.
    fn licenses_assigned(&mut self, d: &Desired, plan: &Plan, outcome: &Outcome, skus: &SkuTable) {
        if let Some(m) = &outcome.no_seats {
            self.set(types::LICENSES_ASSIGNED, Status::False, "NoSeats", m.clone());
        } else if d.suspended {
            self.set(
                types::LICENSES_ASSIGNED,
                Status::False,
                "Released",
                "licences are released while suspended",
            );
        } else if plan.licensed
            || outcome
                .done
                .iter()
                .any(|d| matches!(d.step, Step::AssignLicenses { .. }))
        {
            self.set(
                types::LICENSES_ASSIGNED,
                Status::True,
                "Assigned",
                "every requested licence is assigned",
            );
        } else if let Some(e) = &plan.group_license_error {
            self.set(
                types::LICENSES_ASSIGNED,
                Status::False,
                "GroupLicenseError",
                group_license_message(e, skus),
            );
        } else if matches!(d.licensing, super::plan::Licensing::Group(_)) {
            self.set(
                types::LICENSES_ASSIGNED,
                Status::False,
                "AwaitingGroupLicenses",
                "waiting for the accounts group's licences to reach the account",
            );
        } else {
            self.set(
                types::LICENSES_ASSIGNED,
                Status::False,
                "Assigning",
                "licences are being assigned",
            );
        }
    }

    /// Conditions from a plan that ran (or was blocked) and what acting on it produced.
    pub fn from_plan(&mut self, d: &Desired, plan: &Plan, outcome: &Outcome, skus: &SkuTable) {
        let s = &mut self.status;
        s.user_principal_name = Some(d.upn.clone());
        if let Some((id, created)) = &outcome.bound_user {
            s.user_id = Some(id.clone());
            s.created_by_operator = Some(*created);
        } else if plan.user_id.is_some() {
            s.user_id = plan.user_id.clone();
            s.created_by_operator = plan.created_by_operator;
        }
        self.account_ready(d, plan, outcome);
        if plan.blocked.is_none() {
            self.licenses_assigned(d, plan, outcome, skus);
        }
        self.status.assigned_licenses = assigned_part_numbers(plan, skus);
    }

    /// `BarrierEnforced`, from the barrier module's verdict.
    pub fn barrier(&mut self, enforcement: &Enforcement, vendor_name: &str) {
        match enforcement {
            Enforcement::NotRequired => self.set(
                types::BARRIER_ENFORCED,
                Status::True,
                "NotRequired",
                format!("VendorTenant {vendor_name} does not require barriers; the account is enabled once licensed"),
            ),
            Enforcement::Enforced(app) => {
                // Every later application covers the account again; naming the newest would
                // rewrite the status of every enforced account after each application.
                let message = self
                    .enforced_since()
                    .unwrap_or_else(|| format!("in force since policy application {app} completed"));
                self.set(types::BARRIER_ENFORCED, Status::True, "Enforced", message)
            }
            Enforcement::Pending { reason, message } => {
                self.set(types::BARRIER_ENFORCED, Status::False, reason, message.clone())
            }
        }
    }

    /// The message of a `BarrierEnforced` condition that is already True for this generation.
    fn enforced_since(&self) -> Option<String> {
        crate::crd::conditions::find(&self.status.conditions, types::BARRIER_ENFORCED)
            .filter(|c| c.status == "True" && c.reason == "Enforced")
            .filter(|c| c.observed_generation == self.status.observed_generation)
            .map(|c| c.message.clone())
    }
}

fn assigned_part_numbers(plan: &Plan, skus: &SkuTable) -> Vec<String> {
    let mut v: Vec<String> = plan
        .observed_skus
        .iter()
        .filter_map(|id| {
            skus.values()
                .find(|s| &s.sku_id == id)
                .map(|s| s.part_number.clone())
        })
        .collect();
    v.sort();
    v
}

/// A group licence error in words: the SKU, Graph's error value, what it means and the fix.
fn group_license_message(e: &GroupLicenseError, skus: &SkuTable) -> String {
    let sku = skus
        .values()
        .find(|s| s.sku_id == e.sku_id)
        .map_or(e.sku_id.as_str(), |s| s.part_number.as_str());
    let (meaning, fix) = match e.error.as_str() {
        "CountViolation" => (
            "no seats left",
            "buy seats or free some; the operator asks for the account to be processed again once seats are free",
        ),
        "MutuallyExclusiveViolation" => (
            "a service plan conflicts with one the account already holds from another licence",
            "remove the conflicting licence from the account or disable the plan on the VendorTenant",
        ),
        "DependencyViolation" => (
            "a service plan needs another plan that no licence on the account enables (or that is being removed)",
            "give the account a licence with the required plan (or keep it), or disable the dependent plan; the operator asks for the account to be processed again",
        ),
        "ProhibitedInUsageLocationViolation" => (
            "the SKU is not offered in the account's usage location",
            "set a usage location where the SKU is available",
        ),
        "UniquenessViolation" => (
            "an attribute that must be unique (such as a proxy address) clashes with another object",
            "resolve the duplicate in the directory",
        ),
        _ => (
            "group licensing failed",
            "see the accounts group's licence errors in the Entra admin center",
        ),
    };
    format!(
        "group licensing could not assign {sku} to the account: {} ({meaning}); {fix}",
        e.error
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Sku;

    #[test]
    fn a_group_licence_error_names_the_sku_the_error_and_the_fix() {
        let skus: SkuTable = [(
            "MICROSOFT_REMOTE_ASSIST".to_owned(),
            Sku {
                sku_id: "sku-ra".into(),
                part_number: "MICROSOFT_REMOTE_ASSIST".into(),
                enabled: 2,
                consumed: 2,
                plans: Default::default(),
            },
        )]
        .into();
        let error = |e: &str| GroupLicenseError {
            sku_id: "sku-ra".into(),
            error: e.into(),
        };
        let m = group_license_message(&error("CountViolation"), &skus);
        assert!(
            m.contains("MICROSOFT_REMOTE_ASSIST") && m.contains("CountViolation"),
            "{m}"
        );
        assert!(m.contains("buy seats"), "{m}");
        let m = group_license_message(&error("MutuallyExclusiveViolation"), &skus);
        assert!(
            m.contains("conflicts") && m.contains("remove the conflicting licence"),
            "{m}"
        );
        let unknown = GroupLicenseError {
            sku_id: "sku-unknown".into(),
            error: "Others".into(),
        };
        assert!(group_license_message(&unknown, &skus).contains("sku-unknown"));
    }

    #[test]
    fn a_later_application_does_not_rewrite_an_enforced_account() {
        let at = |s: i64| Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap());
        let mut b = StatusBuilder::new(None, Some(1), at(100));
        b.barrier(&Enforcement::Enforced("first".into()), "v1");
        let enforced = b.status.clone();
        let mut b = StatusBuilder::new(Some(&enforced), Some(1), at(200));
        b.barrier(&Enforcement::Enforced("second".into()), "v1");
        assert_eq!(b.status, enforced, "the status stays as it was: nothing to write");
        // Pending in between, then enforced again: the new application is named.
        let mut b = StatusBuilder::new(Some(&enforced), Some(1), at(300));
        b.barrier(
            &Enforcement::Pending {
                reason: "AwaitingApplication",
                message: "m".into(),
            },
            "v1",
        );
        let pending = b.status.clone();
        let mut b = StatusBuilder::new(Some(&pending), Some(1), at(400));
        b.barrier(&Enforcement::Enforced("third".into()), "v1");
        let c = crate::crd::conditions::find(&b.status.conditions, types::BARRIER_ENFORCED).unwrap();
        assert!(c.message.contains("third"), "{}", c.message);
    }

    #[test]
    fn the_first_ready_time_is_set_once_and_kept_through_drift() {
        use k8s_openapi::jiff::Timestamp;
        let at = |s: i64| Time(Timestamp::from_second(s).unwrap());
        let all = |b: &mut StatusBuilder, status: Status| {
            for aspect in ASPECTS {
                b.set(
                    aspect,
                    status,
                    if status == Status::True {
                        "Provisioned"
                    } else {
                        "NoSeats"
                    },
                    "m",
                );
            }
        };
        let mut b = StatusBuilder::new(None, Some(1), at(100));
        all(&mut b, Status::False);
        let waiting = b.finish(true, false);
        assert_eq!(waiting.first_ready_time, None);
        let mut b = StatusBuilder::new(Some(&waiting), Some(1), at(200));
        all(&mut b, Status::True);
        let ready = b.finish(true, false);
        assert_eq!(ready.first_ready_time, Some(at(200)));
        let mut b = StatusBuilder::new(Some(&ready), Some(1), at(300));
        all(&mut b, Status::False);
        let drifted = b.finish(true, false);
        let mut b = StatusBuilder::new(Some(&drifted), Some(1), at(400));
        all(&mut b, Status::True);
        assert_eq!(b.finish(true, false).first_ready_time, Some(at(200)));
    }
}
