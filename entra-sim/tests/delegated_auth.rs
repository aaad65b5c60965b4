//! Conformance tests for a signed-in user's tokens (entra-sim/docs/wire-protocol.md,
//! "Delegated tokens: device code and refresh token"): the device-code flow with its polling
//! errors, refresh-token rotation and the `invalid_grant` answers with their AADSTS codes, and
//! the compliance endpoint's rules for delegated and app-only tokens.

mod common;

use base64::Engine;
use common::compliance::input;
use common::{Answer, Env, GOOD_PASSWORD, auditor_id, operator_id, operator_secret, tenant};
use entra_sim::Seed;
use entra_sim::seed::{COMPLIANCE_ADMIN_UPN, compliance_administrator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const SCOPE: &str = "https://ps.compliance.protection.outlook.com/.default offline_access";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The default seed with a Compliance Administrator and a one-second polling interval.
fn seed(edit: impl FnOnce(&mut Seed)) -> Seed {
    common::seed_with(|s| {
        s.users.push(compliance_administrator());
        s.device_code_interval_seconds = 1;
        edit(s);
    })
}

async fn device_code(env: &Env, client_id: &str, scope: &str) -> Answer {
    let r = env
        .http
        .post(format!("{}/{}/oauth2/v2.0/devicecode", env.url(), tenant()))
        .form(&[("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .unwrap();
    common::answer(r).await
}

async fn poll(env: &Env, client_id: &str, code: &str) -> Answer {
    let form = [
        ("grant_type", DEVICE_GRANT),
        ("client_id", client_id),
        ("device_code", code),
    ];
    env.token_request(tenant(), &form).await
}

async fn refresh(env: &Env, client_id: &str, token: &str) -> Answer {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
        ("scope", SCOPE),
    ];
    env.token_request(tenant(), &form).await
}

/// The user decides on the code at the verification page.
async fn decide(env: &Env, user_code: &str, upn: &str, decision: &str) -> StatusCode {
    let body = json!({"userCode": user_code, "userPrincipalName": upn, "decision": decision});
    let r = env
        .http
        .post(format!("{}/_sim/devicelogin", env.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    r.status()
}

/// The error and AADSTS code of a refused token request.
fn refusal(a: &Answer) -> (String, u64) {
    let error = a.body["error"].as_str().unwrap_or_default().to_owned();
    let code = a.body["error_codes"][0].as_u64().unwrap_or_default();
    let described = a.body["error_description"].as_str().unwrap_or_default();
    assert!(described.starts_with(&format!("AADSTS{code}: ")), "{:?}", a.body);
    (error, code)
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Signs `upn` in through the whole device-code flow; returns the token answer.
async fn sign_in(env: &Env, upn: &str) -> Value {
    let code = device_code(env, operator_id(), SCOPE).await;
    assert_eq!(code.status, StatusCode::OK, "{:?}", code.body);
    let user_code = code.body["user_code"].as_str().unwrap();
    assert_eq!(decide(env, user_code, upn, "approve").await, StatusCode::OK);
    let answer = poll(env, operator_id(), code.body["device_code"].as_str().unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body
}

#[tokio::test]
async fn the_device_code_flow_pends_slows_down_and_redeems_once() {
    let env = common::start_with(seed(|_| {})).await;
    let code = device_code(&env, operator_id(), SCOPE).await;
    assert_eq!(code.status, StatusCode::OK, "{:?}", code.body);
    let (device, user_code) = (
        code.body["device_code"].as_str().unwrap(),
        code.body["user_code"].as_str().unwrap(),
    );
    assert_eq!(code.body["interval"], 1);
    assert_eq!(code.body["expires_in"], 900);
    assert_eq!(code.body["verification_uri"], "https://microsoft.com/devicelogin");
    let message = code.body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("enter the code {user_code} to authenticate")),
        "{message}"
    );

    assert_eq!(
        refusal(&poll(&env, operator_id(), device).await),
        ("authorization_pending".into(), 70016)
    );
    // Sooner than the interval after the last poll.
    assert_eq!(refusal(&poll(&env, operator_id(), device).await).0, "slow_down");
    assert_eq!(
        decide(&env, user_code, COMPLIANCE_ADMIN_UPN, "approve").await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let signed_in = poll(&env, operator_id(), device).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{:?}", signed_in.body);
    assert!(
        signed_in.body["refresh_token"].is_string(),
        "offline_access gives a refresh token"
    );
    let c = claims(signed_in.body["access_token"].as_str().unwrap());
    assert_eq!(c["idtyp"], "user");
    assert_eq!(c["upn"], COMPLIANCE_ADMIN_UPN);
    assert_eq!(c["aud"], "https://ps.compliance.protection.outlook.com");
    assert_eq!(c["scp"], "Exchange.Manage");
    assert_eq!(c["wids"], json!(["17315797-102d-40b4-93e0-432062caca18"]));
    assert!(c.get("roles").is_none(), "a delegated token has no app roles");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        refusal(&poll(&env, operator_id(), device).await),
        ("invalid_grant".into(), 54005)
    );
    assert_eq!(
        refusal(&poll(&env, operator_id(), "not-a-device-code").await).0,
        "bad_verification_code"
    );
}

#[tokio::test]
async fn a_declined_or_expired_code_ends_the_flow() {
    let env = common::start_with(seed(|s| s.device_code_lifetime_seconds = 1)).await;
    let declined = device_code(&env, operator_id(), SCOPE).await.body;
    let user_code = declined["user_code"].as_str().unwrap();
    assert_eq!(
        decide(&env, user_code, COMPLIANCE_ADMIN_UPN, "decline").await,
        StatusCode::OK
    );
    let answer = poll(&env, operator_id(), declined["device_code"].as_str().unwrap()).await;
    assert_eq!(refusal(&answer).0, "authorization_declined");

    let late = device_code(&env, operator_id(), SCOPE).await.body;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let user_code = late["user_code"].as_str().unwrap();
    assert_eq!(
        decide(&env, user_code, COMPLIANCE_ADMIN_UPN, "approve").await,
        StatusCode::CONFLICT
    );
    let answer = poll(&env, operator_id(), late["device_code"].as_str().unwrap()).await;
    assert_eq!(refusal(&answer), ("expired_token".into(), 70019));
}

#[tokio::test]
async fn the_flow_refuses_unknown_clients_resources_and_confidential_only_apps() {
    let env = common::start_with(seed(|_| {})).await;
    let unknown = device_code(&env, "00000000-0000-0000-0000-000000000001", SCOPE).await;
    assert_eq!(refusal(&unknown), ("unauthorized_client".into(), 700016));
    let resource = device_code(&env, operator_id(), "https://nowhere.example/.default").await;
    assert_eq!(refusal(&resource), ("invalid_resource".into(), 500011));
    // The auditor app does not allow public client flows: its approved code cannot be redeemed
    // without a client credential.
    let code = device_code(&env, auditor_id(), SCOPE).await.body;
    let user_code = code["user_code"].as_str().unwrap();
    assert_eq!(
        decide(&env, user_code, COMPLIANCE_ADMIN_UPN, "approve").await,
        StatusCode::OK
    );
    let answer = poll(&env, auditor_id(), code["device_code"].as_str().unwrap()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refusal(&answer), ("invalid_client".into(), 7000218));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_fail_with_their_aadsts_codes() {
    // A second public client, to redeem the operator app's refresh token with.
    let env = common::start_with(seed(|s| {
        let auditor = s.apps.iter_mut().find(|a| a.client_id == auditor_id()).unwrap();
        auditor.allow_public_client = true;
    }))
    .await;
    let first = sign_in(&env, COMPLIANCE_ADMIN_UPN).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = refresh(&env, operator_id(), &first).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let second = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "every redemption returns a new refresh token");
    assert_eq!(
        refresh(&env, operator_id(), &first).await.status,
        StatusCode::OK,
        "the old one still works"
    );

    assert_eq!(
        refusal(&refresh(&env, operator_id(), "garbage").await),
        ("invalid_grant".into(), 9002313)
    );
    assert_eq!(
        refusal(&refresh(&env, auditor_id(), &second).await),
        ("invalid_grant".into(), 70000)
    );

    // Revoking the user's sessions ends every token of the sign-in; a new sign-in works.
    let admin = env
        .graph(Method::GET, &format!("/users/{COMPLIANCE_ADMIN_UPN}"), None)
        .await;
    let id = admin.body["id"].as_str().unwrap().to_owned();
    let revoke = env
        .graph_as(
            &admin_token(&env).await,
            Method::POST,
            &format!("/users/{id}/revokeSignInSessions"),
            None,
            &[],
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{:?}", revoke.body);
    assert_eq!(revoke.body["value"], true);
    for token in [&first, &second] {
        let answer = refresh(&env, operator_id(), token).await;
        assert_eq!(refusal(&answer), ("invalid_grant".into(), 50173));
        let described = answer.body["error_description"].as_str().unwrap();
        assert!(described.contains("TokensValidFrom"), "{described}");
    }
    let again = sign_in(&env, COMPLIANCE_ADMIN_UPN).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(refresh(&env, operator_id(), &again).await.status, StatusCode::OK);

    // A password change revokes too; a disabled user cannot redeem.
    let admin_token = admin_token(&env).await;
    let password = json!({"passwordProfile": {"password": GOOD_PASSWORD}});
    let path = format!("/users/{id}");
    let set = env
        .graph_as(&admin_token, Method::PATCH, &path, Some(password), &[])
        .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{:?}", set.body);
    assert_eq!(refusal(&refresh(&env, operator_id(), &again).await).1, 50173);
    let fresh = sign_in(&env, COMPLIANCE_ADMIN_UPN).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let disable = json!({"accountEnabled": false});
    env.graph_as(&admin_token, Method::PATCH, &path, Some(disable), &[])
        .await;
    assert_eq!(
        refusal(&refresh(&env, operator_id(), &fresh).await),
        ("invalid_grant".into(), 50057)
    );
}

/// A Graph token of the tenant's administrator app (the Global Administrator changes by hand).
async fn admin_token(env: &Env) -> String {
    let ids = entra_sim::seed::default_ids();
    env.token_for(&ids.administrator_client_id, &ids.administrator_secret)
        .await
}

#[tokio::test]
async fn an_unused_refresh_token_expires_for_inactivity() {
    let env = common::start_with(seed(|s| s.refresh_token_inactivity_seconds = 1)).await;
    let token = sign_in(&env, COMPLIANCE_ADMIN_UPN).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        refusal(&refresh(&env, operator_id(), &token).await),
        ("invalid_grant".into(), 700082)
    );
}

async fn get_policies(env: &Env, token: &str) -> Answer {
    let url = format!("{}/eur03b/adminapi/beta/{}/InvokeCommand", env.url(), tenant());
    let body = input("Get-InformationBarrierPolicy", json!({}));
    let r = env
        .http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    common::answer(r).await
}

#[tokio::test]
async fn the_compliance_endpoint_takes_an_administrators_delegated_token_and_may_refuse_app_only() {
    let env = common::start_with(seed(|s| s.compliance_app_only = false)).await;
    let app_only = env.compliance_token_for(operator_id(), operator_secret()).await;
    let refused = get_policies(&env, &app_only).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{:?}", refused.body);
    assert!(
        refused
            .error_message()
            .contains("App-only authentication is not supported")
    );

    let admin = sign_in(&env, COMPLIANCE_ADMIN_UPN).await;
    let ok = get_policies(&env, admin["access_token"].as_str().unwrap()).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);

    // A user without the role signs in, but the endpoint refuses them.
    let engineer = sign_in(&env, "alice.engineer@abc.example").await;
    let denied = get_policies(&env, engineer["access_token"].as_str().unwrap()).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{:?}", denied.body);
    assert!(denied.error_message().contains("not a Compliance Administrator"));

    // The default seed accepts app-only tokens.
    let default = common::start().await;
    let token = default
        .compliance_token_for(operator_id(), operator_secret())
        .await;
    assert_eq!(get_policies(&default, &token).await.status, StatusCode::OK);
}
