use super::*;
use crate::directory::LicenseState;

const UID: &str = "uid-1";
const GROUP: &str = "g-accounts";
const RA: &str = "sku-ra";
const E5: &str = "sku-e5";

fn lic(sku: &str) -> AssignedLicense {
    AssignedLicense {
        sku_id: sku.into(),
        disabled_plans: vec![],
    }
}

fn desired() -> Desired {
    Desired {
        owner_uid: UID.into(),
        upn: "t1@vendors.example".into(),
        vendor_domain: "vendors.example".into(),
        display_name: "Tech 1".into(),
        mail_nickname: "t1".into(),
        usage_location: "US".into(),
        adoption: AdoptionPolicy::CreateOnly,
        manage_adopted_credentials: false,
        accounts_group_id: GROUP.into(),
        licensing: Licensing::Direct(vec![lic(RA), lic(E5)]),
        attribute: Some(BarrierAttribute {
            property: "onPremisesExtensionAttributes",
            key: Some("extensionAttribute15".into()),
            value: "v1-accounts".into(),
        }),
        barrier_required: false,
        barrier_enforced: false,
        suspended: false,
    }
}

fn nothing() -> Observed {
    Observed {
        user: None,
        status_user_id: None,
        deleted: false,
        status_adopted: false,
        in_group: false,
        secret: SecretState::Missing,
        rotation_request: None,
        directory_roles: None,
        rotation_wait: None,
        free_seats: BTreeMap::new(),
        license_error_stale: false,
    }
}

fn user(marker: Option<&str>) -> DirUser {
    serde_json::from_value(json!({
        "id": "u1",
        "userPrincipalName": "t1@vendors.example",
        "displayName": "Tech 1",
        "accountEnabled": false,
        "usageLocation": "US",
        "employeeType": marker.map(|m| format!("{MANAGED_USER_PREFIX}{m}")),
        "onPremisesExtensionAttributes": {"extensionAttribute15": "v1-accounts"},
        "assignedLicenses": [],
    }))
    .unwrap()
}

/// A user of ours with everything in place, in the group, with the Secret ready.
fn converged(enabled: bool) -> Observed {
    let mut u = user(Some(UID));
    u.account_enabled = Some(enabled);
    u.assigned_licenses = vec![lic(RA), lic(E5)];
    Observed {
        user: Some(u),
        status_user_id: Some("u1".into()),
        in_group: true,
        secret: SecretState::Ready {
            pending: false,
            rotated_for: None,
        },
        ..nothing()
    }
}

fn kinds(p: &Plan) -> Vec<&'static str> {
    p.actions.iter().map(Step::kind).collect()
}

#[test]
fn new_account_writes_the_secret_before_creating_a_disabled_marked_user() {
    let p = plan(&desired(), &nothing());
    assert_eq!(kinds(&p), ["WriteCredentials", "CreateUser"]);
    let Step::CreateUser { body } = &p.actions[1] else {
        unreachable!()
    };
    assert_eq!(body["accountEnabled"], false);
    assert_eq!(body["employeeType"], "remoteassist.dev/uid-1");
    assert_eq!(body["usageLocation"], "US");
    assert_eq!(
        body["onPremisesExtensionAttributes"]["extensionAttribute15"],
        "v1-accounts"
    );
    assert!(
        body.get("passwordProfile").is_none(),
        "the password is added by act, never planned"
    );
}

#[test]
fn secret_already_written_is_reused_after_a_crash() {
    let o = Observed {
        secret: SecretState::Ready {
            pending: false,
            rotated_for: None,
        },
        ..nothing()
    };
    assert_eq!(kinds(&plan(&desired(), &o)), ["CreateUser"]);
}

#[test]
fn foreign_secret_blocks_everything() {
    let o = Observed {
        secret: SecretState::Foreign,
        ..nothing()
    };
    let p = plan(&desired(), &o);
    assert!(p.actions.is_empty());
    assert_eq!(p.blocked.unwrap().reason, "SecretConflict");
}

