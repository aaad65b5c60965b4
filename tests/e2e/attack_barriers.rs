//! The attack table, barrier rows: tenant and cluster states in which an account must stay
//! disabled (barriers fail closed), and the safety steps that run in every mode. After each
//! row: the refusal or pending reason, the account never enabled (the simulated tenant's
//! timeline), or disabled at once and kept (never deleted).

use crate::clock::always_for;
use crate::cluster::kubectl_ok;
use crate::env::Env;
use crate::fixtures::{Segment, license, segment, upn, vendor};
use serde_json::{Value, json};
use std::time::Duration;

const RAL: &str = "remoteassistlicense";

/// A segment's policy in a row: what it adds to the segment, given the other vendor's segment.
type Policy = fn(Segment, &str) -> Segment;

async fn timeline(env: &Env, account: &str) -> Value {
    env.admin(reqwest::Method::GET, "/barriers/timeline", None).await[upn(account).as_str()].clone()
}

async fn enabled(env: &Env, account: &str) -> Option<bool> {
    env.user(&upn(account))
        .await
        .and_then(|u| u["accountEnabled"].as_bool())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn an_account_stays_disabled_unless_one_active_allow_policy_isolates_its_vendor() {
    let mut env = Env::start("atk-bs").await;
    let ns = env.namespace("a");
    let id = env.id.clone();
    let rows = isolation_rows();
    vendors_of_the_rows(&env, &ns, &rows);
    env.start_operator();
    for (i, (what, _, reason)) in rows.iter().enumerate() {
        let account = format!("{id}-p{i}-acct");
        env.wait_condition(RAL, Some(&ns), &account, "BarrierEnforced", "False", Some(reason))
            .await;
        env.wait_condition(RAL, Some(&ns), &account, "AccountReady", "True", None)
            .await;
        println!("row: {what}: BarrierEnforced=False ({reason})");
    }
    hold_disabled(&env, &ns, &rows).await;
}

/// A row: what it is, the policies of the vendor's segments, and the reason the account's
/// barrier does not count as enforced.
type Row = (&'static str, &'static [Policy], &'static str);

fn isolation_rows() -> [Row; 5] {
    [
        ("a segment with no policy", &[|s, _| s], "NotIsolating"),
        (
            "an Inactive allow policy",
            &[|s, _| s.allows(&[]).policy_state("Inactive")],
            "NotIsolating",
        ),
        ("an empty block list", &[|s, _| s.blocks(&[])], "NotIsolating"),
        (
            "a block-only policy",
            &[|s, other| s.blocks(&[other])],
            "NotIsolating",
        ),
        (
            "two segments selecting one vendor's accounts",
            &[|s, _| s.allows(&[]), |s, _| s.allows(&[])],
            "SegmentConflict",
        ),
    ]
}

/// Row i: vendor `<id>-p<i>`, its segments with the row's policies, and one licence
/// `<id>-p<i>-acct`; and a segment of others (a group) for the block-only row.
fn vendors_of_the_rows(env: &Env, ns: &str, rows: &[Row]) {
    let id = &env.id;
    let other = format!("{id}-other");
    env.apply(
        segment(&other)
            .members_of_group("11111111-1111-1111-1111-111111111111")
            .allows(&[]),
    );
    for (i, (_, policies, _)) in rows.iter().enumerate() {
        let v = format!("{id}-p{i}");
        env.apply(vendor(&v).namespaces(&[ns]).no_generated_segments());
        for (j, policy) in policies.iter().enumerate() {
            let s = segment(&format!("{v}-s{j}"));
            let s = if j == 0 {
                s.vendor_accounts(&v)
            } else {
                // The second selects the same accounts by the attribute they carry.
                s.members_with("ExtensionAttribute15", &format!("{v}-accounts"))
            };
            env.apply(policy(s, &other));
        }
        env.apply(license(ns, &format!("{v}-acct")).vendor(&v));
    }
}

/// Lets a policy application end after the accounts exist (the segments that do have an Active
/// policy are applied), then holds the invariant over a few resyncs: every row's account
/// exists, disabled, was never enabled, and keeps its reason.
async fn hold_disabled(env: &Env, ns: &str, rows: &[Row]) {
    let id = &env.id;
    env.wait_for(
        "a policy application to end",
        Duration::from_secs(90),
        async || {
            let apps = env.admin(reqwest::Method::GET, "/barriers", None).await["applications"].clone();
            let ended = |a: &Value| !matches!(a["Status"].as_str(), Some("NotStarted" | "InProgress"));
            apps.as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(ended))
        },
    )
    .await;
    let why = "no account may be enabled at any time over a few resyncs";
    always_for(
        Duration::from_secs(6),
        Duration::from_millis(500),
        why,
        async || {
            for (i, (what, ..)) in rows.iter().enumerate() {
                let account = format!("{id}-p{i}-acct");
                assert_eq!(enabled(env, &account).await, Some(false), "{what}: enabled");
            }
        },
    )
    .await;
    for (i, (what, _, reason)) in rows.iter().enumerate() {
        let account = format!("{id}-p{i}-acct");
        assert_eq!(
            env.condition(RAL, Some(ns), &account, "BarrierEnforced")
                .unwrap()
                .1,
            *reason
        );
        assert_eq!(
            enabled(env, &account).await,
            Some(false),
            "{what}: the account exists, disabled"
        );
        let t = timeline(env, &account).await;
        assert!(t["enabledAt"].is_null(), "{what}: never enabled: {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn safety_steps_run_in_every_mode_and_a_refused_license_keeps_no_enabled_account() {
    let mut env = Env::start("atk-mode").await;
    let (ns, ns2) = (env.namespace("a"), env.namespace("b"));
    let id = env.id.clone();
    let v = format!("{id}-v");
    let vendor_in = |namespaces: &[&str]| {
        vendor(&v)
            .namespaces(namespaces)
            .engineers(&["alice.engineer@abc.example"])
    };
    env.apply(vendor_in(&[&ns, &ns2]));
    let (observed, planned, moved) = (format!("{id}-obs"), format!("{id}-plan"), format!("{id}-moved"));
    env.apply(license(&ns, &observed).vendor(&v));
    env.apply(license(&ns, &planned).vendor(&v));
    env.apply(license(&ns2, &moved).vendor(&v));
    env.start_operator();
    for (n, namespace) in [(&observed, &ns), (&planned, &ns), (&moved, &ns2)] {
        env.wait_condition(RAL, Some(namespace), n, "Ready", "True", None)
            .await;
        assert_eq!(enabled(&env, n).await, Some(true));
    }

    observe_mode_then_the_barrier_is_lost(&env, &ns, &observed).await;
    plan_mode_then_suspended(&env, &ns, &planned).await;
    // The platform team removes the namespace from allowedNamespaces.
    env.apply(vendor_in(&[&ns]));
    namespace_no_longer_allowed(&env, &ns2, &moved).await;
}

/// Observe mode, then the barrier is lost (the attribute changed by hand).
async fn observe_mode_then_the_barrier_is_lost(env: &Env, ns: &str, observed: &str) {
    kubectl_ok(
        &[
            "annotate",
            RAL,
            observed,
            "-n",
            ns,
            "remoteassist.dev/mode=Observe",
        ],
        None,
    );
    env.wait_condition(RAL, Some(ns), observed, "Planned", "True", None)
        .await;
    let user = env.user(&upn(observed)).await.unwrap();
    let patch = json!({"onPremisesExtensionAttributes": {"extensionAttribute15": "somewhere-else"}});
    env.portal()
        .update_user(user["id"].as_str().unwrap(), &patch)
        .await
        .unwrap();
    env.wait_for(
        "the observed account to be disabled",
        Duration::from_secs(60),
        async || enabled(env, observed).await == Some(false),
    )
    .await;
    let attribute =
        env.user(&upn(observed)).await.unwrap()["onPremisesExtensionAttributes"]["extensionAttribute15"]
            .clone();
    assert_eq!(attribute, "somewhere-else", "Observe mode corrects nothing else");
    println!("row: Observe mode, then the barrier is lost: disabled at once, nothing else corrected");
}

/// Plan mode, then suspended.
async fn plan_mode_then_suspended(env: &Env, ns: &str, planned: &str) {
    kubectl_ok(
        &["annotate", RAL, planned, "-n", ns, "remoteassist.dev/mode=Plan"],
        None,
    );
    kubectl_ok(
        &[
            "patch",
            RAL,
            planned,
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"suspended":true}}"#,
        ],
        None,
    );
    env.wait_for(
        "the planned account to be disabled",
        Duration::from_secs(60),
        async || enabled(env, planned).await == Some(false),
    )
    .await;
    println!("row: Plan mode, then suspended: disabled at once");
}

/// Once `ns2` is no longer among the vendor's allowedNamespaces: the licence there is refused,
/// its account disabled at once and kept.
async fn namespace_no_longer_allowed(env: &Env, ns2: &str, moved: &str) {
    env.wait_condition(
        RAL,
        Some(ns2),
        moved,
        "AccountReady",
        "False",
        Some("NamespaceNotAllowed"),
    )
    .await;
    env.wait_for(
        "the refused licence's account to be disabled",
        Duration::from_secs(60),
        async || enabled(env, moved).await == Some(false),
    )
    .await;
    assert!(env.user(&upn(moved)).await.is_some(), "disabled, never deleted");
    assert!(env.events(ns2, moved).iter().any(|e| e.starts_with("Disabled")));
    println!("row: the namespace removed from allowedNamespaces: NamespaceNotAllowed, disabled, kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn an_orphaned_account_keeps_its_vendors_barrier_until_it_is_disabled() {
    let mut env = Env::start("atk-orphan").await;
    let ns = env.namespace("a");
    let id = env.id.clone();
    let v = format!("{id}-v");
    env.apply(
        vendor(&v)
            .namespaces(&[&ns])
            .engineers(&["bob.engineer@abc.example"]),
    );
    let orphan = format!("{id}-orphan");
    env.apply(license(&ns, &orphan).vendor(&v).deletion_policy("Orphan"));
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &orphan, "Ready", "True", None)
        .await;
    kubectl_ok(&["delete", RAL, &orphan, "-n", &ns, "--wait=true"], None);
    kubectl_ok(&["delete", "vendortenant", &v, "--wait=false"], None);
    env.wait_condition(
        "vendortenant",
        None,
        &v,
        "Ready",
        "False",
        Some("AccountsHoldSegments"),
    )
    .await;
    let message = env.get("vendortenant", None, &v).unwrap()["status"]["message"].clone();
    assert!(
        message.as_str().unwrap().contains(&upn(&orphan)),
        "the vendor names the holder: {message}"
    );
    for s in ["accounts", "engineers"] {
        assert!(
            env.get("barriersegment", None, &format!("{v}-{s}")).is_some(),
            "{s} segment kept"
        );
    }
    assert_eq!(enabled(&env, &orphan).await, Some(true));
    println!(
        "row: Orphan, then the vendor is deleted: AccountsHoldSegments names {}",
        upn(&orphan)
    );
    // Once the orphan is disabled by hand, the vendor goes.
    let user = env.user(&upn(&orphan)).await.unwrap();
    env.portal()
        .update_user(user["id"].as_str().unwrap(), &json!({"accountEnabled": false}))
        .await
        .unwrap();
    env.wait_for("the vendor to be deleted", Duration::from_secs(120), async || {
        env.get("vendortenant", None, &v).is_none()
    })
    .await;
    assert!(
        env.user(&upn(&orphan)).await.is_some(),
        "the orphaned user is never deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_mirrored_allow_edit_between_two_vendors_is_never_applied() {
    let mut env = Env::start("atk-path").await;
    let ns = env.namespace("a");
    let id = env.id.clone();
    let (v1, v2) = (format!("{id}-v1"), format!("{id}-v2"));
    for (v, engineer) in [(&v1, "alice"), (&v2, "bob")] {
        env.apply(
            vendor(v)
                .namespaces(&[&ns])
                .no_generated_segments()
                .engineers(&[&format!("{engineer}.engineer@abc.example")]),
        );
        env.apply(license(&ns, &format!("{v}-acct")).vendor(v));
    }
    for s in segments(&v1, &v2, false) {
        env.apply(s);
    }
    env.start_operator();
    for v in [&v1, &v2] {
        env.wait_condition(RAL, Some(&ns), &format!("{v}-acct"), "Ready", "True", None)
            .await;
    }
    let starts = async || {
        env.counters().await["byRoute"]["InvokeCommand Start-InformationBarrierPoliciesApplication"]["200"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = starts().await;
    // The edit: each vendor's accounts allow the other's, mirrored so symmetry holds.
    for s in segments(&v1, &v2, true) {
        env.apply(s);
    }
    held_back_as_a_cross_vendor_path(&env, &v1, &v2).await;
    for v in [&v1, &v2] {
        let account = format!("{v}-acct");
        env.wait_for(
            "the account to be disabled",
            Duration::from_secs(60),
            async || enabled(&env, &account).await == Some(false),
        )
        .await;
    }
    assert_eq!(starts().await, before, "no application started after the edit");
    let a = upn(&format!("{v1}-acct"));
    let b = upn(&format!("{v2}-acct"));
    let reach = env
        .admin(
            reqwest::Method::GET,
            &format!("/barriers/reachable?from={a}&to={b}"),
            None,
        )
        .await;
    assert_eq!(
        reach["allowed"], false,
        "the applied state still keeps them apart: {reach}"
    );
    println!(
        "row: a mirrored allow edit between two vendors: held back (CrossVendorPath), accounts disabled"
    );
}

/// Each vendor's accounts allow its engineers (and, `mirrored`, the other vendor's accounts).
fn segments(v1: &str, v2: &str, mirrored: bool) -> Vec<Segment> {
    let mut out = Vec::new();
    for (v, w) in [(v1, v2), (v2, v1)] {
        let (acc, eng, other) = (format!("{v}-acc"), format!("{v}-eng"), format!("{w}-acc"));
        let allowed: &[&str] = if mirrored { &[&eng, &other] } else { &[&eng] };
        out.push(segment(&acc).vendor_accounts(v).allows(allowed));
        out.push(segment(&eng).vendor_engineers(v).allows(&[&acc]));
    }
    out
}

/// Both accounts segments hold their policy back, naming the path.
async fn held_back_as_a_cross_vendor_path(env: &Env, v1: &str, v2: &str) {
    for v in [v1, v2] {
        env.wait_condition(
            "barriersegment",
            None,
            &format!("{v}-acc"),
            "PolicyApplied",
            "False",
            Some("CrossVendorPath"),
        )
        .await;
    }
    let message = env.get("barriersegment", None, &format!("{v1}-acc")).unwrap()["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PolicyApplied")
        .unwrap()["message"]
        .clone();
    assert!(
        message
            .as_str()
            .unwrap()
            .contains(&format!("{v1}-acc (a vendor's accounts) would reach {v2}-acc")),
        "{message}"
    );
}
