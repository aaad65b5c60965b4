//! End to end: what a platform team operates. `/metrics`, `/healthz` and `/readyz` of the
//! running binary, graceful shutdown on SIGTERM, and leader election: a standby replica takes
//! over when the leader stops.

use crate::clock::until_ok;
use crate::env::Env;
use crate::fixtures::{license, upn, vendor};
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
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
    let name = format!("{}-t", env.id);
    env.apply(license(&ns, &name).vendor(&v));
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
    let needles: Vec<String> = [
        "remoteassist_reconciles_total{kind=\"RemoteAssistLicense\",result=\"ok\"}",
        "remoteassist_reconcile_duration_seconds_count{kind=\"VendorTenant\"}",
        "remoteassist_graph_requests_total{method=\"POST\",route=\"/users\",status=\"201\"} 1",
        // Users are read by listing (the directory view), not always one by one.
        "remoteassist_graph_requests_total{method=\"GET\",route=\"/users\",status=\"200\"}",
        "remoteassist_compliance_requests_total{cmdlet=\"New-OrganizationSegment\"",
        "remoteassist_seats_free{sku=\"MICROSOFT_REMOTE_ASSIST\"} 9999",
        "remoteassist_graph_throttled_total 0",
        "remoteassist_graph_budget_used_ratio{bucket=\"writes\"}",
        "remoteassist_graph_budget_capacity{bucket=\"writes\",window_seconds=\"150\"} 2850",
        "remoteassist_graph_budget_consumed_total{bucket=\"writes\"}",
        "remoteassist_account_ready_seconds_count 1",
        // How full the batcher's sends are (it sent at least the create).
        "remoteassist_graph_batch_size_count",
        "remoteassist_policy_application_state{state=",
        "remoteassist_leader 1",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        format!("remoteassist_accounts{{vendor=\"{v}\",state=\"ready\",reason=\"Converged\"}} 1"),
        format!("remoteassist_account_not_ready_oldest_seconds{{vendor=\"{v}\"}} 0"),
    ])
    .collect();
    // Seats are read by the vendor's next reconcile after the account is licensed: wait for it.
    let text = until_ok(Duration::from_secs(30), async || {
        let (status, text) = env.operator_http("/metrics").await;
        let missing: Vec<&String> = needles.iter().filter(|n| !text.contains(n.as_str())).collect();
        if status == 200 && missing.is_empty() {
            return Ok(text);
        }
        Err(format!("missing {missing:?} in\n{text}"))
    })
    .await;
    assert!(!text.contains(&upn(&name)), "no account names in metrics");
    assert!(env.terminate(0), "SIGTERM ends the operator with exit status 0");
    assert!(env.operator_log().contains("controllers stopped"));
}

fn lease_holder(name: &str) -> Option<String> {
    let run = crate::kubectl::kubectl(
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
    crate::namespace::ensure_namespace(LEASE_NAMESPACE);
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
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
    env.apply(license(&ns, &one).vendor(&v));
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
    env.apply(license(&ns, &two).vendor(&v));
    env.wait_condition(RAL, Some(&ns), &two, "Ready", "True", None)
        .await;
    assert!(
        env.user(&upn(&two)).await.is_some(),
        "the new leader created the second account"
    );
}

/// A kubeconfig for a new ServiceAccount bound to a ClusterRole with exactly `rules` (YAML).
fn limited_kubeconfig(env: &Env, ns: &str, rules: &str) -> std::path::PathBuf {
    let name = format!("{}-limited", env.id);
    let manifest = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  namespace: {ns}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\nrules:\n{rules}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {name}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {name}}}\nsubjects: [{{kind: ServiceAccount, name: {name}, namespace: {ns}}}]\n"
    );
    env.apply(&manifest);
    let token = crate::cluster::kubectl_ok(&["create", "token", &name, "-n", ns], None);
    let view = |path: &str| {
        crate::cluster::kubectl_ok(
            &[
                "config",
                "view",
                "--raw",
                "--minify",
                "-o",
                &format!("jsonpath={path}"),
            ],
            None,
        )
    };
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{}', certificate-authority-data: '{}'}}}}]\nusers: [{{name: u, user: {{token: '{}'}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n",
        view("{.clusters[0].cluster.server}"),
        view("{.clusters[0].cluster.certificate-authority-data}"),
        token.trim()
    );
    let path = crate::repo::repo_root().join(format!("target/e2e/{name}.kubeconfig"));
    std::fs::write(&path, kubeconfig).unwrap();
    path
}

