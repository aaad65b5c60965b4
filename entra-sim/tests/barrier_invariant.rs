//! Conformance tests for the counter behind the barrier invariant: `enabledOutsideBarrier` of
//! `GET /_sim/barriers/timeline` counts every time a user became enabled while no applied
//! information barrier covered it. Each way of becoming enabled raises it by exactly one:
//! creation enabled, a PATCH of `accountEnabled` false -> true (direct or inside `$batch`), and
//! the restore of a deleted user that was enabled. Enabling a user an applied barrier covers
//! (segment, Active policy, completed application) does not raise it, nor does a PATCH that
//! does not flip false -> true. Deletion ends coverage, so a covered user that is deleted and
//! restored comes back enabled outside the barrier until the next application.

mod common;

use common::GOOD_PASSWORD;
use common::compliance::{Ib, ib};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DOMAIN: &str = "vendors.abc.example";

fn upn(nickname: &str) -> String {
    format!("{nickname}@{DOMAIN}")
}

/// Creates a user, enabled or not, optionally with extensionAttribute1; panics unless 201.
async fn create(ib: &Ib, nickname: &str, enabled: bool, attribute: Option<&str>) -> String {
    let mut body = json!({
        "accountEnabled": enabled, "displayName": format!("User {nickname}"),
        "mailNickname": nickname, "userPrincipalName": upn(nickname),
        "passwordProfile": {"password": GOOD_PASSWORD}, "usageLocation": "US",
    });
    if let Some(a) = attribute {
        body["onPremisesExtensionAttributes"] = json!({"extensionAttribute1": a});
    }
    let a = ib.env.graph(Method::POST, "/users", Some(body)).await;
    assert_eq!(a.status, StatusCode::CREATED, "create {nickname}: {:?}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

/// The user's `enabledOutsideBarrier` (panics if the timeline does not list the user).
async fn outside(ib: &Ib, nickname: &str) -> u64 {
    let t = ib.timeline().await;
    t[upn(nickname).as_str()]["enabledOutsideBarrier"]
        .as_u64()
        .unwrap_or_else(|| panic!("{nickname} not in the timeline: {t}"))
}

async fn patch(ib: &Ib, id: &str, body: Value) {
    let a = ib
        .env
        .graph(Method::PATCH, &format!("/users/{id}"), Some(body))
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "PATCH: {:?}", a.body);
}

/// Sends the PATCHes (user id, body) in one `$batch`; panics unless every item is 204.
async fn batch_patch(ib: &Ib, patches: &[(&str, Value)]) {
    let requests: Vec<Value> = patches
        .iter()
        .enumerate()
        .map(|(n, (id, body))| {
            json!({"id": n.to_string(), "method": "PATCH", "url": format!("/users/{id}"),
                "headers": {"Content-Type": "application/json"}, "body": body})
        })
        .collect();
    let a = ib
        .env
        .graph(Method::POST, "/$batch", Some(json!({"requests": requests})))
        .await;
    assert_eq!(a.status, StatusCode::OK, "$batch: {:?}", a.body);
    for r in a.body["responses"].as_array().unwrap() {
        assert_eq!(r["status"], 204, "batch item: {r}");
    }
}

async fn delete(ib: &Ib, id: &str) {
    let a = ib.env.graph(Method::DELETE, &format!("/users/{id}"), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "DELETE: {:?}", a.body);
}

async fn restore(ib: &Ib, id: &str) {
    let path = format!("/directory/deletedItems/{id}/restore");
    let a = ib.env.graph(Method::POST, &path, None).await;
    assert_eq!(a.status, StatusCode::OK, "restore: {:?}", a.body);
}

/// Puts users whose extensionAttribute1 is `V1` in segment `V1` under an Active allow policy,
/// applies it, and waits until `covered` are covered by the applied state.
async fn apply_barrier(ib: &Ib, covered: &[&str]) {
    ib.segment("V1", "ExtensionAttribute1 -eq 'V1'").await;
    ib.allow("V1-policy", "V1", &["V1"], "Active").await;
    reapply(ib, covered).await;
}

async fn reapply(ib: &Ib, covered: &[&str]) {
    let (_, done) = ib.apply().await;
    assert_eq!(done["Status"], "Completed", "{done}");
    let t = ib.timeline().await;
    for n in covered {
        assert!(
            t[upn(n).as_str()]["barrierSince"].is_string(),
            "{n} is covered: {t}"
        );
    }
}

#[tokio::test]
async fn creating_an_enabled_user_counts_once() {
    let ib = ib().await;
    create(&ib, "born.enabled", true, None).await;
    create(&ib, "born.disabled", false, None).await;
    assert_eq!(outside(&ib, "born.enabled").await, 1);
    assert_eq!(outside(&ib, "born.disabled").await, 0);
    // Even with the attribute of an applied segment: coverage comes only from an application.
    apply_barrier(&ib, &[]).await;
    create(&ib, "born.in.segment", true, Some("V1")).await;
    assert_eq!(outside(&ib, "born.in.segment").await, 1);
    assert!(ib.timeline().await[upn("born.in.segment").as_str()]["barrierSince"].is_null());
}

#[tokio::test]
async fn patching_account_enabled_to_true_counts_once() {
    let ib = ib().await;
    let id = create(&ib, "patched", false, None).await;
    patch(&ib, &id, json!({"accountEnabled": true})).await;
    assert_eq!(outside(&ib, "patched").await, 1);
    // Every enabling counts, not only the first.
    patch(&ib, &id, json!({"accountEnabled": false})).await;
    assert_eq!(outside(&ib, "patched").await, 1);
    patch(&ib, &id, json!({"accountEnabled": true})).await;
    assert_eq!(outside(&ib, "patched").await, 2);
}

#[tokio::test]
async fn a_patch_that_does_not_flip_false_to_true_counts_nothing() {
    let ib = ib().await;
    let on = create(&ib, "already.on", true, None).await;
    let off = create(&ib, "stays.off", false, None).await;
    assert_eq!(outside(&ib, "already.on").await, 1);
    for body in [
        json!({"accountEnabled": true}),
        json!({"displayName": "Renamed"}),
        json!({"accountEnabled": true, "department": "Support"}),
    ] {
        patch(&ib, &on, body).await;
    }
    for body in [
        json!({"accountEnabled": false}),
        json!({"displayName": "Renamed"}),
    ] {
        patch(&ib, &off, body).await;
    }
    batch_patch(&ib, &[(&on, json!({"accountEnabled": true}))]).await;
    assert_eq!(outside(&ib, "already.on").await, 1);
    assert_eq!(outside(&ib, "stays.off").await, 0);
    // A PATCH that fails changes nothing either.
    let a = ib
        .env
        .graph(
            Method::PATCH,
            &format!("/users/{off}"),
            Some(json!({"accountEnabled": true, "usageLocation": "UK"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert_eq!(outside(&ib, "stays.off").await, 0);
}

#[tokio::test]
async fn the_same_patch_inside_a_batch_counts_once() {
    let ib = ib().await;
    let a = create(&ib, "batched.a", false, None).await;
    let b = create(&ib, "batched.b", false, None).await;
    // Two items enabling `a` (only one of them flips it) and one enabling `b`.
    let on = json!({"accountEnabled": true});
    batch_patch(&ib, &[(&a, on.clone()), (&a, on.clone()), (&b, on)]).await;
    assert_eq!(outside(&ib, "batched.a").await, 1);
    assert_eq!(outside(&ib, "batched.b").await, 1);
}

#[tokio::test]
async fn restoring_an_enabled_user_counts_once() {
    let ib = ib().await;
    let id = create(&ib, "restored", true, None).await;
    assert_eq!(outside(&ib, "restored").await, 1);
    let before = ib.timeline().await[upn("restored").as_str()]["enabledAt"].clone();
    delete(&ib, &id).await;
    restore(&ib, &id).await;
    assert_eq!(outside(&ib, "restored").await, 2);
    let t = ib.timeline().await;
    let at = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    assert!(
        at(&t[upn("restored").as_str()]["enabledAt"]) > at(&before),
        "restoring an enabled user enables it again: {t}"
    );
    // A user deleted while disabled comes back disabled: nothing counts.
    let off = create(&ib, "restored.off", false, None).await;
    delete(&ib, &off).await;
    restore(&ib, &off).await;
    assert_eq!(outside(&ib, "restored.off").await, 0);
    assert!(ib.timeline().await[upn("restored.off").as_str()]["enabledAt"].is_null());
}

#[tokio::test]
async fn enabling_a_covered_user_counts_nothing() {
    let ib = ib().await;
    let direct = create(&ib, "covered.direct", false, Some("V1")).await;
    let batched = create(&ib, "covered.batched", false, Some("V1")).await;
    let outsider = create(&ib, "not.covered", false, None).await;
    apply_barrier(&ib, &["covered.direct", "covered.batched"]).await;
    assert!(ib.timeline().await[upn("not.covered").as_str()]["barrierSince"].is_null());
    patch(&ib, &direct, json!({"accountEnabled": true})).await;
    let on = json!({"accountEnabled": true});
    batch_patch(&ib, &[(&batched, on.clone()), (&outsider, on)]).await;
    assert_eq!(outside(&ib, "covered.direct").await, 0);
    assert_eq!(outside(&ib, "covered.batched").await, 0);
    // The same batch enabled a user outside the barrier: that one counts.
    assert_eq!(outside(&ib, "not.covered").await, 1);
    let t = ib.timeline().await;
    assert!(t[upn("covered.direct").as_str()]["enabledAt"].is_string(), "{t}");
}

#[tokio::test]
async fn deletion_ends_coverage_so_restoring_a_covered_user_counts_once() {
    let ib = ib().await;
    let id = create(&ib, "covered.restored", false, Some("V1")).await;
    apply_barrier(&ib, &["covered.restored"]).await;
    patch(&ib, &id, json!({"accountEnabled": true})).await;
    assert_eq!(outside(&ib, "covered.restored").await, 0);
    delete(&ib, &id).await;
    restore(&ib, &id).await;
    assert_eq!(outside(&ib, "covered.restored").await, 1);
    let t = ib.timeline().await;
    assert!(
        t[upn("covered.restored").as_str()]["barrierSince"].is_null(),
        "a restored user is not covered until an application covers it: {t}"
    );
    // The applied state forgot the user too: it is in no segment until the next application.
    let applied = &ib.barriers().await["applied"];
    assert!(applied["userSegments"].get(&id).is_none(), "{applied}");
    // The next completed application covers it again; enabling it then counts nothing.
    reapply(&ib, &["covered.restored"]).await;
    patch(&ib, &id, json!({"accountEnabled": false})).await;
    patch(&ib, &id, json!({"accountEnabled": true})).await;
    assert_eq!(outside(&ib, "covered.restored").await, 1);
}