#[test]
fn existing_unmanaged_user_is_a_conflict_unless_adoption_allows() {
    let o = Observed {
        user: Some(user(None)),
        directory_roles: Some(vec![]),
        ..nothing()
    };
    let p = plan(&desired(), &o);
    assert_eq!(p.blocked.as_ref().unwrap().reason, "Conflict");
    assert!(p.actions.is_empty());

    let d = Desired {
        adoption: AdoptionPolicy::AdoptOrCreate,
        ..desired()
    };
    let p = plan(&d, &o);
    assert_eq!(p.created_by_operator, Some(false));
    assert!(p.blocked.is_none());
    // Adopted: the mark first, no password written, display name left alone.
    assert!(!kinds(&p).contains(&"RotatePassword"));
    assert_eq!(kinds(&p), ["Adopt", "AddToGroup", "AssignLicenses"]);
    let Step::Adopt { mark, previous, .. } = &p.actions[0] else {
        unreachable!()
    };
    assert_eq!(mark, "remoteassist.dev/adopted:uid-1");
    assert_eq!(previous, &None);
}

#[test]
fn an_adopted_user_carries_the_mark_and_is_then_bound_as_adopted() {
    let mut u = user(None);
    u.employee_type = Some("remoteassist.dev/adopted:uid-1".into());
    let o = Observed {
        user: Some(u.clone()),
        ..nothing()
    };
    let d = Desired {
        adoption: AdoptionPolicy::AdoptOrCreate,
        ..desired()
    };
    let p = plan(&d, &o);
    assert_eq!(p.created_by_operator, Some(false));
    assert!(!kinds(&p).contains(&"Adopt"));
    // A second licence sees the first one's mark: Conflict, nothing done.
    let other = Desired {
        owner_uid: "uid-2".into(),
        adoption: AdoptionPolicy::AdoptOnly,
        ..desired()
    };
    let p = plan(&other, &o);
    assert_eq!(p.blocked.unwrap().reason, "Conflict");
    assert!(p.actions.is_empty());
}

#[test]
fn a_user_with_a_directory_role_is_never_adopted() {
    let d = Desired {
        adoption: AdoptionPolicy::AdoptOnly,
        ..desired()
    };
    let o = Observed {
        user: Some(user(None)),
        directory_roles: Some(vec!["User Administrator".into()]),
        ..nothing()
    };
    let p = plan(&d, &o);
    let b = p.blocked.unwrap();
    assert_eq!(b.reason, "PrivilegedUser");
    assert!(b.message.contains("User Administrator"));
    assert!(p.actions.is_empty());
    // Roles not read: fail closed.
    let o = Observed {
        directory_roles: None,
        ..o
    };
    assert_eq!(plan(&d, &o).blocked.unwrap().reason, "AdoptionCheckPending");
}

#[test]
fn a_user_outside_the_vendor_domain_is_never_bound_even_if_marked() {
    let mut u = user(Some(UID));
    u.user_principal_name = "ceo@abc.example".into();
    let o = Observed {
        user: Some(u),
        status_user_id: Some("u1".into()),
        directory_roles: Some(vec![]),
        ..nothing()
    };
    let d = Desired {
        adoption: AdoptionPolicy::AdoptOrCreate,
        ..desired()
    };
    let p = plan(&d, &o);
    assert_eq!(p.blocked.unwrap().reason, "OutsideVendorDomain");
    assert!(p.actions.is_empty());
}

#[test]
fn an_adopted_users_password_is_never_set_unless_the_vendor_allows_it() {
    let mut o = converged(true);
    o.user.as_mut().unwrap().employee_type = Some("remoteassist.dev/adopted:uid-1".into());
    o.rotation_request = Some("now".into());
    let p = plan(&desired(), &o);
    assert!(!kinds(&p).contains(&"RotatePassword"));
    assert_eq!(p.refused.unwrap().reason, "CredentialsNotManaged");
    o.secret = SecretState::Missing;
    assert!(!kinds(&plan(&desired(), &o)).contains(&"RotatePassword"));
    let d = Desired {
        manage_adopted_credentials: true,
        ..desired()
    };
    assert_eq!(kinds(&plan(&d, &o)), ["RotatePassword"]);
}

