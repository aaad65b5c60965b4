//! End to end: what a platform team operates. `/metrics`, `/healthz` and `/readyz` of the
//! running binary, graceful shutdown on SIGTERM, and leader election: a standby replica takes
//! over when the leader stops.

mod common;

use common::e2e::{Env, license, upn, vendor};
use std::time::Duration;

const RAL: &str = "remoteassistlicense";
/// The namespace the chart installs into; its Role grants the Lease.
const LEASE_NAMESPACE: &str = "remote-assist-operator";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn metrics_health_and_readiness_are_served_and_sigterm_stops_cleanly() {
    let mut env = Env::start("ops").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(&vendor(&v, &[&ns], "  barriers: {required: false}\n"));
    let name = format!("{}-t", env.id);
    env.apply(&license(&ns, &name, &v, ""));
    env.start_operator();
    env.wait_for("/healthz", Duration::from_secs(30), async || {
        env.operator_http("/healthz").await.0 == 200
    })
    .await;
    env.wait_for("/readyz", Duration::from_secs(30), async || {
        env.operator_http("/readyz").await.0 == 200
    })
    .await;
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    let needles = [
        "remoteassist_reconciles_total{kind=\"RemoteAssistLicense\",result=\"ok\"}",
        "remoteassist_reconcile_duration_seconds_count{kind=\"VendorTenant\"}",
        "remoteassist_graph_requests_total{method=\"POST\",route=\"/users\",status=\"201\"} 1",
        "remoteassist_graph_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"}",
        "remoteassist_compliance_requests_total{cmdlet=\"New-OrganizationSegment\"",
        "remoteassist_seats_free{sku=\"MICROSOFT_REMOTE_ASSIST\"} 9999",
        "remoteassist_accounts{state=\"ready\"} 1",
        "remoteassist_graph_throttled_total 0",
        "remoteassist_leader 1",
    ];
    // Seats are read by the vendor's next reconcile after the account is licensed: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let (status, text) = env.operator_http("/metrics").await;
        let missing: Vec<&&str> = needles.iter().filter(|n| !text.contains(**n)).collect();
        if status == 200 && missing.is_empty() {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing {missing:?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!text.contains(&upn(&name)), "no account names in metrics");
    assert!(env.terminate(0), "SIGTERM ends the operator with exit status 0");
    assert!(env.operator_log().contains("controllers stopped"));
}

fn lease_holder(name: &str) -> Option<String> {
    let run = common::kubectl(
        &[
            "get",
            "lease",
            "-n",
            LEASE_NAMESPACE,
            name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    (run.ok && !run.stdout.is_empty()).then_some(run.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_standby_replica_takes_over_when_the_leader_stops() {
    let mut env = Env::start("ha").await;
    common::ensure_namespace(LEASE_NAMESPACE);
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(&vendor(&v, &[&ns], "  barriers: {required: false}\n"));
    let lease = format!("{}-lease", env.id);
    let replica = |id: &'static str| {
        vec![
            "--leader-election-namespace".to_string(),
            LEASE_NAMESPACE.to_string(),
            "--leader-election-name".to_string(),
            lease.clone(),
            "--leader-election-lease-duration".to_string(),
            "3s".to_string(),
            "--instance".to_string(),
            id.to_string(),
        ]
    };
    let a = replica("replica-a");
    let (first, _) = env.spawn_operator(&a.iter().map(String::as_str).collect::<Vec<_>>());
    env.wait_for("replica-a leads", Duration::from_secs(30), async || {
        lease_holder(&lease).as_deref() == Some("replica-a")
    })
    .await;
    let b = replica("replica-b");
    let (_, standby_port) = env.spawn_operator(&b.iter().map(String::as_str).collect::<Vec<_>>());
    let one = format!("{}-one", env.id);
    env.apply(&license(&ns, &one, &v, ""));
    env.wait_condition(RAL, Some(&ns), &one, "Ready", "True", None)
        .await;
    // The standby is ready (it could take over) while it does not lead.
    env.wait_for("the standby's /readyz", Duration::from_secs(30), async || {
        env.operator_http("/readyz").await.0 == 200
    })
    .await;
    assert_eq!(env.metrics_port, Some(standby_port));
    assert!(
        env.operator_http("/metrics")
            .await
            .1
            .contains("remoteassist_leader 0")
    );

    // The leader dies without a word (SIGKILL): the lease lapses and the standby takes over.
    env.kill_one(first);
    env.wait_for("replica-b leads", Duration::from_secs(30), async || {
        lease_holder(&lease).as_deref() == Some("replica-b")
    })
    .await;
    let two = format!("{}-two", env.id);
    env.apply(&license(&ns, &two, &v, ""));
    env.wait_condition(RAL, Some(&ns), &two, "Ready", "True", None)
        .await;
    assert!(
        env.user(&upn(&two)).await.is_some(),
        "the new leader created the second account"
    );
}
