//! Conformance tests for realistic misbehaviour and the admin API (see
//! entra-sim/docs/wire-protocol.md#throttling, #replication-delay and
//! #graph-error-envelope-and-request-ids): throttling by resource units and writes,
//! Retry-After (present or not), random 5xx, replication delay, latency, request ids,
//! resource-unit costs, reset, password handling and seeded determinism.

mod common;

use common::{Answer, REMOTE_ASSIST, operator_id, tenant};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ALICE: &str = "alice.engineer@abc.example";

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sends `request` until it is answered 429 (at most `tries` times); returns the 429 and how
/// many requests succeeded before it.
async fn until_throttled<F, Fut>(tries: usize, mut request: F) -> (Answer, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    for passed in 0..tries {
        let a = request().await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            return (a, passed);
        }
        assert!(a.status.is_success(), "{} {:?}", a.status, a.body);
    }
    panic!("no 429 after {tries} requests");
}

/// `x-ms-throttle-scope`: `<Tenant_Application|Tenant|Application>/<Read|Write|ReadWrite>/<appId>/<tenantId>`.
fn assert_throttle_scope(a: &Answer, kinds: &[&str]) {
    let scope = header(a, "x-ms-throttle-scope").expect("x-ms-throttle-scope on a 429");
    let parts: Vec<&str> = scope.split('/').collect();
    assert_eq!(parts.len(), 4, "scope {scope}");
    assert!(
        ["Tenant_Application", "Tenant", "Application"].contains(&parts[0]),
        "scope {scope}"
    );
    assert!(kinds.contains(&parts[1]), "scope {scope}");
    assert_eq!(parts[2], operator_id(), "scope {scope}");
    assert_eq!(parts[3], tenant(), "scope {scope}");
}

fn patch_alice(department: &str) -> Value {
    json!({ "department": department })
}

