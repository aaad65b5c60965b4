//! The examples under `deploy/examples/`, applied to the local API server.

use super::cluster::{install_crds, kubectl_ok};
use super::repo::repo_root;

/// Installs the CRDs and applies every example under `deploy/examples/`; returns kubectl's output.
pub fn apply_examples() -> String {
    install_crds();
    let dir = repo_root().join("deploy/examples");
    kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=examples",
            "-f",
            dir.to_str().unwrap(),
        ],
        None,
    )
}
