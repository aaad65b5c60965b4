//! Hostile input: manifests and tenant states meant to break things. Each one is refused at
//! admission (the API server says why) or refused by the operator with a clear condition, and
//! nothing is created or changed in the tenant (the simulated tenant's write counters prove
//! it). Values that reach an OData path or filter are escaped, never interpreted.

use crate::cluster::kubectl_ok;
use crate::env::Env;
use crate::fixtures::{license, segment, upn, vendor};
use serde_json::Value;

const RAL: &str = "remoteassistlicense";
/// A group id that is well formed.
const ANY_GROUP: &str = "11111111-1111-1111-1111-111111111111";

/// A manifest the API server must refuse, what it tries, and the message it must give.
type Case = (&'static str, Value, &'static str);

/// Manifests the API server must refuse, each with the message it must give.
fn admission_cases(id: &str, ns: &str, other: &str, v: &str) -> Vec<Case> {
    let mut cases = license_cases(ns, other, v);
    cases.extend(vendor_cases(id, ns));
    cases.extend(segment_cases(id));
    cases
}

fn license_cases(ns: &str, other: &str, v: &str) -> Vec<Case> {
    let long = "x".repeat(65);
    let l = |name: &str| license(ns, name).vendor(v);
    vec![
        (
            "over-long mailNickname",
            l("h1").mail_nickname(&long).build(),
            r#"spec.mailNickname: Too long: may not be more than 64 bytes"#,
        ),
        (
            "fullwidth digit in mailNickname",
            l("h2").mail_nickname("tech-０1").build(),
            r#"spec.mailNickname: Invalid value: "tech-０1""#,
        ),
        (
            "Cyrillic look-alike in mailNickname",
            l("h3").mail_nickname("tеch").build(),
            r#"spec.mailNickname: Invalid value: "tеch""#,
        ),
        (
            "look-alike domain in UPN",
            l("h4").upn("t@vendors.аbc.example").build(),
            r#"spec.userPrincipalName: Invalid value: "t@vendors.аbc.example""#,
        ),
        (
            "space in UPN",
            l("h5").upn("a b@vendors.abc.example").build(),
            r#"spec.userPrincipalName: Invalid value: "a b@vendors.abc.example""#,
        ),
        (
            "OData operators in mailNickname",
            l("h6").mail_nickname("a' or '1'='1").build(),
            r#"spec.mailNickname: Invalid value: "a' or '1'='1""#,
        ),
        (
            "another namespace's Secret",
            l("h7").credentials_secret(&format!("{other}/foreign")).build(),
            r#"spec.credentialsSecretName: Invalid value: "#,
        ),
        (
            "path traversal in Secret name",
            l("h8").credentials_secret("../foreign").build(),
            r#"spec.credentialsSecretName: Invalid value: "../foreign""#,
        ),
        (
            "unknown country",
            l("h9").usage_location("XX").build(),
            r#"spec.usageLocation: Unsupported value: "XX""#,
        ),
        (
            "control character in displayName",
            l("h10").display_name("bell\u{7}").build(),
            r#"spec.displayName: Invalid value: "bell\a""#,
        ),
        (
            "quote in a SKU part number",
            l("h11").licenses(&["SPE_E5' or 1"]).build(),
            r#"spec.licenses[0].skuPartNumber: Invalid value: "SPE_E5' or 1""#,
        ),
        (
            "space in a disabled plan",
            l("h12").license_without_plans("SPE_E5", &["EXCHANGE S"]).build(),
            r#"spec.licenses[0].disabledPlans[0]: Invalid value: "EXCHANGE S""#,
        ),
        (
            "UPN over 113 characters",
            l("h13")
                .upn(&format!("{}@vendors.abc.example", "y".repeat(100)))
                .build(),
            r#"spec.userPrincipalName: Too long: may not be more than 113 bytes"#,
        ),
    ]
}

