//! The harness's side of the simulated tenant: its admin API (state, counters, journal,
//! settings), writes counted over resync rounds, and changes made behind the operator's back
//! as an administrator would make them.

use super::clock::hold_for;
use super::cluster::kubectl_ok;
use super::env::{Env, operator_app, operator_secret, tenant};
use remote_assist_operator::directory::Directory;
use remote_assist_operator::graph::{
    AppIdentity, Budget, Credential, GRAPH_RESOURCE, GraphClient, RetryPolicy, Secret, TokenProvider,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Env {
    /// Tenant writes made while the operator goes through `rounds` resync rounds. One round is
    /// one reconcile per object this test labelled, counted from the operator's own reconcile
    /// counter, so a quiet stretch covers reconciles that happened rather than a guessed time.
    pub async fn writes_over(&self, rounds: u64) -> u64 {
        self.writes_during(rounds, async {}).await
    }

    /// As [`Env::writes_over`], with `during` run after the count has started.
    pub async fn writes_during(&self, rounds: u64, during: impl Future<Output = ()>) -> u64 {
        let labelled = kubectl_ok(
            &[
                "get",
                "remoteassist",
                "-A",
                "-l",
                &format!("e2e={}", self.id),
                "-o",
                "name",
            ],
            None,
        );
        let objects = labelled.lines().count() as u64;
        assert!(objects > 0, "no object carries e2e={}", self.id);
        let (writes, start) = (self.tenant_writes().await, self.reconciles().await);
        during.await;
        let want = start + rounds * objects;
        let timeout = Duration::from_secs(30 + 3 * rounds * resync_secs(self.resync));
        self.wait_for(
            &format!("{rounds} rounds of {objects} reconciles (from {start})"),
            timeout,
            async || self.reconciles().await >= want,
        )
        .await;
        self.tenant_writes().await - writes
    }

    /// Asserts that nothing is written to the tenant over `rounds` resync rounds.
    pub async fn no_writes_over(&self, rounds: u64) {
        let writes = self.writes_over(rounds).await;
        assert_eq!(
            writes,
            0,
            "the tenant was written during {rounds} resync rounds: {}",
            self.counters().await
        );
    }

    /// Waits (up to ten rounds) for a round in which nothing is written to the tenant.
    pub async fn settle(&self) {
        for _ in 0..10 {
            if self.writes_over(1).await == 0 {
                return;
            }
        }
        panic!("the tenant is still being written after ten resync rounds");
    }

    /// Waits (at most `within`) until a whole `window` passes without a write to the tenant;
    /// returns the writes so far. The window is a time on purpose, not a number of resync
    /// rounds ([`Env::settle`]): a barrier policy application starts after a debounce and runs
    /// on its own clock, so a round of reconciles can end while one is still pending, and a
    /// test that compares the tenant before and after would miss it (counted in rounds, CI saw
    /// a third application start after the window in
    /// `attack_endpoint::dotnet_times_are_a_real_form_read_also_in_recovery`).
    pub async fn quiet_for(&self, window: Duration, within: Duration) -> u64 {
        let what = format!("{window:?} without a tenant write");
        self.wait_for(&what, within, async || {
            let before = self.tenant_writes().await;
            let why = "a window with no tenant write, which only time can show";
            hold_for(window, why).await;
            self.tenant_writes().await == before
        })
        .await;
        self.tenant_writes().await
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(method, format!("{}/_sim{path}", self.sim.url()));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        assert!(resp.status().is_success(), "admin {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// The operator app's identity in the simulated tenant.
    fn operator_identity(&self) -> AppIdentity {
        AppIdentity {
            authority: self.sim.url(),
            tenant_id: tenant().into(),
            client_id: operator_app().into(),
            credential: Credential::ClientSecret {
                secret: Secret::new(operator_secret()),
            },
        }
    }

    /// Writes to the tenant so far: Graph writes plus compliance commands that change something.
    pub async fn tenant_writes(&self) -> u64 {
        let counters = self.counters().await;
        let compliance: u64 = counters["byRoute"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| {
                ["New-", "Set-", "Remove-", "Start-", "Stop-"]
                    .iter()
                    .any(|v| k.starts_with(&format!("InvokeCommand {v}")))
            })
            .map(|(_, v)| {
                v.as_object()
                    .unwrap()
                    .values()
                    .map(|n| n.as_u64().unwrap())
                    .sum::<u64>()
            })
            .sum();
        counters["writes"].as_u64().unwrap() + compliance
    }

    /// Every user the operator marked as its own.
    pub async fn managed_users(&self) -> Vec<Value> {
        self.state().await["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| {
                u["employeeType"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("remoteassist.dev/"))
            })
            .cloned()
            .collect()
    }

    /// The simulated tenant goes away for `outage` (connections refused), then comes back on
    /// the same address with the same state.
    pub async fn outage(&mut self, outage: Duration) {
        let tenant = self.sim.sim.clone();
        let addr = self.sim.addr;
        let stand_in = entra_sim::server::serve(tenant.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        std::mem::replace(&mut self.sim, stand_in).stop().await;
        hold_for(outage, "the tenant is away for the outage's length").await;
        let back = entra_sim::server::serve(tenant, addr)
            .await
            .expect("the same port is free again");
        std::mem::replace(&mut self.sim, back).stop().await;
    }

    /// Sets the simulated tenant's misbehaviour. Policy applications run 3,600 times faster
    /// than in a real tenant unless the settings say otherwise.
    pub async fn settings(&self, mut settings: Value) {
        if settings.get("barrierTimeScale").is_none() {
            settings["barrierTimeScale"] = json!(3600.0);
        }
        self.admin(reqwest::Method::PUT, "/settings", Some(settings))
            .await;
    }

    /// The simulated tenant's ordered record of writes (`entra-sim/docs/journal.md`).
    pub async fn journal(&self) -> Vec<Value> {
        let j = self.admin(reqwest::Method::GET, "/journal", None).await;
        assert_eq!(j["dropped"], 0, "the journal kept every entry");
        j["entries"].as_array().unwrap().clone()
    }

    pub async fn state(&self) -> Value {
        self.admin(reqwest::Method::GET, "/state", None).await
    }

    pub async fn counters(&self) -> Value {
        self.admin(reqwest::Method::GET, "/counters", None).await
    }

    /// Users in the simulated tenant with this UPN (live ones; at most one can exist).
    pub async fn user(&self, upn: &str) -> Option<Value> {
        self.state().await["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| {
                u["userPrincipalName"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(upn))
            })
            .cloned()
    }

    /// A user that exists before the operator: made through Graph as an administrator would,
    /// enabled, with a password and the given directory roles.
    pub async fn seed_user(&self, upn: &str, password: &str, roles: &[&str]) -> String {
        let nickname = upn.split('@').next().unwrap();
        let body = json!({
            "accountEnabled": true, "displayName": nickname, "mailNickname": nickname,
            "userPrincipalName": upn, "usageLocation": "US", "employeeType": "Contractor",
            "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": false},
        });
        let user = self.portal().create_user(&body).await.expect("seed user");
        let mut t = self.sim.sim.tenant.lock().unwrap();
        let u = t.users.get_mut(&user.id).unwrap();
        u.directory_roles = roles.iter().map(|r| (*r).to_owned()).collect();
        // Visible at once: the attacker's licence meets it as an old account.
        u.visible_at = Instant::now();
        user.id
    }

    /// Sets a user's password as an administrator would.
    pub async fn set_password(&self, upn: &str, password: &str) {
        let id = self.user(upn).await.unwrap()["id"].as_str().unwrap().to_owned();
        let patch =
            json!({"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": false}});
        self.portal().update_user(&id, &patch).await.unwrap();
    }

    pub async fn password_works(&self, upn: &str, password: &str) -> bool {
        let body = json!({"userPrincipalName": upn, "password": password});
        self.admin(reqwest::Method::POST, "/verify-password", Some(body))
            .await["valid"]
            == true
    }

    /// A Graph client with a Global Administrator's rights, to change the tenant behind the
    /// operator's back (as an administrator in the portal would).
    pub fn portal(&self) -> Directory {
        let ids = entra_sim::seed::default_ids();
        self.directory_as(AppIdentity {
            authority: self.sim.url(),
            tenant_id: tenant().into(),
            client_id: ids.administrator_client_id.clone(),
            credential: Credential::ClientSecret {
                secret: Secret::new(ids.administrator_secret.as_str()),
            },
        })
    }

    /// A Graph client with the operator app's own rights (what a stolen credential could do).
    pub fn operator_directory(&self) -> Directory {
        self.directory_as(self.operator_identity())
    }

    fn directory_as(&self, identity: AppIdentity) -> Directory {
        let tokens = Arc::new(TokenProvider::new(self.http.clone(), identity, GRAPH_RESOURCE));
        let graph = GraphClient::new(
            self.http.clone(),
            &format!("{}/v1.0", self.sim.url()),
            tokens,
            Arc::new(Budget::unlimited()),
            RetryPolicy::default(),
        );
        Directory::new(graph, Duration::ZERO)
    }

    /// The compliance endpoint with the operator app's rights, to change barriers by hand.
    pub fn compliance(&self) -> remote_assist_operator::compliance::ComplianceClient {
        let identity = self.operator_identity();
        let tokens = Arc::new(TokenProvider::new(
            self.http.clone(),
            identity,
            remote_assist_operator::compliance::COMPLIANCE_RESOURCE,
        ));
        remote_assist_operator::compliance::ComplianceClient::new(
            &self.sim.url(),
            tenant(),
            None,
            tokens,
            RetryPolicy::default(),
        )
        .unwrap()
    }
}

/// `2s`, `5s`, `1m` as seconds.
fn resync_secs(period: &str) -> u64 {
    match period.strip_suffix('m') {
        Some(m) => m.parse::<u64>().unwrap() * 60,
        None => period.trim_end_matches('s').parse().unwrap(),
    }
}
