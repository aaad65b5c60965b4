//! Secrets never leave their Secret: the whole lifecycle (create, rotate, suspend, delete) with
//! trace-level logs, and then no generated password and no client secret may appear in the
//! operator's logs, in Events, in any status, or in the metrics.

mod common;

use common::e2e::{Env, OPERATOR_SECRET, license, vendor};
use common::kubectl_ok;
use std::time::Duration;

const RAL: &str = "remoteassistlicense";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn no_password_or_client_secret_appears_outside_its_secret() {
    let mut env = Env::start("secret").await;
    env.log_filter = "trace";
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(&vendor(&v, &[&ns], ""));
    let names: Vec<String> = (1..=2).map(|i| format!("{}-t{i}", env.id)).collect();
    for n in &names {
        env.apply(&license(&ns, n, &v, ""));
    }
    env.start_operator();
    let mut passwords = Vec::new();
    for n in &names {
        env.wait_condition(RAL, Some(&ns), n, "Ready", "True", None).await;
        passwords.push(env.secret_password(&ns, &format!("{n}-credentials")).unwrap());
    }
    // Rotate one: both the old and the new password must stay secret.
    kubectl_ok(
        &[
            "annotate",
            RAL,
            "-n",
            &ns,
            &names[0],
            "remoteassist.dev/rotate-credentials=1",
        ],
        None,
    );
    let first = passwords[0].clone();
    env.wait_for("a rotated password", Duration::from_secs(30), async || {
        env.secret_password(&ns, &format!("{}-credentials", names[0]))
            .is_some_and(|p| p != first)
    })
    .await;
    passwords.push(
        env.secret_password(&ns, &format!("{}-credentials", names[0]))
            .unwrap(),
    );
    let metrics = env.operator_http("/metrics").await.1;
    let statuses = kubectl_ok(&["get", "remoteassist", "-A", "-o", "yaml"], None);
    let events = kubectl_ok(&["get", "events", "-n", &ns, "-o", "yaml"], None);
    kubectl_ok(&["delete", RAL, "-n", &ns, &names[1], "--timeout=60s"], None);
    assert!(env.terminate(0));
    let log = env.operator_log();
    assert!(
        log.lines().count() > 200,
        "trace logging was on ({} lines)",
        log.lines().count()
    );
    for (what, text) in [
        ("logs", &log),
        ("Events", &events),
        ("status", &statuses),
        ("metrics", &metrics),
    ] {
        for p in &passwords {
            assert!(
                !text.contains(p.as_str()),
                "a generated password appears in the {what}"
            );
        }
        assert!(
            !text.contains(OPERATOR_SECRET),
            "the client secret appears in the {what}"
        );
    }
}