fn vendor_cases(id: &str, ns: &str) -> Vec<Case> {
    vec![
        (
            "non-ASCII domain",
            vendor(&format!("{id}-h14"))
                .namespaces(&[ns])
                .domain("vendörs.example")
                .build(),
            r#"spec.domain: Invalid value: "vendörs.example""#,
        ),
        (
            "quote in a group name",
            vendor(&format!("{id}-h15"))
                .namespaces(&[ns])
                .accounts_group("V1' or displayName eq 'x")
                .build(),
            r#"spec.accountsGroup.displayName: Invalid value: "V1' or displayName eq 'x""#,
        ),
        (
            "over-long group name",
            vendor(&format!("{id}-h16"))
                .namespaces(&[ns])
                .accounts_group(&"G".repeat(121))
                .build(),
            r#"spec.accountsGroup.displayName: Too long: may not be more than 120 bytes"#,
        ),
        (
            "over-long VendorTenant name",
            vendor(&format!("{id}-{}", "n".repeat(60)))
                .namespaces(&[ns])
                .build(),
            r#"a VendorTenant name is at most 63 characters"#,
        ),
        (
            "filter syntax in an engineer UPN",
            vendor(&format!("{id}-h18"))
                .namespaces(&[ns])
                .engineers(&["alice@abc.example' or 'x"])
                .build(),
            r#"spec.supportEngineers.members[0]: Invalid value: "alice@abc.example' or 'x""#,
        ),
        (
            "not a GUID as vendorTenantId",
            vendor(&format!("{id}-h19"))
                .namespaces(&[ns])
                .vendor_tenant_id("not-a-guid")
                .build(),
            r#"spec.vendorTenantId: Invalid value: "not-a-guid""#,
        ),
        (
            "no allowed namespace at all",
            vendor(&format!("{id}-h20")).build(),
            r#"allowedNamespaces needs at least one name or a selector"#,
        ),
    ]
}

fn segment_cases(id: &str) -> Vec<Case> {
    vec![
        (
            "barrier filter injection in a value",
            segment(&format!("{id}-h21"))
                .members_with("Department", "Finance' -or Department -eq 'x")
                .build(),
            r#"spec.members.userAttribute.value: Invalid value: "Finance' -or Department -eq 'x""#,
        ),
        (
            "command substitution in a value",
            segment(&format!("{id}-h22"))
                .members_with("Department", "$(whoami)")
                .build(),
            r#"spec.members.userAttribute.value: Invalid value: "$(whoami)""#,
        ),
        (
            "filter syntax in a MemberOf group id",
            segment(&format!("{id}-h23"))
                .members_of_group("x' -or MemberOf -ne '1")
                .build(),
            r#"spec.members.groupId: Invalid value: "x' -or MemberOf -ne '1""#,
        ),
        (
            "semicolon in a segment name",
            segment(&format!("{id}-h24"))
                .segment_name("a;Remove-OrganizationSegment")
                .members_of_group(ANY_GROUP)
                .build(),
            r#"spec.segmentName: Invalid value: "a;Remove-OrganizationSegment""#,
        ),
        (
            "a segment blocking itself",
            segment(&format!("{id}-h25"))
                .members_of_group(ANY_GROUP)
                .blocks(&[&format!("{id}-h25")])
                .build(),
            r#"a segment cannot block itself"#,
        ),
    ]
}

