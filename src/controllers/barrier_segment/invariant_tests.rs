use super::*;
use serde_json::{Value, json};

fn vendor(name: &str, accounts_group: &str) -> Arc<VendorTenant> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "VendorTenant",
            "metadata": {"name": name},
            "spec": {"displayName": name, "domain": "vendors.abc.example", "allowedNamespaces": {"names": ["x"]}},
            "status": {"accountsGroupId": accounts_group},
        }))
        .unwrap(),
    )
}

fn segment(name: &str, spec: Value) -> Arc<BarrierSegment> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "BarrierSegment",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap(),
    )
}

fn vendors() -> Vec<Arc<VendorTenant>> {
    vec![
        vendor("v1", "11111111-0000-0000-0000-000000000001"),
        vendor("v2", "22222222-0000-0000-0000-000000000002"),
    ]
}

/// The generated design for one vendor: accounts and engineers allowing each other.
fn pair(v: &str) -> Vec<Arc<BarrierSegment>> {
    vec![
        segment(
            &format!("{v}-accounts"),
            json!({"members": {"vendorAccounts": v}, "allowedSegments": [format!("{v}-engineers")]}),
        ),
        segment(
            &format!("{v}-engineers"),
            json!({"members": {"vendorEngineers": v}, "allowedSegments": [format!("{v}-accounts")]}),
        ),
    ]
}

#[test]
fn each_vendor_reaching_its_own_engineers_keeps_the_invariant() {
    let mut all = pair("v1");
    all.extend(pair("v2"));
    assert!(cross_vendor_paths(&all, &vendors()).is_empty());
}

#[test]
fn a_mirrored_allow_edit_between_two_vendors_is_a_cross_vendor_path() {
    let all = vec![
        segment(
            "v1-accounts",
            json!({"members": {"vendorAccounts": "v1"}, "allowedSegments": ["v1-engineers", "v2-accounts"]}),
        ),
        segment(
            "v1-engineers",
            json!({"members": {"vendorEngineers": "v1"}, "allowedSegments": ["v1-accounts"]}),
        ),
        segment(
            "v2-accounts",
            json!({"members": {"vendorAccounts": "v2"}, "allowedSegments": ["v2-engineers", "v1-accounts"]}),
        ),
        segment(
            "v2-engineers",
            json!({"members": {"vendorEngineers": "v2"}, "allowedSegments": ["v2-accounts"]}),
        ),
    ];
    let paths = cross_vendor_paths(&all, &vendors());
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert_eq!(paths[0].0, "v1-accounts");
    assert_eq!(paths[0].1, "v2-accounts");
    assert!(describe(&paths).contains("VendorTenant v2's accounts"));
}

#[test]
fn another_vendors_engineers_or_host_users_are_paths_too_whatever_selects_them() {
    let all = vec![
        segment(
            "a",
            json!({"members": {"groupId": "11111111-0000-0000-0000-000000000001"}, "allowedSegments": ["b", "finance"]}),
        ),
        segment(
            "b",
            json!({"members": {"vendorEngineers": "v2"}, "allowedSegments": ["a"]}),
        ),
        segment(
            "finance",
            json!({"members": {"userAttribute": {"attribute": "Department", "value": "Finance"}}}),
        ),
    ];
    let paths = cross_vendor_paths(&all, &vendors());
    let targets: Vec<&str> = paths.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(targets, ["b", "finance"]);
}

#[test]
fn inactive_or_deleted_policies_are_not_applied_so_they_open_no_path() {
    let mut all = vec![segment(
        "v1-accounts",
        json!({"members": {"vendorAccounts": "v1"}, "allowedSegments": ["v2-accounts"], "policyState": "Inactive"}),
    )];
    all.extend(pair("v2"));
    assert!(cross_vendor_paths(&all, &vendors()).is_empty());
}

#[test]
fn two_segments_selecting_one_vendors_accounts_are_rivals_of_each_other() {
    let a = segment(
        "v1-accounts",
        json!({"members": {"vendorAccounts": "v1"}, "allowedSegments": []}),
    );
    let b = segment(
        "sneaky",
        json!({"members": {"groupId": "11111111-0000-0000-0000-000000000001"}}),
    );
    let c = segment("v2-accounts", json!({"members": {"vendorAccounts": "v2"}}));
    let all = vec![a.clone(), b.clone(), c.clone()];
    assert_eq!(
        rivals(&a, &all, &vendors()),
        Some(("v1".into(), vec!["sneaky".into()]))
    );
    assert_eq!(
        rivals(&b, &all, &vendors()),
        Some(("v1".into(), vec!["v1-accounts".into()]))
    );
    assert_eq!(rivals(&c, &all, &vendors()), None);
}
