//! The CRDs' CEL rules evaluated client-side (kube's `cel` feature), so a rule that is wrong
//! fails here before it reaches an apiserver. The apiserver tests in `tests/admission.rs`
//! check the same rules, and the schema formats, for real.

use super::*;
use serde_json::json;

fn from(value: serde_json::Value) -> serde_json::Value {
    value
}

fn vendor(spec: serde_json::Value) -> VendorTenant {
    serde_json::from_value(json!({
        "apiVersion": "remoteassist.dev/v1alpha1", "kind": "VendorTenant",
        "metadata": {"name": "v1"}, "spec": spec,
    }))
    .expect("valid VendorTenant shape")
}

fn vendor_spec() -> serde_json::Value {
    from(
        json!({"displayName": "V1", "domain": "vendors.abc.example", "allowedNamespaces": {"names": ["vendor-v1"]}}),
    )
}

fn segment(name: &str, spec: serde_json::Value) -> BarrierSegment {
    serde_json::from_value(json!({
        "apiVersion": "remoteassist.dev/v1alpha1", "kind": "BarrierSegment",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("valid BarrierSegment shape")
}

fn license(spec: serde_json::Value) -> RemoteAssistLicense {
    serde_json::from_value(json!({
        "apiVersion": "remoteassist.dev/v1alpha1", "kind": "RemoteAssistLicense",
        "metadata": {"name": "t1", "namespace": "vendor-v1"}, "spec": spec,
    }))
    .expect("valid RemoteAssistLicense shape")
}

fn license_spec() -> serde_json::Value {
    json!({"vendorRef": {"name": "v1"}, "displayName": "Tech 1", "mailNickname": "tech1", "usageLocation": "US"})
}

fn error_text<E: std::fmt::Debug>(r: Result<(), E>) -> String {
    format!("{:?}", r.expect_err("expected the rule to refuse"))
}

#[test]
fn vendor_tenant_rules() {
    assert!(vendor(vendor_spec()).validate_cel().is_ok());

    let mut spec = vendor_spec();
    spec["allowedNamespaces"] = json!({"names": []});
    assert!(error_text(vendor(spec).validate_cel()).contains("at least one name or a selector"));

    let mut spec = vendor_spec();
    spec["allowedNamespaces"] = json!({"selector": {"matchLabels": {"team": "a"}}});
    assert!(vendor(spec).validate_cel().is_ok());

    let mut spec = vendor_spec();
    spec["accountsGroup"] = json!({"displayName": "v1_SupportEngineer"});
    assert!(error_text(vendor(spec).validate_cel()).contains("different names"));

    let old = vendor(vendor_spec());
    let mut spec = vendor_spec();
    spec["domain"] = json!("other.abc.example");
    assert!(error_text(vendor(spec).validate_cel_update(&old)).contains("domain is immutable"));
}

#[test]
fn barrier_segment_rules() {
    let ok = segment(
        "a",
        json!({"members": {"vendorAccounts": "v1"}, "allowedSegments": ["b"]}),
    );
    assert!(ok.validate_cel().is_ok());

    let none = segment("a", json!({"members": {}}));
    assert!(error_text(none.validate_cel()).contains("exactly one of"));
    let two = segment(
        "a",
        json!({"members": {"vendorAccounts": "v1", "groupId": "6f1c9c62-3b4e-4f0a-9a57-0d6c1b2e8f41"}}),
    );
    assert!(error_text(two.validate_cel()).contains("exactly one of"));

    let both = segment(
        "a",
        json!({"members": {"vendorAccounts": "v1"}, "allowedSegments": ["b"], "blockedSegments": ["c"]}),
    );
    assert!(error_text(both.validate_cel()).contains("mutually exclusive"));

    let itself = segment(
        "a",
        json!({"members": {"vendorAccounts": "v1"}, "blockedSegments": ["a"]}),
    );
    assert!(error_text(itself.validate_cel()).contains("cannot block itself"));

    let flipped = segment(
        "a",
        json!({"members": {"vendorAccounts": "v1"}, "blockedSegments": ["b"]}),
    );
    assert!(error_text(flipped.validate_cel_update(&ok)).contains("policy type cannot change"));

    let named = segment(
        "a",
        json!({"segmentName": "A", "members": {"vendorAccounts": "v1"}}),
    );
    let renamed = segment(
        "a",
        json!({"segmentName": "B", "members": {"vendorAccounts": "v1"}}),
    );
    assert!(error_text(renamed.validate_cel_update(&named)).contains("segmentName is immutable"));
}

#[test]
fn remote_assist_license_rules() {
    let base = license(license_spec());
    assert!(base.validate_cel().is_ok());

    let mut spec = license_spec();
    spec["vendorRef"] = json!({"name": "v2"});
    assert!(error_text(license(spec).validate_cel_update(&base)).contains("vendorRef is immutable"));

    let mut spec = license_spec();
    spec["mailNickname"] = json!("tech..1");
    assert!(error_text(license(spec).validate_cel()).contains("two dots"));

    let mut spec = license_spec();
    spec["mailNickname"] = json!("tech2");
    assert!(error_text(license(spec).validate_cel_update(&base)).contains("mailNickname cannot change"));

    let mut with_upn = license_spec();
    with_upn["userPrincipalName"] = json!("tech1@vendors.abc.example");
    let with_upn = license(with_upn);
    let mut renamed = license_spec();
    renamed["userPrincipalName"] = json!("tech9@vendors.abc.example");
    assert!(error_text(license(renamed).validate_cel_update(&with_upn)).contains("immutable once set"));
    assert!(error_text(base.validate_cel_update(&with_upn)).contains("cannot be removed"));

    // With an explicit UPN the nickname is free to change.
    let mut nick = license_spec();
    nick["userPrincipalName"] = json!("tech1@vendors.abc.example");
    nick["mailNickname"] = json!("tech-one");
    assert!(license(nick).validate_cel_update(&with_upn).is_ok());
}