#[tokio::test]
async fn exhausted_resource_units_give_429_too_many_requests() {
    let env = common::start().await;
    // GET /users costs 2 RU: a budget of 10 allows about five.
    env.set_misbehaviour(json!({"throttling": {"enabled": true, "resourceUnitsPer10s": 10}}))
        .await;
    let (a, passed) = until_throttled(30, || env.graph(Method::GET, "/users", None)).await;
    assert!(
        (4..=6).contains(&passed),
        "{passed} requests passed a 10-RU budget"
    );
    assert_eq!(a.error_code(), "TooManyRequests");
    assert_eq!(a.error_message(), "Please retry again later.");
    assert_eq!(a.body["error"]["innerError"]["code"], "429");
    assert_eq!(a.body["error"]["innerError"]["status"], "429");
    assert!(a.body["error"]["innerError"]["request-id"].is_string());
    assert!(a.body["error"]["innerError"]["date"].is_string());
    let retry = header(&a, "retry-after").expect("Retry-After");
    assert!(
        retry.parse::<u64>().is_ok_and(|s| (1..=10).contains(&s)),
        "Retry-After in whole seconds within the 10 s window: {retry}"
    );
    assert_throttle_scope(&a, &["Read", "ReadWrite"]);
    assert_eq!(
        header(&a, "x-ms-throttle-information"),
        Some("ResourceUnitLimitExceeded")
    );
    // Usage keeps accruing while throttled: an immediate retry is throttled too.
    let again = env.graph(Method::GET, "/users", None).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn limit_percentage_appears_only_near_the_limit() {
    let env = common::start().await;
    // Ten 1-RU reads fit a budget of 10; usage is 0.6 after the sixth and about 0.9 after
    // the ninth (the bucket refills by 1 RU/s, a little between requests).
    env.set_misbehaviour(json!({"throttling": {"enabled": true, "resourceUnitsPer10s": 10}}))
        .await;
    let mut percentages = Vec::new();
    for _ in 0..9 {
        let a = env.graph(Method::GET, &format!("/users/{ALICE}"), None).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        percentages.push(header(&a, "x-ms-throttle-limit-percentage").map(str::to_owned));
    }
    assert!(percentages[..6].iter().all(Option::is_none), "{percentages:?}");
    let near: Vec<f64> = percentages[8..]
        .iter()
        .map(|p| {
            p.as_deref()
                .expect("header above 0.8 of the limit")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(near.iter().all(|p| (0.8..=1.8).contains(p)), "{percentages:?}");
}

#[tokio::test]
async fn writes_are_throttled_while_reads_still_succeed() {
    let env = common::start().await;
    env.set_misbehaviour(json!({"throttling": {
        "enabled": true, "resourceUnitsPer10s": 100000, "writesPer150s": 3,
    }}))
    .await;
    let path = format!("/users/{ALICE}");
    let mut n = 0;
    let (a, passed) = until_throttled(10, || {
        n += 1;
        env.graph(Method::PATCH, &path, Some(patch_alice(&format!("Support {n}"))))
    })
    .await;
    assert_eq!(passed, 3, "writesPer150s 3 allows three writes");
    assert_eq!(a.error_code(), "TooManyRequests");
    assert_eq!(
        header(&a, "x-ms-throttle-information"),
        Some("WriteLimitExceeded")
    );
    assert_throttle_scope(&a, &["Write", "ReadWrite"]);
    assert!(header(&a, "retry-after").is_some());
    // Reads have their own budget.
    for _ in 0..5 {
        let read = env
            .graph(Method::GET, &format!("{path}?$select=department"), None)
            .await;
        assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
        assert_eq!(
            read.body["department"], "Support 3",
            "the throttled write changed nothing"
        );
    }
    let write = env.graph(Method::PATCH, &path, Some(patch_alice("x"))).await;
    assert_eq!(write.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn retry_after_can_be_missing_from_a_429() {
    let env = common::start().await;
    env.set_misbehaviour(json!({"throttling": {
        "enabled": true, "resourceUnitsPer10s": 4, "omitRetryAfterRate": 1.0,
    }}))
    .await;
    let (a, _) = until_throttled(10, || env.graph(Method::GET, "/users", None)).await;
    assert_eq!(a.error_code(), "TooManyRequests");
    assert!(header(&a, "retry-after").is_none(), "{:?}", a.headers);
    assert_eq!(
        header(&a, "x-ms-throttle-information"),
        Some("ResourceUnitLimitExceeded")
    );
}

#[tokio::test]
async fn error_rate_one_fails_every_request_with_an_odata_5xx() {
    let env = common::start().await;
    env.set_misbehaviour(json!({"errorRate": 1.0})).await;
    for _ in 0..8 {
        let a = env.graph(Method::GET, "/users", None).await;
        assert!(a.status.is_server_error(), "{} {:?}", a.status, a.body);
        assert!(!a.error_code().is_empty(), "{:?}", a.body);
        assert!(!a.error_message().is_empty(), "{:?}", a.body);
        let inner = &a.body["error"]["innerError"];
        assert_eq!(inner["request-id"].as_str(), header(&a, "request-id"));
        assert!(inner["date"].is_string());
    }
    // Off again: back to normal.
    env.set_misbehaviour(json!({"errorRate": 0.0})).await;
    assert_eq!(
        env.graph(Method::GET, "/users", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_just_created_user_is_not_found_until_replicated() {
    let env = common::start().await;
    env.set_misbehaviour(json!({"seed": 1, "replicationDelayMs": 1500}))
        .await;
    let created = env.create_user("replica1", Some("US")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let first = env.graph(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(first.status, StatusCode::NOT_FOUND, "{:?}", first.body);
    assert_eq!(first.error_code(), "Request_ResourceNotFound");
    assert_eq!(
        first.error_message(),
        format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        )
    );
    let by_upn = env
        .graph(Method::GET, "/users/replica1@vendors.abc.example", None)
        .await;
    assert_eq!(by_upn.status, StatusCode::NOT_FOUND);
    let later = common::eventually(10, || async {
        let a = env.graph(Method::GET, &format!("/users/{id}"), None).await;
        (a.status != StatusCode::NOT_FOUND).then_some(a)
    })
    .await;
    assert_eq!(later.status, StatusCode::OK, "{:?}", later.body);
    assert_eq!(later.body["userPrincipalName"], "replica1@vendors.abc.example");
}

#[tokio::test]
async fn a_new_usage_location_reaches_assign_license_only_after_replication() {
    let env = common::start().await;
    // Created without usageLocation and without delay, so the user itself is visible.
    let user = env.create_user("nolocation", None).await;
    let id = user["id"].as_str().unwrap().to_owned();
    let assign_path = format!("/users/{id}/assignLicense");
    let assign =
        json!({"addLicenses": [{"skuId": REMOTE_ASSIST, "disabledPlans": []}], "removeLicenses": []});
    let invalid = "License assignment cannot be done for user with invalid usage location.";
    let before = env.graph(Method::POST, &assign_path, Some(assign.clone())).await;
    assert_eq!(before.status, StatusCode::BAD_REQUEST, "{:?}", before.body);
    assert_eq!(before.error_message(), invalid);

    env.set_misbehaviour(json!({"seed": 1, "replicationDelayMs": 1500}))
        .await;
    let patch = env
        .graph(
            Method::PATCH,
            &format!("/users/{id}"),
            Some(json!({"usageLocation": "US"})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::NO_CONTENT, "{:?}", patch.body);
    let right_after = env.graph(Method::POST, &assign_path, Some(assign.clone())).await;
    assert_eq!(
        right_after.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        right_after.body
    );
    assert_eq!(right_after.error_code(), "Request_BadRequest");
    assert_eq!(right_after.error_message(), invalid);
    let done = common::eventually(10, || async {
        let a = env.graph(Method::POST, &assign_path, Some(assign.clone())).await;
        (a.status != StatusCode::BAD_REQUEST).then_some(a)
    })
    .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.body["assignedLicenses"][0]["skuId"], REMOTE_ASSIST);
}

#[tokio::test]
async fn latency_delays_each_request() {
    let env = common::start().await;
    env.set_misbehaviour(json!({"latencyMs": 150, "jitterMs": 0}))
        .await;
    for path in ["/users", "/subscribedSkus"] {
        let started = Instant::now();
        let a = env.graph(Method::GET, path, None).await;
        let took = started.elapsed();
        assert_eq!(a.status, StatusCode::OK);
        assert!(took >= Duration::from_millis(145), "{path} took {took:?}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let env = common::start().await;
    let created = env.create_user("ids1", Some("US")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let no_token = common::answer(
        env.http
            .get(format!("{}/v1.0/users", env.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let answers = vec![
        ("GET 200", env.graph(Method::GET, "/users", None).await),
        (
            "PATCH 204",
            env.graph(
                Method::PATCH,
                &format!("/users/{id}"),
                Some(json!({"department": "X"})),
            )
            .await,
        ),
        (
            "GET 404",
            env.graph(Method::GET, "/users/ghost@abc.example", None).await,
        ),
        ("401", no_token),
        ("405", env.graph(Method::PUT, "/subscribedSkus", None).await),
        (
            "unknown segment",
            env.graph(Method::GET, "/nothingHere", None).await,
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (what, a) in &answers {
        let rid = header(a, "request-id").unwrap_or_else(|| panic!("{what}: no request-id"));
        assert!(uuid::Uuid::parse_str(rid).is_ok(), "{what}: request-id {rid}");
        assert!(seen.insert(rid.to_owned()), "{what}: request-id reused");
        if !a.status.is_success() {
            assert_eq!(
                a.body["error"]["innerError"]["request-id"].as_str(),
                Some(rid),
                "{what}: innerError request-id matches the header: {:?}",
                a.body
            );
        }
    }
    assert_eq!(answers[4].1.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_error_envelope_has_date_request_id_and_echoes_client_request_id() {
    let env = common::start().await;
    let client_request_id = "6f2d4c1a-8b3e-4d5f-9a7c-0e1b2c3d4e5f";
    let a = env
        .graph_as(
            &env.token,
            Method::GET,
            "/users/ghost@abc.example",
            None,
            &[("client-request-id", client_request_id)],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let inner = &a.body["error"]["innerError"];
    assert_eq!(inner["client-request-id"], client_request_id);
    assert_eq!(header(&a, "client-request-id"), Some(client_request_id));
    assert_eq!(inner["request-id"].as_str(), header(&a, "request-id"));
    let date = inner["date"].as_str().expect("innerError.date");
    // e.g. 2025-02-13T10:17:06
    assert!(
        jiff::civil::DateTime::strptime("%Y-%m-%dT%H:%M:%S", date).is_ok(),
        "date {date}"
    );
}

#[tokio::test]
async fn x_ms_resource_unit_reports_the_published_cost() {
    let env = common::start().await;
    for (path, cost) in [
        ("/users", "2"),
        ("/users?$select=id,displayName", "1"),
        ("/subscribedSkus", "3"),
        (&format!("/users/{ALICE}") as &str, "1"),
    ] {
        let a = env.graph(Method::GET, path, None).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {:?}", a.body);
        assert_eq!(header(&a, "x-ms-resource-unit"), Some(cost), "{path}");
    }
}

#[tokio::test]
async fn reset_restores_the_seed() {
    let mut env = common::start().await;
    let seed_users = env.admin(Method::GET, "/state", None).await["users"]
        .as_array()
        .unwrap()
        .len();
    let default_settings = env.admin(Method::GET, "/settings", None).await;
    env.create_user("temporary1", Some("US")).await;
    env.graph(
        Method::PATCH,
        &format!("/users/{ALICE}"),
        Some(patch_alice("Changed")),
    )
    .await;
    env.set_misbehaviour(json!({"latencyMs": 5, "errorRate": 0.0, "maxPageSize": 2}))
        .await;
    let state = env.admin(Method::GET, "/state", None).await;
    assert_eq!(state["users"].as_array().unwrap().len(), seed_users + 1);

    env.admin(Method::POST, "/reset", None).await;
    let state = env.admin(Method::GET, "/state", None).await;
    let users = state["users"].as_array().unwrap();
    assert_eq!(users.len(), seed_users);
    assert!(
        !users
            .iter()
            .any(|u| u["userPrincipalName"] == "temporary1@vendors.abc.example")
    );
    let alice = users.iter().find(|u| u["userPrincipalName"] == ALICE).unwrap();
    assert_eq!(alice["department"], "Support");
    assert_eq!(env.admin(Method::GET, "/settings", None).await, default_settings);
    // Issued tokens are forgotten too: a new one works.
    let stale = env.graph(Method::GET, "/users", None).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    env.token = env
        .token_for(common::operator_id(), common::operator_secret())
        .await;
    let gone = env
        .graph(Method::GET, "/users/temporary1@vendors.abc.example", None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

/// True when any key of `v`, at any depth, mentions "password".
fn has_password_key(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.to_lowercase().contains("password") || has_password_key(v)),
        Value::Array(a) => a.iter().any(has_password_key),
        _ => false,
    }
}

#[tokio::test]
async fn state_dump_hides_passwords_and_verify_password_checks_them() {
    let env = common::start().await;
    let upn = "secretive1@vendors.abc.example";
    env.create_user("secretive1", Some("US")).await;
    let state = env.admin(Method::GET, "/state", None).await;
    assert!(
        state["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["userPrincipalName"] == upn)
    );
    assert!(!state.to_string().contains(common::GOOD_PASSWORD));
    assert!(!has_password_key(&state), "{state}");
    // Nor does Graph return it.
    let user = env.graph(Method::GET, &format!("/users/{upn}"), None).await;
    assert!(!user.body.to_string().contains(common::GOOD_PASSWORD));

    let check = |password: &str| {
        let body = json!({"userPrincipalName": upn, "password": password});
        env.admin(Method::POST, "/verify-password", Some(body))
    };
    assert_eq!(check(common::GOOD_PASSWORD).await["valid"], true);
    assert_eq!(check("Sim-Passw0rd!2025").await["valid"], false);
    assert_eq!(check("").await["valid"], false);
}

/// Statuses of `n` sequential reads.
async fn statuses(env: &common::Env, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(env.graph(Method::GET, "/users", None).await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn the_same_seed_gives_the_same_random_failures() {
    let env = common::start().await;
    env.set_misbehaviour(json!({"seed": 42, "errorRate": 0.5})).await;
    let first = statuses(&env, 40).await;
    assert!(first.contains(&200), "{first:?}");
    assert!(first.iter().any(|s| *s >= 500), "{first:?}");
    assert!(first.iter().all(|s| *s == 200 || *s >= 500), "{first:?}");

    // Setting the same seed again restarts the same sequence.
    env.set_misbehaviour(json!({"seed": 42, "errorRate": 0.5})).await;
    assert_eq!(statuses(&env, 40).await, first);

    // Another simulator with the same seed behaves the same.
    let other = common::start().await;
    other
        .set_misbehaviour(json!({"seed": 42, "errorRate": 0.5}))
        .await;
    assert_eq!(statuses(&other, 40).await, first);

    // A different seed gives a different sequence.
    env.set_misbehaviour(json!({"seed": 43, "errorRate": 0.5})).await;
    assert_ne!(statuses(&env, 40).await, first);
}
