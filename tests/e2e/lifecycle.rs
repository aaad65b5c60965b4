//! End to end: the operator binary against the local API server and a simulated tenant.
//! Two vendors through the whole lifecycle, a refused namespace, adoption, deletion policies.

use crate::env::Env;
use crate::fixtures::{license, upn, vendor};
use serde_json::Value;
use std::time::Duration;

const RAL: &str = "remoteassistlicense";
const VT: &str = "vendortenant";

fn group_named<'a>(state: &'a Value, name: &str) -> Option<&'a Value> {
    state["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["displayName"] == name)
}

/// Two vendors, A with direct licences, B with group licensing, and three licences for each:
/// (namespace, name, vendor).
struct TwoVendors {
    va: String,
    vb: String,
    names: Vec<(String, String, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn two_vendors_converge_and_are_removed_cleanly() {
    let mut env = Env::start("life").await;
    let two = converge(&mut env).await;
    let counters = env.counters().await;
    println!(
        "two-vendor scenario (2 vendors, 6 accounts) converged with {} Graph HTTP requests ({} writes, {} token requests)",
        counters["httpRequests"], counters["writes"], counters["tokenRequests"]
    );
    each_account_is_complete_in_the_tenant(&env, &two).await;
    idle_resyncs_write_nothing(&env, &two, &counters).await;
    deletion_removes_the_users_then_the_groups(&env, &two).await;
}

async fn converge(env: &mut Env) -> TwoVendors {
    let (na, nb) = (env.namespace("a"), env.namespace("b"));
    let (va, vb) = (format!("{}-va", env.id), format!("{}-vb", env.id));
    // A: direct licences, no barrier requirement. B: group licensing.
    env.apply(
        vendor(&va)
            .namespaces(&[&na])
            .barriers_not_required()
            .engineers(&["alice.engineer@abc.example"]),
    );
    env.apply(
        vendor(&vb)
            .namespaces(&[&nb])
            .barriers_not_required()
            .license_mode("Group")
            .engineers(&["bob.engineer@abc.example"]),
    );
    let names: Vec<(String, String, String)> = (1..=3)
        .flat_map(|i| {
            [
                (na.clone(), format!("{}-a{i}", env.id), va.clone()),
                (nb.clone(), format!("{}-b{i}", env.id), vb.clone()),
            ]
        })
        .collect();
    for (ns, name, v) in &names {
        env.apply(license(ns, name).vendor(v));
    }
    env.start_operator();
    for (ns, name, _) in &names {
        env.wait_condition(RAL, Some(ns), name, "Ready", "True", Some("Converged"))
            .await;
    }
    for v in [&va, &vb] {
        env.wait_for("vendor roll-up 3/3", Duration::from_secs(30), async || {
            env.get(VT, None, v)
                .is_some_and(|o| o["status"]["accounts"]["summary"] == "3/3")
        })
        .await;
        assert_eq!(env.condition(VT, None, v, "Ready").unwrap().0, "True");
    }
    TwoVendors { va, vb, names }
}

/// The tenant: each account enabled, marked, in its group, licensed; passwords work.
async fn each_account_is_complete_in_the_tenant(env: &Env, two: &TwoVendors) {
    let TwoVendors { va, vb, names } = two;
    let state = env.state().await;
    let group_a = group_named(&state, &format!("{va}_RemoteAssistUser")).expect("group A");
    let group_b = group_named(&state, &format!("{vb}_RemoteAssistUser")).expect("group B");
    assert_eq!(
        group_b["assignedLicenses"].as_array().unwrap().len(),
        3,
        "group B carries the licences"
    );
    for (ns, name, v) in names {
        let u = env.user(&upn(name)).await.expect("user exists");
        assert_eq!(u["accountEnabled"], true, "{name}");
        assert!(
            u["employeeType"]
                .as_str()
                .unwrap()
                .starts_with("remoteassist.dev/")
        );
        assert_eq!(
            u["onPremisesExtensionAttributes"]["extensionAttribute15"],
            format!("{v}-accounts")
        );
        assert_eq!(u["assignedLicenses"].as_array().unwrap().len(), 3, "{name}");
        let group = if v == va { group_a } else { group_b };
        assert!(
            u["groups"].as_array().unwrap().contains(&group["id"]),
            "{name} in its group"
        );
        let password = env
            .secret_password(ns, &format!("{name}-credentials"))
            .expect("Secret");
        assert!(
            env.password_works(&upn(name), &password).await,
            "the password in the Secret works"
        );
        let status = env.get(RAL, Some(ns), name).unwrap()["status"].clone();
        assert_eq!(status["userId"], u["id"]);
        assert_eq!(status["createdByOperator"], true);
        let text = status.to_string();
        assert!(!text.contains(&password), "no password in status");
    }
    let engineers = group_named(&state, &format!("{va}_SupportEngineer")).unwrap();
    let alice = env.user("alice.engineer@abc.example").await.unwrap();
    let members: Vec<&Value> = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["groups"].as_array().unwrap().contains(&engineers["id"]))
        .collect();
    assert_eq!(members.len(), 1, "exactly the listed engineer");
    assert_eq!(members[0]["id"], alice["id"]);
}

/// Idle: resyncs read the tenant but write nothing, and status is not rewritten. `counters`
/// are the tenant's at convergence.
async fn idle_resyncs_write_nothing(env: &Env, two: &TwoVendors, counters: &Value) {
    let names = &two.names;
    let versions = |env: &Env| -> Vec<String> {
        names
            .iter()
            .map(|(ns, n, _)| env.get(RAL, Some(ns), n).unwrap()["metadata"]["resourceVersion"].to_string())
            .collect()
    };
    let before = versions(env);
    let (reads, writes) = (
        counters["httpRequests"].as_u64().unwrap(),
        counters["writes"].as_u64().unwrap(),
    );
    // Each resync round lists the managed users once.
    let listings = async || -> u64 {
        let c = env.counters().await;
        c["byRoute"]["GET /v1.0/users"]
            .as_object()
            .map_or(0, |by_status| by_status.values().filter_map(Value::as_u64).sum())
    };
    let listed = listings().await;
    env.wait_for("two resync rounds", Duration::from_secs(30), async || {
        listings().await >= listed + 2
    })
    .await;
    assert!(
        env.counters().await["httpRequests"].as_u64().unwrap() > reads,
        "resyncs read the tenant"
    );
    assert_eq!(
        env.counters().await["writes"].as_u64().unwrap(),
        writes,
        "no Graph writes at steady state"
    );
    assert_eq!(versions(env), before, "no status writes at steady state");
}

/// Deletion (policy Delete): users go to deleted items, then the vendors' groups go.
async fn deletion_removes_the_users_then_the_groups(env: &Env, two: &TwoVendors) {
    let TwoVendors { va, vb, names } = two;
    for (ns, name, _) in names {
        crate::cluster::kubectl_ok(&["delete", RAL, "-n", ns, name, "--wait=false"], None);
    }
    for (ns, name, _) in names {
        env.wait_for("licence deleted", Duration::from_secs(60), async || {
            env.get(RAL, Some(ns), name).is_none()
        })
        .await;
        assert!(env.user(&upn(name)).await.is_none(), "{name} deleted");
        assert!(
            env.get("secret", Some(ns), &format!("{name}-credentials"))
                .is_none(),
            "Secret removed"
        );
    }
    let deleted = env.state().await["deletedUsers"].as_array().unwrap().len();
    assert_eq!(deleted, 6, "restorable in deleted items");
    for v in [va, vb] {
        crate::cluster::kubectl_ok(&["delete", VT, v, "--wait=false"], None);
        env.wait_for("vendor deleted", Duration::from_secs(60), async || {
            env.get(VT, None, v).is_none()
        })
        .await;
    }
    let state = env.state().await;
    assert!(
        group_named(&state, &format!("{va}_RemoteAssistUser")).is_none(),
        "operator-created groups deleted"
    );
    assert!(
        group_named(&state, "ABC_AllSupport").is_some(),
        "other groups untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_namespace_the_vendor_does_not_allow_is_refused_and_nothing_is_created() {
    let mut env = Env::start("nsref").await;
    let (allowed, other) = (env.namespace("ok"), env.namespace("no"));
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&allowed]).barriers_not_required());
    let name = format!("{}-intruder", env.id);
    env.apply(license(&other, &name).vendor(&v));
    env.start_operator();
    env.wait_condition(
        RAL,
        Some(&other),
        &name,
        "AccountReady",
        "False",
        Some("NamespaceNotAllowed"),
    )
    .await;
    assert_eq!(
        env.condition(RAL, Some(&other), &name, "Ready").unwrap(),
        ("False".into(), "NamespaceNotAllowed".into())
    );
    assert!(env.user(&upn(&name)).await.is_none(), "no user created");
    assert!(
        env.get("secret", Some(&other), &format!("{name}-credentials"))
            .is_none(),
        "no Secret written"
    );
    env.wait_for(
        "a NamespaceNotAllowed Event",
        Duration::from_secs(30),
        async || {
            env.events(&other, &name)
                .iter()
                .any(|e| e.starts_with("NamespaceNotAllowed:") && e.contains(&other))
        },
    )
    .await;
    // Deleting it needs nothing from the tenant.
    crate::cluster::kubectl_ok(&["delete", RAL, "-n", &other, &name, "--timeout=60s"], None);
}
