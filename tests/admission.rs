//! Admission against the real local API server: the CRDs install and become Established, every
//! example is accepted, and a table of invalid manifests is refused with the expected message
//! while the stored objects stay as they were.
//!
//! Needs the local API server: run through `scripts/test.sh`.

mod common {
    pub mod cluster;
    pub mod examples;
    pub mod kubectl;
    pub mod namespace;
    pub mod repo;
    pub mod yaml_files;
}

use common::cluster::{crd_names, install_crds, kubectl_ok};
use common::examples::apply_examples;
use common::kubectl::kubectl;
use common::namespace::ensure_namespace;
use common::repo::repo_root;
use common::yaml_files::yaml_files;

const NS: &str = "admission-tests";

fn vendor(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: remoteassist.dev/v1alpha1\nkind: VendorTenant\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

const VENDOR_SPEC: &str = "  displayName: Vendor\n  domain: vendors.abc.example\n  allowedNamespaces:\n    names: [admission-tests]\n";

fn segment(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: remoteassist.dev/v1alpha1\nkind: BarrierSegment\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

fn license(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: remoteassist.dev/v1alpha1\nkind: RemoteAssistLicense\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n{spec}"
    )
}

const LICENSE_SPEC: &str =
    "  vendorRef:\n    name: v1\n  displayName: Technician\n  mailNickname: tech-1\n  usageLocation: US\n";

/// One invalid manifest. `before` is applied first (and must be accepted) for update cases.
struct Case {
    what: &'static str,
    before: Option<String>,
    manifest: String,
    expect: &'static str,
}

fn create(what: &'static str, manifest: String, expect: &'static str) -> Case {
    Case {
        what,
        before: None,
        manifest,
        expect,
    }
}

fn update(what: &'static str, before: String, manifest: String, expect: &'static str) -> Case {
    Case {
        what,
        before: Some(before),
        manifest,
        expect,
    }
}

#[rustfmt::skip] // one case per line reads as a table
fn cases() -> Vec<Case> {
    let seg_ok = "  members:\n    vendorAccounts: v1\n  allowedSegments: [other]\n";
    vec![
        create("vendor without allowedNamespaces", vendor("adm-01", "  displayName: V\n  domain: vendors.abc.example\n"), "spec.allowedNamespaces: Required value"),
        create("vendor allowing no namespace", vendor("adm-02", "  displayName: V\n  domain: vendors.abc.example\n  allowedNamespaces:\n    names: []\n"), "allowedNamespaces needs at least one name or a selector"),
        create("domain in upper case", vendor("adm-03", "  displayName: V\n  domain: Vendors.ABC.example\n  allowedNamespaces:\n    names: [a]\n"), "spec.domain: Invalid value"),
        create("vendor tenant id not a GUID", vendor("adm-04", &format!("{VENDOR_SPEC}  vendorTenantId: not-a-guid\n")), "spec.vendorTenantId: Invalid value"),
        create("both groups with one name", vendor("adm-05", &format!("{VENDOR_SPEC}  accountsGroup:\n    displayName: adm-05_SupportEngineer\n")), "the accounts group and the support engineers group must have different names"),
        create("unknown licence mode", vendor("adm-06", &format!("{VENDOR_SPEC}  licenseMode: Hybrid\n")), "spec.licenseMode: Unsupported value: \"Hybrid\""),
        create("engineer that is not a UPN", vendor("adm-07", &format!("{VENDOR_SPEC}  supportEngineers:\n    members: [alice]\n")), "spec.supportEngineers.members[0]: Invalid value"),
        create("the same SKU twice", vendor("adm-08", &format!("{VENDOR_SPEC}  licenses:\n  - skuPartNumber: SPE_E5\n  - skuPartNumber: SPE_E5\n")), "duplicate entries for key [skuPartNumber=\"SPE_E5\"]"),
        create("quote in a group name (OData injection)", vendor("adm-09", &format!("{VENDOR_SPEC}  accountsGroup:\n    displayName: \"V1' or displayName eq 'x\"\n")), "spec.accountsGroup.displayName: Invalid value"),
        create("vendor name too long for derived names", vendor(&format!("adm-10-{}", "x".repeat(60)), VENDOR_SPEC), "a VendorTenant name is at most 63 characters"),
        update("domain changed", vendor("adm-11", VENDOR_SPEC), vendor("adm-11", &VENDOR_SPEC.replace("vendors.abc", "other.abc")), "domain is immutable"),
        create("segment both allowing and blocking", segment("adm-12", "  members:\n    vendorAccounts: v1\n  allowedSegments: [a]\n  blockedSegments: [b]\n"), "allowedSegments and blockedSegments are mutually exclusive"),
        create("segment blocking itself", segment("adm-13", "  members:\n    vendorAccounts: v1\n  blockedSegments: [adm-13]\n"), "a segment cannot block itself"),
        create("segment with no member source", segment("adm-14", "  members: {}\n"), "members needs exactly one of"),
        create("segment with two member sources", segment("adm-15", "  members:\n    vendorAccounts: v1\n    vendorEngineers: v1\n"), "members needs exactly one of"),
        update("policy type changed", segment("adm-16", seg_ok), segment("adm-16", "  members:\n    vendorAccounts: v1\n  blockedSegments: [other]\n"), "the policy type cannot change after creation"),
        update("segment renamed", segment("adm-17", &format!("  segmentName: Seg17\n{seg_ok}")), segment("adm-17", &format!("  segmentName: Seg17b\n{seg_ok}")), "segmentName is immutable"),
        create("filter syntax in an attribute value", segment("adm-18", "  members:\n    userAttribute:\n      attribute: Department\n      value: \"Finance' -or Department -ne 'x\"\n"), "spec.members.userAttribute.value: Invalid value"),
        create("MemberOf by value instead of groupId", segment("adm-19", "  members:\n    userAttribute:\n      attribute: MemberOf\n      value: V1\n"), "spec.members.userAttribute.attribute: Unsupported value: \"MemberOf\""),
        create("UK is not an ISO country code", license("adm-20", &LICENSE_SPEC.replace("US", "UK")), "spec.usageLocation: Unsupported value: \"UK\""),
        create("country code in lower case", license("adm-21", &LICENSE_SPEC.replace("US", "us")), "spec.usageLocation: Unsupported value: \"us\""),
        create("nickname with @ and space", license("adm-22", &LICENSE_SPEC.replace("tech-1", "\"tech 1@x\"")), "spec.mailNickname: Invalid value"),
        create("nickname with two dots", license("adm-23", &LICENSE_SPEC.replace("tech-1", "tech..1")), "mailNickname cannot contain two dots in a row"),
        create("malformed UPN", license("adm-24", &format!("{LICENSE_SPEC}  userPrincipalName: tech1@@vendors\n")), "spec.userPrincipalName: Invalid value"),
        create("unknown deletion policy", license("adm-25", &format!("{LICENSE_SPEC}  deletionPolicy: Purge\n")), "spec.deletionPolicy: Unsupported value: \"Purge\""),
        create("Secret name that is not a Kubernetes name", license("adm-26", &format!("{LICENSE_SPEC}  credentialsSecretName: Bad_Name\n")), "spec.credentialsSecretName: Invalid value"),
        create("licence without vendorRef", license("adm-27", "  displayName: T\n  mailNickname: t\n  usageLocation: US\n"), "spec.vendorRef: Required value"),
        update("vendorRef changed", license("adm-28", LICENSE_SPEC), license("adm-28", &LICENSE_SPEC.replace("name: v1", "name: v2")), "vendorRef is immutable"),
        update("UPN changed", license("adm-29", &format!("{LICENSE_SPEC}  userPrincipalName: a@vendors.abc.example\n")), license("adm-29", &format!("{LICENSE_SPEC}  userPrincipalName: b@vendors.abc.example\n")), "userPrincipalName is immutable once set"),
        update("UPN removed", license("adm-30", &format!("{LICENSE_SPEC}  userPrincipalName: a@vendors.abc.example\n")), license("adm-30", LICENSE_SPEC), "userPrincipalName cannot be removed once set"),
        update("nickname changed while it derives the UPN", license("adm-31", LICENSE_SPEC), license("adm-31", &LICENSE_SPEC.replace("tech-1", "tech-2")), "mailNickname cannot change while it determines the user principal name"),
    ]
}

fn kind_and_name(manifest: &str) -> (String, String) {
    let doc: serde_json::Value = serde_saphyr::from_str(manifest).unwrap();
    (
        doc["kind"].as_str().unwrap().to_lowercase(),
        doc["metadata"]["name"].as_str().unwrap().to_owned(),
    )
}

fn stored_spec(kind: &str, name: &str) -> Option<String> {
    let run = kubectl(&["get", "-n", NS, kind, name, "-o", "jsonpath={.spec}"], None);
    run.ok.then_some(run.stdout)
}

#[test]
#[ignore = "needs the local API server: run scripts/test.sh"]
fn invalid_manifests_are_rejected_and_nothing_is_lost() {
    install_crds();
    ensure_namespace(NS);
    let cases = cases();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for case in &cases {
        let (kind, name) = kind_and_name(&case.manifest);
        if let Some(before) = &case.before {
            kubectl_ok(
                &["apply", "--server-side", "--field-manager=test", "-f", "-"],
                Some(before),
            );
        }
        let stored_before = stored_spec(&kind, &name);
        let run = kubectl(
            &["apply", "--server-side", "--field-manager=test", "-f", "-"],
            Some(&case.manifest),
        );
        if run.ok {
            failures.push(format!(
                "{}: accepted, expected refusal with {:?}",
                case.what, case.expect
            ));
        } else if !run.stderr.contains(case.expect) {
            failures.push(format!(
                "{}: refused, but without {:?}:\n{}",
                case.what, case.expect, run.stderr
            ));
        }
        if stored_spec(&kind, &name) != stored_before {
            failures.push(format!("{}: the stored object changed", case.what));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
#[ignore = "needs the local API server: run scripts/test.sh"]
fn crds_are_established() {
    install_crds();
    for name in crd_names() {
        let status = kubectl_ok(
            &[
                "get",
                "crd",
                name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ],
            None,
        );
        assert_eq!(status, "True", "{name} is not Established");
    }
}

#[test]
#[ignore = "needs the local API server: run scripts/test.sh"]
fn every_example_is_accepted() {
    let out = apply_examples();
    let dir = repo_root().join("deploy/examples");
    for file in yaml_files(&dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap() {
            let name = doc["metadata"]["name"].as_str().unwrap();
            assert!(
                out.contains(&format!("/{name} serverside-applied")),
                "{name} from {} not applied:\n{out}",
                file.display()
            );
        }
    }
}

#[test]
#[ignore = "needs the local API server: run scripts/test.sh"]
fn the_tester_user_has_no_rights_until_granted() {
    install_crds();
    let run = kubectl(&["--context=tester", "get", "vendortenants"], None);
    assert!(
        !run.ok && run.stderr.contains("forbidden"),
        "tester should be forbidden: {}",
        run.stderr
    );
}
