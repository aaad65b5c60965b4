//! Helpers for tests against the local API server that `scripts/testenv.sh start` runs.
//! `scripts/test.sh` exports KUBECONFIG and puts the matching kubectl first on PATH.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod e2e;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    // The checkout the tests run from (cargo sets this when it runs them), not the one they were
    // compiled in: a shared target directory may hold a binary built from another checkout.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The outcome of one kubectl run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG")
        .expect("KUBECONFIG is not set: these tests need the local API server. Run them with scripts/test.sh")
}

/// Runs kubectl with `args`, feeding `stdin` if given.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl must be on PATH");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("kubectl runs").into()
}

/// Runs kubectl and panics with its output unless it succeeds.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let run = kubectl(args, stdin);
    assert!(run.ok, "kubectl {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}

/// Whether `kubectl auth can-i <args>` says yes for the user of `kubeconfig`. A "no" is false;
/// anything else (an unreachable server, a bad kubeconfig, an unknown resource) fails the
/// test, because an error is not a denial.
pub fn can_i(kubeconfig: &str, args: &[&str]) -> bool {
    let mut all = vec!["--kubeconfig", kubeconfig, "auth", "can-i"];
    all.extend_from_slice(args);
    let run = kubectl(&all, None);
    assert!(
        !run.stderr.contains("doesn't have a resource type"),
        "kubectl auth can-i {args:?}: unknown resource: {}",
        run.stderr
    );
    match run.stdout.trim() {
        "yes" if run.ok => true,
        answer if answer == "no" || answer.starts_with("no - ") => false,
        other => panic!(
            "kubectl auth can-i {args:?} gave neither yes nor no: {other:?}\n{}",
            run.stderr
        ),
    }
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

/// Creates a namespace if it does not exist yet.
pub fn ensure_namespace(name: &str) {
    let manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
    kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
}

/// Every YAML file under `dir`, sorted by name.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

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