#[test]
fn rotations_are_rate_limited() {
    let mut o = converged(true);
    o.rotation_request = Some("again".into());
    o.rotation_wait = Some(std::time::Duration::from_secs(90));
    let p = plan(&desired(), &o);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.refused.unwrap().reason, "RotationRateLimited");
    assert_eq!(p.retry_in, Some(std::time::Duration::from_secs(90)));
    // A lost Secret waits too; an interrupted rotation is finished at once.
    o.secret = SecretState::Missing;
    o.rotation_request = None;
    assert!(plan(&desired(), &o).actions.is_empty());
    o.secret = SecretState::Ready {
        pending: true,
        rotated_for: None,
    };
    assert_eq!(kinds(&plan(&desired(), &o)), ["RotatePassword"]);
}

#[test]
fn user_of_another_license_is_never_taken() {
    let o = Observed {
        user: Some(user(Some("someone-else"))),
        ..nothing()
    };
    let d = Desired {
        adoption: AdoptionPolicy::AdoptOrCreate,
        ..desired()
    };
    assert_eq!(plan(&d, &o).blocked.unwrap().reason, "Conflict");
}

#[test]
fn adopt_only_without_user_creates_nothing() {
    let d = Desired {
        adoption: AdoptionPolicy::AdoptOnly,
        ..desired()
    };
    let p = plan(&d, &nothing());
    assert_eq!(p.blocked.unwrap().reason, "UserNotFound");
    assert!(p.actions.is_empty());
}

#[test]
fn own_user_found_by_upn_after_a_crash_is_bound_not_conflicting() {
    let o = Observed {
        user: Some(user(Some(UID))),
        secret: SecretState::Ready {
            pending: false,
            rotated_for: None,
        },
        ..nothing()
    };
    let p = plan(&desired(), &o);
    assert_eq!(p.created_by_operator, Some(true));
    assert_eq!(kinds(&p), ["AddToGroup", "AssignLicenses"]);
}

#[test]
fn enabled_only_when_licensed_grouped_and_no_other_work_remains() {
    let p = plan(&desired(), &converged(false));
    assert_eq!(kinds(&p), ["Enable"]);
    let p = plan(&desired(), &converged(true));
    assert!(p.actions.is_empty());
    assert!(p.licensed && p.enablement_settled);
}

#[test]
fn barrier_first_activation_keeps_the_account_disabled() {
    let d = Desired {
        barrier_required: true,
        ..desired()
    };
    let p = plan(&d, &converged(false));
    assert!(p.actions.is_empty(), "no enable before the barrier is enforced");
    assert!(p.enablement_settled);
    // Enabled behind our back while the barrier is not enforced: disabled first.
    let p = plan(&d, &converged(true));
    assert_eq!(kinds(&p), ["Disable"]);
    let d = Desired {
        barrier_enforced: true,
        ..d
    };
    assert_eq!(kinds(&plan(&d, &converged(false))), ["Enable"]);
}

#[test]
fn drift_is_corrected() {
    // Licence removed and taken out of the group.
    let mut o = converged(true);
    o.in_group = false;
    o.user.as_mut().unwrap().assigned_licenses = vec![lic(RA)];
    let p = plan(&desired(), &o);
    assert_eq!(
        kinds(&p),
        ["AddToGroup", "AssignLicenses"],
        "repaired while it stays enabled"
    );
    let Step::AssignLicenses { add, remove, .. } = &p.actions[1] else {
        unreachable!()
    };
    assert_eq!(
        (add.as_slice(), remove.as_slice()),
        ([lic(E5)].as_slice(), [].as_slice())
    );

    // Attribute cleared and usage location changed.
    let mut o = converged(true);
    let u = o.user.as_mut().unwrap();
    u.on_premises_extension_attributes.clear();
    u.usage_location = Some("FR".into());
    let p = plan(&desired(), &o);
    assert_eq!(kinds(&p), ["Disable", "UpdateUser"]);
    let Step::UpdateUser { patch, .. } = &p.actions[1] else {
        unreachable!()
    };
    assert_eq!(patch["usageLocation"], "US");
    assert_eq!(
        patch["onPremisesExtensionAttributes"]["extensionAttribute15"],
        "v1-accounts"
    );

    // Deleted: restored from deleted items, keeping its id.
    let o = Observed {
        status_user_id: Some("u1".into()),
        deleted: true,
        ..nothing()
    };
    assert_eq!(
        plan(&desired(), &o).actions,
        [Step::RestoreUser { id: "u1".into() }]
    );
}

