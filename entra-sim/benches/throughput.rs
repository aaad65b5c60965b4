//! The simulator must never be the bottleneck. Prints, for a tenant holding 100,000 users:
//! resident memory, the time to start, and the sustained rate of simple Graph reads
//! (`GET /v1.0/users/{id}`) on loopback with misbehaviour off.
//!
//!   cargo bench -p entra-sim --bench throughput
//!
//! The load generator runs in the same process (and on the same two cores), so the figure is
//! a lower bound on what the simulator alone can serve.

use entra_sim::Seed;
use entra_sim::seed::SeedUser;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const USERS: usize = 100_000;
const CLIENTS: usize = 64;
const RUN: Duration = Duration::from_secs(10);

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let before = rss_mib();
    let mut seed = Seed::default_seed();
    seed.users.extend((0..USERS).map(|i| SeedUser {
        id: None,
        user_principal_name: format!("bench{i:06}@vendors.abc.example"),
        display_name: format!("Bench User {i}"),
        mail_nickname: None,
        account_enabled: true,
        usage_location: Some("US".into()),
        department: None,
        password: None,
        directory_roles: Vec::new(),
    }));
    let started = Instant::now();
    let sim = entra_sim::start(seed, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let load_time = started.elapsed();
    let users = sim.sim.tenant.lock().unwrap().users.len();
    println!(
        "tenant: {users} users loaded in {:.2?}; resident memory {:.0} MiB (was {:.0} MiB)",
        load_time,
        rss_mib(),
        before
    );

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let token: serde_json::Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.url(),
            entra_sim::seed::default_ids().tenant_id
        ))
        .form(&[
            (
                "client_id",
                entra_sim::seed::default_ids().operator_client_id.as_str(),
            ),
            (
                "client_secret",
                entra_sim::seed::default_ids().operator_secret.as_str(),
            ),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = Arc::new(token["access_token"].as_str().unwrap().to_owned());
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN;
    let base = Arc::new(sim.url());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, token, done, failed, base) = (
                http.clone(),
                token.clone(),
                done.clone(),
                failed.clone(),
                base.clone(),
            );
            tokio::spawn(async move {
                let mut i = c;
                while Instant::now() < deadline {
                    let url = format!("{base}/v1.0/users/bench{:06}@vendors.abc.example", i % USERS);
                    match http.get(url).bearer_auth(token.as_str()).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += CLIENTS;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed);
    println!(
        "GET /v1.0/users/{{upn}}: {n} requests in {:?} with {CLIENTS} connections = {:.0} requests/s ({} failed); resident memory {:.0} MiB",
        RUN,
        n as f64 / RUN.as_secs_f64(),
        failed.load(Ordering::Relaxed),
        rss_mib()
    );
    sim.stop().await;
}
