//! The pure heart of the RemoteAssistLicense reconciler: what the account should look like
//! ([`Desired`]), what the tenant and the cluster hold ([`Observed`]), and the ordered actions
//! that close the gap ([`Plan`]). No I/O here, so every decision is unit-tested and the same
//! function can later serve plan mode.

use crate::controllers::refusal::Refusal;
use crate::crd::remote_assist_license::AdoptionPolicy;
use crate::directory::{ADOPTED_MARK, AssignedLicense, DirUser, MANAGED_USER_PREFIX};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A user attribute the barrier segment filters on, and the value this account needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BarrierAttribute {
    /// Top-level Graph property (`department`, `onPremisesExtensionAttributes`, ...).
    pub property: &'static str,
    /// The key inside it, for `onPremisesExtensionAttributes`.
    pub key: Option<String>,
    pub value: String,
}

impl BarrierAttribute {
    pub fn observed(&self, user: &DirUser) -> Option<String> {
        match (self.property, &self.key) {
            ("department", _) => user.department.clone(),
            ("companyName", _) => user.company_name.clone(),
            (_, Some(k)) => user.on_premises_extension_attributes.get(k).cloned().flatten(),
            _ => None,
        }
    }

    pub fn patch(&self, into: &mut Map<String, Value>) {
        match &self.key {
            Some(k) => {
                into.insert(self.property.into(), json!({ k: self.value }));
            }
            None => {
                into.insert(self.property.into(), json!(self.value));
            }
        }
    }
}

/// How licences reach the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Licensing {
    /// Assigned to the user; SKU ids with their disabled plan ids, resolved from part numbers.
    Direct(Vec<AssignedLicense>),
    /// Inherited from the accounts group; these SKU ids must show on the user.
    Group(Vec<String>),
}

/// What the account should be, from the spec and its VendorTenant.
#[derive(Clone, Debug)]
pub struct Desired {
    /// The RemoteAssistLicense's uid: the ownership marker on users it creates.
    pub owner_uid: String,
    pub upn: String,
    /// The vendor's domain, lower-cased: a user outside it is never bound.
    pub vendor_domain: String,
    pub display_name: String,
    pub mail_nickname: String,
    pub usage_location: String,
    /// The adoption policy in force (the vendor's, narrowed by the licence).
    pub adoption: AdoptionPolicy,
    /// Whether the vendor lets the operator set the password of a user it adopted.
    pub manage_adopted_credentials: bool,
    pub accounts_group_id: String,
    pub licensing: Licensing,
    pub attribute: Option<BarrierAttribute>,
    pub barrier_required: bool,
    /// The account's `BarrierEnforced` condition is True.
    pub barrier_enforced: bool,
    pub suspended: bool,
}

/// The credentials Secret as the reconciler found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretState {
    Missing,
    /// Ours and holding a password; `pending` is a rotation whose new password is written to
    /// the Secret but maybe not yet to the user.
    Ready {
        pending: bool,
        rotated_for: Option<String>,
    },
    /// A Secret of that name that this object does not own: never overwritten.
    Foreign,
}

/// What the tenant holds for this account.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The user, found by the object id in status or else by UPN.
    pub user: Option<DirUser>,
    /// The object id in status, if any, and whether it is still in deleted items.
    pub status_user_id: Option<String>,
    pub deleted: bool,
    /// Whether status says the operator adopted (rather than created) the user.
    pub status_adopted: bool,
    pub in_group: bool,
    pub secret: SecretState,
    /// Value of the rotation annotation, if set.
    pub rotation_request: Option<String>,
    /// The directory roles of a user that is a candidate for adoption (read only then).
    pub directory_roles: Option<Vec<String>>,
    /// How long until the next password may be set (rotations are rate-limited per licence).
    pub rotation_wait: Option<std::time::Duration>,
    /// Free seats by SKU id (for telling when a `CountViolation` can be reprocessed).
    pub free_seats: BTreeMap<String, i64>,
    /// Whether the account's group licence error was last processed longer ago than the
    /// retry interval (errors the operator cannot see the cause of are retried then).
    pub license_error_stale: bool,
}

