//! `kubectl auth can-i`, read strictly.

use super::kubectl::kubectl;

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
