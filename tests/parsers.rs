//! Property tests of everything that parses what Graph, the token endpoint and the compliance
//! endpoint answer: no input may panic the operator. Pure parsers get arbitrary JSON and
//! strings; the HTTP clients get arbitrary statuses, headers and bodies from a server that says
//! whatever the test tells it to.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use proptest::prelude::*;
use remote_assist_operator::commands::audit::simple_filter;
use remote_assist_operator::compliance::definitions::{Application, Policy, Segment, parse_time};
use remote_assist_operator::compliance::{ComplianceClient, parse_error_message, regional_url};
use remote_assist_operator::controllers::barrier_segment::application::{UNKNOWN_START, recovered, run_of};
use remote_assist_operator::directory::{DirGroup, DirUser};
use remote_assist_operator::graph::{
    AppIdentity, BatchRequest, Budget, Credential, GraphClient, GraphError, RetryPolicy, Secret,
    TokenProvider,
};
use remote_assist_operator::metrics::route_template;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::hash_map(
                prop_oneof![
                    Just("error".to_owned()),
                    Just("code".to_owned()),
                    Just("message".to_owned()),
                    Just("details".to_owned()),
                    Just("innerError".to_owned()),
                    Just("value".to_owned()),
                    Just("responses".to_owned()),
                    Just("id".to_owned()),
                    Just("status".to_owned()),
                    Just("headers".to_owned()),
                    Just("body".to_owned()),
                    Just("@odata.nextLink".to_owned()),
                    ".{0,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Texts that look like times and texts that do not.
fn arb_time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "/Date\\(-?[0-9]{0,22}([+-][0-9]{0,5})?\\)/",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn graph_error_envelopes_never_panic(status in 0u16..1000, body in arb_json(), rid in proptest::option::of(".{0,20}")) {
        let e = GraphError::from_response(status, rid, Some(Duration::from_secs(1)), &body);
        let _ = (e.to_string(), e.is_transient(), e.is_throttled(), e.is_not_found(), e.retry_after(), e.request_id());
        let _ = (e.has_detail("ObjectConflict"), e.message_contains("already exist"), e.status());
        let t = GraphError::from_token_response(status, &body);
        let _ = (t.to_string(), t.is_transient());
    }

    #[test]
    fn typed_objects_decode_or_refuse(body in arb_json()) {
        let _ = serde_json::from_value::<DirUser>(body.clone());
        let _ = serde_json::from_value::<DirGroup>(body.clone());
        let _ = serde_json::from_value::<Segment>(body.clone());
        let _ = serde_json::from_value::<Policy>(body.clone());
        let _ = serde_json::from_value::<Application>(body);
    }

    #[test]
    fn application_answers_of_any_shape_fail_closed(body in arb_json(), created in arb_time_text()) {
        let mut body = body;
        if let Value::Object(m) = &mut body {
            m.insert("Identity".into(), json!("a"));
            m.insert("CreationTime".into(), json!(created));
        }
        let Ok(app) = serde_json::from_value::<Application>(body) else {
            return Ok(());
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        let run = run_of(&app, None, now);
        // A completion counts only with Status Completed, PercentProgress 100 and a readable,
        // credible CreationTime; anything else never counts as started after anything.
        if run.failure.is_none() && !app.is_running() {
            prop_assert!(app.completed());
            prop_assert!(app.created().is_some_and(|c| c <= now.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(300)).unwrap()));
        }
        if app.created().is_none() {
            prop_assert_eq!(run.started_at, UNKNOWN_START);
            prop_assert!(!run.started_after(k8s_openapi::jiff::Timestamp::MIN));
        }
        let (_, applied) = recovered(std::slice::from_ref(&app), now);
        prop_assert!(applied.is_none_or(|r| r.start_known() && app.completed()));
    }

    #[test]
    fn dotnet_times_are_read_exactly(ms in -62_000_000_000_000i64..253_000_000_000_000i64, offset in proptest::option::of((any::<bool>(), 0u32..2400))) {
        let suffix = offset.map(|(plus, o)| format!("{}{o:04}", if plus { '+' } else { '-' })).unwrap_or_default();
        let t = parse_time(&format!("/Date({ms}{suffix})/")).expect("a .NET time");
        prop_assert_eq!(t.as_millisecond(), ms);
        // The same instant in RFC 3339 reads the same.
        prop_assert_eq!(parse_time(&t.to_string()), Some(t));
    }

    #[test]
    fn time_text_never_panics(s in arb_time_text()) {
        let _ = parse_time(&s);
    }

    #[test]
    fn strings_from_the_tenant_never_panic(s in ".{0,80}", t in ".{0,40}") {
        let (id, ex, text) = parse_error_message(&s);
        prop_assert!(id.len() + ex.len() + text.len() <= s.len());
        let _ = regional_url(&s, &t);
        let _ = simple_filter(&s);
        let route = route_template(&s);
        prop_assert!(!route.contains('@'));
    }
}

/// What the fake server answers next: status, headers, body bytes.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

async fn answer(State(next): State<Arc<Mutex<Answer>>>) -> impl IntoResponse {
    let (status, headers, body) = next.lock().unwrap().clone();
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            map.insert(k, v);
        }
    }
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), map, body)
}

