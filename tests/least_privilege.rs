//! The operator's rights are the chart's RBAC and nothing more: `scripts/test.sh` installs the
//! chart's ServiceAccount and roles and hands the end-to-end suite a kubeconfig with a
//! TokenRequest token for it (OPERATOR_KUBECONFIG). Here: what it needs is granted, and verbs it
//! does not need are absent.

mod common {
    pub mod can_i;
    pub mod kubectl;
}

fn can_i(args: &[&str]) -> bool {
    let kubeconfig = std::env::var("OPERATOR_KUBECONFIG")
        .expect("OPERATOR_KUBECONFIG is set by scripts/test.sh (scripts/operator-kubeconfig.sh)");
    common::can_i::can_i(&kubeconfig, args)
}

#[test]
#[ignore = "needs the local API server: run with scripts/test.sh"]
fn the_operator_gets_what_it_uses_and_nothing_more() {
    for granted in [
        &["watch", "remoteassistlicenses.remoteassist.dev", "-A"][..],
        // `TYPE/NAME` would ask about an object named `status`: the subresource is a flag.
        &["patch", "vendortenants.remoteassist.dev", "--subresource=status"],
        // Owner references with blockOwnerDeletion (a licence owns its credentials Secret, a
        // VendorTenant its generated BarrierSegments), on API servers with the
        // OwnerReferencesPermissionEnforcement admission plugin (scripts/testenv.sh enables it).
        &[
            "update",
            "remoteassistlicenses.remoteassist.dev",
            "--subresource=finalizers",
            "-n",
            "vendor-v1",
        ],
        &[
            "update",
            "vendortenants.remoteassist.dev",
            "--subresource=finalizers",
        ],
        &["create", "barriersegments.remoteassist.dev"],
        &["create", "secrets", "-n", "vendor-v1"],
        &["delete", "secrets", "-n", "vendor-v1"],
        &["get", "namespaces"],
        &["create", "events.events.k8s.io", "-n", "vendor-v1"],
        &[
            "update",
            "leases.coordination.k8s.io",
            "-n",
            "remote-assist-operator",
        ],
    ] {
        assert!(can_i(granted), "the operator needs {granted:?}");
    }
    for denied in [
        &["list", "secrets", "-A"][..],
        &["watch", "secrets", "-n", "vendor-v1"],
        &["delete", "vendortenants.remoteassist.dev"],
        // Nothing is owned by a BarrierSegment.
        &[
            "update",
            "barriersegments.remoteassist.dev",
            "--subresource=finalizers",
        ],
        &["delete", "remoteassistlicenses.remoteassist.dev", "-A"],
        &[
            "create",
            "remoteassistlicenses.remoteassist.dev",
            "-n",
            "vendor-v1",
        ],
        &["list", "namespaces"],
        &["get", "configmaps", "-A"],
        &["update", "leases.coordination.k8s.io", "-n", "kube-system"],
        &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
    ] {
        assert!(!can_i(denied), "the operator must not be able to {denied:?}");
    }
}
