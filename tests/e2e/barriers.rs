//! End to end: information barriers. Generated segments and policies, one application for a
//! burst of changes, barrier-first activation, reachability from the applied state, the
//! symmetry check, and removal in the safe order.

use crate::cluster::kubectl_ok;
use crate::env::Env;
use crate::fixtures::{license, segment, upn, vendor};
use serde_json::Value;
use std::time::Duration;

const RAL: &str = "remoteassistlicense";
const BS: &str = "barriersegment";

async fn reachable(env: &Env, from: &str, to: &str) -> bool {
    let url = format!("/barriers/reachable?from={from}&to={to}");
    env.admin(reqwest::Method::GET, &url, None).await["allowed"] == true
}

async fn barriers(env: &Env) -> Value {
    env.admin(reqwest::Method::GET, "/barriers", None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn accounts_are_enabled_only_behind_an_applied_barrier_and_reach_only_their_engineers() {
    let mut env = Env::start("ib").await;
    let ns = env.namespace("a");
    let (v1, v2) = (format!("{}-v1", env.id), format!("{}-v2", env.id));
    for (v, engineer) in [
        (&v1, "alice.engineer@abc.example"),
        (&v2, "bob.engineer@abc.example"),
    ] {
        env.apply(vendor(v).namespaces(&[&ns]).engineers(&[engineer]));
    }
    let names: Vec<(String, &String)> = (1..=2)
        .flat_map(|i| {
            [
                (format!("{}-a{i}", env.id), &v1),
                (format!("{}-b{i}", env.id), &v2),
            ]
        })
        .collect();
    for (n, v) in &names {
        env.apply(license(&ns, n).vendor(v));
    }
    env.start_operator();
    for (n, _) in &names {
        env.wait_condition(RAL, Some(&ns), n, "Ready", "True", None).await;
        assert_eq!(
            env.condition(RAL, Some(&ns), n, "BarrierEnforced").unwrap(),
            ("True".into(), "Enforced".into())
        );
    }
    for v in [&v1, &v2] {
        for s in ["accounts", "engineers"] {
            let name = format!("{v}-{s}");
            env.wait_condition(BS, None, &name, "Ready", "True", None).await;
            let applied_by = env.get(BS, None, &name).unwrap()["status"]["appliedBy"].clone();
            assert!(
                applied_by.is_string(),
                "{name} names the application that covered it"
            );
        }
    }
    barrier_first(&env, &names).await;
    reachable_only_within_the_vendor(&env, &upn(&names[0].0), &upn(&names[1].0)).await;
    // A burst of changes became few applications, never two at once.
    let apps = barriers(&env).await["applications"].as_array().unwrap().len();
    assert!(
        (1..=4).contains(&apps),
        "{apps} applications for 4 accounts and 4 segments"
    );
    println!("barrier scenario: {apps} policy application(s)");
}

/// Barrier-first: every account was enabled only after the barrier covering it took effect.
async fn barrier_first(env: &Env, names: &[(String, &String)]) {
    let timeline = env.admin(reqwest::Method::GET, "/barriers/timeline", None).await;
    for (n, _) in names {
        let t = &timeline[upn(n).as_str()];
        let (enabled, since) = (
            t["enabledAt"].as_str().expect("enabled"),
            t["barrierSince"].as_str().expect("covered"),
        );
        let (enabled, since): (k8s_openapi::jiff::Timestamp, k8s_openapi::jiff::Timestamp) =
            (enabled.parse().unwrap(), since.parse().unwrap());
        assert!(
            since <= enabled,
            "{n} enabled at {enabled} before its barrier took effect at {since}"
        );
    }
}

/// Reachability from the applied state: `a1` is an account of V1, `b1` one of V2.
async fn reachable_only_within_the_vendor(env: &Env, a1: &str, b1: &str) {
    let (alice, bob, dave) = (
        "alice.engineer@abc.example",
        "bob.engineer@abc.example",
        "dave.finance@abc.example",
    );
    assert!(
        reachable(env, a1, alice).await,
        "V1's account reaches V1's engineer"
    );
    assert!(
        reachable(env, b1, bob).await,
        "V2's account reaches V2's engineer"
    );
    assert!(
        !reachable(env, a1, bob).await,
        "V1's account cannot reach V2's engineer"
    );
    assert!(!reachable(env, a1, b1).await, "vendors cannot reach each other");
    assert!(
        !reachable(env, a1, dave).await,
        "nor anyone outside their segments"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn an_asymmetric_allow_list_is_held_back_naming_the_missing_direction() {
    let mut env = Env::start("asym").await;
    let (a, b) = (format!("{}-sa", env.id), format!("{}-sb", env.id));
    let department = |name: &str, value: &str, allowed: &str| {
        segment(name).members_with("Department", value).allows(&[allowed])
    };
    env.apply(department(&a, "Support", &b));
    env.apply(department(&b, "Finance", &b));
    env.start_operator();
    env.wait_condition(BS, None, &a, "PolicyApplied", "False", Some("Asymmetric"))
        .await;
    let message = env.get(BS, None, &a).unwrap()["status"]["conditions"].to_string();
    assert!(
        message.contains(&format!("{a} allows {b} but {b} does not allow {a}")),
        "{message}"
    );
    assert_eq!(
        barriers(&env).await["applications"].as_array().unwrap().len(),
        0,
        "nothing was applied"
    );
    // Fixing the other direction lets the application run.
    env.apply(department(&b, "Finance", &a));
    env.wait_condition(BS, None, &a, "PolicyApplied", "True", None)
        .await;
    env.wait_condition(BS, None, &b, "PolicyApplied", "True", None)
        .await;

    // Removal: policy Inactive, policy removed, segment removed.
    kubectl_ok(&["delete", BS, &a, &b, "--timeout=60s"], None);
    let journal = env.journal().await;
    for name in [&a, &b] {
        let inactive = seq_of(&journal, |e| {
            e["cmdlet"] == "Set-InformationBarrierPolicy"
                && e["assignedSegment"] == name.as_str()
                && e["parameters"]["State"] == "Inactive"
        });
        let policy = seq_of(&journal, |e| {
            e["cmdlet"] == "Remove-InformationBarrierPolicy" && e["assignedSegment"] == name.as_str()
        });
        let segment = seq_of(&journal, |e| {
            e["cmdlet"] == "Remove-OrganizationSegment" && e["target"] == name.as_str()
        });
        assert!(
            inactive < policy && policy < segment,
            "{name}: Inactive at {inactive}, policy removed at {policy}, segment at {segment}"
        );
    }
    let state = barriers(&env).await;
    for kind in ["segments", "policies"] {
        assert!(
            !state[kind]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["Name"].as_str().is_some_and(|n| n == a || n == b)),
            "{kind} removed from the tenant: {state}"
        );
    }
}

/// The `seq` of the one successful journal entry that `matches`.
fn seq_of(journal: &[Value], matches: impl Fn(&Value) -> bool) -> u64 {
    let found: Vec<u64> = journal
        .iter()
        .filter(|e| e["status"] == 200 && matches(e))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "exactly one such entry: {found:?}");
    found[0]
}

/// A deleted vendor's barriers leave in order: each policy before its segment, and every
/// segment before the vendor's groups (whose members the segments select) are deleted.
fn removed_in_order(journal: &[Value], vendor: &str) {
    let of_vendor = |e: &Value, key: &str| e[key].as_str().is_some_and(|n| n.starts_with(vendor));
    let segments: Vec<(String, u64)> = journal
        .iter()
        .filter(|e| e["cmdlet"] == "Remove-OrganizationSegment" && e["status"] == 200)
        .filter(|e| of_vendor(e, "target"))
        .map(|e| {
            (
                e["target"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        !segments.is_empty(),
        "no segment of {vendor} was removed: {journal:?}"
    );
    for (segment, removed) in &segments {
        let policy = seq_of(journal, |e| {
            e["cmdlet"] == "Remove-InformationBarrierPolicy" && e["assignedSegment"] == segment.as_str()
        });
        assert!(
            policy < *removed,
            "{segment}: policy removed at {policy}, segment at {removed}"
        );
    }
    let groups: Vec<u64> = journal
        .iter()
        .filter(|e| e["method"] == "DELETE" && e["route"] == "DELETE /v1.0/groups/{id}")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(!groups.is_empty(), "the vendor's groups were deleted");
    let last_segment = segments.iter().map(|(_, s)| *s).max().unwrap();
    assert!(
        groups.iter().all(|g| *g > last_segment),
        "groups deleted at {groups:?}, before the last segment at {last_segment}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn deleting_a_vendor_removes_its_generated_barriers_from_the_tenant() {
    let mut env = Env::start("ibdel").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]));
    env.start_operator();
    env.wait_condition(BS, None, &format!("{v}-accounts"), "Ready", "True", None)
        .await;
    let names = |state: &Value, kind: &str| -> Vec<String> {
        state[kind]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["Name"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(names(&barriers(&env).await, "segments").contains(&format!("{v}-accounts")));
    kubectl_ok(&["delete", "vendortenant", &v, "--timeout=90s"], None);
    assert!(
        env.get(BS, None, &format!("{v}-accounts")).is_none(),
        "the generated BarrierSegments are gone with their vendor"
    );
    removed_in_order(&env.journal().await, &v);
    let state = barriers(&env).await;
    assert!(
        !names(&state, "segments").iter().any(|n| n.starts_with(&v)),
        "{state}"
    );
    assert!(
        !names(&state, "policies").iter().any(|n| n.starts_with(&v)),
        "{state}"
    );
    assert!(env.get(BS, None, &format!("{v}-accounts")).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_failed_application_is_surfaced_on_the_segments_it_affected() {
    let mut env = Env::start("ibfail").await;
    // Two segments with the same filter: every Support user is in both, which single-segment
    // mode refuses when the policies are applied.
    let (x, y) = (format!("{}-x", env.id), format!("{}-y", env.id));
    for name in [&x, &y] {
        env.apply(
            segment(name)
                .members_with("Department", "Support")
                .allows(&[name]),
        );
    }
    env.start_operator();
    for name in [&x, &y] {
        env.wait_condition(
            BS,
            None,
            name,
            "PolicyApplied",
            "False",
            Some("ApplicationFailed"),
        )
        .await;
    }
    let message = env.get(BS, None, &x).unwrap()["status"]["conditions"].to_string();
    assert!(message.contains("UserInMultipleSegments"), "{message}");
    let apps = barriers(&env).await["applications"].clone();
    assert_eq!(apps[0]["Status"], "Failed", "{apps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_restored_account_is_enabled_again_only_behind_a_new_application() {
    let mut env = Env::start("ibrestore").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]));
    let name = format!("{}-t", env.id);
    env.apply(license(&ns, &name).vendor(&v));
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    let id = env.user(&upn(&name)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let applications = barriers(&env).await["applications"].as_array().unwrap().len();
    // Deleted by hand: the deletion ends its barrier coverage, and restoring it (enabled, as
    // Entra restores) is an enabling outside a barrier the operator cannot avoid.
    env.portal().delete_user(&id).await.unwrap();
    env.wait_for(
        "the account restored and disabled",
        Duration::from_secs(30),
        async || {
            env.user(&upn(&name))
                .await
                .is_some_and(|u| u["accountEnabled"] == false)
        },
    )
    .await;
    env.wait_for("the account enabled again", Duration::from_secs(60), async || {
        env.user(&upn(&name))
            .await
            .is_some_and(|u| u["accountEnabled"] == true)
    })
    .await;
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    let user = env.user(&upn(&name)).await.unwrap();
    assert_eq!(user["id"], id.as_str(), "restored, not recreated");
    let timeline = env.admin(reqwest::Method::GET, "/barriers/timeline", None).await;
    let t = &timeline[upn(&name).as_str()];
    assert_eq!(t["enabledOutsideBarrier"], 1, "only the restore itself: {t}");
    let at = |key: &str| -> k8s_openapi::jiff::Timestamp { t[key].as_str().unwrap().parse().unwrap() };
    assert!(
        at("barrierSince") < at("enabledAt"),
        "enabled again only behind an applied barrier: {t}"
    );
    assert!(
        barriers(&env).await["applications"].as_array().unwrap().len() > applications,
        "a new application covered the restored account"
    );
}
