//! Directory roles, administrative units and the reads an administrator's checks make: a
//! password update needs a role whose scope holds the user; a restricted-management unit's
//! members change only under a role scoped to it; creation needs no role.

mod common;

use common::{Env, GOOD_PASSWORD, seed_with, start, start_with};
use entra_sim::seed::{SeedAdministrativeUnit, SeedRoleAssignment};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MARK: &str = "remoteassist.dev/uid-1";
const USER_ADMINISTRATOR: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
const IB_PROCESSOR: &str = "bcf62038-e005-436d-b970-2a472f8c1982";

fn new_password() -> Value {
    json!({"passwordProfile": {"password": "Rotated-Passw0rd!77", "forceChangePasswordNextSignIn": false}})
}

/// A user created by the operator's app, with the operator's mark when `marked`.
async fn account(env: &Env, nickname: &str, marked: bool) -> String {
    let user = env.create_user(nickname, Some("US")).await;
    let id = user["id"].as_str().unwrap().to_owned();
    if marked {
        let a = env
            .graph(
                Method::PATCH,
                &format!("/users/{id}"),
                Some(json!({"employeeType": MARK})),
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    }
    id
}

async fn set_password(env: &Env, token: &str, id: &str) -> common::Answer {
    env.graph_as(
        token,
        Method::PATCH,
        &format!("/users/{id}"),
        Some(new_password()),
        &[],
    )
    .await
}

#[tokio::test]
async fn a_role_scoped_to_the_unit_sets_passwords_inside_it_and_nowhere_else() {
    let env = start().await;
    let inside = account(&env, "inside", true).await;
    let outside = account(&env, "outside", false).await;

    let a = set_password(&env, &env.token, &inside).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let a = set_password(&env, &env.token, &outside).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.error_code(), "Authorization_RequestDenied");
    assert_eq!(
        a.error_message(),
        "Insufficient privileges to complete the operation."
    );
    // Other properties of the same user need no role.
    let a = env
        .graph(
            Method::PATCH,
            &format!("/users/{outside}"),
            Some(json!({"department": "X"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    // The password really did not change.
    let check = env
        .admin(
            Method::POST,
            "/verify-password",
            Some(json!({"userPrincipalName": "outside@vendors.abc.example", "password": GOOD_PASSWORD})),
        )
        .await;
    assert_eq!(check["valid"], true);
}

#[tokio::test]
async fn without_a_role_no_password_is_set_even_at_creation_none_is_needed() {
    let env = start_with(seed_with(|s| {
        s.apps.iter_mut().for_each(|a| a.directory_roles.clear());
    }))
    .await;
    // Creation with a password needs no role.
    let inside = account(&env, "fresh", true).await;
    let a = set_password(&env, &env.token, &inside).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.error_code(), "Authorization_RequestDenied");
    // The same request inside a batch is refused the same way.
    let batch = json!({"requests": [{"id": "1", "method": "PATCH", "url": format!("/users/{inside}"),
        "headers": {"Content-Type": "application/json"}, "body": new_password()}]});
    let a = env.graph(Method::POST, "/$batch", Some(batch)).await;
    assert_eq!(a.body["responses"][0]["status"], 403, "{:?}", a.body);
}

#[tokio::test]
async fn a_user_administrator_cannot_reset_an_administrators_password() {
    let env = start().await;
    let id = account(&env, "admin-in-unit", true).await;
    env.sim
        .sim
        .tenant
        .lock()
        .unwrap()
        .users
        .get_mut(&id)
        .unwrap()
        .directory_roles = vec!["Exchange Administrator".into()];
    let a = set_password(&env, &env.token, &id).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.error_code(), "Authorization_RequestDenied");
}

#[tokio::test]
async fn a_restricted_unit_is_changed_only_under_a_role_scoped_to_it() {
    let env = start_with(seed_with(|s| {
        s.administrative_units[0].is_member_management_restricted = true;
    }))
    .await;
    let ids = entra_sim::seed::default_ids();
    let admin = env
        .token_for(&ids.administrator_client_id, &ids.administrator_secret)
        .await;
    let member = account(&env, "protected", true).await;
    let other = account(&env, "ordinary", false).await;

    // A tenant-wide Global Administrator cannot touch a member, not even its department.
    let a = env
        .graph_as(
            &admin,
            Method::PATCH,
            &format!("/users/{member}"),
            Some(json!({"department": "X"})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        a.error_message()
            .contains("restricted management administrative unit"),
        "{:?}",
        a.body
    );
    let a = env
        .graph_as(&admin, Method::DELETE, &format!("/users/{member}"), None, &[])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // ... but can still change everyone else.
    let a = set_password(&env, &admin, &other).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    // The operator's scoped role covers its accounts: properties, licences, password.
    let a = env
        .graph(
            Method::PATCH,
            &format!("/users/{member}"),
            Some(json!({"accountEnabled": false})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let licence =
        json!({"addLicenses": [{"skuId": common::REMOTE_ASSIST, "disabledPlans": []}], "removeLicenses": []});
    let a = env
        .graph(
            Method::POST,
            &format!("/users/{member}/assignLicense"),
            Some(licence),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let a = set_password(&env, &env.token, &member).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
}

#[tokio::test]
async fn an_assigned_unit_holds_its_listed_members_only() {
    let env = start_with(seed_with(|s| {
        s.administrative_units = vec![SeedAdministrativeUnit {
            id: None,
            display_name: "Listed".into(),
            is_member_management_restricted: false,
            membership_rule: None,
            members: vec!["listed@vendors.abc.example".into()],
        }];
        let operator = s
            .apps
            .iter_mut()
            .find(|a| a.display_name == "remote-assist-operator");
        operator.unwrap().directory_roles = vec![SeedRoleAssignment {
            role: "Helpdesk Administrator".into(),
            administrative_unit: Some("Listed".into()),
        }];
    }))
    .await;
    let listed = account(&env, "listed", true).await;
    let unlisted = account(&env, "unlisted", true).await;
    assert_eq!(
        set_password(&env, &env.token, &listed).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        set_password(&env, &env.token, &unlisted).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_administrators_checks_read_domains_principals_roles_and_units() {
    let env = start().await;
    let org = env.graph(Method::GET, "/organization", None).await;
    assert_eq!(org.status, StatusCode::OK);
    let names: Vec<&str> = org.body["value"][0]["verifiedDomains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"vendors.abc.example") && names.contains(&"abcsim.onmicrosoft.com"));

    let path = format!("/servicePrincipals?$filter=appId eq '{IB_PROCESSOR}'&$select=id,appId,displayName");
    let sp = env.graph(Method::GET, &path, None).await;
    assert_eq!(
        sp.body["value"][0]["displayName"],
        "Information Barrier Processor"
    );
    let path = format!("/servicePrincipals?$filter=appId eq '{}'", common::operator_id());
    let own = env.graph(Method::GET, &path, None).await;
    let principal = own.body["value"][0]["id"].as_str().unwrap().to_owned();

    let path = format!("/roleManagement/directory/roleAssignments?$filter=principalId eq '{principal}'");
    let roles = env.graph(Method::GET, &path, None).await;
    let assignment = &roles.body["value"][0];
    assert_eq!(assignment["roleDefinitionId"], USER_ADMINISTRATOR);
    let scope = assignment["directoryScopeId"].as_str().unwrap();
    let unit = scope
        .strip_prefix("/administrativeUnits/")
        .expect("scoped to a unit");
    let au = env
        .graph(
            Method::GET,
            &format!("/directory/administrativeUnits/{unit}"),
            None,
        )
        .await;
    assert_eq!(au.body["displayName"], "Remote Assist vendor accounts");
    assert_eq!(au.body["membershipType"], "Dynamic");
    assert_eq!(au.body["isMemberManagementRestricted"], false);

    // Without the read permissions, 403.
    let auditor = env
        .token_for(common::auditor_id(), common::auditor_secret())
        .await;
    let a = env
        .graph_as(&auditor, Method::GET, "/servicePrincipals", None, &[])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = env
        .graph_as(
            &auditor,
            Method::GET,
            "/roleManagement/directory/roleAssignments",
            None,
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_consent_the_processors_principal_is_absent() {
    let env = start_with(seed_with(|s| s.service_principals.clear())).await;
    let path = format!("/servicePrincipals?$filter=appId eq '{IB_PROCESSOR}'");
    let sp = env.graph(Method::GET, &path, None).await;
    assert_eq!(sp.status, StatusCode::OK);
    assert_eq!(sp.body["value"], json!([]));
}
