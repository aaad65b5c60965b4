use super::*;
use crate::directory::{MANAGED_GROUP_PREFIX, Sku};
use serde_json::{Value, json};

const UID: &str = "uid-v1";

fn vendor(spec: Value) -> VendorTenant {
    let mut base = json!({
        "displayName": "V1", "domain": "v1.example", "allowedNamespaces": {"names": ["a"]},
        "licenses": [{"skuPartNumber": "RA"}],
        "barriers": {"generateSegments": false, "membershipAttribute": "MemberOf"},
    });
    base.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "apiVersion": "remoteassist.dev/v1alpha1", "kind": "VendorTenant",
        "metadata": {"name": "V1", "uid": UID}, "spec": base,
    }))
    .unwrap()
}

fn engineers(membership: &str, members: &[&str]) -> Value {
    json!({"supportEngineers": {"members": members, "membership": membership}})
}

fn group(id: &str, name: &str, owner: Option<&str>, licenses: &[&str]) -> DirGroup {
    DirGroup {
        id: id.into(),
        display_name: name.into(),
        description: owner.map(|o| format!("{MANAGED_GROUP_PREFIX}{o}")),
        assigned_licenses: licenses
            .iter()
            .map(|s| AssignedLicense {
                sku_id: (*s).into(),
                disabled_plans: vec![],
            })
            .collect(),
    }
}

fn user(id: &str, upn: &str, segment: Option<&str>) -> DirUser {
    let attributes = json!({"extensionAttribute15": segment});
    serde_json::from_value(
        json!({"id": id, "userPrincipalName": upn, "onPremisesExtensionAttributes": attributes}),
    )
    .unwrap()
}

/// Both groups exist and are ours; one known engineer already a member.
fn observed(vt: &VendorTenant) -> Observed {
    let skus: SkuTable = [(
        "RA".to_string(),
        Sku {
            sku_id: "ra".into(),
            part_number: "RA".into(),
            enabled: 10,
            consumed: 0,
            plans: Default::default(),
        },
    )]
    .into();
    Observed {
        accounts_group: GroupSeen::Named(vec![group("ga", "V1_RemoteAssistUser", Some(UID), &["ra"])]),
        engineers_group: GroupSeen::Named(vec![group("ge", "V1_SupportEngineer", Some(UID), &[])]),
        engineers: vec![(
            "eng1@abc.example".into(),
            Some(user("e1", "eng1@abc.example", None)),
        )],
        engineer_members: [("ge".to_string(), ["e1".to_string()].into())].into(),
        vendors: vec![Arc::new(vt.clone())],
        segments: vec![],
        accounts: vec![],
        skus,
        mode: Some(IbMode::SingleSegment),
        compliance_problem: None,
    }
}

fn kinds(p: &Plan) -> Vec<&'static str> {
    p.steps.iter().map(Step::kind).collect()
}

fn reasons(p: &Plan) -> Vec<&'static str> {
    p.problems.iter().map(|r| r.reason).collect()
}

fn plan_of(vt: &VendorTenant, o: &Observed) -> Plan {
    plan(vt, Some(UID), [None, None], o)
}

#[test]
fn a_converged_vendor_plans_nothing() {
    let vt = vendor(engineers("Additive", &["eng1@abc.example"]));
    let p = plan_of(&vt, &observed(&vt));
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert!(p.problems.is_empty());
}

#[test]
fn exclusive_membership_removes_unlisted_members_only_when_every_engineer_is_known() {
    let vt = vendor(engineers("Exclusive", &["eng1@abc.example"]));
    let mut o = observed(&vt);
    o.engineer_members
        .insert("ge".into(), ["e1".to_string(), "stranger".to_string()].into());
    let p = plan_of(&vt, &o);
    assert_eq!(kinds(&p), ["RemoveMember"]);
    assert_eq!(p.steps[0].object(), "V1_SupportEngineer");

    let vt = vendor(engineers("Exclusive", &["eng1@abc.example", "typo@abc.example"]));
    o.engineers.push(("typo@abc.example".into(), None));
    let p = plan_of(&vt, &o);
    assert!(
        p.steps.is_empty(),
        "an unknown engineer stops removals: {:?}",
        p.steps
    );
    assert_eq!(reasons(&p), ["EngineerNotFound"]);
    assert!(p.problems[0].message.contains("typo@abc.example"));
}

