//! The attack table, compliance-endpoint rows (rule 7, fail closed on the endpoint's data): a
//! policies application whose time or status cannot be read never counts as applied, so the
//! account it would cover stays disabled — while the operator runs and after it restarts and
//! recovers the history from the endpoint. The .NET `/Date(ms)/` form is a real form, read
//! correctly, also in recovery.

use crate::env::Env;
use crate::fixtures::{license, upn, vendor};
use serde_json::{Value, json};
use std::time::Duration;

const RAL: &str = "remoteassistlicense";
const BS: &str = "barriersegment";
const LONG: Duration = Duration::from_secs(120);

/// Applications that completed in the tenant (its truth, not what the endpoint answers).
async fn completed(env: &Env) -> usize {
    let b = env.admin(reqwest::Method::GET, "/barriers", None).await;
    b["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["Status"] == "Completed")
        .count()
}

async fn applications(env: &Env) -> usize {
    let b = env.admin(reqwest::Method::GET, "/barriers", None).await;
    b["applications"].as_array().unwrap().len()
}

async fn timeline(env: &Env, account: &str) -> Value {
    env.admin(reqwest::Method::GET, "/barriers/timeline", None).await[upn(account).as_str()].clone()
}

/// Waits until the tenant completes one more application than it has now: the operator has
/// been through a whole round of asking, following and judging.
async fn one_more_completion(env: &Env, what: &str) {
    let before = completed(env).await;
    env.wait_for(what, LONG, async || completed(env).await > before)
        .await;
}

/// The account exists, disabled, was never enabled, and its barrier does not count as
/// enforced; the accounts segment's policy does not count as applied.
async fn stays_closed(env: &Env, ns: &str, account: &str, vendor: &str, when: &str) {
    let enforced = env.condition(RAL, Some(ns), account, "BarrierEnforced").unwrap();
    assert_ne!(enforced.0, "True", "{when}: BarrierEnforced {enforced:?}");
    let user = env.user(&upn(account)).await.expect("the account exists");
    assert_eq!(user["accountEnabled"], false, "{when}: {user}");
    let t = timeline(env, account).await;
    assert!(t["enabledAt"].is_null(), "{when}: never enabled: {t}");
    let applied = env
        .condition(BS, None, &format!("{vendor}-accounts"), "PolicyApplied")
        .unwrap();
    assert_ne!(applied.0, "True", "{when}: PolicyApplied {applied:?}");
    println!("{when}: BarrierEnforced={enforced:?} PolicyApplied={applied:?}");
}

/// The operator has settled when the tenant sees no write for this long ([`Env::quiet_for`]:
/// a time, not resync rounds, so a pending policy application is seen too).
const QUIET: Duration = Duration::from_secs(5);

/// The account's BarrierEnforced condition: status, reason and transition time.
fn barrier_enforced(env: &Env, ns: &str, account: &str) -> Value {
    let obj = env.get(RAL, Some(ns), account).unwrap();
    let c = obj["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "BarrierEnforced")
        .unwrap()
        .clone();
    json!([c["status"], c["reason"], c["lastTransitionTime"]])
}

async fn scenario(env: &mut Env) -> (String, String, String) {
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(
        vendor(&v)
            .namespaces(&[&ns])
            .engineers(&["alice.engineer@abc.example"]),
    );
    let account = format!("{}-acct", env.id);
    env.apply(license(&ns, &account).vendor(&v));
    (ns, v, account)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn an_unreadable_creation_time_never_enables_an_account_even_across_a_restart() {
    let mut env = Env::start("atk-ep-time").await;
    env.settings(json!({"applicationAnswers": {"times": "unparseable"}}))
        .await;
    let (ns, v, account) = scenario(&mut env).await;
    env.start_operator();
    // The tenant does apply the barrier over the account; its answers just cannot say when.
    env.wait_for("the tenant's barrier to cover the account", LONG, async || {
        timeline(&env, &account).await["barrierSince"].is_string()
    })
    .await;
    one_more_completion(&env, "another application to complete").await;
    stays_closed(&env, &ns, &account, &v, "running").await;

    // A restart recovers the history from the same answers: still nothing counts.
    env.kill_operator();
    env.start_operator();
    one_more_completion(&env, "an application after the restart").await;
    one_more_completion(&env, "a second application after the restart").await;
    stays_closed(&env, &ns, &account, &v, "after a restart").await;
    let message = env.get(BS, None, &format!("{v}-accounts")).unwrap()["status"]["conditions"].to_string();
    assert!(message.contains("UnreadableAnswer"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn an_unreadable_status_never_counts_as_applied() {
    let mut env = Env::start("atk-ep-status").await;
    env.settings(json!({"applicationAnswers": {"status": "missing"}}))
        .await;
    let (ns, v, account) = scenario(&mut env).await;
    env.start_operator();
    env.wait_for("the tenant's barrier to cover the account", LONG, async || {
        timeline(&env, &account).await["barrierSince"].is_string()
    })
    .await;
    one_more_completion(&env, "another application to complete").await;
    stays_closed(&env, &ns, &account, &v, "status missing").await;
    // Unreadable values, not just missing ones, the same.
    env.settings(json!({"applicationAnswers": {"status": "unparseable", "times": "missing"}}))
        .await;
    one_more_completion(&env, "an application answered with unreadable values").await;
    stays_closed(&env, &ns, &account, &v, "status unreadable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn dotnet_times_are_a_real_form_read_also_in_recovery() {
    let mut env = Env::start("atk-ep-msdate").await;
    env.settings(json!({"applicationAnswers": {"times": "msDate"}}))
        .await;
    let (ns, v, account) = scenario(&mut env).await;
    env.start_operator();
    env.wait_condition(
        RAL,
        Some(&ns),
        &account,
        "BarrierEnforced",
        "True",
        Some("Enforced"),
    )
    .await;
    env.wait_condition(RAL, Some(&ns), &account, "Ready", "True", None)
        .await;
    env.quiet_for(QUIET, LONG).await;
    let before = barrier_enforced(&env, &ns, &account);
    let apps = applications(&env).await;

    // Recovery reads the history in the same form: the applied run is found and dated, so
    // nothing is re-applied and the account stays enabled.
    env.kill_operator();
    env.start_operator();
    env.wait_for("the restarted operator to be ready", LONG, async || {
        env.operator_http("/readyz").await.0 == 200
    })
    .await;
    env.quiet_for(QUIET, LONG).await;
    assert_eq!(
        applications(&env).await,
        apps,
        "no application was needed after the restart"
    );
    assert_eq!(
        barrier_enforced(&env, &ns, &account),
        before,
        "BarrierEnforced did not move"
    );
    let user = env.user(&upn(&account)).await.unwrap();
    assert_eq!(user["accountEnabled"], true, "{user}");
    let t = timeline(&env, &account).await;
    let (enabled, since): (k8s_openapi::jiff::Timestamp, k8s_openapi::jiff::Timestamp) = (
        t["enabledAt"].as_str().unwrap().parse().unwrap(),
        t["barrierSince"].as_str().unwrap().parse().unwrap(),
    );
    assert!(since <= enabled, "enabled only behind its barrier: {t}");
    assert_eq!(
        env.condition(BS, None, &format!("{v}-accounts"), "PolicyApplied")
            .unwrap()
            .0,
        "True"
    );
}