/// The value of one series in a Prometheus text exposition, 0 when it is absent.
fn series(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// After a restart the licence cache is empty until it has listed; a VendorTenant being deleted
/// must not read that as "no licences left". Here the restarted operator cannot list licences at
/// all (its role lacks them): the watch error is logged and counted, and the vendor's groups
/// survive every cleanup pass until the licences are really gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_vendor_deleted_across_a_restart_keeps_its_groups_until_its_licenses_are_gone() {
    let mut env = Env::start("restart").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
    let name = format!("{}-t", env.id);
    env.apply(license(&ns, &name).vendor(&v));
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    env.wait_condition("vendortenant", None, &v, "Ready", "True", None)
        .await;
    let status = env.get("vendortenant", None, &v).unwrap()["status"].clone();
    let groups: Vec<String> = ["accountsGroupId", "engineersGroupId"]
        .iter()
        .filter_map(|k| status[k].as_str().map(str::to_owned))
        .collect();
    assert!(!groups.is_empty(), "{status}");
    let present = async |env: &Env| {
        let state = env.state().await;
        let ids: Vec<&str> = state["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["id"].as_str())
            .collect();
        groups.iter().filter(|g| ids.contains(&g.as_str())).count()
    };

    // Suspended, so no enabled account holds the vendor's groups: only the licence itself does.
    env.apply(license(&ns, &name).vendor(&v).suspended(true));
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "False", Some("Suspended"))
        .await;

    // Restarted with every right but the licences' during the vendor's deletion.
    env.kill_operator();
    let full = env.kubeconfig.clone();
    env.kubeconfig = limited_kubeconfig(
        &env,
        &ns,
        "- apiGroups: [remoteassist.dev]\n  resources: [vendortenants, vendortenants/status, vendortenants/finalizers, barriersegments, barriersegments/status]\n  verbs: [get, list, watch, patch, update, create, delete]\n- apiGroups: ['']\n  resources: [namespaces]\n  verbs: [get]\n- apiGroups: [events.k8s.io]\n  resources: [events]\n  verbs: [create, patch]\n",
    );
    crate::cluster::kubectl_ok(&["delete", "vendortenant", &v, "--wait=false"], None);
    env.start_operator();
    let forbidden = "remoteassist_watch_errors_total{kind=\"RemoteAssistLicense\",watch=\"controller\",error=\"InitialListFailed\"}";
    let waiting = "remoteassist_reconciles_total{kind=\"VendorTenant\",result=\"waiting\"}";
    env.wait_for(
        "the forbidden licence list counted, and three cleanup passes",
        Duration::from_secs(90),
        async || {
            let (status, text) = env.operator_http("/metrics").await;
            let passes = status == 200 && series(&text, forbidden) > 0.0 && series(&text, waiting) >= 3.0;
            // The vendor gone is the failure itself: said below rather than timed out.
            passes || env.get("vendortenant", None, &v).is_none()
        },
    )
    .await;
    assert_eq!(
        present(&env).await,
        groups.len(),
        "the groups survive while licences may exist"
    );
    assert!(env.get("vendortenant", None, &v).is_some(), "the vendor waits");
    let log = env.operator_log();
    assert!(
        log.lines().any(|l| l.contains("watch failed")
            && l.contains("RemoteAssistLicense")
            && l.contains("forbidden")),
        "the watch error is logged with its kind and the API server's words"
    );

    // Back with its rights: the licence goes first, then the vendor and its groups.
    env.kill_operator();
    env.kubeconfig = full;
    env.start_operator();
    crate::cluster::kubectl_ok(&["delete", RAL, "-n", &ns, &name, "--timeout=60s"], None);
    env.wait_for("the vendor gone", Duration::from_secs(60), async || {
        env.get("vendortenant", None, &v).is_none()
    })
    .await;
    assert_eq!(present(&env).await, 0, "its groups deleted after its licences");
}

/// `kubectl describe` of a refused licence shows its recent Events, and every reason there is
/// one `docs/troubleshooting.md` explains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn describe_shows_recent_events_with_documented_reasons() {
    let mut env = Env::start("describe").await;
    let allowed = env.namespace("a");
    let other = env.namespace("b");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&allowed]).barriers_not_required());
    let name = format!("{}-t", env.id);
    env.apply(license(&other, &name).vendor(&v));
    env.start_operator();
    env.wait_condition(
        RAL,
        Some(&other),
        &name,
        "Ready",
        "False",
        Some("NamespaceNotAllowed"),
    )
    .await;
    let described = until_ok(Duration::from_secs(30), async || {
        let out = crate::cluster::kubectl_ok(&["describe", RAL, "-n", &other, &name], None);
        match out.split_once("\nEvents:") {
            Some((_, events)) if events.contains("NamespaceNotAllowed") => Ok(events.to_owned()),
            _ => Err(format!("no NamespaceNotAllowed Event in:\n{out}")),
        }
    })
    .await;
    let troubleshooting = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/troubleshooting.md"),
    )
    .unwrap();
    // Rows: `Type  Reason  Age  From  Message`, after the header and its underline.
    let reasons: Vec<&str> = described
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            matches!(cells.first(), Some(&("Normal" | "Warning"))).then(|| cells[1])
        })
        .collect();
    assert!(!reasons.is_empty(), "no Event rows in:\n{described}");
    for reason in &reasons {
        assert!(
            troubleshooting.contains(&format!("`{reason}`")),
            "the Event reason {reason} is not in docs/troubleshooting.md"
        );
    }
    println!("describe shows Events {reasons:?}, each documented");
}
