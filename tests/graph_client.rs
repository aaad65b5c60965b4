//! The operator's Graph client against the simulated tenant over HTTP: the three credential
//! kinds, token caching, typed errors with request ids, retries that honour `Retry-After`,
//! bounded retries of 5xx, paging, and `$batch` with per-item throttling.

use entra_sim::Seed;
use entra_sim::seed::SeedFederatedCredential;
use recorder::{Item, Recorder};
use remote_assist_operator::graph::{BatchRequest, Budget, BudgetConfig, Credential, GraphError, Secret};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[path = "common/graph_sim.rs"]
mod graph_sim;
#[path = "common/recorder.rs"]
mod recorder;
use graph_sim::{client, client_at, counters, secret, sim};

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh RSA key and self-signed certificate (PEM), made with the openssl command.
fn key_and_cert(name: &str) -> (String, String) {
    let dir = std::env::temp_dir().join(format!("ra-graph-client-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-days",
            "1", "-subj", "/CN=t",
        ],
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let pair = (read("k.pem"), read("c.pem"));
    let _ = std::fs::remove_dir_all(&dir);
    pair
}

#[tokio::test]
async fn secret_tokens_are_cached_and_paging_is_followed() {
    let sim = sim(Seed::default_seed()).await;
    sim.sim.misbehaviour.lock().unwrap().settings.max_page_size = 2;
    let graph = client(&sim, secret(), Budget::new(BudgetConfig::default()));
    let users = graph.list("/users?$select=id,userPrincipalName").await.unwrap();
    assert_eq!(users.len(), 4, "every seed user across pages of 2");
    graph.get("/subscribedSkus").await.unwrap();
    let c = counters(&sim).await;
    assert_eq!(c["tokenRequests"], 1, "one token serves every call: {c}");
    assert_eq!(c["httpRequests"], 3, "two pages and one more call: {c}");
}

#[tokio::test]
async fn errors_are_typed_and_carry_the_request_id() {
    let sim = sim(Seed::default_seed()).await;
    let graph = client(&sim, secret(), Budget::new(BudgetConfig::default()));
    let e = graph.get("/users/nobody@abc.example").await.unwrap_err();
    match &e {
        GraphError::Api {
            status: 404,
            code,
            request_id: Some(id),
            ..
        } => {
            assert_eq!(code, "Request_ResourceNotFound");
            assert_eq!(id.len(), 36);
        }
        other => panic!("unexpected {other:?}"),
    }
    let wrong = client(
        &sim,
        Credential::ClientSecret {
            secret: Secret::new("wrong"),
        },
        Budget::unlimited(),
    );
    let e = wrong.get("/users").await.unwrap_err();
    assert!(
        matches!(&e, GraphError::Auth { status: 401, codes, .. } if codes == &[7000215]),
        "{e:?}"
    );
    assert!(
        !format!("{e} {e:?}").contains("wrong"),
        "the secret must not appear in the error"
    );
}

#[tokio::test]
async fn certificate_credential_signs_a_client_assertion() {
    let (key, cert) = key_and_cert("cert");
    let mut seed = Seed::default_seed();
    seed.apps[0].certificates.push(cert.clone());
    let sim = sim(seed).await;
    let credential = Credential::Certificate {
        private_key_pem: Secret::new(key),
        certificate_pem: cert,
    };
    let graph = client(&sim, credential, Budget::new(BudgetConfig::default()));
    assert_eq!(graph.list("/users?$select=id").await.unwrap().len(), 4);
}

#[tokio::test]
async fn workload_identity_rereads_the_token_file_for_every_token() {
    let (issuer_key, issuer_cert) = key_and_cert("issuer");
    let issuer = "https://oidc.cluster.example/";
    let subject = "system:serviceaccount:remote-assist:operator";
    let mut seed = Seed::default_seed();
    seed.token_lifetime_seconds = 1;
    seed.apps[0].federated_credentials.push(SeedFederatedCredential {
        issuer: issuer.into(),
        subject: subject.into(),
        audiences: vec!["api://AzureADTokenExchange".into()],
        issuer_keys: vec![issuer_cert],
    });
    let sim = sim(seed).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": issuer, "sub": subject, "aud": "api://AzureADTokenExchange", "iat": now, "exp": now + 3600});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(issuer_key.as_bytes()).unwrap();
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap();
    let file = std::env::temp_dir().join(format!("ra-federated-token-{}", std::process::id()));
    std::fs::write(&file, &jwt).unwrap();
    let graph = client(
        &sim,
        Credential::WorkloadIdentity {
            token_file: file.clone(),
        },
        Budget::unlimited(),
    );
    graph
        .get("/subscribedSkus")
        .await
        .expect("federated token accepted");
    // The kubelet rotated the file (here: to something the issuer never signed). The next token
    // request must read the new content, and so it fails.
    std::fs::write(&file, "not-a-jwt").unwrap();
    let mut refused = None;
    for _ in 0..100 {
        match graph.get("/subscribedSkus").await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await, // the cached token is still valid
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&file);
    assert!(
        matches!(refused, Some(GraphError::Auth { .. })),
        "expected the rotated file to be used: {refused:?}"
    );
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_until_it_succeeds() {
    let mut seed = Seed::default_seed();
    seed.misbehaviour.throttling.enabled = true;
    seed.misbehaviour.throttling.resource_units_per_10s = 20;
    let sim = sim(seed).await;
    let graph = client(&sim, secret(), Budget::unlimited());
    for _ in 0..26 {
        graph
            .get("/users/alice.engineer@abc.example")
            .await
            .expect("retried until it fits");
    }
    let c = counters(&sim).await;
    assert!(
        c["throttled"].as_u64().unwrap() >= 1,
        "the sim must have throttled: {c}"
    );
}

#[tokio::test]
async fn the_shared_budget_avoids_throttling_altogether() {
    let mut seed = Seed::default_seed();
    seed.misbehaviour.throttling.enabled = true;
    seed.misbehaviour.throttling.resource_units_per_10s = 20;
    let sim = sim(seed).await;
    let budget = Budget::new(BudgetConfig {
        resource_units_per_10s: 18.0,
        writes_per_150s: 100.0,
    });
    let graph = client(&sim, secret(), budget);
    for _ in 0..24 {
        graph.get("/users/alice.engineer@abc.example").await.unwrap();
    }
    assert_eq!(counters(&sim).await["throttled"], 0);
}

#[tokio::test]
async fn server_errors_are_retried_within_bounds() {
    let mut seed = Seed::default_seed();
    seed.misbehaviour.error_rate = 0.4;
    let sim = sim(seed).await;
    let graph = client(&sim, secret(), Budget::unlimited());
    for _ in 0..20 {
        graph
            .get("/subscribedSkus")
            .await
            .expect("a 40 % failure rate is absorbed by retries");
    }
    sim.sim.misbehaviour.lock().unwrap().settings.error_rate = 1.0;
    let e = graph.get("/subscribedSkus").await.unwrap_err();
    assert!(matches!(e, GraphError::Exhausted { attempts: 6, .. }), "{e:?}");
}

#[tokio::test]
async fn batch_items_throttled_inside_a_200_are_retried_and_results_keep_their_order() {
    let mut seed = Seed::default_seed();
    seed.misbehaviour.throttling.enabled = true;
    seed.misbehaviour.throttling.resource_units_per_10s = 14;
    let sim = sim(seed).await;
    let graph = client(&sim, secret(), Budget::unlimited());
    let upns = ["alice.engineer", "bob.engineer", "carol.engineer", "dave.finance"];
    let requests: Vec<BatchRequest> = (0..16)
        .map(|i| BatchRequest {
            method: Method::GET,
            path: format!("/users/{}@abc.example", upns[i % 4]),
            body: None,
        })
        .collect();
    let results = graph.batch(&requests).await;
    for (i, r) in results.iter().enumerate() {
        let body = r
            .as_ref()
            .expect("every item succeeds after retries")
            .body
            .value();
        assert!(
            body["userPrincipalName"]
                .as_str()
                .unwrap()
                .starts_with(upns[i % 4]),
            "item {i} out of order"
        );
    }
    let c = counters(&sim).await;
    assert!(
        c["throttled"].as_u64().unwrap() >= 1,
        "some items were throttled: {c}"
    );
    assert!(
        c["httpRequests"].as_u64().unwrap() >= 2,
        "throttled items were sent again: {c}"
    );
}

#[tokio::test]
async fn concurrent_requests_travel_together_and_each_caller_gets_its_own_answer() {
    let sim = sim(Seed::default_seed()).await;
    let graph = client(&sim, secret(), Budget::unlimited()).with_batching();
    let upns = ["alice.engineer", "bob.engineer", "carol.engineer", "dave.finance"];
    let asks = (0..40).map(|i| {
        let graph = &graph;
        async move {
            let upn = format!("{}@abc.example", upns[i % 4]);
            let answer = graph.get(&format!("/users/{upn}")).await.unwrap();
            assert_eq!(
                answer["userPrincipalName"],
                upn.as_str(),
                "request {i} got another's answer"
            );
        }
    });
    // One more that fails: its error is its own, the others still succeed.
    let missing = graph.get("/users/nobody@abc.example");
    let (_, missing) = tokio::join!(futures::future::join_all(asks), missing);
    assert!(missing.unwrap_err().is_not_found());
    let c = counters(&sim).await;
    // Two full batches; the forty-first goes with whatever else is left (here: alone).
    assert!(
        c["batchItems"].as_u64().unwrap() >= 40,
        "requests went inside $batches: {c}"
    );
    assert!(
        c["httpRequests"].as_u64().unwrap() <= 3,
        "41 concurrent requests take at most 3 HTTP requests: {c}"
    );
}

#[tokio::test]
async fn a_throttled_item_of_a_batch_is_retried_alone_after_its_retry_after() {
    let mut seed = Seed::default_seed();
    seed.misbehaviour.throttling.enabled = true;
    seed.misbehaviour.throttling.resource_units_per_10s = 14;
    let sim = sim(seed).await;
    // A budget a little above the tenant's: a few items are throttled, and the 429 pauses
    // everyone until its Retry-After.
    let budget = Budget::new(BudgetConfig {
        resource_units_per_10s: 16.0,
        writes_per_150s: 100.0,
    });
    let recorder = Recorder::start(&sim.url()).await;
    let graph = client_at(&recorder.url, &sim, secret(), budget).with_batching();
    let asks = (0..16).map(|_| graph.get("/users/alice.engineer@abc.example"));
    for answer in futures::future::join_all(asks).await {
        answer.expect("retried until it fits");
    }
    let items = recorder.items();
    let timeline = recorder.timeline();
    let throttled: Vec<&Item> = items.iter().filter(|i| i.status == 429).collect();
    assert!(!throttled.is_empty(), "the sim throttled some items: {timeline}");
    assert!(
        throttled.iter().any(|i| i.batched),
        "an item inside a $batch was throttled"
    );
    assert!(
        items
            .iter()
            .all(|i| i.url.ends_with("/users/alice.engineer@abc.example")),
        "only the asked-for reads were sent: {timeline}"
    );
    // Sixteen callers, sixteen answers: every item sent beyond those is the retry of one 429,
    // so no answered item was sent again and no throttled item was retried twice.
    assert_eq!(items.iter().filter(|i| i.status == 200).count(), 16, "{timeline}");
    assert_eq!(
        items.len(),
        16 + throttled.len(),
        "only throttled items are sent again, once per 429: {timeline}"
    );
    // Nothing was sent while a Retry-After ran (50 ms for the answer's way back).
    for t in &throttled {
        let wait = t.retry_after.expect("the sim sent Retry-After");
        let resume = t.answered + wait - Duration::from_millis(50);
        for later in items.iter().filter(|i| i.sent > t.answered) {
            assert!(
                later.sent >= resume,
                "sent {:?} after a 429 asking for {wait:?}: {timeline}",
                later.sent - t.answered
            );
        }
    }
}
