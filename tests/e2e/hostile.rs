//! Hostile input: manifests and tenant states meant to break things. Each one is refused at
//! admission (the API server says why) or refused by the operator with a clear condition, and
//! nothing is created or changed in the tenant (the simulated tenant's write counters prove
//! it). Values that reach an OData path or filter are escaped, never interpreted.

use crate::cluster::kubectl_ok;
use crate::env::{Env, license, upn, vendor};
use crate::kubectl::kubectl;

const RAL: &str = "remoteassistlicense";

fn segment(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: remoteassist.dev/v1alpha1\nkind: BarrierSegment\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// Manifests the API server must refuse, each with the message it must give.
fn admission_cases(id: &str, ns: &str, other: &str, v: &str) -> Vec<(&'static str, String, &'static str)> {
    let long = "x".repeat(65);
    let l = |name: &str, extra: &str| license(ns, name, v, extra);
    vec![
        (
            "over-long mailNickname",
            l("h1", "").replace("mailNickname: h1", &format!("mailNickname: {long}")),
            r#"spec.mailNickname: Too long: may not be more than 64 bytes"#,
        ),
        (
            "fullwidth digit in mailNickname",
            l("h2", "").replace("mailNickname: h2", "mailNickname: tech-０1"),
            r#"spec.mailNickname: Invalid value: "tech-０1""#,
        ),
        (
            "Cyrillic look-alike in mailNickname",
            l("h3", "").replace("mailNickname: h3", "mailNickname: tеch"),
            r#"spec.mailNickname: Invalid value: "tеch""#,
        ),
        (
            "look-alike domain in UPN",
            l("h4", "  userPrincipalName: t@vendors.аbc.example\n"),
            r#"spec.userPrincipalName: Invalid value: "t@vendors.аbc.example""#,
        ),
        (
            "space in UPN",
            l("h5", "  userPrincipalName: \"a b@vendors.abc.example\"\n"),
            r#"spec.userPrincipalName: Invalid value: "a b@vendors.abc.example""#,
        ),
        (
            "OData operators in mailNickname",
            l("h6", "").replace("mailNickname: h6", "mailNickname: \"a' or '1'='1\""),
            r#"spec.mailNickname: Invalid value: "a' or '1'='1""#,
        ),
        (
            "another namespace's Secret",
            l("h7", &format!("  credentialsSecretName: {other}/foreign\n")),
            r#"spec.credentialsSecretName: Invalid value: "#,
        ),
        (
            "path traversal in Secret name",
            l("h8", "  credentialsSecretName: ../foreign\n"),
            r#"spec.credentialsSecretName: Invalid value: "../foreign""#,
        ),
        (
            "unknown country",
            l("h9", "").replace("usageLocation: US", "usageLocation: XX"),
            r#"spec.usageLocation: Unsupported value: "XX""#,
        ),
        (
            "control character in displayName",
            l("h10", "").replace("displayName: Technician h10", "displayName: \"bell\\u0007\""),
            r#"spec.displayName: Invalid value: "bell\a""#,
        ),
        (
            "quote in a SKU part number",
            l("h11", "  licenses:\n    - skuPartNumber: \"SPE_E5' or 1\"\n"),
            r#"spec.licenses[0].skuPartNumber: Invalid value: "SPE_E5' or 1""#,
        ),
        (
            "space in a disabled plan",
            l(
                "h12",
                "  licenses:\n    - skuPartNumber: SPE_E5\n      disabledPlans: [\"EXCHANGE S\"]\n",
            ),
            r#"spec.licenses[0].disabledPlans[0]: Invalid value: "EXCHANGE S""#,
        ),
        (
            "UPN over 113 characters",
            l(
                "h13",
                &format!("  userPrincipalName: {}@vendors.abc.example\n", "y".repeat(100)),
            ),
            r#"spec.userPrincipalName: Too long: may not be more than 113 bytes"#,
        ),
        (
            "non-ASCII domain",
            vendor(&format!("{id}-h14"), &[ns], "")
                .replace("domain: vendors.abc.example", "domain: vendörs.example"),
            r#"spec.domain: Invalid value: "vendörs.example""#,
        ),
        (
            "quote in a group name",
            vendor(
                &format!("{id}-h15"),
                &[ns],
                "  accountsGroup:\n    displayName: \"V1' or displayName eq 'x\"\n",
            ),
            r#"spec.accountsGroup.displayName: Invalid value: "V1' or displayName eq 'x""#,
        ),
        (
            "over-long group name",
            vendor(
                &format!("{id}-h16"),
                &[ns],
                &format!("  accountsGroup:\n    displayName: {}\n", "G".repeat(121)),
            ),
            r#"spec.accountsGroup.displayName: Too long: may not be more than 120 bytes"#,
        ),
        (
            "over-long VendorTenant name",
            vendor(&format!("{id}-{}", "n".repeat(60)), &[ns], ""),
            r#"a VendorTenant name is at most 63 characters"#,
        ),
        (
            "filter syntax in an engineer UPN",
            vendor(
                &format!("{id}-h18"),
                &[ns],
                "  supportEngineers:\n    members: [\"alice@abc.example' or 'x\"]\n",
            ),
            r#"spec.supportEngineers.members[0]: Invalid value: "alice@abc.example' or 'x""#,
        ),
        (
            "not a GUID as vendorTenantId",
            vendor(&format!("{id}-h19"), &[ns], "  vendorTenantId: not-a-guid\n"),
            r#"spec.vendorTenantId: Invalid value: "not-a-guid""#,
        ),
        (
            "no allowed namespace at all",
            vendor(&format!("{id}-h20"), &[], ""),
            r#"allowedNamespaces needs at least one name or a selector"#,
        ),
        (
            "barrier filter injection in a value",
            segment(
                &format!("{id}-h21"),
                "  members:\n    userAttribute: {attribute: Department, value: \"Finance' -or Department -eq 'x\"}\n",
            ),
            r#"spec.members.userAttribute.value: Invalid value: "Finance' -or Department -eq 'x""#,
        ),
        (
            "command substitution in a value",
            segment(
                &format!("{id}-h22"),
                "  members:\n    userAttribute: {attribute: Department, value: \"$(whoami)\"}\n",
            ),
            r#"spec.members.userAttribute.value: Invalid value: "$(whoami)""#,
        ),
        (
            "filter syntax in a MemberOf group id",
            segment(
                &format!("{id}-h23"),
                "  members:\n    groupId: \"x' -or MemberOf -ne '1\"\n",
            ),
            r#"spec.members.groupId: Invalid value: "x' -or MemberOf -ne '1""#,
        ),
        (
            "semicolon in a segment name",
            segment(
                &format!("{id}-h24"),
                "  segmentName: \"a;Remove-OrganizationSegment\"\n  members:\n    groupId: 11111111-1111-1111-1111-111111111111\n",
            ),
            r#"spec.segmentName: Invalid value: "a;Remove-OrganizationSegment""#,
        ),
        (
            "a segment blocking itself",
            segment(
                &format!("{id}-h25"),
                &format!(
                    "  members:\n    groupId: 11111111-1111-1111-1111-111111111111\n  blockedSegments: [{id}-h25]\n"
                ),
            ),
            r#"a segment cannot block itself"#,
        ),
    ]
}

/// Manifests the operator must refuse: (name, namespace, manifest, the condition's reason).
fn operator_refusals(
    id: &str,
    ns: &str,
    other: &str,
    v: &str,
    g: &str,
    owned: &str,
) -> Vec<(String, Option<String>, String, &'static str)> {
    let (ns, other) = (ns.to_owned(), other.to_owned());
    let l = |name: &str, extra: &str| license(&ns, name, v, extra);
    vec![
        // (name, namespace, manifest, expected reason)
        (
            format!("{id}-r1"),
            Some(other.clone()),
            license(&other, &format!("{id}-r1"), v, ""),
            "NamespaceNotAllowed",
        ),
        (
            format!("{id}-r2"),
            Some(ns.clone()),
            license(&ns, &format!("{id}-r2"), &format!("{id}-nobody"), ""),
            "VendorNotFound",
        ),
        (
            format!("{id}-r3"),
            Some(ns.clone()),
            l(&format!("{id}-r3"), "  credentialsSecretName: foreign\n"),
            "SecretConflict",
        ),
        (
            format!("{id}-r4"),
            Some(ns.clone()),
            l(
                &format!("{id}-r4"),
                "  userPrincipalName: carol.engineer@abc.example\n",
            ),
            "OutsideVendorDomain",
        ),
        (
            format!("{id}-r5"),
            Some(ns.clone()),
            l(
                &format!("{id}-r5"),
                &format!("  userPrincipalName: {}\n  adoption: AdoptOrCreate\n", upn(owned)),
            ),
            "Conflict",
        ),
        (
            format!("{id}-r6"),
            Some(ns.clone()),
            l(
                &format!("{id}-r6"),
                "  licenses:\n    - skuPartNumber: NOT_A_SKU\n",
            ),
            "LicenseNotOffered",
        ),
        (
            format!("{id}-r7"),
            Some(ns.clone()),
            license(
                &ns,
                &format!("{id}-r7"),
                g,
                "  licenses:\n    - skuPartNumber: SPE_E5\n",
            ),
            "LicenseOverrideRefused",
        ),
        (
            format!("{id}-r8"),
            Some(ns.clone()),
            l(&format!("{id}-r8"), "  adoption: AdoptOnly\n"),
            "AdoptionNotAllowed",
        ),
        (
            format!("{id}-r9"),
            None,
            segment(
                &format!("{id}-r9"),
                "  members:\n    vendorAccounts: nobody-at-all\n",
            ),
            "MembersUnresolved",
        ),
        (
            format!("{id}-r10"),
            None,
            segment(
                &format!("{id}-r10"),
                &format!(
                    "  members:\n    groupId: 11111111-1111-1111-1111-111111111111\n  allowedSegments: [{id}-ghost]\n"
                ),
            ),
            "UnknownSegment",
        ),
        (
            format!("{id}-r11"),
            None,
            vendor(
                &format!("{id}-r11"),
                &[&ns],
                &format!(
                    "  barriers: {{generateSegments: false}}\n  accountsGroup:\n    displayName: {v}_RemoteAssistUser\n  supportEngineers:\n    groupDisplayName: {v}_SupportEngineer\n"
                ),
            ),
            "Conflict",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn hostile_manifests_are_refused_and_change_nothing_in_the_tenant() {
    let mut env = Env::start("hostile").await;
    let (ns, other) = (env.namespace("a"), env.namespace("b"));
    let id = env.id.clone();
    // A settled baseline: a vendor with one Ready account, and a Group-mode vendor.
    let v = format!("{id}-v");
    let g = format!("{id}-g");
    env.apply(&vendor(
        &v,
        &[&ns],
        "  barriers: {required: false}\n  supportEngineers:\n    members: [alice.engineer@abc.example]\n",
    ));
    env.apply(&vendor(
        &g,
        &[&ns],
        "  barriers: {required: false, generateSegments: false}\n  licenseMode: Group\n",
    ));
    let owned = format!("{id}-owned");
    env.apply(&license(&ns, &owned, &v, ""));
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "foreign",
            "-n",
            &ns,
            "--from-literal=password=not-yours",
        ],
        None,
    );
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &owned, "Ready", "True", None)
        .await;
    env.wait_condition("vendortenant", None, &g, "Ready", "True", None)
        .await;
    env.wait_condition(
        "barriersegment",
        None,
        &format!("{v}-accounts"),
        "Ready",
        "True",
        None,
    )
    .await;

    // 1. Refused at admission, each with its own message.
    let admission = admission_cases(&id, &ns, &other, &v);
    for (what, manifest, expected) in &admission {
        let labelled = manifest.replace("metadata:\n", &format!("metadata:\n  labels: {{e2e: {id}}}\n"));
        let run = kubectl(&["apply", "--server-side", "-f", "-"], Some(&labelled));
        assert!(!run.ok, "admission accepted {what}:\n{manifest}");
        assert!(
            run.stderr.contains(expected),
            "{what}: expected {expected:?} in:\n{}",
            run.stderr
        );
    }

    // 2. Refused by the operator, with a condition; nothing written to the tenant.
    env.settle().await;
    let before = env.tenant_writes().await;
    let refused = operator_refusals(&id, &ns, &other, &v, &g, &owned);
    for (_, _, manifest, _) in &refused {
        env.apply(manifest);
    }
    for (name, namespace, _, reason) in &refused {
        let (kind, aspect) = if name.ends_with("r9") || name.ends_with("r10") {
            ("barriersegment", "SegmentReady")
        } else if name.ends_with("r11") {
            ("vendortenant", "GroupsReady")
        } else {
            (RAL, "AccountReady")
        };
        env.wait_condition(kind, namespace.as_deref(), name, aspect, "False", Some(reason))
            .await;
    }
    // Three resync rounds of every object later, still nothing written.
    env.no_writes_over(3).await;
    assert_eq!(
        env.tenant_writes().await,
        before,
        "refused input changed the tenant: {}",
        env.counters().await
    );
    let carol = env.user("carol.engineer@abc.example").await.unwrap();
    assert!(
        carol["employeeType"].is_null() && carol["assignedLicenses"].as_array().unwrap().is_empty(),
        "the host employee is untouched"
    );
    println!(
        "hostile inputs: {} refused at admission, {} refused by the operator, 0 tenant writes",
        admission.len(),
        refused.len()
    );

    // 3. Quotes that are allowed are escaped, never interpreted.
    let quoted = format!("{id}-quoted");
    env.apply(
        &license(&ns, &quoted, &v, "")
            .replace(&format!("mailNickname: {quoted}"), "mailNickname: \"o'brien\""),
    );
    env.wait_condition(RAL, Some(&ns), &quoted, "Ready", "True", None)
        .await;
    assert!(
        env.user("o'brien@vendors.abc.example").await.is_some(),
        "the UPN is exactly o'brien@…"
    );
}