async fn token() -> axum::Json<Value> {
    axum::Json(json!({"access_token": "t", "expires_in": 3599, "token_type": "Bearer"}))
}

fn arb_answer() -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        Just(200u16),
        Just(201),
        Just(204),
        Just(302),
        Just(400),
        Just(401),
        Just(404),
        Just(429),
        Just(500),
        Just(503),
        100u16..600
    ];
    let header = prop_oneof![
        (
            "retry-after".prop_map(String::from),
            prop_oneof![Just("1".to_owned()), Just("0".to_owned()), ".{0,8}"]
        ),
        ("location".prop_map(String::from), ".{0,40}"),
        ("request-id".prop_map(String::from), ".{0,20}"),
    ];
    let body = prop_oneof![
        arb_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    (status, prop::collection::vec(header, 0..3), body)
}

#[test]
fn http_answers_of_any_shape_never_panic_the_clients() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let next: Arc<Mutex<Answer>> = Arc::new(Mutex::new((200, vec![], b"{}".to_vec())));
    let (url, graph, compliance) = rt.block_on(async {
        let app = axum::Router::new()
            .route("/{tenant}/oauth2/v2.0/token", axum::routing::post(token))
            .fallback(answer)
            .with_state(next.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let identity = AppIdentity {
            authority: url.clone(),
            tenant_id: "t".into(),
            client_id: "c".into(),
            credential: Credential::ClientSecret {
                secret: Secret::new("s"),
            },
        };
        let policy = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            timeout: Duration::from_secs(5),
        };
        let http = reqwest::Client::new();
        let tokens = Arc::new(TokenProvider::new(
            http.clone(),
            identity.clone(),
            "https://graph.microsoft.com",
        ));
        let graph = GraphClient::new(
            http.clone(),
            &format!("{url}/v1.0"),
            tokens.clone(),
            Arc::new(Budget::unlimited()),
            policy.clone(),
        );
        let compliance = ComplianceClient::new(&url, "t", None, tokens, policy).unwrap();
        (url, graph, compliance)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(&arb_answer(), |a| {
            // A Retry-After of many seconds would only make the test slow: cap it.
            let mut a = a;
            a.1.retain(|(k, v)| k != "retry-after" || v.parse::<u64>().map_or(true, |n| n <= 1));
            *next.lock().unwrap() = a;
            rt.block_on(async {
                let _ = graph.call(reqwest::Method::GET, "/users/x", None).await;
                let _ = graph.list("/users").await;
                let batch = [BatchRequest {
                    method: reqwest::Method::GET,
                    path: "/users/x".into(),
                    body: None,
                }];
                let _ = graph.batch(&batch).await;
                let _ = compliance.segments().await;
                let _ = compliance.start_application().await;
            });
            Ok(())
        })
        .unwrap();
    drop(url);
}
