//! What a platform team sees with kubectl: the `remoteassist` category lists all three kinds
//! with their printer columns, status written through the status subresource shows up in those
//! columns (`-o wide` adds the Ready condition's message), the vendor field selector works, and `kubectl explain` teaches the fields.
//!
//! Needs the local API server: run through `scripts/test.sh`.

mod common {
    pub mod cluster;
    pub mod examples;
    pub mod kubectl;
    pub mod repo;
}

use common::cluster::{install_crds, kubectl_ok};
use kube::api::{Api, Patch, PatchParams};
use remote_assist_operator::crd::RemoteAssistLicense;
use serde_json::json;

fn apply_examples() {
    common::examples::apply_examples();
}

#[tokio::test]
#[ignore = "needs the local API server: run scripts/test.sh"]
async fn get_remoteassist_lists_all_kinds_with_columns_from_status() {
    apply_examples();
    let client = kube::Client::try_default().await.expect("client from KUBECONFIG");
    let api: Api<RemoteAssistLicense> = Api::namespaced(client, "vendor-v1");
    let status = json!({
        "apiVersion": "remoteassist.dev/v1alpha1", "kind": "RemoteAssistLicense",
        "status": {
            "observedGeneration": 1,
            "userPrincipalName": "v1-tech-01@vendors.abc.example",
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "WaitingForBarrier",
                "message": "BarrierEnforced: policies not applied yet",
                "lastTransitionTime": "2026-11-27T00:00:00Z", "observedGeneration": 1,
            }],
        },
    });
    api.patch_status(
        "v1-tech-01",
        &PatchParams::apply("kubectl-experience-test").force(),
        &Patch::Apply(&status),
    )
    .await
    .expect("status subresource accepts a status");

    let out = kubectl_ok(&["get", "remoteassist", "-A"], None);
    for header in [
        "DOMAIN", "ACCOUNTS", "SEGMENT", "POLICY", "UPN", "VENDOR", "READY", "REASON", "AGE",
    ] {
        assert!(out.contains(header), "no {header} column in:\n{out}");
    }
    for name in [
        "vendortenant.remoteassist.dev/v1",
        "barriersegment.remoteassist.dev/v2-accounts",
        "remoteassistlicense.remoteassist.dev/v2-tech-01",
    ] {
        assert!(out.contains(name), "{name} not listed in:\n{out}");
    }

    let row = kubectl_ok(
        &["get", "ral", "-n", "vendor-v1", "v1-tech-01", "--no-headers"],
        None,
    );
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..5],
        [
            "v1-tech-01",
            "v1-tech-01@vendors.abc.example",
            "v1",
            "False",
            "WaitingForBarrier"
        ],
        "row: {row}"
    );
    assert!(
        !row.contains("policies not applied yet"),
        "the message is a wide column only: {row}"
    );

    let wide = kubectl_ok(
        &["get", "ral", "-n", "vendor-v1", "v1-tech-01", "-o", "wide"],
        None,
    );
    let (header, row) = wide.split_once('\n').expect("a header and a row");
    assert!(
        header.trim_end().ends_with("MESSAGE"),
        "MESSAGE is the last wide column: {header}"
    );
    assert!(
        row.trim_end()
            .ends_with("BarrierEnforced: policies not applied yet"),
        "the Ready condition's message in -o wide: {wide}"
    );
}

#[test]
#[ignore = "needs the local API server: run scripts/test.sh"]
fn field_selector_on_vendor() {
    apply_examples();
    let out = kubectl_ok(
        &[
            "get",
            "ral",
            "-A",
            "--field-selector",
            "spec.vendorRef.name=v2",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(out.trim(), "remoteassistlicense.remoteassist.dev/v2-tech-01");
}

#[test]
#[ignore = "needs the local API server: run scripts/test.sh"]
fn explain_teaches_the_fields() {
    install_crds();
    let cases = [
        ("vt.spec.licenseMode", "group-based licensing"),
        ("vendortenant.spec.allowedNamespaces", "A licence in any"),
        ("vt.spec.barriers.membershipAttribute", "ExtensionAttribute15"),
        (
            "bs.spec.allowedSegments",
            "Mutually exclusive with `blockedSegments`",
        ),
        ("barriersegment.spec.members", "Exactly one source"),
        (
            "ral.spec.deletionPolicy",
            "An adopted user (one the\noperator did not create) is never deleted",
        ),
        ("ral.spec.usageLocation", "ISO 3166-1 alpha-2"),
        ("remoteassistlicense.status.conditions", "Ready"),
    ];
    for (path, text) in cases {
        let out = kubectl_ok(&["explain", path], None);
        let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat(&out).contains(&flat(text)),
            "`kubectl explain {path}` lacks {text:?}:\n{out}"
        );
    }
}
