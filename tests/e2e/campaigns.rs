//! Campaigns: the operator SIGKILLed at seeded random points while accounts converge, and a
//! tenant that fails, throttles, lags and disappears for a while. Afterwards nothing may be lost:
//! no duplicate user, every password in its Secret works, no account was ever enabled outside an
//! applied barrier, no licence sits on an account without a RemoteAssistLicense, and everything
//! is Ready. The fault campaign also restarts the local API server (same etcd) mid-run. The test
//! command runs short seeded versions; `scripts/campaigns.sh` runs the full ones (200 accounts,
//! 20 kills, a one-minute outage).

use crate::clock::hold_for;
use crate::env::Env;
use crate::fixtures::{license, upn, vendor};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const RAL: &str = "remoteassistlicense";

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The invariants that must hold after any campaign.
async fn nothing_lost(env: &Env, ns: &str, names: &[String]) {
    let managed = env.managed_users().await;
    assert_eq!(managed.len(), names.len(), "one user per licence, no duplicates");
    let uids: BTreeSet<String> = names
        .iter()
        .map(|n| {
            env.get(RAL, Some(ns), n).unwrap()["metadata"]["uid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for u in &managed {
        let uid = u["employeeType"]
            .as_str()
            .unwrap()
            .trim_start_matches("remoteassist.dev/");
        assert!(
            uids.contains(uid) || u["assignedLicenses"].as_array().unwrap().is_empty(),
            "a licence on {} without a RemoteAssistLicense",
            u["userPrincipalName"]
        );
    }
    let timeline = env.admin(reqwest::Method::GET, "/barriers/timeline", None).await;
    for n in names {
        let u = env.user(&upn(n)).await.unwrap();
        let status = env.get(RAL, Some(ns), n).unwrap()["status"].clone();
        assert_eq!(status["userId"], u["id"], "{n} is bound to its own user");
        let password = env.secret_password(ns, &format!("{n}-credentials")).unwrap();
        assert!(
            env.password_works(&upn(n), &password).await,
            "{n}: the Secret's password works"
        );
        if timeline[upn(n).as_str()]["enabledOutsideBarrier"] != 0 {
            panic!("{}", barrier_breach(env, n, &u, &status, &timeline).await);
        }
    }
}

/// What a test needs to find why `n` was enabled outside an applied barrier: its timeline, its
/// status, the applications and the writes to its user.
async fn barrier_breach(env: &Env, n: &str, user: &Value, status: &Value, timeline: &Value) -> String {
    let id = user["id"].as_str().unwrap_or_default();
    let barriers = env.admin(reqwest::Method::GET, "/barriers", None).await;
    let journal = env.admin(reqwest::Method::GET, "/journal", None).await;
    let writes: Vec<&Value> = journal["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.to_string().contains(id))
        .collect();
    format!(
        "{n} was enabled outside an applied barrier\ntimeline: {}\nstatus: {status:#}\napplications: {:#}\nwrites to {id}: {writes:#?}",
        timeline[upn(n).as_str()],
        barriers["applications"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn crash_campaign_loses_nothing() {
    let (accounts, kills, seed) = (
        knob("CAMPAIGN_ACCOUNTS", 40),
        knob("CAMPAIGN_KILLS", 6),
        knob("CAMPAIGN_SEED", 1),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut env = Env::start("crash").await;
    env.settings(json!({"latencyMs": 10})).await;
    let ns = env.namespace("a");
    let vendors: Vec<String> = (1..=4).map(|i| format!("{}-v{i}", env.id)).collect();
    for v in &vendors {
        env.apply(vendor(v).namespaces(&[&ns]));
    }
    let names: Vec<String> = (0..accounts).map(|i| format!("{}-t{i:03}", env.id)).collect();
    let all: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| license(&ns, n).vendor(&vendors[i % 4]).build())
        .collect();
    env.apply(all);
    // Kill points: seeded, spread over the writes a full convergence makes (about 4 per account).
    let mut points: Vec<u64> = (0..kills).map(|_| rng.random_range(1..accounts * 3)).collect();
    points.sort();
    for (i, at) in points.iter().enumerate() {
        env.start_operator();
        env.wait_for(
            &format!("kill {}: {at} writes", i + 1),
            Duration::from_secs(180),
            async || env.counters().await["writes"].as_u64().unwrap() >= *at,
        )
        .await;
        env.kill_operator();
    }
    env.start_operator();
    for n in &names {
        env.wait_condition(RAL, Some(&ns), n, "Ready", "True", None).await;
    }
    nothing_lost(&env, &ns, &names).await;
    println!(
        "crash campaign: {accounts} accounts across 4 vendors, {kills} SIGKILLs (seed {seed}), nothing lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn fault_campaign_converges_and_tells_what_happened() {
    let (accounts, outage, seed) = (
        knob("CAMPAIGN_ACCOUNTS", 40) / 2,
        // Longer than the Graph client's own retries (about 12 s), so reconciles see it.
        knob("CAMPAIGN_OUTAGE_SECS", 20),
        knob("CAMPAIGN_SEED", 1),
    );
    let lag = knob("CAMPAIGN_REPLICATION_MS", 3000);
    let storm_secs = knob("CAMPAIGN_STORM_SECS", 10);
    // The fault campaign restarts the shared API server: no other test runs meanwhile.
    let mut env = Env::start_alone("fault").await;
    env.resync = "5s";
    let ns = env.namespace("a");
    let vendors = [format!("{}-v1", env.id), format!("{}-v2", env.id)];
    env.apply(vendor(&vendors[0]).namespaces(&[&ns]));
    env.apply(vendor(&vendors[1]).namespaces(&[&ns]).license_mode("Group"));
    // 10 % random 5xx and replication delay all along; a throttling storm (half the 429s without
    // Retry-After) and then an outage while work is under way.
    let faults = |storm: bool| {
        json!({
            "seed": seed, "errorRate": 0.1, "replicationDelayMs": lag, "latencyMs": 10, "jitterMs": 20,
            "throttling": {"enabled": storm, "resourceUnitsPer10s": 30, "omitRetryAfterRate": 0.5},
        })
    };
    env.settings(faults(false)).await;
    let names: Vec<String> = (0..accounts).map(|i| format!("{}-t{i:03}", env.id)).collect();
    let all: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| license(&ns, n).vendor(&vendors[i % 2]).build())
        .collect();
    env.apply(all);
    env.start_operator();
    env.wait_for("work under way", Duration::from_secs(120), async || {
        env.counters().await["writes"].as_u64().unwrap() >= accounts
    })
    .await;
    env.settings(faults(true)).await;
    env.wait_for("the storm to bite", Duration::from_secs(60), async || {
        env.counters().await["throttled"].as_u64().unwrap() >= 10
    })
    .await;
    let why = "the storm lasts a set time, which the operator has to ride out";
    hold_for(Duration::from_secs(storm_secs), why).await;
    env.settings(faults(false)).await;
    env.outage(Duration::from_secs(outage)).await;
    restart_the_api_server();
    let names = converges_after_the_restart(&env, &ns, &vendors, &names).await;
    nothing_lost(&env, &ns, &names).await;
    let sent = the_storm_and_the_outage_are_told(&env, &ns).await;
    println!(
        "fault campaign: {accounts} accounts, 10% 5xx, {lag} ms replication delay, {} throttled answers, a {outage} s outage, an API server restart: converged",
        sent
    );
}

/// The local API server restarts (same etcd): watches and writes must pick up again.
fn restart_the_api_server() {
    let restarted = std::process::Command::new(crate::repo::repo_root().join("scripts/testenv.sh"))
        .arg("restart-apiserver")
        .status()
        .expect("testenv.sh runs");
    assert!(restarted.success(), "the API server restarted");
}

/// After the restart: a new licence, and a new spec for an old one. Their statuses from before
/// the restart must not satisfy the waits (wait_condition checks observedGeneration). Returns
/// every licence.
async fn converges_after_the_restart(
    env: &Env,
    ns: &str,
    vendors: &[String],
    names: &[String],
) -> Vec<String> {
    let late = format!("{}-late", env.id);
    env.apply(license(ns, &late).vendor(&vendors[0]));
    env.apply(
        license(ns, &names[0])
            .vendor(&vendors[0])
            .display_name(&format!("Renamed {}", names[0])),
    );
    let mut names = names.to_vec();
    names.push(late);
    for n in &names {
        env.wait_condition(RAL, Some(ns), n, "Ready", "True", None).await;
    }
    let renamed = env.user(&upn(&names[0])).await.unwrap();
    assert_eq!(renamed["displayName"], format!("Renamed {}", names[0]));
    names
}

/// The operator saw the storm and waited it out, and the Events tell of the outage. Returns
/// how many 429s the tenant sent.
async fn the_storm_and_the_outage_are_told(env: &Env, ns: &str) -> f64 {
    let metrics = env.operator_http("/metrics").await.1;
    let sent = env.counters().await["throttled"].as_f64().unwrap();
    let seen = metric(&metrics, "remoteassist_graph_throttled_total");
    assert!(seen > 0.0 && seen <= sent, "429s seen {seen} of {sent} sent");
    assert!(
        metric(&metrics, "remoteassist_graph_throttle_wait_seconds_total") > 0.0,
        "the operator waited after throttling"
    );
    // The Events tell what happened: the outage under its own reason. (The storm is absorbed
    // by the client's waits, proven by the metrics above, so it need not fail a reconcile.)
    let events = crate::cluster::kubectl_ok(
        &["get", "events", "-n", ns, "-o", "jsonpath={.items[*].reason}"],
        None,
    );
    for reason in ["UserCreated", "TenantUnreachable"] {
        assert!(
            events.split_whitespace().any(|r| r == reason),
            "no {reason} Event in: {events}"
        );
    }
    sent
}

/// The value of an unlabelled metric in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
}
