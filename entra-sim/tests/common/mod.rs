//! Shared helpers for the conformance tests: start the simulator in-process on a free port,
//! get tokens, and call Graph with an ordinary HTTP client.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod compliance;
pub mod users;

use entra_sim::{RunningSim, Seed};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

pub fn tenant() -> &'static str {
    &entra_sim::seed::default_ids().tenant_id
}
pub fn operator_id() -> &'static str {
    &entra_sim::seed::default_ids().operator_client_id
}
pub fn operator_secret() -> &'static str {
    &entra_sim::seed::default_ids().operator_secret
}
pub fn auditor_id() -> &'static str {
    &entra_sim::seed::default_ids().auditor_client_id
}
pub fn auditor_secret() -> &'static str {
    &entra_sim::seed::default_ids().auditor_secret
}
pub const REMOTE_ASSIST: &str = "7a551360-26c4-4f61-84e6-ef715673e083";
pub const SPE_E5: &str = "06ebc4ee-1bb5-47dd-8120-11324bc54e06";
pub const ENTERPRISEPREMIUM: &str = "c7df2760-2c81-4ef7-b578-5b5392b571df";
pub const EXCHANGE_PLAN: &str = "efb87545-963c-4e0d-99df-69c6916d9eb0";
pub const GOOD_PASSWORD: &str = "Sim-Passw0rd!2026";
pub const COMPLIANCE_SCOPE: &str = "https://ps.compliance.protection.outlook.com/.default";

/// A running simulator plus an HTTP client and an operator token.
pub struct Env {
    pub sim: RunningSim,
    pub http: reqwest::Client,
    pub token: String,
}

/// One Graph answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// The embedded default seed, optionally edited before start.
pub fn seed_with(edit: impl FnOnce(&mut Seed)) -> Seed {
    let mut seed = Seed::default_seed();
    edit(&mut seed);
    seed
}

pub async fn start() -> Env {
    start_with(Seed::default_seed()).await
}

pub async fn start_with(seed: Seed) -> Env {
    let sim = entra_sim::start(seed, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts");
    let http = reqwest::Client::new();
    let mut env = Env {
        sim,
        http,
        token: String::new(),
    };
    env.token = env.token_for(operator_id(), operator_secret()).await;
    env
}

impl Env {
    pub fn url(&self) -> String {
        self.sim.url()
    }

    /// POSTs a form to the token endpoint of `tenant`.
    pub async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> Answer {
        let r = self
            .http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.url()))
            .form(form)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    pub async fn token_for(&self, client_id: &str, secret: &str) -> String {
        let a = self
            .token_request(
                tenant(),
                &[
                    ("client_id", client_id),
                    ("client_secret", secret),
                    ("scope", "https://graph.microsoft.com/.default"),
                    ("grant_type", "client_credentials"),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "token: {:?}", a.body);
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    /// A token for the Security & Compliance endpoint.
    pub async fn compliance_token_for(&self, client_id: &str, secret: &str) -> String {
        let form = [
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", COMPLIANCE_SCOPE),
            ("grant_type", "client_credentials"),
        ];
        let a = self.token_request(tenant(), &form).await;
        assert_eq!(a.status, StatusCode::OK, "token: {:?}", a.body);
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    /// Adds a user to a group by `members/$ref`; panics unless 204.
    pub async fn add_member(&self, group_id: &str, user_id: &str) {
        let body =
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user_id}")});
        let path = format!("/groups/{group_id}/members/$ref");
        let a = self.graph(Method::POST, &path, Some(body)).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "add member: {:?}", a.body);
    }

    /// Calls Graph (`path` relative to `/v1.0`) with the operator's token.
    pub async fn graph(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.graph_as(&self.token, method, path, body, &[]).await
    }

    pub async fn graph_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/v1.0{path}", self.url())
        };
        let mut req = self.http.request(method, url).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    /// Creates a user with the required properties; panics unless 201.
    pub async fn create_user(&self, nickname: &str, usage_location: Option<&str>) -> Value {
        let mut body = json!({
            "accountEnabled": true, "displayName": format!("User {nickname}"), "mailNickname": nickname,
            "userPrincipalName": format!("{nickname}@vendors.abc.example"),
            "passwordProfile": {"password": GOOD_PASSWORD, "forceChangePasswordNextSignIn": false},
        });
        if let Some(loc) = usage_location {
            body["usageLocation"] = json!(loc);
        }
        let a = self.graph(Method::POST, "/users", Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "create user: {:?}", a.body);
        a.body
    }

    /// Creates a security group; panics unless 201.
    pub async fn create_group(&self, name: &str) -> Value {
        let body = json!({"displayName": name, "mailNickname": name.replace(' ', ""), "mailEnabled": false, "securityEnabled": true});
        let a = self.graph(Method::POST, "/groups", Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "create group: {:?}", a.body);
        a.body
    }

    /// Reads the admin API.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}/_sim{path}", self.url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "admin {path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// Changes misbehaviour settings (merged over the current ones).
    pub async fn set_misbehaviour(&self, patch: Value) {
        let mut current = self.admin(Method::GET, "/settings", None).await;
        merge(&mut current, patch);
        self.admin(Method::PUT, "/settings", Some(current)).await;
    }
}

fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Polls `check` until it returns Some, for at most `secs` seconds (replication, async work).
pub async fn eventually<T, F, Fut>(secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached within {secs}s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
