//! Conformance tests for listing `/users`: `$filter`, advanced queries and paging (see
//! entra-sim/docs/wire-protocol.md#query-options and #paging).

mod common;

use common::REMOTE_ASSIST;
use common::users::{
    DOMAIN, all_pages, assert_bad_request, create_named, filter_path, get_eventual, id_of, ids, lit,
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeSet;

// ---- list and $filter (see entra-sim/docs/wire-protocol.md#query-options) ----

#[tokio::test]
async fn filter_eq_on_upn_and_display_name_needs_no_advanced_headers() {
    let env = common::start().await;
    let a = id_of(&env.create_user("eqa", Some("US")).await);
    let b = id_of(&env.create_user("eqb", Some("US")).await);

    let by_upn = env
        .graph(
            Method::GET,
            &filter_path(&format!("userPrincipalName eq 'eqa@{DOMAIN}'")),
            None,
        )
        .await;
    assert_eq!(by_upn.status, StatusCode::OK, "{:?}", by_upn.body);
    assert_eq!(ids(&by_upn.body), BTreeSet::from([a]));

    let by_name = env
        .graph(Method::GET, &filter_path("displayName eq 'User eqb'"), None)
        .await;
    assert_eq!(by_name.status, StatusCode::OK);
    assert_eq!(ids(&by_name.body), BTreeSet::from([b]));

    let none = env
        .graph(Method::GET, &filter_path("displayName eq 'User nobody'"), None)
        .await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(ids(&none.body).is_empty());
}

#[tokio::test]
async fn filter_startswith() {
    let env = common::start().await;
    let a = id_of(&create_named(&env, "sw1", "Vendor1 Alpha").await);
    let b = id_of(&create_named(&env, "sw2", "Vendor1 Beta").await);
    create_named(&env, "sw3", "Vendor2 Gamma").await;
    let r = env
        .graph(
            Method::GET,
            &filter_path("startswith(displayName,'Vendor1 ')"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(ids(&r.body), BTreeSet::from([a, b]));
}

#[tokio::test]
async fn filter_by_assigned_license() {
    let env = common::start().await;
    let licensed = id_of(&env.create_user("lic1", Some("US")).await);
    env.create_user("lic2", Some("US")).await;
    let assign = env
        .graph(
            Method::POST,
            &format!("/users/{licensed}/assignLicense"),
            Some(
                json!({"addLicenses": [{"skuId": REMOTE_ASSIST, "disabledPlans": []}], "removeLicenses": []}),
            ),
        )
        .await;
    assert_eq!(assign.status, StatusCode::OK, "{:?}", assign.body);
    let r = env
        .graph(
            Method::GET,
            &filter_path(&format!("assignedLicenses/any(s:s/skuId eq {REMOTE_ASSIST})")),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(ids(&r.body), BTreeSet::from([licensed]));
}

#[tokio::test]
async fn a_doubled_quote_in_a_literal_is_data() {
    let env = common::start().await;
    let obrien = id_of(&create_named(&env, "obrien", "Dan O'Brien").await);
    create_named(&env, "obrian", "Dan OBrien").await;
    let r = env
        .graph(
            Method::GET,
            &filter_path(&format!("displayName eq {}", lit("Dan O'Brien"))),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(ids(&r.body), BTreeSet::from([obrien]));
}

#[tokio::test]
async fn an_injection_attempt_inside_one_literal_matches_nothing() {
    let env = common::start().await;
    create_named(&env, "injx", "x").await;
    create_named(&env, "injy", "y").await;
    // What a careless client would splice in; properly escaped it is one literal.
    let value = "x' or displayName eq 'y";
    let r = env
        .graph(
            Method::GET,
            &filter_path(&format!("displayName eq {}", lit(value))),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(ids(&r.body).is_empty(), "matched: {:?}", r.body);
    // The unescaped form is a real `or` and matches both (the control).
    let r = env
        .graph(
            Method::GET,
            &filter_path(&format!("displayName eq '{value}'")),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(ids(&r.body).len(), 2);
}

#[tokio::test]
async fn advanced_operators_need_consistency_level_and_count() {
    let env = common::start().await;
    for filter in [
        "displayName ne 'Alice Engineer'",
        "endswith(userPrincipalName,'@abc.example')",
        "not(startswith(displayName,'Alice'))",
    ] {
        let plain = filter_path(filter);
        let counted = format!("{plain}&$count=true");
        let no_headers = env.graph(Method::GET, &plain, None).await;
        let header_only = get_eventual(&env, &plain).await;
        let count_only = env.graph(Method::GET, &counted, None).await;
        for (what, a) in [
            ("no headers", no_headers),
            ("header without $count", header_only),
            ("$count without header", count_only),
        ] {
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{filter} {what}: {:?}", a.body);
            assert_eq!(a.error_code(), "Request_UnsupportedQuery", "{filter} {what}");
        }
    }
}

#[tokio::test]
async fn advanced_operators_with_consistency_level_and_count_return_odata_count() {
    let env = common::start().await;
    env.create_user("adv1", Some("US")).await;
    env.create_user("adv2", Some("US")).await;
    // Seed: Alice, Bob, Carol, Dave in abc.example; two more in vendors.abc.example.
    for (filter, expected) in [
        ("displayName ne 'Alice Engineer'", 5),
        ("endswith(userPrincipalName,'@abc.example')", 4),
        ("not(startswith(displayName,'User adv'))", 4),
    ] {
        let a = get_eventual(&env, &format!("{}&$count=true", filter_path(filter))).await;
        assert_eq!(a.status, StatusCode::OK, "{filter}: {:?}", a.body);
        assert_eq!(a.body["@odata.count"], expected, "{filter}");
        assert_eq!(a.body["value"].as_array().unwrap().len(), expected, "{filter}");
    }
}

#[tokio::test]
async fn count_without_consistency_level_is_ignored() {
    // aad-advanced-queries: without the header `?$count=true` is silently ignored.
    let env = common::start().await;
    let a = env
        .graph(
            Method::GET,
            &format!("{}&$count=true", filter_path("displayName eq 'Alice Engineer'")),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["value"].as_array().unwrap().len(), 1);
    assert!(a.body.get("@odata.count").is_none(), "{:?}", a.body);
}

#[tokio::test]
async fn top_above_999_is_400() {
    let env = common::start().await;
    let a = env.graph(Method::GET, "/users?$top=1000", None).await;
    assert_bad_request(&a, "$top=1000");
    let a = env.graph(Method::GET, "/users?$top=999", None).await;
    assert_eq!(a.status, StatusCode::OK);
}

// ---- paging (see entra-sim/docs/wire-protocol.md#paging) ----

#[tokio::test]
async fn paging_with_top_visits_every_user_exactly_once() {
    let env = common::start().await;
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let seed = env.graph(Method::GET, "/users", None).await;
    expected.extend(ids(&seed.body));
    for i in 0..9 {
        expected.insert(id_of(&env.create_user(&format!("pt{i}"), None).await));
    }
    assert_eq!(expected.len(), 13);

    let pages = all_pages(&env, "/users?$top=4").await;
    assert_eq!(pages.len(), 4, "13 users in pages of 4");
    let mut seen = Vec::new();
    for p in &pages {
        let v = p["value"].as_array().unwrap();
        assert!(!v.is_empty() && v.len() <= 4, "page size {}", v.len());
        seen.extend(v.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen.len(), expected.len(), "no user twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
}

#[tokio::test]
async fn server_page_size_forces_next_links_and_keeps_the_filter() {
    let env = common::start().await;
    env.set_misbehaviour(json!({"maxPageSize": 5})).await;
    let mut expected = BTreeSet::new();
    for i in 0..12 {
        expected.insert(id_of(
            &create_named(&env, &format!("pg{i}"), &format!("Pager {i:02}")).await,
        ));
    }
    let first = format!(
        "{}&$select=id,displayName",
        filter_path("startswith(displayName,'Pager')")
    );
    let pages = all_pages(&env, &first).await;
    assert_eq!(pages.len(), 3, "12 users in pages of at most 5");
    let mut seen = Vec::new();
    for p in &pages {
        for u in p["value"].as_array().unwrap() {
            assert!(
                u["displayName"].as_str().unwrap().starts_with("Pager"),
                "filter lost: {u}"
            );
            assert!(u.get("userPrincipalName").is_none(), "$select lost: {u}");
            seen.push(u["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen.len(), 12, "no user twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
}
