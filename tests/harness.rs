//! The end-to-end harness itself: its helpers must not turn an error into absence, a status of
//! an older generation into a met condition, or a hung process into a hung suite.

mod common;

use common::env::{Env, current, terminate_within};
use common::fixtures::{license, upn, vendor};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::panic::AssertUnwindSafe;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RAL: &str = "remoteassistlicense";

#[test]
fn a_condition_of_an_older_generation_is_not_current() {
    let obj = |generation: i64, observed: i64| {
        json!({
            "metadata": {"generation": generation},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "Converged", "observedGeneration": observed},
            ]},
        })
    };
    assert_eq!(
        current(&obj(2, 2), "Ready"),
        Some(("True".into(), "Converged".into()))
    );
    assert_eq!(current(&obj(3, 2), "Ready"), None, "written for generation 2");
    assert_eq!(current(&obj(2, 2), "AccountReady"), None, "no such condition");
    let unstamped = json!({"metadata": {"generation": 1}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Converged"},
    ]}});
    assert_eq!(current(&unstamped, "Ready"), None, "no observedGeneration");
}

/// Starts `sh -c <script>`; the script says `trapped` once its trap is set, and this returns
/// then (a TERM before the trap would end the shell at once).
fn shell_with_trap(script: &str) -> Child {
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "trapped\n", "the shell set its trap");
    child
}

#[test]
fn a_process_that_ignores_sigterm_fails_within_the_bound() {
    let stubborn = shell_with_trap("trap '' TERM; echo trapped; sleep 60");
    let start = Instant::now();
    let outcome = terminate_within(stubborn, Duration::from_secs(1));
    assert!(
        outcome.as_ref().is_err_and(|e| e.contains("after SIGTERM")),
        "{outcome:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());

    let polite = shell_with_trap("trap 'exit 0' TERM; echo trapped; while :; do sleep 0.05; done");
    assert_eq!(terminate_within(polite, Duration::from_secs(5)), Ok(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn get_tells_not_found_from_an_error() {
    let env = Env::start_without_cluster("harness-get").await;
    assert_eq!(env.get("namespace", None, &format!("{}-none", env.id)), None);
    assert!(env.get("namespace", None, "default").is_some());
    let unknown = std::panic::catch_unwind(AssertUnwindSafe(|| env.get("nosuchkinds", None, "x")));
    assert!(unknown.is_err(), "an unknown kind is an error, not absence");
    let denied = std::panic::catch_unwind(AssertUnwindSafe(|| env.get("secret", Some("kube-system"), "x/y")));
    assert!(denied.is_err(), "an invalid name is an error, not absence");
}

#[test]
#[ignore = "needs the local API server: run with scripts/test.sh"]
fn the_rbac_probe_tells_no_from_an_error() {
    let kubeconfig = std::env::var("KUBECONFIG").expect("scripts/test.sh sets KUBECONFIG");
    assert!(common::can_i::can_i(&kubeconfig, &["get", "namespaces"]));
    let sa = "--as=system:serviceaccount:default:nobody";
    assert!(!common::can_i::can_i(&kubeconfig, &["get", "secrets", sa]));
    // A server that is not there, and a resource that does not exist, are not a "no".
    let dir = common::repo_root().join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let unreachable = dir.join("unreachable.kubeconfig");
    std::fs::write(
        &unreachable,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let down = std::panic::catch_unwind(|| {
        common::can_i::can_i(unreachable.to_str().unwrap(), &["get", "secrets", sa])
    });
    assert!(down.is_err(), "an unreachable server is not a no");
    let unknown = std::panic::catch_unwind(|| common::can_i::can_i(&kubeconfig, &["get", "nosuchkinds", sa]));
    assert!(unknown.is_err(), "an unknown resource is not a no");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_ready_status_of_the_previous_spec_does_not_satisfy_a_wait() {
    let mut env = Env::start("harness-gen").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    let name = format!("{}-t", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
    env.apply(license(&ns, &name).vendor(&v));
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    env.kill_operator();
    // A new spec while nobody reconciles: the old Ready=True is still in status.
    env.apply(
        license(&ns, &name)
            .vendor(&v)
            .display_name(&format!("Renamed technician {name}")),
    );
    assert_eq!(
        env.condition(RAL, Some(&ns), &name, "Ready"),
        Some(("True".into(), "Converged".into())),
        "the old status is still there"
    );
    assert_eq!(env.current_condition(RAL, Some(&ns), &name, "Ready"), None);
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    let user = env.user(&upn(&name)).await.unwrap();
    assert_eq!(user["displayName"], format!("Renamed technician {name}"));

    // The quiet-rounds helper counts writes made inside its rounds: a hand-made change (and
    // the operator's correction of it) is seen, a settled tenant is quiet. Settled includes the
    // vendor's generated barriers: the account is Ready without them (not required), but their
    // definitions and application may still be under way.
    for side in ["accounts", "engineers"] {
        let segment = format!("{v}-{side}");
        env.wait_condition("barriersegment", None, &segment, "PolicyApplied", "True", None)
            .await;
    }
    env.no_writes_over(2).await;
    let id = user["id"].as_str().unwrap().to_owned();
    let drift = async {
        let patch = json!({"department": "Hand-edited"});
        env.portal().update_user(&id, &patch).await.unwrap();
    };
    let writes = env.writes_during(2, drift).await;
    assert!(writes >= 1, "the hand-made write was counted: {writes}");
}
