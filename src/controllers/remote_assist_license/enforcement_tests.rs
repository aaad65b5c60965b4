use super::*;
use serde_json::{Value, json};

fn vendor() -> VendorTenant {
    serde_json::from_value(json!({
        "apiVersion": "remoteassist.dev/v1alpha1", "kind": "VendorTenant",
        "metadata": {"name": "v1"},
        "spec": {"displayName": "V1", "domain": "vendors.abc.example", "allowedNamespaces": {"names": ["v1"]}},
        "status": {"accountsGroupId": "aaaaaaaa-0000-0000-0000-000000000001"},
    }))
    .unwrap()
}

/// A segment whose status says its policy is applied for its current generation.
fn segment(name: &str, spec: Value) -> Arc<BarrierSegment> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "BarrierSegment",
            "metadata": {"name": name, "generation": 1},
            "spec": spec,
            "status": {"observedGeneration": 1, "conditions": [{
                "type": "PolicyApplied", "status": "True", "reason": "Applied", "message": "",
                "lastTransitionTime": "2026-12-01T10:00:00Z"}]},
        }))
        .unwrap(),
    )
}

fn allow_accounts() -> Value {
    json!({"members": {"vendorAccounts": "v1"}, "allowedSegments": ["v1-engineers"]})
}

fn reason(r: Result<&BarrierSegment, Enforcement>) -> &'static str {
    match r {
        Ok(_) => "Isolated",
        Err(Enforcement::Pending { reason, .. }) => reason,
        Err(other) => panic!("{other:?}"),
    }
}

#[test]
fn one_active_applied_allow_segment_isolates_the_vendor() {
    let s = [segment("v1-accounts", allow_accounts())];
    assert_eq!(reason(isolating_segment(&s, &vendor())), "Isolated");
}

#[test]
fn no_policy_an_inactive_policy_or_a_block_list_does_not_isolate() {
    let v = vendor();
    let none = [segment("a", json!({"members": {"vendorAccounts": "v1"}}))];
    assert_eq!(reason(isolating_segment(&none, &v)), "NotIsolating");
    let mut spec = allow_accounts();
    spec["policyState"] = json!("Inactive");
    assert_eq!(
        reason(isolating_segment(&[segment("a", spec)], &v)),
        "NotIsolating"
    );
    let empty_block = json!({"members": {"vendorAccounts": "v1"}, "blockedSegments": []});
    assert_eq!(
        reason(isolating_segment(&[segment("a", empty_block)], &v)),
        "NotIsolating"
    );
    let block = json!({"members": {"vendorAccounts": "v1"}, "blockedSegments": ["v2-accounts"]});
    assert_eq!(
        reason(isolating_segment(&[segment("a", block)], &v)),
        "NotIsolating"
    );
}

#[test]
fn two_segments_selecting_the_accounts_are_a_conflict_whatever_selects_them() {
    let v = vendor();
    for other in [
        json!({"members": {"vendorAccounts": "v1"}, "allowedSegments": []}),
        json!({"members": {"groupId": "AAAAAAAA-0000-0000-0000-000000000001"}, "allowedSegments": []}),
        json!({"members": {"userAttribute": {"attribute": "ExtensionAttribute15", "value": "v1-accounts"}}}),
    ] {
        let s = [segment("v1-accounts", allow_accounts()), segment("sneaky", other)];
        let r = isolating_segment(&s, &v);
        assert_eq!(reason(r), "SegmentConflict");
    }
}

#[test]
fn a_policy_applied_for_an_older_spec_does_not_count() {
    let mut s = (*segment("v1-accounts", allow_accounts())).clone();
    s.metadata.generation = Some(2);
    assert_eq!(
        reason(isolating_segment(&[Arc::new(s)], &vendor())),
        "SegmentNotApplied"
    );
}

#[test]
fn a_segment_being_deleted_is_not_counted() {
    let mut s = (*segment("v1-accounts", allow_accounts())).clone();
    s.metadata.deletion_timestamp = Some(crate::controllers::reconcile::now());
    assert_eq!(reason(isolating_segment(&[Arc::new(s)], &vendor())), "NoSegment");
}

fn licence(name: &str, enforced: Option<&str>) -> Arc<RemoteAssistLicense> {
    let conditions: Vec<Value> = enforced
        .map(|status| {
            json!({"type": "BarrierEnforced", "status": status, "reason": "r", "message": "",
                   "lastTransitionTime": "2026-12-01T10:00:00Z", "observedGeneration": 1})
        })
        .into_iter()
        .collect();
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "RemoteAssistLicense",
            "metadata": {"name": name, "namespace": "v1", "generation": 1},
            "spec": {"vendorRef": {"name": "v1"}, "mailNickname": name,
                     "displayName": name, "usageLocation": "US"},
            "status": {"observedGeneration": 1, "conditions": conditions},
        }))
        .unwrap(),
    )
}

fn names(refs: Vec<kube::runtime::reflector::ObjectRef<RemoteAssistLicense>>) -> Vec<String> {
    refs.into_iter().map(|r| r.name).collect()
}

#[test]
fn a_segment_in_force_brings_back_only_the_licences_still_waiting() {
    let licences = [
        licence("enforced", Some("True")),
        licence("waiting", Some("False")),
        licence("new", None),
    ];
    let applied = segment("v1-accounts", allow_accounts());
    assert!(vouches(&applied));
    assert_eq!(names(brought_back_by(&applied, &licences)), ["waiting", "new"]);
}

#[test]
fn a_segment_that_stops_vouching_brings_back_every_licence_to_be_judged_again() {
    let licences = [licence("enforced", Some("True")), licence("waiting", None)];
    let every = ["enforced", "waiting"];
    // Its spec changed and is not applied yet.
    let mut changed = (*segment("v1-accounts", allow_accounts())).clone();
    changed.metadata.generation = Some(2);
    // Its policy made inactive.
    let mut spec = allow_accounts();
    spec["policyState"] = json!("Inactive");
    let inactive = (*segment("v1-accounts", spec)).clone();
    // Being deleted.
    let mut deleted = (*segment("v1-accounts", allow_accounts())).clone();
    deleted.metadata.deletion_timestamp = Some(crate::controllers::reconcile::now());
    // A block list instead of an allow list.
    let block = json!({"members": {"vendorAccounts": "v1"}, "blockedSegments": ["v2-accounts"]});
    let block = (*segment("v1-accounts", block)).clone();
    for s in [changed, inactive, deleted, block] {
        assert!(!vouches(&s), "{s:?}");
        assert_eq!(names(brought_back_by(&s, &licences)), every);
    }
}