#[test]
fn engineers_get_the_barrier_attribute_unless_another_vendor_lists_them() {
    let spec = |members: &[&str]| {
        let mut s = engineers("Additive", members);
        s["barriers"] = json!({"generateSegments": false});
        s
    };
    let vt = vendor(spec(&["eng1@abc.example"]));
    let p = plan_of(&vt, &observed(&vt));
    assert_eq!(kinds(&p), ["PlaceEngineer"]);
    assert!(
        p.steps[0].describe().contains("V1-engineers"),
        "{}",
        p.steps[0].describe()
    );

    let mut o = observed(&vt);
    let mut other = vendor(spec(&["ENG1@abc.example"]));
    other.metadata.name = Some("V2".into());
    o.vendors.push(Arc::new(other));
    let p = plan_of(&vt, &o);
    assert!(p.steps.is_empty());
    assert_eq!(reasons(&p), ["EngineerShared"]);

    let mut o = observed(&vt);
    o.engineers[0].1 = Some(user("e1", "eng1@abc.example", Some("V1-engineers")));
    assert!(plan_of(&vt, &o).steps.is_empty(), "already placed");
}

#[test]
fn missing_groups_are_created_then_filled_and_licensed_in_group_mode() {
    let mut spec = engineers("Exclusive", &["eng1@abc.example"]);
    spec["licenseMode"] = json!("Group");
    let vt = vendor(spec);
    let mut o = observed(&vt);
    o.accounts_group = GroupSeen::Named(vec![]);
    o.engineers_group = GroupSeen::Named(vec![]);
    o.engineer_members.clear();
    let p = plan_of(&vt, &o);
    assert_eq!(
        kinds(&p),
        ["CreateGroup", "CreateGroup", "AddMembers", "AssignGroupLicenses"]
    );
    assert!(
        matches!(&p.steps[3], Step::AssignGroupLicenses { group: GroupRef::New { role: Role::Accounts, .. }, add, remove } if add.len() == 1 && remove.is_empty())
    );
}

#[test]
fn only_the_operators_own_group_loses_licences_the_spec_does_not_ask_for() {
    let mut spec = engineers("Additive", &["eng1@abc.example"]);
    spec["licenseMode"] = json!("Group");
    let vt = vendor(spec);
    let mut o = observed(&vt);
    o.accounts_group = GroupSeen::Named(vec![group(
        "ga",
        "V1_RemoteAssistUser",
        Some(UID),
        &["ra", "old"],
    )]);
    let p = plan_of(&vt, &o);
    assert!(
        matches!(&p.steps[..], [Step::AssignGroupLicenses { add, remove, .. }] if add.is_empty() && remove == &["old".to_string()])
    );
    o.accounts_group = GroupSeen::Named(vec![group("ga", "V1_RemoteAssistUser", None, &["ra", "old"])]);
    assert!(
        plan_of(&vt, &o).steps.is_empty(),
        "an adopted group keeps its other licences"
    );
}

#[test]
fn same_named_groups_or_another_vendors_group_are_a_conflict_and_nothing_is_written_to_them() {
    let vt = vendor(engineers("Exclusive", &["eng1@abc.example"]));
    let mut o = observed(&vt);
    o.engineers_group = GroupSeen::Named(vec![
        group("x", "V1_SupportEngineer", None, &[]),
        group("y", "V1_SupportEngineer", None, &[]),
    ]);
    let p = plan_of(&vt, &o);
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert_eq!(reasons(&p), ["Conflict"]);
    assert!(p.engineers_group.is_none());
    o.engineers_group = GroupSeen::Named(vec![group("z", "V1_SupportEngineer", Some("uid-v2"), &[])]);
    assert_eq!(reasons(&plan_of(&vt, &o)), ["Conflict"]);
}

#[test]
fn generated_segments_are_written_when_missing_and_never_taken_over() {
    let mut spec = engineers("Additive", &["eng1@abc.example"]);
    spec["barriers"] = json!({"generateSegments": true, "membershipAttribute": "MemberOf"});
    let vt = vendor(spec);
    let mut o = observed(&vt);
    let p = plan_of(&vt, &o);
    assert_eq!(kinds(&p), ["GenerateSegment", "GenerateSegment"]);
    o.segments = generated(&vt, IbMode::SingleSegment)
        .into_iter()
        .map(Arc::new)
        .collect();
    assert!(plan_of(&vt, &o).steps.is_empty(), "already generated");
    let mut foreign = generated(&vt, IbMode::SingleSegment).remove(0);
    foreign.metadata.owner_references = None;
    o.segments = vec![Arc::new(foreign)];
    let p = plan_of(&vt, &o);
    assert_eq!(reasons(&p), ["SegmentNameTaken"]);
    assert!(p.steps.is_empty());
}

