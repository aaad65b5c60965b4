//! The attack table, segment rows (rule 5, segment names are owned): a BarrierSegment whose
//! tenant name another one already holds (compared without regard to case) is refused with
//! `SegmentNameTaken` and writes nothing; one whose name the tenant already uses for a segment
//! the operator did not create is a `Conflict`, leaves that segment and its policy exactly as
//! they are, and deleting it removes nothing; with `adoptExisting` it binds, and deleting it
//! still removes nothing.

use crate::cluster::kubectl_ok;
use crate::env::Env;
use crate::fixtures::segment;
use serde_json::Value;
use std::time::Duration;

const BS: &str = "barriersegment";
const LONG: Duration = Duration::from_secs(120);

/// The tenant's segments and policies (the truth from the admin API).
async fn definitions(env: &Env) -> Value {
    let mut b = env.admin(reqwest::Method::GET, "/barriers", None).await;
    serde_json::json!({"segments": b["segments"].take(), "policies": b["policies"].take()})
}

async fn applications(env: &Env) -> usize {
    let b = env.admin(reqwest::Method::GET, "/barriers", None).await;
    b["applications"].as_array().unwrap().len()
}

/// The operator has settled when the tenant sees no write for this long ([`Env::quiet_for`]:
/// a time, not resync rounds, so a pending policy application is seen too).
const QUIET: Duration = Duration::from_secs(5);

/// Events of a cluster-scoped object (recorded in `default`).
fn events(env: &Env, name: &str) -> Vec<String> {
    env.events("default", name)
}

fn named<'a>(defs: &'a Value, kind: &str, name: &str) -> Vec<&'a Value> {
    defs[kind]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_name_taken_in_another_case_is_refused_and_writes_nothing() {
    let mut env = Env::start("atk-segname").await;
    let id = env.id.clone();
    let (first, later) = (format!("{id}-a"), format!("{id}-b"));
    let shared = format!("{id}-shared");
    let in_tenant_as = |name: &str, tenant_name: &str, department: &str| {
        segment(name)
            .segment_name(tenant_name)
            .members_with("Department", department)
            .allows(&[])
    };
    env.apply(in_tenant_as(&first, &shared, "Support"));
    env.start_operator();
    env.wait_condition(BS, None, &first, "Ready", "True", None).await;
    env.quiet_for(QUIET, LONG).await;
    let (writes, before, apps) = (
        env.tenant_writes().await,
        definitions(&env).await,
        applications(&env).await,
    );

    // The same name in upper case, created later.
    env.apply(in_tenant_as(&later, &shared.to_uppercase(), "Finance"));
    env.wait_condition(
        BS,
        None,
        &later,
        "SegmentReady",
        "False",
        Some("SegmentNameTaken"),
    )
    .await;
    env.wait_condition(BS, None, &later, "Ready", "False", None).await;
    let refused = env.get(BS, None, &later).unwrap();
    let message = refused["status"]["conditions"].to_string();
    assert!(message.contains(&first), "names the holder: {message}");
    assert!(refused["status"]["segmentId"].is_null() && refused["status"]["created"].is_null());
    assert_ne!(
        env.condition(BS, None, &later, "PolicyApplied").unwrap().0,
        "True"
    );
    env.wait_for("a Warning Event on the refused one", LONG, async || {
        events(&env, &later)
            .iter()
            .any(|e| e.starts_with("SegmentNameTaken:"))
    })
    .await;
    env.quiet_for(QUIET, LONG).await;
    assert_eq!(env.tenant_writes().await, writes, "no tenant write for it");
    assert_eq!(definitions(&env).await, before, "the tenant is unchanged");
    assert_eq!(applications(&env).await, apps);
    // The holder keeps its name.
    assert_eq!(env.condition(BS, None, &first, "Ready").unwrap().0, "True");

    // Deleting the refused one removes nothing (the holder's segment stays).
    kubectl_ok(&["delete", BS, &later, "--timeout=60s"], None);
    env.quiet_for(QUIET, LONG).await;
    assert_eq!(env.tenant_writes().await, writes);
    assert_eq!(definitions(&env).await, before);
    println!("name taken: refused with SegmentNameTaken, {writes} tenant writes before and after");
}

