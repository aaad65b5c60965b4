use super::*;
use serde_json::json;

fn vendor(extra: serde_json::Value) -> VendorTenant {
    let mut spec = json!({
        "displayName": "Fabrikam",
        "domain": "vendors.abc.example",
        "allowedNamespaces": {"names": ["v1"]},
        "licenses": [{"skuPartNumber": "MICROSOFT_REMOTE_ASSIST"}, {"skuPartNumber": "SPE_E5"}],
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "remoteassist.dev/v1alpha1", "kind": "VendorTenant",
        "metadata": {"name": "v1", "uid": "vendor-uid"},
        "spec": spec,
    }))
    .unwrap()
}

fn license(name: &str, created: &str, extra: serde_json::Value) -> RemoteAssistLicense {
    let mut spec = json!({
        "vendorRef": {"name": "v1"}, "displayName": "Tech", "mailNickname": name, "usageLocation": "US",
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "remoteassist.dev/v1alpha1", "kind": "RemoteAssistLicense",
        "metadata": {"name": name, "namespace": "v1", "uid": format!("uid-{name}"), "creationTimestamp": created},
        "spec": spec,
    }))
    .unwrap()
}

const T0: &str = "2026-12-01T10:00:00Z";

#[test]
fn a_upn_outside_the_vendor_domain_is_refused() {
    let v = vendor(json!({}));
    for upn in [
        "ceo@abc.example",
        "it-helpdesk@abc.example",
        "x@other-vendor.example",
        "x@evil.vendors.abc.example",
        "x@vendors.abc.example.evil",
    ] {
        let l = license("a", T0, json!({"userPrincipalName": upn}));
        let r = authorize(&l, &v, &[]).unwrap_err();
        assert_eq!(r.reason, "OutsideVendorDomain", "{upn}");
        assert!(r.message.contains(upn), "{}", r.message);
    }
}

#[test]
fn the_vendor_domain_is_compared_case_insensitively_and_derived_from_the_nickname() {
    let v = vendor(json!({}));
    let l = license(
        "a",
        T0,
        json!({"userPrincipalName": "Tech.01@Vendors.ABC.example"}),
    );
    assert!(authorize(&l, &v, &[]).is_ok());
    assert!(authorize(&license("tech02", T0, json!({})), &v, &[]).is_ok());
}

#[test]
fn adoption_is_never_unless_the_vendor_allows_it() {
    let never = vendor(json!({}));
    let only = license("a", T0, json!({"adoption": "AdoptOnly"}));
    assert_eq!(
        authorize(&only, &never, &[]).unwrap_err().reason,
        "AdoptionNotAllowed"
    );
    let either = license("a", T0, json!({"adoption": "AdoptOrCreate"}));
    assert_eq!(
        authorize(&either, &never, &[]).unwrap(),
        AdoptionPolicy::CreateOnly
    );
    let allowed = vendor(json!({"adoption": {"policy": "Allowed"}}));
    assert_eq!(
        authorize(&only, &allowed, &[]).unwrap(),
        AdoptionPolicy::AdoptOnly
    );
    assert_eq!(
        authorize(&either, &allowed, &[]).unwrap(),
        AdoptionPolicy::AdoptOrCreate
    );
    let create = license("a", T0, json!({}));
    assert_eq!(
        authorize(&create, &allowed, &[]).unwrap(),
        AdoptionPolicy::CreateOnly
    );
}

#[test]
fn an_override_names_only_skus_the_vendor_lists() {
    let v = vendor(json!({}));
    let narrower = license(
        "a",
        T0,
        json!({"licenses": [{"skuPartNumber": "SPE_E5", "disabledPlans": ["TEAMS1"]}]}),
    );
    assert!(authorize(&narrower, &v, &[]).is_ok());
    let wider = license(
        "a",
        T0,
        json!({"licenses": [{"skuPartNumber": "ENTERPRISEPREMIUM"}]}),
    );
    let r = authorize(&wider, &v, &[]).unwrap_err();
    assert_eq!(r.reason, "LicenseNotOffered");
    assert!(r.message.contains("ENTERPRISEPREMIUM"));
}

#[test]
fn licenses_beyond_max_accounts_are_refused_oldest_first() {
    let v = vendor(json!({"maxAccounts": 2}));
    let a = license("a", "2026-12-01T10:00:00Z", json!({}));
    let b = license("b", "2026-12-01T10:00:01Z", json!({}));
    let c = license("c", "2026-12-01T10:00:02Z", json!({}));
    let peers = [&c, &a, &b];
    assert!(authorize(&a, &v, &peers).is_ok());
    assert!(authorize(&b, &v, &peers).is_ok());
    let r = authorize(&c, &v, &peers).unwrap_err();
    assert_eq!(r.reason, "AccountLimitReached");
    // Once an older one goes, the next in line gets its slot.
    assert!(authorize(&c, &v, &[&c, &b]).is_ok());
    // A licence refused for its domain holds no slot.
    let outside = license(
        "o",
        "2026-12-01T09:00:00Z",
        json!({"userPrincipalName": "x@abc.example"}),
    );
    assert!(authorize(&c, &v, &[&outside, &c, &b]).is_ok());
    // Zero means none at all.
    let none = vendor(json!({"maxAccounts": 0}));
    assert_eq!(
        authorize(&a, &none, &[&a]).unwrap_err().reason,
        "AccountLimitReached"
    );
}

#[test]
fn the_default_account_limit_is_bounded() {
    let v = vendor(json!({}));
    assert_eq!(
        v.max_accounts(),
        crate::crd::vendor_tenant::DEFAULT_MAX_ACCOUNTS as usize
    );
}