#[test]
fn extra_direct_licenses_are_removed_only_from_own_users() {
    let mut o = converged(true);
    o.user.as_mut().unwrap().assigned_licenses.push(lic("sku-extra"));
    let p = plan(&desired(), &o);
    let Step::AssignLicenses { remove, .. } = p.actions.last().unwrap() else {
        panic!("{p:?}")
    };
    assert_eq!(remove, &["sku-extra".to_string()]);

    let mut o = converged(true);
    let u = o.user.as_mut().unwrap();
    u.employee_type = None;
    u.assigned_licenses.push(lic("sku-extra"));
    o.status_adopted = true;
    assert!(
        plan(&desired(), &o).actions.is_empty(),
        "an adopted user's other licences stay"
    );
}

#[test]
fn changed_disabled_plans_are_reassigned() {
    let d = Desired {
        licensing: Licensing::Direct(vec![
            lic(RA),
            AssignedLicense {
                sku_id: E5.into(),
                disabled_plans: vec!["plan-x".into()],
            },
        ]),
        ..desired()
    };
    let p = plan(&d, &converged(true));
    let Step::AssignLicenses { add, remove, .. } = p.actions.last().unwrap() else {
        panic!()
    };
    assert_eq!(add[0].disabled_plans, ["plan-x"]);
    assert!(remove.is_empty());
}

#[test]
fn suspension_disables_and_releases() {
    // Resuming: not settled until enabled again, so Ready waits for it.
    let mut o = converged(false);
    o.user.as_mut().unwrap().assigned_licenses.clear();
    assert!(!plan(&desired(), &o).enablement_settled);
    let d = Desired {
        suspended: true,
        ..desired()
    };
    let p = plan(&d, &converged(true));
    assert_eq!(kinds(&p), ["Disable", "AssignLicenses"]);
    let Step::AssignLicenses { add, remove, .. } = &p.actions[1] else {
        unreachable!()
    };
    assert!(add.is_empty());
    assert_eq!(remove.len(), 2);

    let d = Desired {
        suspended: true,
        licensing: Licensing::Group(vec![RA.into()]),
        ..desired()
    };
    assert_eq!(kinds(&plan(&d, &converged(true))), ["Disable", "RemoveFromGroup"]);
}

#[test]
fn group_mode_waits_for_inherited_licenses() {
    let d = Desired {
        licensing: Licensing::Group(vec![RA.into(), E5.into()]),
        ..desired()
    };
    let mut o = converged(false);
    o.user.as_mut().unwrap().assigned_licenses = vec![lic(RA)];
    let p = plan(&d, &o);
    assert!(
        p.actions.is_empty() && !p.licensed,
        "no direct assignment in Group mode"
    );
    o.user.as_mut().unwrap().assigned_licenses = vec![lic(RA), lic(E5)];
    assert_eq!(kinds(&plan(&d, &o)), ["Enable"]);
}

#[test]
fn credentials_rotation_and_recovery() {
    let mut o = converged(true);
    o.rotation_request = Some("2026-11-27".into());
    assert_eq!(kinds(&plan(&desired(), &o)), ["RotatePassword"]);
    o.secret = SecretState::Ready {
        pending: false,
        rotated_for: Some("2026-11-27".into()),
    };
    assert!(
        plan(&desired(), &o).actions.is_empty(),
        "a done rotation is not repeated"
    );
    o.secret = SecretState::Ready {
        pending: true,
        rotated_for: None,
    };
    assert_eq!(
        kinds(&plan(&desired(), &o)),
        ["RotatePassword"],
        "an interrupted rotation resumes"
    );
    let o = Observed {
        secret: SecretState::Missing,
        ..converged(true)
    };
    assert_eq!(
        kinds(&plan(&desired(), &o)),
        ["RotatePassword"],
        "a deleted Secret gets a new password"
    );
}