/// One step, in the order it must run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Generate a password and write the credentials Secret (before the user exists).
    WriteCredentials,
    RestoreUser {
        id: String,
    },
    /// Write the operator's mark on an existing user (its `employeeType`, kept in status as
    /// `previous` so releasing the user puts it back).
    Adopt {
        id: String,
        mark: String,
        previous: Option<String>,
    },
    /// Create the user (disabled, marked as ours) with the password from the Secret.
    CreateUser {
        body: Value,
    },
    UpdateUser {
        id: String,
        patch: Value,
        what: Vec<&'static str>,
    },
    AddToGroup {
        group_id: String,
        user_id: String,
    },
    RemoveFromGroup {
        group_id: String,
        user_id: String,
    },
    AssignLicenses {
        user_id: String,
        add: Vec<AssignedLicense>,
        remove: Vec<String>,
    },
    /// Set a new password on the user through the Secret (rotation, or a lost Secret).
    RotatePassword {
        user_id: String,
        token: Option<String>,
        why: Rotation,
    },
    /// Ask group licensing to process the user again: its group licence failed and the cause
    /// looks gone (seats are free, the usage location is set).
    ReprocessLicenses {
        user_id: String,
        error: String,
    },
    Enable {
        user_id: String,
    },
    Disable {
        user_id: String,
    },
}

/// Why a password is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The rotation annotation asks for it.
    Requested,
    /// An interrupted rotation is finished with the password already in the Secret.
    Resumed,
    /// The credentials Secret of a user the operator created was deleted.
    SecretDeleted,
}

impl Rotation {
    pub fn describe(self) -> &'static str {
        match self {
            Rotation::Requested => "rotation requested",
            Rotation::Resumed => "resuming an interrupted rotation",
            Rotation::SecretDeleted => "the credentials Secret was deleted",
        }
    }
}

/// What kind of work a step is, for telling drift from the normal course of things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nature {
    /// A person asked for it (a rotation, or finishing one).
    Requested,
    /// Part of provisioning that follows its own timing (sign-in enabled behind the barrier,
    /// the credentials written).
    Routine,
    /// A change to the account: after provisioning, a correction of drift.
    Change,
}

impl Step {
    pub fn nature(&self) -> Nature {
        match self {
            Step::RotatePassword {
                why: Rotation::Requested | Rotation::Resumed,
                ..
            } => Nature::Requested,
            Step::Enable { .. } | Step::WriteCredentials | Step::ReprocessLicenses { .. } => Nature::Routine,
            _ => Nature::Change,
        }
    }

