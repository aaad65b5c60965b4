use super::*;
use crate::barriers::IbMode;
use serde_json::json;

fn scope(vendors: &[Arc<VendorTenant>]) -> Scope<'_> {
    Scope {
        vendors,
        mode: Some(IbMode::SingleSegment),
    }
}

fn segment(name: &str, spec: serde_json::Value) -> Arc<BarrierSegment> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "BarrierSegment",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap(),
    )
}

fn vendor(name: &str, attribute: Option<&str>) -> Arc<VendorTenant> {
    let mut spec = json!({"displayName": "V", "domain": "v.example", "allowedNamespaces": {"names": ["a"]}});
    if let Some(a) = attribute {
        spec["barriers"] = json!({"membershipAttribute": a});
    }
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "VendorTenant",
            "metadata": {"name": name}, "spec": spec,
            "status": {"accountsGroupId": "11111111-1111-1111-1111-111111111111", "engineersGroupId": "22222222-2222-2222-2222-222222222222"},
        }))
        .unwrap(),
    )
}

fn pair() -> Vec<Arc<BarrierSegment>> {
    vec![
        segment(
            "v1-accounts",
            json!({"members": {"vendorAccounts": "v1"}, "allowedSegments": ["v1-engineers"]}),
        ),
        segment(
            "v1-engineers",
            json!({"segmentName": "V1_SupportEngineer", "members": {"vendorEngineers": "v1"}, "allowedSegments": ["v1-accounts"]}),
        ),
    ]
}

#[test]
fn filters_follow_the_vendor_attribute_and_escape_values() {
    let v1 = [vendor("v1", None)];
    let all = pair();
    let d = desired(&all[0], &all, scope(&v1)).unwrap();
    assert_eq!(d.filter, "ExtensionAttribute15 -eq 'v1-accounts'");
    let member_of = [vendor("v1", Some("MemberOf"))];
    let d = desired(&all[1], &all, scope(&member_of)).unwrap();
    assert_eq!(d.filter, "MemberOf -eq '22222222-2222-2222-2222-222222222222'");
    let odd = segment(
        "x",
        json!({"members": {"userAttribute": {"attribute": "Department", "value": "R'n D"}}}),
    );
    assert_eq!(
        desired(&odd, &[], scope(&v1)).unwrap().filter,
        "Department -eq 'R''n D'"
    );
    let missing = segment("y", json!({"members": {"vendorAccounts": "nope"}}));
    assert_eq!(
        desired(&missing, &[], scope(&v1)).unwrap_err().0,
        "MembersUnresolved"
    );
}

#[test]
fn allow_lists_name_tenant_segments_and_include_themselves() {
    let v1 = [vendor("v1", None)];
    let all = pair();
    let d = desired(&all[0], &all, scope(&v1)).unwrap();
    let p = d.policy.unwrap();
    assert!(p.allowed);
    assert_eq!(p.segments, ["V1_SupportEngineer", "v1-accounts"]);
    assert_eq!(p.state, "Active");
    let dangling = segment(
        "z",
        json!({"members": {"groupId": "33333333-3333-3333-3333-333333333333"}, "blockedSegments": ["ghost"]}),
    );
    assert_eq!(
        desired(&dangling, &all, scope(&v1)).unwrap_err().0,
        "UnknownSegment"
    );
}

#[test]
fn plan_creates_then_updates_only_what_differs() {
    let d = Desired {
        name: "S".into(),
        filter: "Department -eq 'X'".into(),
        policy: Some(PolicyDesired {
            allowed: true,
            segments: vec!["S".into(), "T".into()],
            state: "Active",
        }),
    };
    assert_eq!(plan(&d, None, None).len(), 2);
    let seg = Segment {
        name: "S".into(),
        identity: "sid".into(),
        user_group_filter: "Department -eq 'X'".into(),
    };
    let pol = Policy {
        name: "S".into(),
        identity: "pid".into(),
        assigned_segment: "S".into(),
        segments_allowed: vec!["T".into(), "S".into()],
        segments_blocked: vec![],
        state: "Active".into(),
        when_changed: None,
        comment: None,
    };
    assert!(
        plan(&d, Some(&seg), Some(&pol)).is_empty(),
        "order of the list does not matter"
    );
    let inactive = Policy {
        state: "Inactive".into(),
        ..pol.clone()
    };
    assert!(matches!(
        plan(&d, Some(&seg), Some(&inactive))[..],
        [Step::UpdatePolicy { .. }]
    ));
    let changed = Segment {
        user_group_filter: "Department -eq 'Y'".into(),
        ..seg
    };
    assert!(matches!(
        plan(&d, Some(&changed), Some(&pol))[..],
        [Step::UpdateSegment { .. }]
    ));
}

#[test]
fn asymmetric_allow_lists_are_found_in_the_missing_direction() {
    assert!(asymmetries(&pair(), &[]).is_empty());
    let mut one_way = pair();
    one_way[1] = segment(
        "v1-engineers",
        json!({"members": {"vendorEngineers": "v1"}, "allowedSegments": []}),
    );
    assert_eq!(
        asymmetries(&one_way, &[]),
        [("v1-accounts".to_string(), "v1-engineers".to_string())]
    );
    let mut inactive = pair();
    inactive[1] = segment(
        "v1-engineers",
        json!({"members": {"vendorEngineers": "v1"}, "allowedSegments": ["v1-accounts"], "policyState": "Inactive"}),
    );
    assert_eq!(
        asymmetries(&inactive, &[]).len(),
        1,
        "an Inactive mirror does not count"
    );
}
