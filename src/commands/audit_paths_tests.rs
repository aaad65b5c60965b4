use super::*;
use serde_json::json;

fn person(upn: &str, ext15: Option<&str>, groups: &[&str], role: Role) -> Person {
    Person {
        user: serde_json::from_value(json!({
            "id": upn, "userPrincipalName": upn,
            "onPremisesExtensionAttributes": {"extensionAttribute15": ext15},
        }))
        .unwrap(),
        role,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn segment(name: &str, filter: &str) -> Segment {
    Segment {
        name: name.into(),
        identity: name.into(),
        user_group_filter: filter.into(),
    }
}

fn allow(segment: &str, allowed: &[&str]) -> Policy {
    Policy {
        name: segment.into(),
        identity: segment.into(),
        assigned_segment: segment.into(),
        segments_allowed: allowed.iter().map(|s| s.to_string()).collect(),
        segments_blocked: vec![],
        state: "Active".into(),
        when_changed: None,
        comment: None,
    }
}

fn account(v: &str) -> Role {
    Role::Account(v.into())
}

fn engineer(v: &[&str]) -> Role {
    Role::Engineer(v.iter().map(|s| s.to_string()).collect())
}

#[test]
fn the_generated_design_keeps_vendors_apart() {
    let people = [
        person("a1", Some("v1-accounts"), &[], account("v1")),
        person("e1", Some("v1-engineers"), &[], engineer(&["v1"])),
        person("a2", Some("v2-accounts"), &[], account("v2")),
        person("e2", Some("v2-engineers"), &[], engineer(&["v2"])),
    ];
    let segments = [
        segment("S1a", "ExtensionAttribute15 -eq 'v1-accounts'"),
        segment("S1e", "ExtensionAttribute15 -eq 'v1-engineers'"),
        segment("S2a", "ExtensionAttribute15 -eq 'v2-accounts'"),
        segment("S2e", "ExtensionAttribute15 -eq 'v2-engineers'"),
    ];
    let policies = [
        allow("S1a", &["S1a", "S1e"]),
        allow("S1e", &["S1e", "S1a"]),
        allow("S2a", &["S2a", "S2e"]),
        allow("S2e", &["S2e", "S2a"]),
    ];
    assert!(findings(&people, &segments, &policies).is_empty());
}

#[test]
fn a_member_of_segment_holding_two_vendors_accounts_is_a_path() {
    // Someone put a v2 account into v1's accounts group; the MemberOf segment holds both.
    let people = [
        person("a1", None, &["g1"], account("v1")),
        person("a2", None, &["g1", "g2"], account("v2")),
    ];
    let segments = [
        segment("S1", "MemberOf -eq 'g1'"),
        segment("S2", "MemberOf -eq 'g2'"),
    ];
    let policies = [allow("S1", &["S1"]), allow("S2", &["S2"])];
    let f = findings(&people, &segments, &policies);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f.iter().all(|f| f.kind == "CrossVendorPath"));
    assert!(
        f[0].message.contains("a1") && f[0].message.contains("a2"),
        "{}",
        f[0].message
    );
}

#[test]
fn an_orphan_outside_any_segment_reaches_unsegmented_users_of_other_vendors() {
    let people = [
        person("orphan", None, &[], account("v1")),
        person("a2", None, &[], account("v2")),
        person("a3", Some("v3-accounts"), &[], account("v3")),
    ];
    let segments = [segment("S3", "ExtensionAttribute15 -eq 'v3-accounts'")];
    let policies = [allow("S3", &["S3"])];
    let f = findings(&people, &segments, &policies);
    let pairs: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(f.len(), 2, "{pairs:?}");
    assert!(
        pairs.iter().all(|m| !m.contains("a3")),
        "an allow-list segment is closed to the unsegmented"
    );
}

#[test]
fn an_engineer_serving_two_vendors_is_allowed_to_both() {
    let people = [
        person("a1", Some("x"), &[], account("v1")),
        person("e", Some("x"), &[], engineer(&["v1", "v2"])),
    ];
    let segments = [segment("S", "ExtensionAttribute15 -eq 'x'")];
    assert!(findings(&people, &segments, &[allow("S", &["S"])]).is_empty());
}
