//! Conformance tests for `/users` and `/directory/deletedItems`: create, read, update, soft
//! delete, restore and purge (see entra-sim/docs/wire-protocol.md#users); listing, `$filter`
//! and paging are in tests/users_query.rs.

mod common;

use common::users::{
    DOMAIN, assert_bad_request, consumed, filter_path, get_eventual, id_of, ids, lit, valid_body,
};
use common::{Env, REMOTE_ASSIST};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeSet;

// ---- create (see entra-sim/docs/wire-protocol.md#create-a-user) ----

#[tokio::test]
async fn create_returns_201_with_the_user() {
    let env = common::start().await;
    let a = env.graph(Method::POST, "/users", Some(valid_body("new1"))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let id = a.body["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "id is a guid: {id}");
    assert_eq!(a.body["userPrincipalName"], format!("new1@{DOMAIN}"));
    assert_eq!(a.body["displayName"], "User new1");
    // Readable afterwards.
    let got = env.graph(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["id"], id);
}

#[tokio::test]
async fn create_without_each_required_property_is_400() {
    let env = common::start().await;
    for (i, missing) in [
        "accountEnabled",
        "displayName",
        "mailNickname",
        "userPrincipalName",
        "passwordProfile",
    ]
    .into_iter()
    .enumerate()
    {
        let nickname = format!("req{i}");
        let mut body = valid_body(&nickname);
        body.as_object_mut().unwrap().remove(missing);
        let a = env.graph(Method::POST, "/users", Some(body)).await;
        assert_bad_request(&a, missing);
        // Nothing was created.
        let upn = format!("{nickname}@{DOMAIN}");
        let found = env
            .graph(
                Method::GET,
                &filter_path(&format!("userPrincipalName eq {}", lit(&upn))),
                None,
            )
            .await;
        assert_eq!(found.status, StatusCode::OK);
        assert!(
            ids(&found.body).is_empty(),
            "{missing}: a user was created anyway"
        );
    }
}

#[tokio::test]
async fn create_in_an_unverified_domain_is_400() {
    let env = common::start().await;
    let mut body = valid_body("dom1");
    body["userPrincipalName"] = json!("dom1@not-ours.example");
    let a = env.graph(Method::POST, "/users", Some(body)).await;
    assert_bad_request(&a, "unverified domain");
    assert!(
        a.error_message()
            .contains("domain portion of the userPrincipalName property is invalid"),
        "{}",
        a.error_message()
    );
}

#[tokio::test]
async fn create_with_a_disallowed_upn_character_is_400() {
    let env = common::start().await;
    for local in ["jos\u{e9}", "a b", "a(b)", "a,b", "a*b"] {
        let mut body = valid_body("chars");
        body["userPrincipalName"] = json!(format!("{local}@{DOMAIN}"));
        let a = env.graph(Method::POST, "/users", Some(body)).await;
        assert_bad_request(&a, local);
    }
    // The documented specials are allowed.
    let mut body = valid_body("okchars");
    body["userPrincipalName"] = json!(format!("a'b.c-d_e!f#g^h~i@{DOMAIN}"));
    let a = env.graph(Method::POST, "/users", Some(body)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
}

#[tokio::test]
async fn create_with_a_weak_password_is_400() {
    let env = common::start().await;
    for weak in ["password", "short1!", "alllowercaseletters"] {
        let mut body = valid_body("weak");
        body["passwordProfile"]["password"] = json!(weak);
        let a = env.graph(Method::POST, "/users", Some(body)).await;
        assert_bad_request(&a, weak);
        assert!(
            a.error_message()
                .starts_with("The specified password does not comply with password complexity requirements."),
            "{}",
            a.error_message()
        );
    }
}

/// The usage locations the simulated tenant accepts, checked against an independent source
/// rather than the operator's copy of the list.
///
/// Graph's `usageLocation` is "a two-letter country code (ISO standard 3166)", examples US, JP
/// and GB: user resource type, <https://learn.microsoft.com/en-us/graph/api/resources/user>.
/// The codes: Debian's iso-codes 4.15.0 (<https://salsa.debian.org/iso-codes-team/iso-codes>),
/// `iso_3166-1.json` (officially assigned alpha-2 codes) and `iso_3166-3.json` (withdrawn
/// codes, with withdrawal dates). Both read 2026-12-02.
#[tokio::test]
async fn usage_location_accepts_iso_3166_1_codes_only() {
    let env = common::start().await;
    // Officially assigned: Graph's own examples, Germany, South Sudan (2011), Curaçao and Sint
    // Maarten (2010, replacing AN).
    for code in ["US", "JP", "GB", "DE", "SS", "CW", "SX"] {
        let nickname = format!("loc.{}", code.to_lowercase());
        let mut body = valid_body(&nickname);
        body["usageLocation"] = json!(code);
        let a = env.graph(Method::POST, "/users", Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{code}: {:?}", a.body);
        assert_eq!(a.body["usageLocation"], code);
    }
    // Absent from iso_3166-1.json: UK (the United Kingdom's code is GB), EU, XK (used for
    // Kosovo outside ISO 3166-1); withdrawn (iso_3166-3.json): AN (2010-12-15), CS
    // (2006-09-26). Refused on create and on update alike.
    let id = id_of(&env.create_user("loc.patch", Some("US")).await);
    for code in ["UK", "EU", "XK", "AN", "CS"] {
        let mut body = valid_body("loc.bad");
        body["usageLocation"] = json!(code);
        let a = env.graph(Method::POST, "/users", Some(body)).await;
        assert_bad_request(&a, code);
        let a = env
            .graph(
                Method::PATCH,
                &format!("/users/{id}"),
                Some(json!({"usageLocation": code})),
            )
            .await;
        assert_bad_request(&a, code);
    }
}

#[tokio::test]
async fn duplicate_upn_is_400_with_an_object_conflict_detail() {
    let env = common::start().await;
    env.create_user("dup", Some("US")).await;
    // Same UPN, different case: UPNs compare case-insensitively.
    let mut body = valid_body("dup2");
    body["userPrincipalName"] = json!(format!("DUP@{}", DOMAIN.to_uppercase()));
    for body in [valid_body("dup"), body] {
        let a = env.graph(Method::POST, "/users", Some(body)).await;
        assert_bad_request(&a, "duplicate");
        assert_eq!(
            a.error_message(),
            "Another object with the same value for property userPrincipalName already exists."
        );
        let detail = &a.body["error"]["details"][0];
        assert_eq!(detail["code"], "ObjectConflict");
        assert_eq!(detail["target"], "userPrincipalName");
    }
}

// ---- read (see entra-sim/docs/wire-protocol.md#read-and-list-users) ----

#[tokio::test]
async fn get_by_id_and_by_upn_return_the_same_user() {
    let env = common::start().await;
    let created = env.create_user("reader", Some("US")).await;
    let id = id_of(&created);
    for key in [
        id.clone(),
        format!("reader@{DOMAIN}"),
        format!("Reader@{}", DOMAIN.to_uppercase()),
    ] {
        let a = env.graph(Method::GET, &format!("/users/{key}"), None).await;
        assert_eq!(a.status, StatusCode::OK, "{key}: {:?}", a.body);
        assert_eq!(a.body["id"], id.as_str());
        assert_eq!(a.body["userPrincipalName"], format!("reader@{DOMAIN}"));
    }
}

#[tokio::test]
async fn unknown_user_is_404_with_the_documented_message() {
    let env = common::start().await;
    for key in [uuid::Uuid::new_v4().to_string(), format!("nobody@{DOMAIN}")] {
        let a = env.graph(Method::GET, &format!("/users/{key}"), None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{key}");
        assert_eq!(a.error_code(), "Request_ResourceNotFound");
        assert_eq!(
            a.error_message(),
            format!(
                "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
            )
        );
        let inner = &a.body["error"]["innerError"];
        assert!(
            inner["request-id"].is_string() && inner["date"].is_string(),
            "{inner}"
        );
    }
}

#[tokio::test]
async fn default_properties_exclude_licensing_fields_unless_selected() {
    let env = common::start().await;
    let id = id_of(&env.create_user("props", Some("US")).await);

    let plain = env.graph(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(plain.status, StatusCode::OK);
    for absent in ["accountEnabled", "usageLocation", "assignedLicenses"] {
        assert!(
            plain.body.get(absent).is_none(),
            "{absent} returned without $select"
        );
    }
    for present in ["id", "displayName", "userPrincipalName"] {
        assert!(plain.body.get(present).is_some(), "{present} missing by default");
    }

    let path =
        format!("/users/{id}?$select=id,userPrincipalName,accountEnabled,usageLocation,assignedLicenses");
    let selected = env.graph(Method::GET, &path, None).await;
    assert_eq!(selected.status, StatusCode::OK);
    assert_eq!(selected.body["accountEnabled"], true);
    assert_eq!(selected.body["usageLocation"], "US");
    assert_eq!(selected.body["assignedLicenses"], json!([]));
    assert!(selected.body.get("displayName").is_none(), "not selected");

    // Same in a collection.
    let filter = format!("userPrincipalName eq {}", lit(&format!("props@{DOMAIN}")));
    let list = env.graph(Method::GET, &filter_path(&filter), None).await;
    assert!(list.body["value"][0].get("usageLocation").is_none());
    let list = env
        .graph(
            Method::GET,
            &format!("{}&$select=id,usageLocation", filter_path(&filter)),
            None,
        )
        .await;
    assert_eq!(list.body["value"][0]["usageLocation"], "US");
}

// ---- update (see entra-sim/docs/wire-protocol.md#update-a-user) ----

#[tokio::test]
async fn patch_is_204_and_the_change_is_visible() {
    let env = common::start().await;
    let id = id_of(&env.create_user("upd", None).await);
    let a = env
        .graph(
            Method::PATCH,
            &format!("/users/{id}"),
            Some(json!({"displayName": "Updated Name", "usageLocation": "DE", "accountEnabled": false})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    assert!(a.body.is_null(), "204 has no body");
    let got = env
        .graph(
            Method::GET,
            &format!("/users/{id}?$select=displayName,usageLocation,accountEnabled"),
            None,
        )
        .await;
    assert_eq!(got.body["displayName"], "Updated Name");
    assert_eq!(got.body["usageLocation"], "DE");
    assert_eq!(got.body["accountEnabled"], false);
}

#[tokio::test]
async fn patch_extension_attribute_15_and_filter_on_it() {
    let env = common::start().await;
    let tagged = id_of(&env.create_user("ext1", Some("US")).await);
    env.create_user("ext2", Some("US")).await;
    let a = env
        .graph(
            Method::PATCH,
            &format!("/users/{tagged}"),
            Some(json!({"onPremisesExtensionAttributes": {"extensionAttribute15": "managed-by:operator"}})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let got = env
        .graph(
            Method::GET,
            &format!("/users/{tagged}?$select=onPremisesExtensionAttributes"),
            None,
        )
        .await;
    assert_eq!(
        got.body["onPremisesExtensionAttributes"]["extensionAttribute15"],
        "managed-by:operator"
    );
    // Sent as an advanced query, which real Graph accepts whether or not it requires it.
    let filter = "onPremisesExtensionAttributes/extensionAttribute15 eq 'managed-by:operator'";
    let r = get_eventual(&env, &format!("{}&$count=true", filter_path(filter))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(ids(&r.body), BTreeSet::from([tagged]));
}

// ---- soft delete, restore, purge ----
// See entra-sim/docs/wire-protocol.md#soft-delete-restore-and-purge.

async fn deleted_ids(env: &Env) -> BTreeSet<String> {
    let a = env
        .graph(Method::GET, "/directory/deletedItems/microsoft.graph.user", None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    ids(&a.body)
}

#[tokio::test]
async fn delete_moves_the_user_to_deleted_items() {
    let env = common::start().await;
    let id = id_of(&env.create_user("del", Some("US")).await);
    let a = env.graph(Method::DELETE, &format!("/users/{id}"), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);

    let gone = env.graph(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "Request_ResourceNotFound");
    let listed = env
        .graph(
            Method::GET,
            &filter_path(&format!("userPrincipalName eq 'del@{DOMAIN}'")),
            None,
        )
        .await;
    assert!(ids(&listed.body).is_empty(), "deleted user still listed");

    let deleted = env
        .graph(Method::GET, "/directory/deletedItems/microsoft.graph.user", None)
        .await;
    let entry = deleted.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id.as_str())
        .expect("listed in deleted items")
        .clone();
    assert_eq!(entry["userPrincipalName"], format!("del@{DOMAIN}"));
    let when = entry["deletedDateTime"].as_str().expect("deletedDateTime");
    assert!(when.parse::<jiff::Timestamp>().is_ok(), "timestamp: {when}");
}

#[tokio::test]
async fn restore_brings_a_deleted_user_back() {
    let env = common::start().await;
    let id = id_of(&env.create_user("rest", Some("US")).await);
    env.graph(Method::DELETE, &format!("/users/{id}"), None).await;
    let a = env
        .graph(
            Method::POST,
            &format!("/directory/deletedItems/{id}/restore"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["id"], id.as_str());

    let got = env
        .graph(Method::GET, &format!("/users/rest@{DOMAIN}"), None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["id"], id.as_str());
    assert!(!deleted_ids(&env).await.contains(&id), "still in deleted items");
}

#[tokio::test]
async fn restore_conflicts_when_the_upn_was_reused() {
    let env = common::start().await;
    let old = id_of(&env.create_user("reuse", Some("US")).await);
    env.graph(Method::DELETE, &format!("/users/{old}"), None).await;
    let new = id_of(&env.create_user("reuse", Some("US")).await);
    assert_ne!(old, new);
    let a = env
        .graph(
            Method::POST,
            &format!("/directory/deletedItems/{old}/restore"),
            None,
        )
        .await;
    assert_bad_request(&a, "restore over a reused UPN");
    assert_eq!(a.body["error"]["details"][0]["code"], "ObjectConflict");
    assert!(
        deleted_ids(&env).await.contains(&old),
        "the deleted user stays deleted"
    );
}

#[tokio::test]
async fn purge_removes_a_user_from_deleted_items_for_good() {
    let env = common::start().await;
    let id = id_of(&env.create_user("purge", Some("US")).await);
    env.graph(Method::DELETE, &format!("/users/{id}"), None).await;
    assert!(deleted_ids(&env).await.contains(&id));

    let a = env
        .graph(Method::DELETE, &format!("/directory/deletedItems/{id}"), None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    assert!(!deleted_ids(&env).await.contains(&id));
    let a = env
        .graph(Method::GET, &format!("/directory/deletedItems/{id}"), None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = env
        .graph(
            Method::POST,
            &format!("/directory/deletedItems/{id}/restore"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "cannot restore a purged user");
    let a = env.graph(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_licensed_user_frees_its_seat() {
    let env = common::start().await;
    let before = consumed(&env, REMOTE_ASSIST).await;
    let id = id_of(&env.create_user("seat", Some("US")).await);
    let a = env
        .graph(
            Method::POST,
            &format!("/users/{id}/assignLicense"),
            Some(
                json!({"addLicenses": [{"skuId": REMOTE_ASSIST, "disabledPlans": []}], "removeLicenses": []}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, before + 1);
    env.graph(Method::DELETE, &format!("/users/{id}"), None).await;
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, before);
}

/// Soft-deleted users are purged when the retention period has passed (30 days by default;
/// shortened here through the admin API). See
/// entra-sim/docs/wire-protocol.md#soft-delete-restore-and-purge.
#[tokio::test]
async fn deleted_users_are_purged_after_the_retention_period() {
    let env = common::start().await;
    let user = env.create_user("retained1", Some("US")).await;
    let id = user["id"].as_str().unwrap().to_owned();
    env.set_misbehaviour(serde_json::json!({"deletedRetentionSeconds": 1, "groupLicensingDelayMs": 50}))
        .await;
    let deleted = env
        .graph(reqwest::Method::DELETE, &format!("/users/{id}"), None)
        .await;
    assert_eq!(deleted.status, reqwest::StatusCode::NO_CONTENT);
    let item = env
        .graph(
            reqwest::Method::GET,
            &format!("/directory/deletedItems/{id}"),
            None,
        )
        .await;
    assert_eq!(
        item.status,
        reqwest::StatusCode::OK,
        "restorable right after deletion"
    );
    let path = format!("/directory/deletedItems/{id}");
    common::eventually(10, || {
        let (env, path) = (&env, path.clone());
        async move {
            (env.graph(reqwest::Method::GET, &path, None).await.status == reqwest::StatusCode::NOT_FOUND)
                .then_some(())
        }
    })
    .await;
}
