//! kubectl that must succeed, and the committed CRDs installed in the local API server.

use super::kubectl::kubectl;
use super::repo::repo_root;
use std::sync::OnceLock;

/// Runs kubectl and panics with its output unless it succeeds.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let run = kubectl(args, stdin);
    assert!(run.ok, "kubectl {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}

/// Installs the committed CRDs (once per test binary) and waits until they are Established.
pub fn install_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = repo_root().join("crds");
        kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                dir.to_str().unwrap(),
            ],
            None,
        );
        for name in crd_names() {
            kubectl_ok(
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    &format!("crd/{name}"),
                ],
                None,
            );
        }
    });
}

pub fn crd_names() -> [&'static str; 3] {
    [
        "vendortenants.remoteassist.dev",
        "barriersegments.remoteassist.dev",
        "remoteassistlicenses.remoteassist.dev",
    ]
}
