//! The prerequisite checks at start-up: a failed one is in `/readyz`'s body (which stays 200:
//! the operator keeps working and reporting) and in a Warning Event on every VendorTenant.

use crate::env::Env;
use crate::fixtures::vendor;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_failed_prerequisite_is_in_readyz_and_in_an_event_on_each_vendor() {
    let mut env = Env::start("prereq").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]));
    // The operator's app loses its directory role: passwords could not be set.
    env.sim.sim.roles.lock().unwrap().assignments.clear();
    env.start_operator();
    let mut body = String::new();
    env.wait_for("the checks in /readyz", Duration::from_secs(60), async || {
        let (status, text) = env.operator_http("/readyz").await;
        body = text;
        status == 200 && body.contains("checks:")
    })
    .await;
    assert!(
        body.contains("[   FAIL] a directory role to set the accounts' passwords"),
        "{body}"
    );
    assert!(
        body.contains("[   pass] admin consent for the Information Barrier Processor"),
        "{body}"
    );
    env.wait_for(
        "a PrerequisiteFailed Event",
        Duration::from_secs(30),
        async || {
            env.events("default", &v)
                .iter()
                .any(|e| e.starts_with("PrerequisiteFailed: password-role:"))
        },
    )
    .await;
}