#[test]
fn the_course_of_a_new_account_lists_every_pass_until_sign_in() {
    use super::super::course::course;
    let kinds = |steps: &[Step]| steps.iter().map(Step::kind).collect::<Vec<_>>();
    let (steps, last) = course(&desired(), &nothing());
    assert_eq!(
        kinds(&steps),
        [
            "WriteCredentials",
            "CreateUser",
            "AddToGroup",
            "AssignLicenses",
            "Enable"
        ]
    );
    assert!(last.actions.is_empty() && last.enablement_settled);
    let mut grouped = desired();
    grouped.licensing = Licensing::Group(vec![RA.into()]);
    grouped.barrier_required = true;
    let (steps, _) = course(&grouped, &nothing());
    assert_eq!(
        kinds(&steps),
        ["WriteCredentials", "CreateUser", "AddToGroup"],
        "behind a barrier not yet enforced, sign-in stays off"
    );
    grouped.barrier_enforced = true;
    let (steps, _) = course(&grouped, &nothing());
    assert_eq!(
        kinds(&steps),
        ["WriteCredentials", "CreateUser", "AddToGroup", "Enable"]
    );
    let (steps, _) = course(&desired(), &converged(true));
    assert!(steps.is_empty(), "a converged account has no course left");
}

/// A Group-mode account whose inherited `sku` failed with `error`.
fn group_error(sku: &str, error: &str) -> (Desired, Observed) {
    let d = Desired {
        licensing: Licensing::Group(vec![RA.into()]),
        ..desired()
    };
    let mut o = converged(false);
    let u = o.user.as_mut().unwrap();
    u.assigned_licenses.clear();
    u.license_assignment_states = vec![LicenseState {
        sku_id: sku.into(),
        assigned_by_group: Some(GROUP.into()),
        state: Some("Error".into()),
        error: Some(error.into()),
        last_updated_date_time: None,
    }];
    (d, o)
}

#[test]
fn a_group_licence_error_is_named_and_reprocessed_once_seats_are_free() {
    let (d, mut o) = group_error(RA, "CountViolation");
    o.free_seats.insert(RA.into(), 0);
    let p = plan(&d, &o);
    assert!(!p.licensed);
    assert_eq!(p.group_license_error.as_ref().unwrap().error, "CountViolation");
    assert!(
        kinds(&p).is_empty(),
        "no reprocess while no seat is free: {:?}",
        kinds(&p)
    );

    o.free_seats.insert(RA.into(), 1);
    let p = plan(&d, &o);
    assert_eq!(kinds(&p), ["ReprocessLicenses"]);
    assert!(
        !p.licensed,
        "not licensed (and not enabled) until the reprocess has worked"
    );
}

#[test]
fn a_usage_location_error_is_reprocessed_once_the_account_has_a_location() {
    let (d, mut o) = group_error(RA, "ProhibitedInUsageLocationViolation");
    o.user.as_mut().unwrap().usage_location = None;
    assert_eq!(kinds(&plan(&d, &o)), ["UpdateUser"], "the location is set first");
    o.user.as_mut().unwrap().usage_location = Some("US".into());
    assert_eq!(kinds(&plan(&d, &o)), ["ReprocessLicenses"]);
}

#[test]
fn a_conflict_is_retried_only_after_the_retry_interval_and_errors_of_other_groups_are_ignored() {
    let (d, mut o) = group_error(RA, "MutuallyExclusiveViolation");
    assert!(kinds(&plan(&d, &o)).is_empty());
    o.license_error_stale = true;
    assert_eq!(kinds(&plan(&d, &o)), ["ReprocessLicenses"]);

    let (d, mut o) = group_error(RA, "CountViolation");
    o.user.as_mut().unwrap().license_assignment_states[0].assigned_by_group = Some("someone-elses".into());
    o.user.as_mut().unwrap().assigned_licenses = vec![lic(RA)];
    o.free_seats.insert(RA.into(), 5);
    let p = plan(&d, &o);
    assert!(
        p.group_license_error.is_none(),
        "another group's licence is not this account's business"
    );
    assert!(!kinds(&p).contains(&"ReprocessLicenses"));
}
