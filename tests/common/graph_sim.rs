//! The simulated tenant and a Graph client for it, for tests that talk HTTP to it.
#![allow(dead_code)]

use entra_sim::Seed;
use remote_assist_operator::graph::{
    AppIdentity, Budget, Credential, GraphClient, RetryPolicy, Secret, TokenProvider,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub fn tenant() -> &'static str {
    &entra_sim::seed::default_ids().tenant_id
}
pub fn client_id() -> &'static str {
    &entra_sim::seed::default_ids().operator_client_id
}
pub fn secret_value() -> &'static str {
    &entra_sim::seed::default_ids().operator_secret
}

pub async fn sim(seed: Seed) -> entra_sim::RunningSim {
    entra_sim::start(seed, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

pub fn client(sim: &entra_sim::RunningSim, credential: Credential, budget: Budget) -> GraphClient {
    client_at(&sim.url(), sim, credential, budget)
}

/// A client whose Graph requests go to `graph` (tokens still come from the simulated tenant).
pub fn client_at(
    graph: &str,
    sim: &entra_sim::RunningSim,
    credential: Credential,
    budget: Budget,
) -> GraphClient {
    let http = reqwest::Client::new();
    let identity = AppIdentity {
        authority: sim.url(),
        tenant_id: tenant().into(),
        client_id: client_id().into(),
        credential,
    };
    let tokens = Arc::new(TokenProvider::new(
        http.clone(),
        identity,
        "https://graph.microsoft.com",
    ));
    let policy = RetryPolicy {
        base_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    GraphClient::new(http, &format!("{graph}/v1.0"), tokens, Arc::new(budget), policy)
}

pub fn secret() -> Credential {
    Credential::ClientSecret {
        secret: Secret::new(secret_value()),
    }
}

pub async fn counters(sim: &entra_sim::RunningSim) -> Value {
    reqwest::get(format!("{}/_sim/counters", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
