//! Conformance tests for `subscribedSkus`, `assignLicense` (users and groups),
//! `licenseDetails` and `licenseAssignmentStates` (see
//! entra-sim/docs/wire-protocol.md#licensing).

mod common;

use common::{ENTERPRISEPREMIUM, EXCHANGE_PLAN, Env, REMOTE_ASSIST, SPE_E5};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const IB_PLAN: &str = "c4801e8a-cb58-4c35-aca6-f2dcc106f287";
const WAIT_SECS: u64 = 10;

fn id_of(object: &Value) -> String {
    object["id"].as_str().unwrap().to_owned()
}

fn add(sku: &str) -> Value {
    json!({"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []})
}

fn remove(sku: &str) -> Value {
    json!({"addLicenses": [], "removeLicenses": [sku]})
}

async fn assign(env: &Env, user: &str, body: Value) -> common::Answer {
    env.graph(Method::POST, &format!("/users/{user}/assignLicense"), Some(body))
        .await
}

async fn assign_group(env: &Env, group: &str, body: Value) -> common::Answer {
    env.graph(
        Method::POST,
        &format!("/groups/{group}/assignLicense"),
        Some(body),
    )
    .await
}

async fn add_member(env: &Env, group: &str, member: &str) {
    let a = env
        .graph(
            Method::POST,
            &format!("/groups/{group}/members/$ref"),
            Some(json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{member}")})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
}

async fn sku(env: &Env, sku_id: &str) -> Value {
    let a = env.graph(Method::GET, "/subscribedSkus", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["skuId"] == sku_id)
        .unwrap_or_else(|| panic!("sku {sku_id} listed"))
        .clone()
}

async fn consumed(env: &Env, sku_id: &str) -> i64 {
    sku(env, sku_id).await["consumedUnits"].as_i64().unwrap()
}

async fn states(env: &Env, user: &str) -> Vec<Value> {
    let a = env
        .graph(
            Method::GET,
            &format!("/users/{user}?$select=licenseAssignmentStates"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body["licenseAssignmentStates"].as_array().unwrap().clone()
}

async fn assigned_skus(env: &Env, user: &str) -> Vec<String> {
    let a = env
        .graph(
            Method::GET,
            &format!("/users/{user}?$select=assignedLicenses"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body["assignedLicenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["skuId"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the user has a state for `sku` assigned by `group` with `state` and `error`.
async fn wait_for_group_state(
    env: &Env,
    user: &str,
    group: &str,
    sku: &str,
    state: &str,
    error: &str,
) -> Value {
    common::eventually(WAIT_SECS, move || async move {
        states(env, user).await.into_iter().find(|s| {
            s["assignedByGroup"] == group && s["skuId"] == sku && s["state"] == state && s["error"] == error
        })
    })
    .await
}

fn with_prepaid(sku_id: &'static str, units: i64) -> entra_sim::Seed {
    common::seed_with(move |s| {
        s.skus
            .iter_mut()
            .find(|k| k.sku_id == sku_id)
            .expect("sku in the default seed")
            .prepaid_units = units;
    })
}

// ---- subscribedSkus (see entra-sim/docs/wire-protocol.md#subscribedskus) ----

#[tokio::test]
async fn subscribed_skus_carry_the_documented_fields() {
    let env = common::start().await;
    let ra = sku(&env, REMOTE_ASSIST).await;
    assert_eq!(ra["skuPartNumber"], "MICROSOFT_REMOTE_ASSIST");
    assert_eq!(ra["appliesTo"], "User");
    assert_eq!(ra["capabilityStatus"], "Enabled");
    assert_eq!(ra["consumedUnits"], 0);
    assert_eq!(ra["prepaidUnits"]["enabled"], 10000);
    for f in ["suspended", "warning", "lockedOut"] {
        assert!(ra["prepaidUnits"][f].is_i64(), "prepaidUnits.{f}");
    }
    for f in ["id", "accountId", "accountName"] {
        assert!(ra[f].is_string(), "{f}");
    }
    assert!(ra["subscriptionIds"].is_array());
    let plans = ra["servicePlans"].as_array().unwrap();
    assert!(!plans.is_empty());
    for p in plans {
        for f in [
            "servicePlanId",
            "servicePlanName",
            "provisioningStatus",
            "appliesTo",
        ] {
            assert!(p[f].is_string(), "servicePlans[].{f}: {p}");
        }
    }
    assert!(plans.iter().any(|p| p["servicePlanName"] == "TEAMS1"));
    let e5 = sku(&env, SPE_E5).await;
    assert!(
        e5["servicePlans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["servicePlanId"] == IB_PLAN && p["servicePlanName"] == "INFORMATION_BARRIERS")
    );
    assert_eq!(sku(&env, ENTERPRISEPREMIUM).await["prepaidUnits"]["enabled"], 100);
}

#[tokio::test]
async fn subscribed_skus_refuse_filter() {
    let env = common::start().await;
    let a = env
        .graph(
            Method::GET,
            "/subscribedSkus?$filter=skuPartNumber%20eq%20'SPE_E5'",
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert!(a.body["value"].is_null());
}

// ---- assignLicense on a user ----
// See entra-sim/docs/wire-protocol.md#assignlicense-on-a-user.

#[tokio::test]
async fn assign_license_requires_both_arrays() {
    let env = common::start().await;
    let u = id_of(&env.create_user("arrays", Some("US")).await);
    for body in [
        json!({"addLicenses": [{"skuId": REMOTE_ASSIST, "disabledPlans": []}]}),
        json!({"removeLicenses": []}),
        json!({}),
    ] {
        let a = assign(&env, &u, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {:?}", a.body);
        assert_eq!(a.error_code(), "Request_BadRequest");
    }
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 0);
    let a = assign(&env, &u, add(REMOTE_ASSIST)).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["id"], u.as_str(), "200 with the user object");
    assert!(
        a.body["assignedLicenses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["skuId"] == REMOTE_ASSIST)
    );
}

#[tokio::test]
async fn assign_license_without_usage_location_is_400() {
    let env = common::start().await;
    let u = id_of(&env.create_user("nowhere", None).await);
    let a = assign(&env, &u, add(REMOTE_ASSIST)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert_eq!(a.error_code(), "Request_BadRequest");
    assert_eq!(
        a.error_message(),
        "License assignment cannot be done for user with invalid usage location."
    );
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 0);
    assert!(assigned_skus(&env, &u).await.is_empty());

    // Setting the usage location makes the same call succeed.
    let p = env
        .graph(
            Method::PATCH,
            &format!("/users/{u}"),
            Some(json!({"usageLocation": "NL"})),
        )
        .await;
    assert_eq!(p.status, StatusCode::NO_CONTENT);
    let a = assign(&env, &u, add(REMOTE_ASSIST)).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
}

#[tokio::test]
async fn assign_license_without_free_seats_is_400() {
    let env = common::start_with(with_prepaid(REMOTE_ASSIST, 1)).await;
    let first = id_of(&env.create_user("seat1", Some("US")).await);
    let second = id_of(&env.create_user("seat2", Some("US")).await);
    assert_eq!(
        assign(&env, &first, add(REMOTE_ASSIST)).await.status,
        StatusCode::OK
    );
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);

    let a = assign(&env, &second, add(REMOTE_ASSIST)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert_eq!(a.error_code(), "Request_BadRequest");
    assert!(
        a.error_message().contains("does not have any available licenses"),
        "{}",
        a.error_message()
    );
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);
    assert!(assigned_skus(&env, &second).await.is_empty());

    // The holder can still re-assign (e.g. to change disabled plans) at full capacity.
    let a = assign(&env, &first, add(REMOTE_ASSIST)).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);

    // Freeing the seat lets the second user have it.
    assert_eq!(
        assign(&env, &first, remove(REMOTE_ASSIST)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        assign(&env, &second, add(REMOTE_ASSIST)).await.status,
        StatusCode::OK
    );
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);
}

#[tokio::test]
async fn consumed_units_follow_assign_and_remove_exactly() {
    let env = common::start().await;
    let base_ra = consumed(&env, REMOTE_ASSIST).await;
    let base_e5 = consumed(&env, SPE_E5).await;
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(id_of(&env.create_user(&format!("cu{i}"), Some("US")).await));
    }
    for (i, u) in users.iter().enumerate() {
        let a = assign(&env, u, add(REMOTE_ASSIST)).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        assert_eq!(consumed(&env, REMOTE_ASSIST).await, base_ra + i as i64 + 1);
    }
    // Two SKUs in one call: each goes up by one.
    let both =
        json!({"addLicenses": [{"skuId": SPE_E5, "disabledPlans": []}], "removeLicenses": [REMOTE_ASSIST]});
    assert_eq!(assign(&env, &users[0], both).await.status, StatusCode::OK);
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, base_ra + 2);
    assert_eq!(consumed(&env, SPE_E5).await, base_e5 + 1);
    assert_eq!(assigned_skus(&env, &users[0]).await, vec![SPE_E5.to_owned()]);

    for u in &users[1..] {
        assert_eq!(
            assign(&env, u, remove(REMOTE_ASSIST)).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, base_ra);
    assert_eq!(consumed(&env, SPE_E5).await, base_e5 + 1);
}

#[tokio::test]
async fn disabled_plans_show_as_disabled_in_license_details() {
    let env = common::start().await;
    let u = id_of(&env.create_user("partial", Some("US")).await);
    let body =
        json!({"addLicenses": [{"skuId": SPE_E5, "disabledPlans": [EXCHANGE_PLAN]}], "removeLicenses": []});
    let a = assign(&env, &u, body).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let lic = a.body["assignedLicenses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["skuId"] == SPE_E5)
        .expect("assigned")
        .clone();
    assert_eq!(lic["disabledPlans"], json!([EXCHANGE_PLAN]));

    let d = env
        .graph(Method::GET, &format!("/users/{u}/licenseDetails"), None)
        .await;
    assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
    let detail = d.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["skuId"] == SPE_E5)
        .expect("licence detail for SPE_E5")
        .clone();
    assert_eq!(detail["skuPartNumber"], "SPE_E5");
    let status = |plan: &str| {
        detail["servicePlans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["servicePlanId"] == plan)
            .unwrap_or_else(|| panic!("plan {plan} listed"))["provisioningStatus"]
            .clone()
    };
    assert_eq!(status(EXCHANGE_PLAN), "Disabled");
    assert_eq!(status(IB_PLAN), "Success");
}

#[tokio::test]
async fn unknown_sku_is_400() {
    let env = common::start().await;
    let u = id_of(&env.create_user("unknownsku", Some("US")).await);
    let ghost = uuid::Uuid::new_v4().to_string();
    let a = assign(&env, &u, add(&ghost)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert_eq!(a.error_code(), "Request_BadRequest");
    // Nothing from a call that failed, even alongside a valid SKU.
    let mixed = json!({"addLicenses": [{"skuId": REMOTE_ASSIST, "disabledPlans": []}, {"skuId": ghost, "disabledPlans": []}], "removeLicenses": []});
    let a = assign(&env, &u, mixed).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert!(assigned_skus(&env, &u).await.is_empty());
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 0);
}

// ---- group-based licensing (see entra-sim/docs/wire-protocol.md#group-based-licensing) ----

#[tokio::test]
async fn group_license_reaches_members_asynchronously() {
    let env = common::start().await;
    let g = id_of(&env.create_group("RA_Licensed").await);
    let mut members = Vec::new();
    for i in 0..3 {
        let u = id_of(&env.create_user(&format!("gl{i}"), Some("US")).await);
        add_member(&env, &g, &u).await;
        members.push(u);
    }
    let a = assign_group(&env, &g, add(REMOTE_ASSIST)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    for u in &members {
        let s = wait_for_group_state(&env, u, &g, REMOTE_ASSIST, "Active", "None").await;
        assert!(s["lastUpdatedDateTime"].is_string());
        assert_eq!(assigned_skus(&env, u).await, vec![REMOTE_ASSIST.to_owned()]);
    }
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 3);
}

#[tokio::test]
async fn group_license_for_a_member_without_usage_location_is_an_error_state() {
    let env = common::start().await;
    let g = id_of(&env.create_group("RA_NoLocation").await);
    let located = id_of(&env.create_user("located", Some("US")).await);
    let homeless = id_of(&env.create_user("homeless", None).await);
    add_member(&env, &g, &located).await;
    add_member(&env, &g, &homeless).await;
    assert_eq!(
        assign_group(&env, &g, add(REMOTE_ASSIST)).await.status,
        StatusCode::ACCEPTED
    );
    wait_for_group_state(&env, &located, &g, REMOTE_ASSIST, "Active", "None").await;
    wait_for_group_state(
        &env,
        &homeless,
        &g,
        REMOTE_ASSIST,
        "Error",
        "ProhibitedInUsageLocationViolation",
    )
    .await;
    assert!(assigned_skus(&env, &homeless).await.is_empty());
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);
}

#[tokio::test]
async fn group_license_beyond_the_seats_is_a_count_violation() {
    let env = common::start_with(with_prepaid(REMOTE_ASSIST, 1)).await;
    let g = id_of(&env.create_group("RA_Scarce").await);
    let a = id_of(&env.create_user("scarce1", Some("US")).await);
    let b = id_of(&env.create_user("scarce2", Some("US")).await);
    add_member(&env, &g, &a).await;
    add_member(&env, &g, &b).await;
    assert_eq!(
        assign_group(&env, &g, add(REMOTE_ASSIST)).await.status,
        StatusCode::ACCEPTED
    );
    let envr = &env;
    let (g, a, b) = (g.as_str(), a.as_str(), b.as_str());
    let outcome = common::eventually(WAIT_SECS, move || async move {
        let mut out = Vec::new();
        for u in [a, b] {
            let s = states(envr, u)
                .await
                .into_iter()
                .find(|s| s["assignedByGroup"] == g && s["skuId"] == REMOTE_ASSIST)?;
            out.push((s["state"].as_str()?.to_owned(), s["error"].as_str()?.to_owned()));
        }
        out.sort();
        Some(out)
    })
    .await;
    assert_eq!(
        outcome,
        vec![
            ("Active".to_owned(), "None".to_owned()),
            ("Error".to_owned(), "CountViolation".to_owned()),
        ]
    );
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);
}

#[tokio::test]
async fn leaving_the_group_removes_the_inherited_license() {
    let env = common::start().await;
    let g = id_of(&env.create_group("RA_Leave").await);
    let stay = id_of(&env.create_user("stayer", Some("US")).await);
    let leave = id_of(&env.create_user("leaver", Some("US")).await);
    add_member(&env, &g, &stay).await;
    add_member(&env, &g, &leave).await;
    assert_eq!(
        assign_group(&env, &g, add(REMOTE_ASSIST)).await.status,
        StatusCode::ACCEPTED
    );
    wait_for_group_state(&env, &leave, &g, REMOTE_ASSIST, "Active", "None").await;
    wait_for_group_state(&env, &stay, &g, REMOTE_ASSIST, "Active", "None").await;
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 2);

    let r = env
        .graph(Method::DELETE, &format!("/groups/{g}/members/{leave}/$ref"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let envr = &env;
    let leave_ref = leave.as_str();
    common::eventually(WAIT_SECS, move || async move {
        states(envr, leave_ref).await.is_empty().then_some(())
    })
    .await;
    assert!(assigned_skus(&env, &leave).await.is_empty());
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);
    assert_eq!(assigned_skus(&env, &stay).await, vec![REMOTE_ASSIST.to_owned()]);
}

#[tokio::test]
async fn the_same_sku_direct_and_via_a_group_takes_one_seat() {
    let env = common::start().await;
    let u = id_of(&env.create_user("both", Some("US")).await);
    let g = id_of(&env.create_group("RA_Both").await);
    assert_eq!(assign(&env, &u, add(REMOTE_ASSIST)).await.status, StatusCode::OK);
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);
    add_member(&env, &g, &u).await;
    assert_eq!(
        assign_group(&env, &g, add(REMOTE_ASSIST)).await.status,
        StatusCode::ACCEPTED
    );
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Active", "None").await;

    let all = states(&env, &u).await;
    assert_eq!(all.len(), 2, "one direct and one inherited state: {all:?}");
    assert!(
        all.iter()
            .any(|s| s["assignedByGroup"].is_null() && s["state"] == "Active")
    );
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);
    assert_eq!(assigned_skus(&env, &u).await, vec![REMOTE_ASSIST.to_owned()]);

    // Dropping the direct assignment keeps the inherited one, still one seat.
    assert_eq!(
        assign(&env, &u, remove(REMOTE_ASSIST)).await.status,
        StatusCode::OK
    );
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);
    assert_eq!(assigned_skus(&env, &u).await, vec![REMOTE_ASSIST.to_owned()]);
}

#[tokio::test]
async fn admin_can_buy_and_cancel_seats() {
    let env = common::start().await;
    let u = id_of(&env.create_user("seats", Some("US")).await);
    let path = format!("/users/{u}/assignLicense");
    let body = json!({"addLicenses": [{"skuId": REMOTE_ASSIST, "disabledPlans": []}], "removeLicenses": []});
    let assign = || env.graph(Method::POST, &path, Some(body.clone()));
    env.admin(
        Method::PUT,
        "/skus/MICROSOFT_REMOTE_ASSIST",
        Some(json!({"prepaidUnits": 0})),
    )
    .await;
    assert_eq!(sku(&env, REMOTE_ASSIST).await["prepaidUnits"]["enabled"], 0);
    let refused = assign().await;
    assert_eq!(refused.status.as_u16(), 400);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not have any available licenses")
    );
    env.admin(
        Method::PUT,
        "/skus/MICROSOFT_REMOTE_ASSIST",
        Some(json!({"prepaidUnits": 1})),
    )
    .await;
    assert_eq!(assign().await.status.as_u16(), 200);
}

/// Group licensing does not retry a user in error by itself: seats bought later and another
/// pass over the group leave the `CountViolation`; `reprocessLicenseAssignment` clears it.
#[tokio::test]
async fn a_count_violation_stays_until_the_user_is_reprocessed() {
    let env = common::start_with(with_prepaid(REMOTE_ASSIST, 0)).await;
    let g = id_of(&env.create_group("RA_Sticky").await);
    let u = id_of(&env.create_user("sticky", Some("US")).await);
    add_member(&env, &g, &u).await;
    assign_group(&env, &g, add(REMOTE_ASSIST)).await;
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Error", "CountViolation").await;
    env.admin(
        Method::PUT,
        "/skus/MICROSOFT_REMOTE_ASSIST",
        Some(json!({"prepaidUnits": 1})),
    )
    .await;
    // A later pass over the group (it gains a second licence) reaches the user...
    assign_group(&env, &g, add(ENTERPRISEPREMIUM)).await;
    wait_for_group_state(&env, &u, &g, ENTERPRISEPREMIUM, "Active", "None").await;
    // ...and leaves the failed one as it was.
    let ra = states(&env, &u)
        .await
        .into_iter()
        .find(|s| s["assignedByGroup"] == g.as_str() && s["skuId"] == REMOTE_ASSIST)
        .unwrap();
    assert_eq!(
        (ra["state"].as_str(), ra["error"].as_str()),
        (Some("Error"), Some("CountViolation"))
    );

    let answer = env
        .graph(
            Method::POST,
            &format!("/users/{u}/reprocessLicenseAssignment"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["id"], u.as_str(), "answers with the user");
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Active", "None").await;
    assert_eq!(consumed(&env, REMOTE_ASSIST).await, 1);

    let missing = env
        .graph(
            Method::POST,
            "/users/00000000-0000-0000-0000-000000000000/reprocessLicenseAssignment",
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Conflicting service plans: an inherited licence that enables a plan conflicting with one the
/// user already holds is a `MutuallyExclusiveViolation`; resolving the conflict is the
/// administrator's, and the user keeps the error until it is reprocessed.
#[tokio::test]
async fn conflicting_service_plans_are_a_mutually_exclusive_violation() {
    let env = common::start_with(common::seed_with(|s| {
        s.mutually_exclusive_plans = vec![["EXCHANGE_S_ENTERPRISE".into(), "CDS_REMOTE_ASSIST".into()]];
    }))
    .await;
    let g = id_of(&env.create_group("RA_Conflict").await);
    let u = id_of(&env.create_user("conflicted", Some("US")).await);
    assert_eq!(assign(&env, &u, add(SPE_E5)).await.status, StatusCode::OK);
    add_member(&env, &g, &u).await;
    assign_group(&env, &g, add(REMOTE_ASSIST)).await;
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Error", "MutuallyExclusiveViolation").await;
    assert_eq!(assigned_skus(&env, &u).await, vec![SPE_E5.to_owned()]);

    // The administrator turns the conflicting plan off: still in error until reprocessed.
    let without_exchange =
        json!({"addLicenses": [{"skuId": SPE_E5, "disabledPlans": [EXCHANGE_PLAN]}], "removeLicenses": []});
    assert_eq!(assign(&env, &u, without_exchange).await.status, StatusCode::OK);
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Error", "MutuallyExclusiveViolation").await;
    let path = format!("/users/{u}/reprocessLicenseAssignment");
    assert_eq!(env.graph(Method::POST, &path, None).await.status, StatusCode::OK);
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Active", "None").await;
}

#[tokio::test]
async fn a_missing_prerequisite_plan_is_a_dependency_violation() {
    let env = common::start_with(common::seed_with(|s| {
        s.plan_dependencies = vec![["CDS_REMOTE_ASSIST".into(), "EXCHANGE_S_ENTERPRISE".into()]];
    }))
    .await;
    let g = id_of(&env.create_group("RA_Dependent").await);
    let u = id_of(&env.create_user("dependent", Some("US")).await);
    add_member(&env, &g, &u).await;
    assign_group(&env, &g, add(REMOTE_ASSIST)).await;
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Error", "DependencyViolation").await;
    assert!(assigned_skus(&env, &u).await.is_empty());

    // The prerequisite arrives (a licence with Exchange): still in error until reprocessed.
    assert_eq!(assign(&env, &u, add(SPE_E5)).await.status, StatusCode::OK);
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Error", "DependencyViolation").await;
    let path = format!("/users/{u}/reprocessLicenseAssignment");
    assert_eq!(env.graph(Method::POST, &path, None).await.status, StatusCode::OK);
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Active", "None").await;
}

#[tokio::test]
async fn a_mailbox_address_already_taken_is_a_uniqueness_violation() {
    let env = common::start_with(common::seed_with(|s| {
        s.mailbox_plans = vec!["CDS_REMOTE_ASSIST".into()];
    }))
    .await;
    let g = id_of(&env.create_group("RA_Unique").await);
    let u = id_of(&env.create_user("taken", Some("US")).await);
    let mut other = json!({
        "accountEnabled": false, "displayName": "Someone else", "mailNickname": "taken",
        "userPrincipalName": "someone.else@vendors.abc.example",
        "passwordProfile": {"password": common::GOOD_PASSWORD, "forceChangePasswordNextSignIn": false},
    });
    let o = env.graph(Method::POST, "/users", Some(other.take())).await;
    assert_eq!(o.status, StatusCode::CREATED, "{:?}", o.body);
    add_member(&env, &g, &u).await;
    assign_group(&env, &g, add(REMOTE_ASSIST)).await;
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Error", "UniquenessViolation").await;

    // The other user's nickname changes: still in error until reprocessed.
    let patch = json!({"mailNickname": "someone.else"});
    let path = format!("/users/{}", id_of(&o.body));
    assert_eq!(
        env.graph(Method::PATCH, &path, Some(patch)).await.status,
        StatusCode::NO_CONTENT
    );
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Error", "UniquenessViolation").await;
    let path = format!("/users/{u}/reprocessLicenseAssignment");
    assert_eq!(env.graph(Method::POST, &path, None).await.status, StatusCode::OK);
    wait_for_group_state(&env, &u, &g, REMOTE_ASSIST, "Active", "None").await;
}
