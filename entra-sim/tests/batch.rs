//! Conformance tests for JSON batching (see entra-sim/docs/wire-protocol.md#batch): the
//! 20-request limit, unique case-insensitive ids, `dependsOn` with 424, correlation by id,
//! per-item Content-Type, per-item throttling, and how a batch is counted.

mod common;

use common::Answer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const ALICE: &str = "alice.engineer@abc.example";
const BOB: &str = "bob.engineer@abc.example";

async fn batch(env: &common::Env, requests: Value) -> Answer {
    env.graph(Method::POST, "/$batch", Some(json!({ "requests": requests })))
        .await
}

/// The item responses keyed by id; fails on a missing or repeated id.
fn by_id(a: &Answer) -> BTreeMap<String, Value> {
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let responses = a.body["responses"].as_array().expect("responses array");
    let mut out = BTreeMap::new();
    for r in responses {
        let id = r["id"].as_str().expect("every response has an id").to_owned();
        assert!(
            out.insert(id.clone(), r.clone()).is_none(),
            "id {id} answered twice"
        );
    }
    out
}

fn status(item: &Value) -> u64 {
    item["status"].as_u64().expect("item status")
}

/// An item's response header, whatever the case of its name.
fn item_header<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    item["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

fn get(id: &str, url: &str) -> Value {
    json!({"id": id, "method": "GET", "url": url})
}

#[tokio::test]
async fn more_than_20_requests_is_400() {
    let env = common::start().await;
    let requests: Vec<Value> = (1..=21).map(|i| get(&i.to_string(), "/users")).collect();
    let a = batch(&env, json!(requests)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert!(!a.error_code().is_empty(), "OData error envelope: {:?}", a.body);
    assert!(a.body.get("responses").is_none());

    // Exactly 20 is fine.
    let requests: Vec<Value> = (1..=20).map(|i| get(&i.to_string(), "/users")).collect();
    let ok = by_id(&batch(&env, json!(requests)).await);
    assert_eq!(ok.len(), 20);
}

#[tokio::test]
async fn duplicate_ids_are_400_case_insensitively() {
    let env = common::start().await;
    let exact = batch(&env, json!([get("a", "/users"), get("a", "/groups")])).await;
    assert_eq!(exact.status, StatusCode::BAD_REQUEST, "{:?}", exact.body);
    let cased = batch(&env, json!([get("item", "/users"), get("ITEM", "/groups")])).await;
    assert_eq!(cased.status, StatusCode::BAD_REQUEST, "{:?}", cased.body);
    assert!(
        !cased.error_code().is_empty(),
        "OData error envelope: {:?}",
        cased.body
    );
}

#[tokio::test]
async fn a_failed_dependency_gives_424_to_its_dependants() {
    let env = common::start().await;
    let a = batch(
        &env,
        json!([
            get("missing", "/users/nobody@abc.example"),
            {"id": "after", "method": "GET", "url": format!("/users/{ALICE}"), "dependsOn": ["missing"]},
            {"id": "chain", "method": "GET", "url": format!("/users/{BOB}"), "dependsOn": ["after"]},
            get("independent", &format!("/users/{BOB}")),
        ]),
    )
    .await;
    let items = by_id(&a);
    assert_eq!(status(&items["missing"]), 404);
    assert_eq!(
        items["missing"]["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(status(&items["after"]), 424, "{:?}", items["after"]);
    assert_eq!(status(&items["chain"]), 424, "{:?}", items["chain"]);
    assert_eq!(status(&items["independent"]), 200);

    // A succeeding dependency lets the dependant run.
    let a = batch(
        &env,
        json!([
            get("first", &format!("/users/{ALICE}")),
            {"id": "second", "method": "GET", "url": format!("/users/{BOB}"), "dependsOn": ["first"]},
        ]),
    )
    .await;
    let items = by_id(&a);
    assert_eq!(status(&items["first"]), 200);
    assert_eq!(status(&items["second"]), 200);
}

#[tokio::test]
async fn responses_are_correlated_by_id() {
    let env = common::start().await;
    let upns = [
        "alice.engineer@abc.example",
        "bob.engineer@abc.example",
        "carol.engineer@abc.example",
        "dave.finance@abc.example",
    ];
    let mut requests: Vec<Value> = upns
        .iter()
        .enumerate()
        .map(|(i, u)| get(&format!("u{i}"), &format!("/users/{u}")))
        .collect();
    requests.push(get("gone", "/users/ghost@abc.example"));
    requests.push(get("skus", "/subscribedSkus"));
    let a = batch(&env, json!(requests)).await;
    let items = by_id(&a);
    let sent: BTreeSet<String> = requests
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(items.keys().cloned().collect::<BTreeSet<_>>(), sent);
    for (i, u) in upns.iter().enumerate() {
        let item = &items[&format!("u{i}")];
        assert_eq!(status(item), 200);
        assert_eq!(
            item["body"]["userPrincipalName"], *u,
            "item u{i} answers its own request"
        );
    }
    assert_eq!(status(&items["gone"]), 404);
    assert_eq!(status(&items["skus"]), 200);
    assert!(items["skus"]["body"]["value"].is_array());
}

#[tokio::test]
async fn a_body_without_content_type_is_400_for_that_item() {
    let env = common::start().await;
    let a = batch(
        &env,
        json!([
            {"id": "1", "method": "PATCH", "url": format!("/users/{ALICE}"), "body": {"department": "Changed"}},
            {"id": "2", "method": "PATCH", "url": format!("/users/{BOB}"),
             "headers": {"Content-Type": "application/json"}, "body": {"department": "Changed"}},
        ]),
    )
    .await;
    let items = by_id(&a);
    assert_eq!(status(&items["1"]), 400, "{:?}", items["1"]);
    assert!(items["1"]["body"]["error"]["code"].is_string());
    assert_eq!(status(&items["2"]), 204, "{:?}", items["2"]);
    // The refused item changed nothing.
    let alice = env
        .graph(Method::GET, &format!("/users/{ALICE}?$select=department"), None)
        .await;
    assert_eq!(alice.body["department"], "Support");
    let bob = env
        .graph(Method::GET, &format!("/users/{BOB}?$select=department"), None)
        .await;
    assert_eq!(bob.body["department"], "Changed");
}

#[tokio::test]
async fn over_limit_items_get_their_own_429_inside_a_200_batch() {
    let env = common::start().await;
    // Each GET /users/{id} costs 1 RU: a budget of 3 lets three items through.
    env.set_misbehaviour(json!({"throttling": {"enabled": true, "resourceUnitsPer10s": 3}}))
        .await;
    let requests: Vec<Value> = (0..8)
        .map(|i| get(&format!("r{i}"), &format!("/users/{ALICE}")))
        .collect();
    let a = batch(&env, json!(requests)).await;
    let items = by_id(&a);
    assert_eq!(items.len(), 8);
    let ok = items.values().filter(|i| status(i) == 200).count();
    let throttled: Vec<&Value> = items.values().filter(|i| status(i) == 429).collect();
    assert_eq!(ok + throttled.len(), 8, "only 200 and 429 expected: {items:?}");
    assert_eq!(ok, 3, "a budget of 3 RU lets exactly three 1-RU items through");
    for item in throttled {
        let retry = item_header(item, "Retry-After").expect("per-item Retry-After");
        assert!(retry.parse::<u64>().is_ok_and(|s| s >= 1), "Retry-After {retry}");
        assert_eq!(item["body"]["error"]["code"], "TooManyRequests");
        assert_eq!(
            item_header(item, "x-ms-throttle-information"),
            Some("ResourceUnitLimitExceeded")
        );
    }
    // Counted as throttled answers.
    let counters = env.admin(Method::GET, "/counters", None).await;
    assert_eq!(counters["throttled"], (8 - ok) as u64);
}

#[tokio::test]
async fn a_batch_counts_as_one_request_and_its_items_as_batch_items() {
    let env = common::start().await;
    env.admin(Method::POST, "/counters/reset", None).await;
    let a = batch(
        &env,
        json!([
            get("1", "/users"),
            get("2", "/groups"),
            get("3", "/subscribedSkus")
        ]),
    )
    .await;
    assert_eq!(by_id(&a).len(), 3);
    let counters = env.admin(Method::GET, "/counters", None).await;
    assert_eq!(counters["httpRequests"], 1, "{counters}");
    assert_eq!(counters["batchItems"], 3, "{counters}");

    // A direct request adds one more HTTP request and no batch item.
    env.graph(Method::GET, "/users", None).await;
    let counters = env.admin(Method::GET, "/counters", None).await;
    assert_eq!(counters["httpRequests"], 2, "{counters}");
    assert_eq!(counters["batchItems"], 3, "{counters}");
}
