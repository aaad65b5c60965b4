//! Helpers for the `/users` conformance tests (tests/users.rs, tests/users_query.rs): bodies
//! and users to create, `$filter` paths, and reading collections and pages.

use super::{Answer, Env, GOOD_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

pub const DOMAIN: &str = "vendors.abc.example";

/// Percent-encodes a query-option value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An OData string literal: quotes around, a quote inside doubled.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `/users?$filter=<filter>` with the filter encoded.
pub fn filter_path(filter: &str) -> String {
    format!("/users?$filter={}", enc(filter))
}

pub fn valid_body(nickname: &str) -> Value {
    json!({
        "accountEnabled": true,
        "displayName": format!("User {nickname}"),
        "mailNickname": nickname,
        "userPrincipalName": format!("{nickname}@{DOMAIN}"),
        "passwordProfile": {"password": GOOD_PASSWORD, "forceChangePasswordNextSignIn": false},
    })
}

pub async fn create_named(env: &Env, nickname: &str, display_name: &str) -> Value {
    let mut body = valid_body(nickname);
    body["displayName"] = json!(display_name);
    let a = env.graph(Method::POST, "/users", Some(body)).await;
    assert_eq!(a.status, StatusCode::CREATED, "create: {:?}", a.body);
    a.body
}

pub fn ids(body: &Value) -> BTreeSet<String> {
    body["value"]
        .as_array()
        .expect("a collection")
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

pub fn id_of(user: &Value) -> String {
    user["id"].as_str().unwrap().to_owned()
}

/// GET with `ConsistencyLevel: eventual`.
pub async fn get_eventual(env: &Env, path: &str) -> Answer {
    env.graph_as(
        &env.token,
        Method::GET,
        path,
        None,
        &[("ConsistencyLevel", "eventual")],
    )
    .await
}

pub async fn consumed(env: &Env, sku: &str) -> i64 {
    let a = env.graph(Method::GET, "/subscribedSkus", None).await;
    assert_eq!(a.status, StatusCode::OK);
    a.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["skuId"] == sku)
        .expect("sku present")["consumedUnits"]
        .as_i64()
        .unwrap()
}

/// Follows `@odata.nextLink` verbatim from `first` until it is absent; returns every page.
pub async fn all_pages(env: &Env, first: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(url) = next {
        assert!(pages.len() < 100, "paging does not terminate");
        let a = env.graph(Method::GET, &url, None).await;
        assert_eq!(a.status, StatusCode::OK, "page {url}: {:?}", a.body);
        next = a.body["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(n) = &next {
            assert!(n.starts_with(&env.url()), "nextLink is a full URL: {n}");
        }
        pages.push(a.body);
    }
    pages
}

pub fn assert_bad_request(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {:?}", a.body);
    assert_eq!(a.error_code(), "Request_BadRequest", "{what}: {:?}", a.body);
}