    /// The step's kind, stable for tests and the plan's JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::WriteCredentials => "WriteCredentials",
            Step::RestoreUser { .. } => "RestoreUser",
            Step::Adopt { .. } => "Adopt",
            Step::CreateUser { .. } => "CreateUser",
            Step::UpdateUser { .. } => "UpdateUser",
            Step::AddToGroup { .. } => "AddToGroup",
            Step::RemoveFromGroup { .. } => "RemoveFromGroup",
            Step::AssignLicenses { .. } => "AssignLicenses",
            Step::RotatePassword { .. } => "RotatePassword",
            Step::ReprocessLicenses { .. } => "ReprocessLicenses",
            Step::Enable { .. } => "Enable",
            Step::Disable { .. } => "Disable",
        }
    }

    /// The Event reason (and action) for this step.
    pub fn event_reason(&self) -> &'static str {
        match self {
            Step::WriteCredentials => "CredentialsWritten",
            Step::RestoreUser { .. } => "UserRestored",
            Step::Adopt { .. } => "UserAdopted",
            Step::CreateUser { .. } => "UserCreated",
            Step::UpdateUser { .. } => "UserUpdated",
            Step::AddToGroup { .. } => "AddedToGroup",
            Step::RemoveFromGroup { .. } => "RemovedFromGroup",
            Step::AssignLicenses { .. } => "LicensesChanged",
            Step::RotatePassword { .. } => "PasswordSet",
            Step::ReprocessLicenses { .. } => "LicensesReprocessed",
            Step::Enable { .. } => "Enabled",
            Step::Disable { .. } => "Disabled",
        }
    }

    /// The action in plain words, for Events and plan output.
    pub fn describe(&self) -> String {
        match self {
            Step::WriteCredentials => "write the credentials Secret".into(),
            Step::RestoreUser { id } => format!("restore deleted user {id}"),
            Step::Adopt { id, .. } => format!("adopt existing user {id} (write the operator's mark)"),
            Step::CreateUser { body } => format!(
                "create user {}",
                body["userPrincipalName"].as_str().unwrap_or("?")
            ),
            Step::UpdateUser { what, .. } => format!("update user ({})", what.join(", ")),
            Step::AddToGroup { group_id, .. } => format!("add to group {group_id}"),
            Step::RemoveFromGroup { group_id, .. } => format!("remove from group {group_id}"),
            Step::AssignLicenses { add, remove, .. } => {
                format!("assign {} licence(s), remove {}", add.len(), remove.len())
            }
            Step::RotatePassword { why, .. } => format!("set a new password ({})", why.describe()),
            Step::ReprocessLicenses { error, .. } => {
                format!("ask group licensing to process the account again (it failed with {error})")
            }
            Step::Enable { .. } => "enable sign-in".into(),
            Step::Disable { .. } => "disable sign-in".into(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Step>,
    pub blocked: Option<Refusal>,
    /// A part of the request that is refused (or deferred) while the rest goes ahead, e.g. a
    /// password rotation of an adopted user.
    pub refused: Option<Refusal>,
    /// Look again after this long (a deferred rotation).
    pub retry_in: Option<std::time::Duration>,
    /// The bound user, if any, and whether the operator created it.
    pub user_id: Option<String>,
    pub created_by_operator: Option<bool>,
    /// Licences are as desired (direct or inherited).
    pub licensed: bool,
    /// The user is enabled exactly when it should be.
    pub enablement_settled: bool,
    /// SKU ids the user holds now (direct or inherited), for status.
    pub observed_skus: Vec<String>,
    /// A licence of the accounts group that group licensing failed to assign to the account.
    pub group_license_error: Option<GroupLicenseError>,
}

/// An inherited licence in error, as `licenseAssignmentStates` records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLicenseError {
    pub sku_id: String,
    /// `CountViolation`, `MutuallyExclusiveViolation`, … (Graph's values).
    pub error: String,
}

fn blocked(reason: &'static str, message: String) -> Plan {
    Plan {
        blocked: Some(Refusal { reason, message }),
        ..Plan::default()
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// The plan for one account.
pub fn plan(d: &Desired, o: &Observed) -> Plan {
    if o.secret == SecretState::Foreign {
        return blocked(
            "SecretConflict",
            "the credentials Secret exists and is not owned by this RemoteAssistLicense; it is never overwritten: choose another credentialsSecretName or delete that Secret".into(),
        );
    }
    let Some(user) = &o.user else {
        if let (Some(id), true) = (&o.status_user_id, o.deleted) {
            // Deleted behind our back: restore it, keeping its object id and memberships.
            return Plan {
                actions: vec![Step::RestoreUser { id: id.clone() }],
                user_id: Some(id.clone()),
                created_by_operator: Some(!o.status_adopted),
                ..Plan::default()
            };
        }
        if d.adoption == AdoptionPolicy::AdoptOnly {
            return blocked(
                "UserNotFound",
                format!("adoption is AdoptOnly and no user {} exists to adopt", d.upn),
            );
        }
        let mut actions = Vec::new();
        if o.secret == SecretState::Missing {
            actions.push(Step::WriteCredentials);
        }
        let mut body = json!({
            "accountEnabled": false,
            "displayName": d.display_name,
            "mailNickname": d.mail_nickname,
            "userPrincipalName": d.upn,
            "usageLocation": d.usage_location,
            "employeeType": format!("{MANAGED_USER_PREFIX}{}", d.owner_uid),
        });
        if let Some(a) = &d.attribute {
            a.patch(body.as_object_mut().expect("object"));
        }
        actions.push(Step::CreateUser { body });
        return Plan {
            actions,
            ..Plan::default()
        };
    };

    // Whose user is it?
    let (created, adopt) = match ownership(d, o, user) {
        Ok(found) => found,
        Err(b) => return blocked(b.reason, b.message),
    };

    let mut p = Plan {
        user_id: Some(user.id.clone()),
        created_by_operator: Some(created),
        observed_skus: user.assigned_licenses.iter().map(|a| a.sku_id.clone()).collect(),
        ..Plan::default()
    };
    let id = user.id.clone();
    if adopt {
        // The mark goes first: from here on no other licence can bind this user.
        p.actions.push(Step::Adopt {
            id: id.clone(),
            mark: format!("{MANAGED_USER_PREFIX}{ADOPTED_MARK}{}", d.owner_uid),
            previous: user.employee_type.clone(),
        });
    }
    credentials(d, o, created, &mut p);
    properties(d, user, created, &mut p);
    membership_and_licenses(d, o, user, created, &mut p);
    sign_in(d, o, user, &mut p);
    p
}

/// Whether the user is this licence's (created by it: true; adopted: false) and whether it
/// must be adopted now; or why it cannot be bound at all.
fn ownership(d: &Desired, o: &Observed, user: &DirUser) -> Result<(bool, bool), Refusal> {
    let upn = &user.user_principal_name;
    if user.upn_domain() != d.vendor_domain {
        return Err(Refusal {
            reason: "OutsideVendorDomain",
            message: format!(
                "user {upn} is not in the vendor's domain {}; it is never bound",
                d.vendor_domain
            ),
        });
    }
    match user.managed_by() {
        Some(uid) if uid == d.owner_uid => return Ok((!user.marked_adopted(), false)),
        Some(uid) => {
            return Err(Refusal {
                reason: "Conflict",
                message: format!("user {upn} is managed by another RemoteAssistLicense (uid {uid})"),
            });
        }
        None => {}
    }
    if d.adoption == AdoptionPolicy::CreateOnly {
        let hint = if o.status_adopted {
            "its VendorTenant no longer allows adoption"
        } else {
            "adopting it needs spec.adoption.policy: Allowed on the VendorTenant and adoption: AdoptOrCreate or AdoptOnly here"
        };
        return Err(Refusal {
            reason: "Conflict",
            message: format!("user {upn} already exists and was not created by this operator; {hint}"),
        });
    }
    match &o.directory_roles {
        Some(roles) if roles.is_empty() => Ok((false, true)),
        Some(roles) => Err(Refusal {
            reason: "PrivilegedUser",
            message: format!(
                "user {upn} holds directory role(s) {}; a user with a directory role is never adopted",
                roles.join(", ")
            ),
        }),
        // Fail closed: without the role read there is no adoption.
        None => Err(Refusal {
            reason: "AdoptionCheckPending",
            message: format!(
                "the directory roles of {upn} are not known yet; it is not adopted until they are"
            ),
        }),
    }
}

/// Password steps. Only users the operator created have a password it owns; an adopted
/// user's is set only when the vendor allows it. Rotations are rate-limited.
fn credentials(d: &Desired, o: &Observed, created: bool, p: &mut Plan) {
    let id = p.user_id.clone().unwrap_or_default();
    let may_set = created || d.manage_adopted_credentials;
    let rotate = |token: Option<String>, why: Rotation, p: &mut Plan| {
        if !may_set {
            p.refused = Some(Refusal {
                reason: "CredentialsNotManaged",
                message: "the user was adopted and its VendorTenant does not let the operator set its password (spec.adoption.manageCredentials); the rotation request is ignored".into(),
            });
        } else if let Some(wait) = o.rotation_wait {
            p.refused = Some(Refusal {
                reason: "RotationRateLimited",
                message: format!(
                    "a password was set recently; the next can be set in {}s",
                    wait.as_secs().max(1)
                ),
            });
            p.retry_in = Some(wait);
        } else {
            p.actions.push(Step::RotatePassword {
                user_id: id.clone(),
                token,
                why,
            });
        }
    };
    match (&o.secret, &o.rotation_request) {
        // An interrupted rotation is finished: its password is already in the Secret.
        (SecretState::Ready { pending: true, .. }, _) if may_set => {
            p.actions.push(Step::RotatePassword {
                user_id: id.clone(),
                token: o.rotation_request.clone(),
                why: Rotation::Resumed,
            });
        }
        (SecretState::Ready { rotated_for, .. }, Some(token)) if rotated_for.as_ref() != Some(token) => {
            rotate(Some(token.clone()), Rotation::Requested, p)
        }
        (SecretState::Missing, Some(token)) => rotate(Some(token.clone()), Rotation::Requested, p),
        (SecretState::Missing, None) if created => rotate(None, Rotation::SecretDeleted, p),
        _ => {}
    }
}

/// Display name (own users only), usage location and the barrier attribute.
fn properties(d: &Desired, user: &DirUser, created: bool, p: &mut Plan) {
    let mut patch = Map::new();
    let mut what = Vec::new();
    if created && user.display_name.as_deref() != Some(&d.display_name) {
        patch.insert("displayName".into(), json!(d.display_name));
        what.push("displayName");
    }
    if user.usage_location.as_deref() != Some(&d.usage_location) {
        patch.insert("usageLocation".into(), json!(d.usage_location));
        what.push("usageLocation");
    }
    if let Some(a) = &d.attribute
        && a.observed(user).as_deref() != Some(&a.value)
    {
        a.patch(&mut patch);
        what.push("barrier attribute");
    }
    if !patch.is_empty() {
        p.actions.push(Step::UpdateUser {
            id: user.id.clone(),
            patch: Value::Object(patch),
            what,
        });
    }
}

/// Group membership and licences. In Group mode a suspended account leaves the group: that
/// is how its inherited licences are released.
fn membership_and_licenses(d: &Desired, o: &Observed, user: &DirUser, created: bool, p: &mut Plan) {
    let id = user.id.clone();
    let want_in_group = !(d.suspended && matches!(d.licensing, Licensing::Group(_)));
    if want_in_group && !o.in_group {
        p.actions.push(Step::AddToGroup {
            group_id: d.accounts_group_id.clone(),
            user_id: id.clone(),
        });
    } else if !want_in_group && o.in_group {
        p.actions.push(Step::RemoveFromGroup {
            group_id: d.accounts_group_id.clone(),
            user_id: id.clone(),
        });
    }
    let has = |sku: &str| user.assigned_licenses.iter().any(|a| a.sku_id == sku);
    match &d.licensing {
        Licensing::Direct(all) => {
            let wanted: &[AssignedLicense] = if d.suspended { &[] } else { all };
            let add: Vec<AssignedLicense> = wanted
                .iter()
                .filter(|w| {
                    !user.assigned_licenses.iter().any(|a| {
                        a.sku_id == w.sku_id && sorted(&a.disabled_plans) == sorted(&w.disabled_plans)
                    })
                })
                .cloned()
                .collect();
            let wanted_ids: BTreeSet<&str> = wanted.iter().map(|w| w.sku_id.as_str()).collect();
            // Only the operator's own users lose licences it did not ask for; on an adopted
            // user it only releases what it would have assigned.
            let remove: Vec<String> = if created {
                user.direct_skus()
                    .into_iter()
                    .filter(|s| !wanted_ids.contains(s.as_str()))
                    .collect()
            } else if d.suspended {
                all.iter().map(|w| w.sku_id.clone()).filter(|s| has(s)).collect()
            } else {
                Vec::new()
            };
            // Extra licences are removed but never hold up sign-in; missing ones do.
            p.licensed = add.is_empty() && (!d.suspended || remove.is_empty());
            if !add.is_empty() || !remove.is_empty() {
                p.actions.push(Step::AssignLicenses {
                    user_id: id,
                    add,
                    remove,
                });
            }
        }
        Licensing::Group(skus) => {
            p.licensed = d.suspended || (o.in_group && skus.iter().all(|s| has(s)));
            if !d.suspended && o.in_group {
                group_license_error(d, o, user, p);
            }
        }
    }
}

/// Group licensing records a failed inherited licence on the user and, once in error, does not
/// retry by itself (Microsoft's "Force group license processing to resolve errors"): when the
/// cause the operator can see is gone, it asks for the user to be processed again.
fn group_license_error(d: &Desired, o: &Observed, user: &DirUser, p: &mut Plan) {
    let Some(failed) = user.group_license_failures(&d.accounts_group_id).next() else {
        return;
    };
    let error = failed.group_error().unwrap_or("Others").to_owned();
    let cause_gone = match error.as_str() {
        "CountViolation" => o.free_seats.get(&failed.sku_id).is_some_and(|free| *free > 0),
        "ProhibitedInUsageLocationViolation" => user.usage_location.as_deref().is_some_and(|l| !l.is_empty()),
        // A conflict or a dependency is the administrator's to resolve; a reprocess is asked
        // for once the licence's state is older than the retry interval.
        _ => o.license_error_stale,
    };
    p.licensed = false;
    if cause_gone {
        p.actions.push(Step::ReprocessLicenses {
            user_id: user.id.clone(),
            error: error.clone(),
        });
    }
    p.group_license_error = Some(GroupLicenseError {
        sku_id: failed.sku_id.clone(),
        error,
    });
}

/// Sign-in: enabled only when everything else is in place (barrier-first activation).
fn sign_in(d: &Desired, o: &Observed, user: &DirUser, p: &mut Plan) {
    let id = user.id.clone();
    let attribute_ok = d
        .attribute
        .as_ref()
        .is_none_or(|a| a.observed(user).as_deref() == Some(&a.value));
    let ready_to_enable = !d.suspended
        && p.licensed
        && o.in_group
        && attribute_ok
        && (!d.barrier_required || d.barrier_enforced);
    // Disabling is for safety, not bookkeeping: an account outside its barrier (or suspended)
    // is blocked at once; a missing licence or membership is repaired while it stays enabled.
    let must_disable = d.suspended || !attribute_ok || (d.barrier_required && !d.barrier_enforced);
    let enabled = user.account_enabled.unwrap_or(false);
    // Settled: enabled exactly when it will be once converged (a licence being repaired on an
    // enabled account does not count as unsettled).
    p.enablement_settled = enabled == (!d.suspended && (!d.barrier_required || d.barrier_enforced));
    if ready_to_enable && !enabled && p.actions.is_empty() {
        p.actions.push(Step::Enable { user_id: id });
    } else if must_disable && enabled {
        // Disabling never waits: it goes first, before anything else changes.
        p.actions.insert(0, Step::Disable { user_id: id });
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
