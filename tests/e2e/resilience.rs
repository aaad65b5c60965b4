//! End to end: drift made in the tenant behind the operator's back, the operator killed in the
//! middle of convergence, and a slow, throttling, lagging, flaky tenant.

use crate::env::Env;
use crate::fixtures::{license, upn, vendor};
use serde_json::json;
use std::time::Duration;

const RAL: &str = "remoteassistlicense";

async fn drift_event(env: &Env, ns: &str, name: &str, needle: &str) {
    env.wait_for(
        &format!("a DriftCorrected Event about '{needle}'"),
        Duration::from_secs(30),
        async || {
            env.events(ns, name)
                .iter()
                .any(|e| e.starts_with("DriftCorrected:") && e.contains(needle))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn drift_of_each_kind_is_corrected_and_reported() {
    let mut env = Env::start("drift").await;
    let ns = env.namespace("a");
    let (open, barred) = (format!("{}-open", env.id), format!("{}-barred", env.id));
    env.apply(vendor(&open).namespaces(&[&ns]).barriers_not_required());
    // No BarrierSegment will ever hold this vendor's accounts, so its barrier is never enforced.
    env.apply(vendor(&barred).namespaces(&[&ns]).no_generated_segments());
    let (t, b) = (format!("{}-t", env.id), format!("{}-b", env.id));
    env.apply(license(&ns, &t).vendor(&open));
    env.apply(license(&ns, &b).vendor(&barred));
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &t, "Ready", "True", None)
        .await;
    env.wait_condition(RAL, Some(&ns), &b, "BarrierEnforced", "False", None)
        .await;
    let user = env.user(&upn(&t)).await.unwrap();
    let id = user["id"].as_str().unwrap().to_owned();
    license_and_group_drift(&env, &ns, &t, &open).await;
    sign_in_and_attribute_drift(&env, &ns, &t, &open).await;
    enabled_without_a_barrier(&env, &ns, &b).await;
    deleted_by_hand(&env, &ns, &t, &id).await;
}

/// A licence removed, and the account removed from its group.
async fn license_and_group_drift(env: &Env, ns: &str, t: &str, open: &str) {
    let portal = env.portal();
    let user = env.user(&upn(t)).await.unwrap();
    let id = user["id"].as_str().unwrap().to_owned();
    let group = env.get("vendortenant", None, open).unwrap()["status"]["accountsGroupId"]
        .as_str()
        .unwrap()
        .to_owned();
    let ra_sku = user["assignedLicenses"][0]["skuId"].as_str().unwrap().to_owned();

    // A licence removed.
    portal
        .assign_user_licenses(&id, &[], std::slice::from_ref(&ra_sku))
        .await
        .unwrap();
    env.wait_for("licence restored", Duration::from_secs(30), async || {
        env.user(&upn(t)).await.unwrap()["assignedLicenses"]
            .as_array()
            .unwrap()
            .len()
            == 3
    })
    .await;
    drift_event(env, ns, t, "assign 1 licence").await;

    // Removed from the accounts group.
    portal.remove_member(&group, &id).await.unwrap();
    env.wait_for("back in the group", Duration::from_secs(30), async || {
        env.user(&upn(t)).await.unwrap()["groups"]
            .as_array()
            .unwrap()
            .contains(&json!(group))
    })
    .await;
    drift_event(env, ns, t, "add to group").await;
}

/// Sign-in disabled, and the barrier attribute cleared.
async fn sign_in_and_attribute_drift(env: &Env, ns: &str, t: &str, open: &str) {
    let portal = env.portal();
    let id = env.user(&upn(t)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Disabled by hand: enabled again (it is licensed and needs no barrier).
    portal
        .update_user(&id, &json!({"accountEnabled": false}))
        .await
        .unwrap();
    env.wait_for("re-enabled", Duration::from_secs(30), async || {
        env.user(&upn(t)).await.unwrap()["accountEnabled"] == true
    })
    .await;
    drift_event(env, ns, t, "enable sign-in").await;

    // Barrier attribute cleared: restored.
    portal
        .update_user(
            &id,
            &json!({"onPremisesExtensionAttributes": {"extensionAttribute15": null}}),
        )
        .await
        .unwrap();
    env.wait_for("attribute restored", Duration::from_secs(30), async || {
        env.user(&upn(t)).await.unwrap()["onPremisesExtensionAttributes"]["extensionAttribute15"]
            == format!("{open}-accounts")
    })
    .await;
    drift_event(env, ns, t, "update user (barrier attribute)").await;
}

/// Enabled by hand while its barrier is not enforced: disabled again.
async fn enabled_without_a_barrier(env: &Env, ns: &str, b: &str) {
    let portal = env.portal();
    let bid = env.user(&upn(b)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    portal
        .update_user(&bid, &json!({"accountEnabled": true}))
        .await
        .unwrap();
    env.wait_for("disabled again", Duration::from_secs(30), async || {
        env.user(&upn(b)).await.unwrap()["accountEnabled"] == false
    })
    .await;
    env.wait_for("a Disabled Event", Duration::from_secs(30), async || {
        env.events(ns, b).iter().any(|e| e.contains("disable sign-in"))
    })
    .await;
}

/// Deleted: restored from deleted items with the same object id.
async fn deleted_by_hand(env: &Env, ns: &str, t: &str, id: &str) {
    env.portal().delete_user(id).await.unwrap();
    env.wait_for("user restored", Duration::from_secs(30), async || {
        env.user(&upn(t))
            .await
            .is_some_and(|u| u["id"] == id && u["accountEnabled"] == true)
    })
    .await;
    env.wait_for("a UserRestored Event", Duration::from_secs(30), async || {
        env.events(ns, t)
            .iter()
            .any(|e| e.contains(&format!("restore deleted user {id}")))
    })
    .await;
    env.wait_condition(RAL, Some(ns), t, "Ready", "True", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn killed_mid_convergence_it_restarts_without_duplicates_or_lost_passwords() {
    let mut env = Env::start("crash").await;
    let ns = env.namespace("a");
    let vendors = [format!("{}-v1", env.id), format!("{}-v2", env.id)];
    for v in &vendors {
        env.apply(vendor(v).namespaces(&[&ns]).barriers_not_required());
    }
    // Each Graph request takes 30 ms, so the kills land in the middle of the work.
    let settings = json!({"latencyMs": 30});
    env.settings(settings).await;
    let names: Vec<String> = (1..=12).map(|i| format!("{}-t{i:02}", env.id)).collect();
    for (i, n) in names.iter().enumerate() {
        env.apply(license(&ns, n).vendor(&vendors[i % 2]));
    }
    let mut kills = 0;
    for threshold in [4, 12, 24] {
        env.start_operator();
        env.wait_for(
            &format!("{threshold} Graph writes"),
            Duration::from_secs(60),
            async || env.counters().await["writes"].as_u64().unwrap() >= threshold,
        )
        .await;
        env.kill_operator();
        kills += 1;
    }
    env.start_operator();
    for n in &names {
        env.wait_condition(RAL, Some(&ns), n, "Ready", "True", None).await;
    }
    let users = env.managed_users().await;
    assert_eq!(
        users.len(),
        names.len(),
        "one user per licence, no duplicates after {kills} kills"
    );
    for n in &names {
        let u = env.user(&upn(n)).await.unwrap();
        let status = env.get(RAL, Some(&ns), n).unwrap()["status"].clone();
        assert_eq!(status["userId"], u["id"], "{n} bound to its user");
        let password = env.secret_password(&ns, &format!("{n}-credentials")).unwrap();
        assert!(
            env.password_works(&upn(n), &password).await,
            "{n}: the Secret's password works"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_slow_throttling_lagging_flaky_tenant_still_converges() {
    let mut env = Env::start("chaos").await;
    // Resyncs at a pace the tiny throttling budget below can sustain once converged.
    env.resync = "20s";
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(
        vendor(&v)
            .namespaces(&[&ns])
            .barriers_not_required()
            .license_mode("Group"),
    );
    let v2 = format!("{}-w", env.id);
    env.apply(vendor(&v2).namespaces(&[&ns]).barriers_not_required());
    let settings = json!({
        "latencyMs": 20, "jitterMs": 20, "errorRate": 0.05, "replicationDelayMs": 1500,
        "throttling": {"enabled": true, "resourceUnitsPer10s": 40, "omitRetryAfterRate": 0.3},
    });
    env.settings(settings).await;
    // Spend nearly all of the app's budget first (13 x 3 units of 40), so the operator starts
    // into throttling however few requests it needs.
    let operator_app = env.operator_directory();
    for _ in 0..13 {
        operator_app.graph.get("/subscribedSkus").await.unwrap();
    }
    let names: Vec<(String, &String)> = (1..=4)
        .map(|i| (format!("{}-t{i}", env.id), if i % 2 == 0 { &v } else { &v2 }))
        .collect();
    for (n, vendor) in &names {
        env.apply(license(&ns, n).vendor(vendor));
    }
    env.start_operator();
    for (n, _) in &names {
        env.wait_condition(RAL, Some(&ns), n, "Ready", "True", None).await;
    }
    let counters = env.counters().await;
    println!("chaos run: {counters}");
    assert!(
        counters["throttled"].as_u64().unwrap() > 0,
        "the tenant did throttle: {counters}"
    );
    assert_eq!(env.managed_users().await.len(), names.len());
}