/// A segment and its policy made by hand in the tenant, before the operator.
async fn host_segment(env: &Env, name: &str, state: &str) -> (String, String) {
    let c = env.compliance();
    let s = c
        .new_segment(name, "Department -eq 'Support'")
        .await
        .expect("host segment");
    let p = c
        .new_policy(&format!("{name}-policy"), name, true, &[name.to_owned()], state)
        .await
        .expect("host policy");
    (s.identity, p.identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_host_segment_of_the_same_name_is_a_conflict_left_alone_and_never_removed() {
    let mut env = Env::start("atk-segconf").await;
    let name = format!("{}-host", env.id);
    let (segment_id, policy_id) = host_segment(&env, &name, "Active").await;
    let (writes, before) = (env.tenant_writes().await, definitions(&env).await);
    assert_eq!(named(&before, "segments", &name).len(), 1);

    env.apply(segment(&name).members_with("Department", "Finance").allows(&[]));
    env.start_operator();
    env.wait_condition(BS, None, &name, "SegmentReady", "False", Some("Conflict"))
        .await;
    let obj = env.get(BS, None, &name).unwrap();
    let message = obj["status"]["conditions"].to_string();
    assert!(
        message.contains(&segment_id) && message.contains("adoptExisting"),
        "{message}"
    );
    assert!(obj["status"]["segmentId"].is_null() && obj["status"]["policyId"].is_null());
    assert_ne!(env.condition(BS, None, &name, "PolicyApplied").unwrap().0, "True");
    env.wait_for("a Warning Event", LONG, async || {
        events(&env, &name).iter().any(|e| e.starts_with("Conflict:"))
    })
    .await;
    env.quiet_for(QUIET, LONG).await;
    assert_eq!(env.tenant_writes().await, writes, "no tenant write");
    assert_eq!(
        definitions(&env).await,
        before,
        "the host segment and policy are unchanged"
    );
    assert_eq!(applications(&env).await, 0);

    // Deleting the BarrierSegment removes neither.
    kubectl_ok(&["delete", BS, &name, "--timeout=60s"], None);
    env.quiet_for(QUIET, LONG).await;
    let after = definitions(&env).await;
    assert_eq!(after, before, "still there, unchanged");
    assert_eq!(
        named(&after, "segments", &name)[0]["Identity"],
        segment_id.as_str()
    );
    assert_eq!(
        named(&after, "policies", &format!("{name}-policy"))[0]["Identity"],
        policy_id.as_str()
    );
    assert_eq!(env.tenant_writes().await, writes);
    println!("host segment {name}: Conflict, unchanged, kept after deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn an_adopted_host_segment_is_managed_but_never_removed() {
    let mut env = Env::start("atk-segadopt").await;
    let name = format!("{}-adopt", env.id);
    let (segment_id, policy_id) = host_segment(&env, &name, "Inactive").await;
    env.apply(
        segment(&name)
            .adopt_existing()
            .members_with("Department", "Finance")
            .allows(&[]),
    );
    env.start_operator();
    env.wait_condition(BS, None, &name, "Ready", "True", None).await;
    let obj = env.get(BS, None, &name).unwrap();
    assert_eq!(obj["status"]["segmentId"], segment_id.as_str());
    assert_eq!(obj["status"]["policyId"], policy_id.as_str());
    assert!(
        obj["status"]["created"].is_null(),
        "nothing was created: {}",
        obj["status"]
    );
    let defs = definitions(&env).await;
    let s = named(&defs, "segments", &name)[0];
    assert_eq!(
        s["UserGroupFilter"], "Department -eq 'Finance'",
        "brought to the spec"
    );
    let p = named(&defs, "policies", &format!("{name}-policy"))[0];
    assert_eq!(p["State"], "Active");

    kubectl_ok(&["delete", BS, &name, "--timeout=60s"], None);
    env.quiet_for(QUIET, LONG).await;
    let after = definitions(&env).await;
    assert_eq!(
        named(&after, "segments", &name)[0]["Identity"],
        segment_id.as_str(),
        "the adopted segment stays"
    );
    assert_eq!(
        named(&after, "policies", &format!("{name}-policy"))[0]["Identity"],
        policy_id.as_str(),
        "the adopted policy stays"
    );
}
