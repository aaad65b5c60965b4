//! Conformance tests for `/groups`, membership and `/users/{id}/memberOf` (see
//! entra-sim/docs/wire-protocol.md#groups-and-membership).

mod common;

use common::Env;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const ALREADY_EXISTS: &str =
    "One or more added object references already exist for the following modified properties: 'members'.";

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn id_of(object: &Value) -> String {
    object["id"].as_str().unwrap().to_owned()
}

fn ids(body: &Value) -> BTreeSet<String> {
    body["value"]
        .as_array()
        .expect("a collection")
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

fn reference(id: &str) -> String {
    format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")
}

async fn add_member(env: &Env, group: &str, member: &str) -> common::Answer {
    env.graph(
        Method::POST,
        &format!("/groups/{group}/members/$ref"),
        Some(json!({"@odata.id": reference(member)})),
    )
    .await
}

async fn bind(env: &Env, group: &str, members: &[String]) -> common::Answer {
    let refs: Vec<String> = members.iter().map(|m| reference(m)).collect();
    env.graph(
        Method::PATCH,
        &format!("/groups/{group}"),
        Some(json!({"members@odata.bind": refs})),
    )
    .await
}

/// Every member id, following `@odata.nextLink`.
async fn member_ids(env: &Env, group: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = Some(format!("/groups/{group}/members"));
    while let Some(url) = next {
        let a = env.graph(Method::GET, &url, None).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        out.extend(ids(&a.body));
        next = a.body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    out
}

async fn users(env: &Env, prefix: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(id_of(&env.create_user(&format!("{prefix}{i}"), Some("US")).await));
    }
    out
}

#[tokio::test]
async fn create_security_group_is_201() {
    let env = common::start().await;
    let a = env
        .graph(
            Method::POST,
            "/groups",
            Some(json!({
                "displayName": "V1_RemoteAssistUser", "mailNickname": "V1_RemoteAssistUser",
                "mailEnabled": false, "securityEnabled": true, "groupTypes": [],
                "description": "Remote Assist users of vendor V1",
            })),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let id = a.body["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(a.body["displayName"], "V1_RemoteAssistUser");
    assert_eq!(a.body["securityEnabled"], true);
    assert_eq!(a.body["mailEnabled"], false);
    assert_eq!(a.body["groupTypes"], json!([]));
    let got = env.graph(Method::GET, &format!("/groups/{id}"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["description"], "Remote Assist users of vendor V1");
}

#[tokio::test]
async fn mail_enabled_security_group_cannot_be_created() {
    let env = common::start().await;
    for group_types in [json!([]), Value::Null] {
        let mut body = json!({"displayName": "MailSec", "mailNickname": "MailSec", "mailEnabled": true, "securityEnabled": true});
        if !group_types.is_null() {
            body["groupTypes"] = group_types;
        }
        let a = env.graph(Method::POST, "/groups", Some(body)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
        assert_eq!(a.error_code(), "Request_BadRequest");
        assert_eq!(
            a.error_message(),
            "Cannot Create a mail-enabled security groups and or distribution list."
        );
    }
    let list = env
        .graph(
            Method::GET,
            &format!("/groups?$filter={}", enc("displayName eq 'MailSec'")),
            None,
        )
        .await;
    assert!(ids(&list.body).is_empty(), "nothing created");
}

#[tokio::test]
async fn display_names_are_not_unique_and_a_name_filter_returns_both() {
    let env = common::start().await;
    let a = id_of(&env.create_group("V1_RemoteAssistUser").await);
    let b = id_of(&env.create_group("V1_RemoteAssistUser").await);
    env.create_group("V2_RemoteAssistUser").await;
    assert_ne!(a, b);
    let r = env
        .graph(
            Method::GET,
            &format!(
                "/groups?$filter={}&$select=id,displayName,mailNickname,securityEnabled",
                enc("displayName eq 'V1_RemoteAssistUser'")
            ),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(ids(&r.body), BTreeSet::from([a, b]));
}

#[tokio::test]
async fn adding_a_member_is_204_and_adding_again_is_400() {
    let env = common::start().await;
    let g = id_of(&env.create_group("G_add").await);
    let u = id_of(&env.create_user("member1", Some("US")).await);
    let a = add_member(&env, &g, &u).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    assert_eq!(member_ids(&env, &g).await, vec![u.clone()]);

    let again = add_member(&env, &g, &u).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{:?}", again.body);
    assert_eq!(again.error_code(), "Request_BadRequest");
    assert_eq!(again.error_message(), ALREADY_EXISTS);
    assert_eq!(member_ids(&env, &g).await, vec![u]);
}

#[tokio::test]
async fn adding_a_missing_object_is_404() {
    let env = common::start().await;
    let g = id_of(&env.create_group("G_missing").await);
    let ghost = uuid::Uuid::new_v4().to_string();
    let a = add_member(&env, &g, &ghost).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);
    assert_eq!(a.error_code(), "Request_ResourceNotFound");
    assert!(member_ids(&env, &g).await.is_empty());
}

#[tokio::test]
async fn removing_a_member_is_204_then_404() {
    let env = common::start().await;
    let g = id_of(&env.create_group("G_remove").await);
    let u = id_of(&env.create_user("leaver", Some("US")).await);
    assert_eq!(add_member(&env, &g, &u).await.status, StatusCode::NO_CONTENT);
    let path = format!("/groups/{g}/members/{u}/$ref");
    let a = env.graph(Method::DELETE, &path, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    assert!(member_ids(&env, &g).await.is_empty());
    let again = env.graph(Method::DELETE, &path, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{:?}", again.body);
    assert_eq!(again.error_code(), "Request_ResourceNotFound");
}

#[tokio::test]
async fn bind_of_21_members_is_400_and_adds_nobody() {
    let env = common::start().await;
    let g = id_of(&env.create_group("G_bind21").await);
    let members = users(&env, "b21u", 21).await;
    let a = bind(&env, &g, &members).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert_eq!(a.error_code(), "Request_BadRequest");
    assert!(member_ids(&env, &g).await.is_empty());
}

#[tokio::test]
async fn bind_of_20_members_is_204_and_adds_all() {
    let env = common::start().await;
    let g = id_of(&env.create_group("G_bind20").await);
    let members = users(&env, "b20u", 20).await;
    let a = bind(&env, &g, &members).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let got: BTreeSet<String> = member_ids(&env, &g).await.into_iter().collect();
    assert_eq!(got, members.into_iter().collect::<BTreeSet<_>>());
}

#[tokio::test]
async fn bind_is_all_or_nothing_with_an_existing_member() {
    let env = common::start().await;
    let g = id_of(&env.create_group("G_aon1").await);
    let existing = id_of(&env.create_user("aon_existing", Some("US")).await);
    assert_eq!(
        add_member(&env, &g, &existing).await.status,
        StatusCode::NO_CONTENT
    );
    let mut batch = users(&env, "aon1_", 3).await;
    batch.insert(1, existing.clone());
    let a = bind(&env, &g, &batch).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert_eq!(a.error_message(), ALREADY_EXISTS);
    assert_eq!(member_ids(&env, &g).await, vec![existing], "nobody added");
}

#[tokio::test]
async fn bind_is_all_or_nothing_with_a_missing_object() {
    let env = common::start().await;
    let g = id_of(&env.create_group("G_aon2").await);
    let mut batch = users(&env, "aon2_", 3).await;
    batch.insert(2, uuid::Uuid::new_v4().to_string());
    let a = bind(&env, &g, &batch).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);
    assert_eq!(a.error_code(), "Request_ResourceNotFound");
    assert!(member_ids(&env, &g).await.is_empty(), "nobody added");
}

#[tokio::test]
async fn members_page_through_next_links() {
    let env = common::start().await;
    let g = id_of(&env.create_group("G_paged").await);
    let members = users(&env, "pm", 7).await;
    for m in &members {
        assert_eq!(add_member(&env, &g, m).await.status, StatusCode::NO_CONTENT);
    }
    let mut next = Some(format!("/groups/{g}/members?$top=3"));
    let mut pages = 0;
    let mut seen = Vec::new();
    while let Some(url) = next {
        pages += 1;
        assert!(pages <= 10, "paging does not terminate");
        let a = env.graph(Method::GET, &url, None).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        let v = a.body["value"].as_array().unwrap();
        assert!(v.len() <= 3);
        for m in v {
            assert_eq!(m["@odata.type"], "#microsoft.graph.user");
            seen.push(m["id"].as_str().unwrap().to_owned());
        }
        next = a.body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7, "no member twice");
    assert_eq!(
        seen.into_iter().collect::<BTreeSet<_>>(),
        members.into_iter().collect::<BTreeSet<_>>()
    );
}

#[tokio::test]
async fn member_of_lists_the_users_groups() {
    let env = common::start().await;
    let u = id_of(&env.create_user("joiner", Some("US")).await);
    let g1 = id_of(&env.create_group("G_m1").await);
    let g2 = id_of(&env.create_group("G_m2").await);
    env.create_group("G_m3").await;
    assert_eq!(add_member(&env, &g1, &u).await.status, StatusCode::NO_CONTENT);
    assert_eq!(add_member(&env, &g2, &u).await.status, StatusCode::NO_CONTENT);
    let a = env
        .graph(Method::GET, &format!("/users/{u}/memberOf"), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(ids(&a.body), BTreeSet::from([g1, g2]));
    for g in a.body["value"].as_array().unwrap() {
        assert_eq!(g["@odata.type"], "#microsoft.graph.group");
    }
}

#[tokio::test]
async fn deleted_security_group_is_gone_for_good() {
    let env = common::start().await;
    let g = id_of(&env.create_group("G_delete").await);
    let a = env.graph(Method::DELETE, &format!("/groups/{g}"), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let got = env.graph(Method::GET, &format!("/groups/{g}"), None).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(got.error_code(), "Request_ResourceNotFound");
    let listed = env
        .graph(
            Method::GET,
            &format!("/groups?$filter={}", enc("displayName eq 'G_delete'")),
            None,
        )
        .await;
    assert!(ids(&listed.body).is_empty());
    // No restore for security groups.
    let deleted = env
        .graph(Method::GET, &format!("/directory/deletedItems/{g}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
    let restore = env
        .graph(
            Method::POST,
            &format!("/directory/deletedItems/{g}/restore"),
            None,
        )
        .await;
    assert_eq!(restore.status, StatusCode::NOT_FOUND);
    let got = env.graph(Method::GET, &format!("/groups/{g}"), None).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
}

/// Referencing a user that is still replicating is refused with "Not a valid reference
/// update.", and works once the user is visible (see
/// entra-sim/docs/wire-protocol.md#replication-delay).
#[tokio::test]
async fn referencing_a_replicating_user_is_not_a_valid_reference_update() {
    let env = common::start().await;
    let group = env.create_group("Replication Group").await;
    let gid = group["id"].as_str().unwrap().to_owned();
    env.set_misbehaviour(serde_json::json!({"seed": 1, "replicationDelayMs": 1500}))
        .await;
    let user = env.create_user("replicating1", Some("US")).await;
    let uid = user["id"].as_str().unwrap().to_owned();
    let reference =
        serde_json::json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{uid}")});
    let first = env
        .graph(
            reqwest::Method::POST,
            &format!("/groups/{gid}/members/$ref"),
            Some(reference.clone()),
        )
        .await;
    assert_eq!(first.status, reqwest::StatusCode::BAD_REQUEST, "{:?}", first.body);
    assert_eq!(first.error_message(), "Not a valid reference update.");
    let path = format!("/groups/{gid}/members/$ref");
    common::eventually(10, || {
        let (env, path, reference) = (&env, path.clone(), reference.clone());
        async move {
            let a = env.graph(reqwest::Method::POST, &path, Some(reference)).await;
            (a.status == reqwest::StatusCode::NO_CONTENT).then_some(())
        }
    })
    .await;
}
