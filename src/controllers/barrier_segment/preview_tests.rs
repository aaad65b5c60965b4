use super::*;
use crate::controllers::vendor_tenant::generated_segments::generated;
use crate::crd::barrier_segment::{BarrierSegmentSpec, SegmentAttribute, SegmentMembers, UserAttributeMatch};
use crate::crd::vendor_tenant::{SupportEngineers, VendorTenantSpec};

fn vendor(name: &str, engineers: &[&str]) -> Arc<VendorTenant> {
    let mut spec: VendorTenantSpec = serde_json::from_value(serde_json::json!({
        "displayName": name, "domain": format!("{name}.example.com"),
        "licenses": [], "allowedNamespaces": {"names": ["x"]},
    }))
    .unwrap();
    spec.support_engineers = Some(SupportEngineers {
        group_display_name: None,
        members: engineers.iter().map(|s| s.to_string()).collect(),
        membership: None,
    });
    let mut v = VendorTenant::new(name, spec);
    v.metadata.uid = Some(format!("uid-{name}"));
    let status = v.status.get_or_insert_with(Default::default);
    status.accounts_group_id = Some(format!("{name}-accounts-group"));
    status.engineers_group_id = Some(format!("{name}-engineers-group"));
    Arc::new(v)
}

fn host() -> Arc<BarrierSegment> {
    Arc::new(BarrierSegment::new(
        "host",
        BarrierSegmentSpec {
            segment_name: None,
            members: SegmentMembers {
                host_staff: Some(UserAttributeMatch {
                    attribute: SegmentAttribute::Company,
                    value: "ABC".into(),
                }),
                ..SegmentMembers::default()
            },
            allowed_segments: Some(vec![]),
            blocked_segments: None,
            policy_state: None,
            adopt_existing: None,
        },
    ))
}

fn design(mode: IbMode, with_host: bool) -> (Vec<Arc<BarrierSegment>>, Vec<Arc<VendorTenant>>) {
    let vendors = vec![
        vendor("v1", &["alice@abc.example", "erin@abc.example"]),
        vendor("v2", &["bob@abc.example", "erin@abc.example"]),
    ];
    let mut all: Vec<Arc<BarrierSegment>> = vendors
        .iter()
        .flat_map(|v| generated(v, mode))
        .map(Arc::new)
        .collect();
    if with_host {
        all.push(host());
    }
    (all, vendors)
}

#[test]
fn in_both_modes_vendors_never_reach_each_other_and_accounts_never_reach_host_staff() {
    for mode in [IbMode::SingleSegment, IbMode::MultiSegment] {
        for with_host in [false, true] {
            let (all, vendors) = design(mode, with_host);
            let m = asked(&all, &vendors, mode);
            let ctx = format!("{mode} host={with_host}\n{}", m.render());
            for a in ["v1 accounts", "v2 accounts"] {
                let b = if a == "v1 accounts" { "v2" } else { "v1" };
                assert_eq!(m.can(a, &format!("{b} accounts")), Some(false), "{ctx}");
                assert_eq!(m.can(a, &format!("{b} engineers")), Some(false), "{ctx}");
                assert_eq!(m.can(a, UNSEGMENTED), Some(false), "{ctx}");
                if with_host {
                    assert_eq!(m.can(a, HOST_STAFF), Some(false), "{ctx}");
                }
            }
            assert_eq!(m.can("v1 accounts", "v1 engineers"), Some(true), "{ctx}");
            assert_eq!(
                m.can("v1 engineers", HOST_STAFF),
                with_host.then_some(true),
                "{ctx}"
            );
            let colleagues = with_host;
            assert_eq!(m.can("v1 engineers", "v2 engineers"), Some(colleagues), "{ctx}");
            // erin serves both vendors: only multi-segment mode lets her reach either.
            let shared = "engineers of v1 + v2";
            assert_eq!(m.can(shared, "v1 accounts"), Some(mode.multi()), "{ctx}");
            assert_eq!(m.can(shared, "v2 accounts"), Some(mode.multi()), "{ctx}");
            // The matrix is symmetric: barriers are bidirectional.
            for i in 0..m.classes.len() {
                for j in 0..m.classes.len() {
                    assert_eq!(m.reach[i][j], m.reach[j][i], "{ctx}");
                }
            }
        }
    }
}

#[test]
fn without_a_host_segment_the_warnings_say_engineers_are_cut_off() {
    let (all, vendors) = design(IbMode::SingleSegment, false);
    let w = warnings(&asked(&all, &vendors, IbMode::SingleSegment));
    assert!(
        w.iter()
            .any(|w| w.starts_with("v1 engineers cannot reach unsegmented users")),
        "{w:?}"
    );
    let (all, vendors) = design(IbMode::SingleSegment, true);
    assert!(
        warnings(&asked(&all, &vendors, IbMode::SingleSegment))
            .iter()
            .all(|w| !w.starts_with("v1 engineers"))
    );
}

#[test]
fn the_host_filter_leaves_out_every_vendors_accounts_and_in_single_mode_their_engineers() {
    let (all, vendors) = design(IbMode::SingleSegment, true);
    let scope = |mode| Scope {
        vendors: &vendors,
        mode: Some(mode),
    };
    let host = all.iter().find(|s| s.name_any() == "host").unwrap();
    let single = desired(host, &all, scope(IbMode::SingleSegment)).unwrap();
    assert_eq!(
        single.filter,
        "Company -eq 'ABC' -and (ExtensionAttribute15 -ne 'v1-accounts' -or ExtensionAttribute15 -eq $null) -and (ExtensionAttribute15 -ne 'v1-engineers' -or ExtensionAttribute15 -eq $null) -and (ExtensionAttribute15 -ne 'v2-accounts' -or ExtensionAttribute15 -eq $null) -and (ExtensionAttribute15 -ne 'v2-engineers' -or ExtensionAttribute15 -eq $null)"
    );
    assert_eq!(
        single.policy.unwrap().segments,
        ["host", "v1-engineers", "v2-engineers"]
    );
    let engineers = all.iter().find(|s| s.name_any() == "v1-engineers").unwrap();
    let paired = desired(engineers, &all, scope(IbMode::SingleSegment)).unwrap();
    assert_eq!(
        paired.policy.unwrap().segments,
        ["host", "v1-accounts", "v1-engineers", "v2-engineers"]
    );
    let multi = desired(host, &all, scope(IbMode::MultiSegment)).unwrap();
    assert!(multi.filter.starts_with("(Company -eq 'ABC' -or MemberOf -eq 'v1-engineers-group' -or MemberOf -eq 'v2-engineers-group') -and (ExtensionAttribute15 -ne 'v1-accounts'"), "{}", multi.filter);
    let unknown = desired(
        host,
        &all,
        Scope {
            vendors: &vendors,
            mode: None,
        },
    );
    assert!(matches!(unknown, Err(("MembersUnresolved", m)) if m.contains("mode is not known")));
}