#[test]
fn a_group_bound_before_and_gone_is_rebound_by_name() {
    let vt = vendor(engineers("Additive", &["eng1@abc.example"]));
    let p = plan(&vt, Some(UID), [Some("gone"), None], &observed(&vt));
    assert_eq!(p.rebound, [("V1_RemoteAssistUser".to_string(), "ga".to_string())]);
}

#[test]
fn the_generated_design_follows_the_tenants_mode_and_waits_while_it_is_unknown() {
    let mut spec = engineers("Additive", &["eng1@abc.example"]);
    spec["barriers"] = json!({"generateSegments": true});
    let vt = vendor(spec);
    let mut o = observed(&vt);
    o.segments = generated(&vt, IbMode::SingleSegment)
        .into_iter()
        .map(Arc::new)
        .collect();
    let segment_steps = |p: &Plan| -> Vec<(String, &'static str)> {
        p.steps
            .iter()
            .filter(|s| s.kind().contains("Segment"))
            .map(|s| (s.object(), s.kind()))
            .collect()
    };
    assert!(segment_steps(&plan_of(&vt, &o)).is_empty());
    o.mode = Some(IbMode::MultiSegment);
    let p = plan_of(&vt, &o);
    let objects = segment_steps(&p);
    assert_eq!(
        objects,
        [
            ("V1-accounts".to_string(), "DeleteGeneratedSegment"),
            ("V1-engineers".to_string(), "DeleteGeneratedSegment"),
            ("V1-vendor".to_string(), "GenerateSegment"),
        ]
    );
    o.mode = None;
    let p = plan_of(&vt, &o);
    assert!(
        segment_steps(&p).is_empty(),
        "nothing generated or retired on an unknown mode"
    );
    assert_eq!(reasons(&p), ["BarrierModeUnknown"]);
}

/// `n` vendors that all list eng1, named v01..vNN, and the observation of `which`.
fn engineer_shared_by(n: usize, which: usize, mode: IbMode) -> (VendorTenant, Observed) {
    let vendors: Vec<VendorTenant> = (1..=n)
        .map(|i| {
            let mut spec = engineers("Additive", &["eng1@abc.example"]);
            spec["barriers"] = json!({"generateSegments": false});
            let mut v = vendor(spec);
            v.metadata.name = Some(format!("v{i:02}"));
            v
        })
        .collect();
    let vt = vendors[which - 1].clone();
    let mut o = observed(&vt);
    o.vendors = vendors.into_iter().map(Arc::new).collect();
    o.engineer_members = [("ge".to_string(), BTreeSet::new())].into();
    o.mode = Some(mode);
    (vt, o)
}

#[test]
fn in_multi_segment_mode_an_engineer_serves_up_to_ten_vendors_and_is_refused_beyond() {
    let (vt, o) = engineer_shared_by(11, 10, IbMode::MultiSegment);
    let p = plan_of(&vt, &o);
    assert!(
        !kinds(&p).contains(&"PlaceEngineer"),
        "multi-segment engineers are placed by group"
    );
    assert!(kinds(&p).contains(&"AddMembers"), "{:?}", kinds(&p));
    assert!(!reasons(&p).contains(&"EngineerShared"));
    let (vt, o) = engineer_shared_by(11, 11, IbMode::MultiSegment);
    let p = plan_of(&vt, &o);
    assert_eq!(reasons(&p), ["EngineerSegmentLimit"]);
    assert!(
        !kinds(&p).contains(&"AddMembers"),
        "the eleventh vendor does not get the engineer"
    );
}

#[test]
fn in_single_segment_mode_a_shared_engineer_is_reported_with_the_fix() {
    let (vt, o) = engineer_shared_by(2, 1, IbMode::SingleSegment);
    let p = plan_of(&vt, &o);
    assert_eq!(reasons(&p), ["EngineerShared"]);
    assert!(
        p.problems[0].message.contains("multi-segment mode"),
        "{}",
        p.problems[0].message
    );
    assert!(!kinds(&p).contains(&"PlaceEngineer"));
}

#[test]
fn a_refused_compliance_sign_in_is_a_problem_naming_the_command() {
    let vt = vendor(engineers("Additive", &["eng1@abc.example"]));
    let mut o = observed(&vt);
    o.compliance_problem = Some("the delegated compliance credential cannot be used: AADSTS50173; an administrator runs `remote-assist-operator login --compliance --secret ops/login`".into());
    let p = plan(&vt, Some(UID), [None, None], &o);
    assert_eq!(reasons(&p), ["ComplianceSignInRequired"]);
    assert!(
        p.problems[0]
            .message
            .contains("login --compliance --secret ops/login")
    );
}