/// A manifest the operator must refuse: (name, namespace, manifest, the condition's reason).
type Refusal = (String, Option<String>, Value, &'static str);

/// Manifests the operator must refuse.
fn operator_refusals(b: &Baseline) -> Vec<Refusal> {
    let mut refusals = license_refusals(b);
    refusals.extend(segment_and_vendor_refusals(&b.id, &b.ns, &b.v));
    refusals
}

fn license_refusals(b: &Baseline) -> Vec<Refusal> {
    let Baseline { id, v, g, owned, .. } = b;
    let (ns, other) = (b.ns.clone(), b.other.clone());
    let l = |name: &str| license(&ns, name).vendor(v);
    vec![
        (
            format!("{id}-r1"),
            Some(other.clone()),
            license(&other, &format!("{id}-r1")).vendor(v).build(),
            "NamespaceNotAllowed",
        ),
        (
            format!("{id}-r2"),
            Some(ns.clone()),
            license(&ns, &format!("{id}-r2"))
                .vendor(&format!("{id}-nobody"))
                .build(),
            "VendorNotFound",
        ),
        (
            format!("{id}-r3"),
            Some(ns.clone()),
            l(&format!("{id}-r3")).credentials_secret("foreign").build(),
            "SecretConflict",
        ),
        (
            format!("{id}-r4"),
            Some(ns.clone()),
            l(&format!("{id}-r4")).upn("carol.engineer@abc.example").build(),
            "OutsideVendorDomain",
        ),
        (
            format!("{id}-r5"),
            Some(ns.clone()),
            l(&format!("{id}-r5"))
                .upn(&upn(owned))
                .adoption("AdoptOrCreate")
                .build(),
            "Conflict",
        ),
        (
            format!("{id}-r6"),
            Some(ns.clone()),
            l(&format!("{id}-r6")).licenses(&["NOT_A_SKU"]).build(),
            "LicenseNotOffered",
        ),
        (
            format!("{id}-r7"),
            Some(ns.clone()),
            license(&ns, &format!("{id}-r7"))
                .vendor(g)
                .licenses(&["SPE_E5"])
                .build(),
            "LicenseOverrideRefused",
        ),
        (
            format!("{id}-r8"),
            Some(ns.clone()),
            l(&format!("{id}-r8")).adoption("AdoptOnly").build(),
            "AdoptionNotAllowed",
        ),
    ]
}

fn segment_and_vendor_refusals(id: &str, ns: &str, v: &str) -> Vec<Refusal> {
    vec![
        (
            format!("{id}-r9"),
            None,
            segment(&format!("{id}-r9"))
                .vendor_accounts("nobody-at-all")
                .build(),
            "MembersUnresolved",
        ),
        (
            format!("{id}-r10"),
            None,
            segment(&format!("{id}-r10"))
                .members_of_group(ANY_GROUP)
                .allows(&[&format!("{id}-ghost")])
                .build(),
            "UnknownSegment",
        ),
        (
            format!("{id}-r11"),
            None,
            vendor(&format!("{id}-r11"))
                .namespaces(&[ns])
                .no_generated_segments()
                .accounts_group(&format!("{v}_RemoteAssistUser"))
                .engineers_group(&format!("{v}_SupportEngineer"))
                .build(),
            "Conflict",
        ),
    ]
}

/// A settled baseline: a vendor with one Ready account, and a Group-mode vendor; a Secret the
/// operator does not own.
struct Baseline {
    id: String,
    ns: String,
    other: String,
    v: String,
    g: String,
    owned: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn hostile_manifests_are_refused_and_change_nothing_in_the_tenant() {
    let mut env = Env::start("hostile").await;
    let b = baseline(&mut env).await;
    let admission = refused_at_admission(&env, &b);
    let refused = refused_by_the_operator(&env, &b).await;
    println!(
        "hostile inputs: {admission} refused at admission, {refused} refused by the operator, 0 tenant writes"
    );
    quotes_are_escaped(&env, &b).await;
}

async fn baseline(env: &mut Env) -> Baseline {
    let (ns, other) = (env.namespace("a"), env.namespace("b"));
    let id = env.id.clone();
    let v = format!("{id}-v");
    let g = format!("{id}-g");
    env.apply(
        vendor(&v)
            .namespaces(&[&ns])
            .barriers_not_required()
            .engineers(&["alice.engineer@abc.example"]),
    );
    env.apply(
        vendor(&g)
            .namespaces(&[&ns])
            .barriers_not_required()
            .no_generated_segments()
            .license_mode("Group"),
    );
    let owned = format!("{id}-owned");
    env.apply(license(&ns, &owned).vendor(&v));
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
    Baseline {
        id,
        ns,
        other,
        v,
        g,
        owned,
    }
}

/// Part 1: refused at admission, each with its own message. Returns how many.
fn refused_at_admission(env: &Env, b: &Baseline) -> usize {
    let admission = admission_cases(&b.id, &b.ns, &b.other, &b.v);
    for (what, manifest, expected) in &admission {
        let run = env.try_apply(manifest);
        assert!(!run.ok, "admission accepted {what}:\n{manifest}");
        assert!(
            run.stderr.contains(expected),
            "{what}: expected {expected:?} in:\n{}",
            run.stderr
        );
    }
    admission.len()
}

/// Part 2: refused by the operator, with a condition; nothing written to the tenant. Returns
/// how many.
async fn refused_by_the_operator(env: &Env, b: &Baseline) -> usize {
    env.settle().await;
    let before = env.tenant_writes().await;
    let refused = operator_refusals(b);
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
    refused.len()
}

/// Part 3: quotes that are allowed are escaped, never interpreted.
async fn quotes_are_escaped(env: &Env, b: &Baseline) {
    let Baseline { id, ns, v, .. } = b;
    let quoted = format!("{id}-quoted");
    env.apply(license(ns, &quoted).vendor(v).mail_nickname("o'brien"));
    env.wait_condition(RAL, Some(ns), &quoted, "Ready", "True", None)
        .await;
    assert!(
        env.user("o'brien@vendors.abc.example").await.is_some(),
        "the UPN is exactly o'brien@…"
    );
}
