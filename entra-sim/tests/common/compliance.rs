//! Helpers for the Security & Compliance (information barriers) conformance tests: a
//! simulator on a fast IB clock, a compliance token, InvokeCommand calls without following
//! redirects, and checks of the `ErrorId|Type|text` error shape.

use super::{Answer, Env, operator_id, operator_secret, tenant};
use entra_sim::Seed;
use entra_sim::seed::SeedUser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A simulator, a compliance token, and an HTTP client that does not follow redirects.
pub struct Ib {
    pub env: Env,
    pub token: String,
    pub http: reqwest::Client,
}

/// A seed whose IB clock runs an hour per second, with `extra` more users (processing runs at
/// 5,000 users per scaled hour: 3,000 users keep an application InProgress for 0.6 s).
pub fn fast_seed(extra: usize) -> Seed {
    super::seed_with(|s| {
        s.misbehaviour.barrier_time_scale = 3600.0;
        s.users.extend((0..extra).map(|i| SeedUser {
            id: None,
            user_principal_name: format!("filler{i}@abc.example"),
            display_name: format!("Filler {i}"),
            mail_nickname: None,
            account_enabled: true,
            usage_location: None,
            department: None,
            password: None,
            directory_roles: Vec::new(),
        }));
    })
}

pub async fn ib_with(seed: Seed) -> Ib {
    let env = super::start_with(seed).await;
    let token = env.compliance_token_for(operator_id(), operator_secret()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Ib { env, token, http }
}

pub async fn ib() -> Ib {
    ib_with(fast_seed(0)).await
}

pub fn input(cmdlet: &str, params: Value) -> Value {
    json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}})
}

impl Ib {
    pub fn regional(&self) -> String {
        format!(
            "{}/eur03b/adminapi/beta/{}/InvokeCommand",
            self.env.url(),
            tenant()
        )
    }

    pub async fn post(&self, url: &str, token: Option<&str>, body: Value) -> Answer {
        let mut req = self.http.post(url).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        super::answer(req.send().await.unwrap()).await
    }

    pub async fn call(&self, cmdlet: &str, params: Value) -> Answer {
        self.post(&self.regional(), Some(&self.token), input(cmdlet, params))
            .await
    }

    pub async fn ok(&self, cmdlet: &str, params: Value) -> Vec<Value> {
        let a = self.call(cmdlet, params).await;
        assert_eq!(a.status, StatusCode::OK, "{cmdlet}: {:?}", a.body);
        assert!(a.body["@odata.context"].is_string());
        a.body["value"].as_array().unwrap().clone()
    }

    pub async fn one(&self, cmdlet: &str, params: Value) -> Value {
        let mut v = self.ok(cmdlet, params).await;
        assert_eq!(v.len(), 1, "{cmdlet}: {v:?}");
        v.remove(0)
    }

    /// Expects a 400 with `code`; checks the `ErrorId|Type|text` shape and returns the text.
    pub async fn fails(&self, cmdlet: &str, params: Value, code: &str) -> String {
        let a = self.call(cmdlet, params).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{cmdlet}: {:?}", a.body);
        error_text(&a, code)
    }

    pub async fn segment(&self, name: &str, filter: &str) -> Value {
        self.one(
            "New-OrganizationSegment",
            json!({"Name": name, "UserGroupFilter": filter}),
        )
        .await
    }

    pub async fn allow(&self, name: &str, assigned: &str, allowed: &[&str], state: &str) -> Value {
        let params = json!({"Name": name, "AssignedSegment": assigned, "SegmentsAllowed": allowed, "State": state, "Force": true});
        self.one("New-InformationBarrierPolicy", params).await
    }

    /// Starts an application and waits for its end; see [`Ib::wait_end`].
    pub async fn apply(&self) -> (Vec<String>, Value) {
        let started = self
            .one(
                "Start-InformationBarrierPoliciesApplication",
                json!({"Force": true}),
            )
            .await;
        self.wait_end(started).await
    }

    /// Polls an application's status until it ends; returns the statuses seen (in order,
    /// without repeats) and the final object.
    pub async fn wait_end(&self, started: Value) -> (Vec<String>, Value) {
        let id = json!({"Identity": started["Identity"]});
        let mut seen = vec![started["Status"].as_str().unwrap().to_owned()];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let a = self
                .one("Get-InformationBarrierPoliciesApplicationStatus", id.clone())
                .await;
            let status = a["Status"].as_str().unwrap().to_owned();
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if !["NotStarted", "InProgress"].contains(&status.as_str()) {
                return (seen, a);
            }
            assert!(Instant::now() < deadline, "application still {status}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn timeline(&self) -> Value {
        self.env.admin(Method::GET, "/barriers/timeline", None).await
    }

    pub async fn patch_user(&self, user: &Value, body: Value) {
        let path = format!("/users/{}", user["id"].as_str().unwrap());
        let a = self.env.graph(Method::PATCH, &path, Some(body)).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    }

    pub async fn reach(&self, a: &str, b: &str) -> (bool, String) {
        let r = self
            .env
            .admin(Method::GET, &format!("/barriers/reachable?from={a}&to={b}"), None)
            .await;
        (
            r["allowed"].as_bool().unwrap(),
            r["reason"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn barriers(&self) -> Value {
        self.env.admin(Method::GET, "/barriers", None).await
    }
}

pub fn error_text(a: &Answer, code: &str) -> String {
    assert_eq!(a.error_code(), code, "{:?}", a.body);
    let parts: Vec<&str> = a.error_message().splitn(3, '|').collect();
    assert_eq!(parts.len(), 3, "{:?}", a.body);
    assert!(
        parts[0].len() == 8
            && parts[0].starts_with("Ex")
            && parts[0][2..].chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        parts[0]
    );
    if code != "Unauthorized" {
        assert!(parts[1].ends_with(&format!(".{code}")), "{}", parts[1]);
    }
    parts[2].to_owned()
}
