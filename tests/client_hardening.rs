//! The Graph, token and compliance clients against endpoints that misbehave on purpose: a token
//! endpoint that accepts connections and never answers, a compliance redirect to another host,
//! answers larger than the caps, and a `$batch` item without a status. The endpoints are tiny
//! TCP servers on 127.0.0.1 that serve a bounded number of connections.

use remote_assist_operator::compliance::{ComplianceClient, ComplianceError};
use remote_assist_operator::graph::credentials::TokenTiming;
use remote_assist_operator::graph::{
    AppIdentity, BatchRequest, Budget, Credential, GraphClient, GraphError, RetryPolicy, Secret,
    TokenProvider,
};
use reqwest::Method;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

fn tenant() -> &'static str {
    &entra_sim::seed::default_ids().tenant_id
}
const TOKEN_PATH: &str = "/oauth2/v2.0/token";
/// More connections than any test here makes; the server stops accepting after these.
const MAX_CONNECTIONS: usize = 32;

/// What the fake endpoint does with one request.
enum Reply {
    /// A whole HTTP response, then the connection closes.
    Bytes(String),
    /// Reads the request and never answers.
    Hang,
    /// A 200 with `len` bytes of body, its length announced (`Content-Length`) or not.
    Huge { len: usize, announced: bool },
}

fn json(status: u16, body: &str) -> Reply {
    Reply::Bytes(format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

fn token(n: usize) -> Reply {
    json(
        200,
        &format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":3600}}"#),
    )
}

type Route = dyn Fn(&str, usize) -> Reply + Send + Sync;

/// A fake endpoint: `route(path, n)` answers the `n`th request (from 0) for `path`.
struct Fake {
    url: String,
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Fake {
    async fn start(route: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(listener, Arc::new(route), hits.clone()));
        Fake {
            url: format!("http://127.0.0.1:{port}"),
            port,
            hits,
            task,
        }
    }

    fn hits(&self, path_suffix: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.ends_with(path_suffix))
            .count()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        // Dropping the server's JoinSet closes every connection, hung ones included.
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, route: Arc<Route>, hits: Arc<Mutex<Vec<String>>>) {
    let mut connections = JoinSet::new();
    for _ in 0..MAX_CONNECTIONS {
        let Ok((socket, _)) = listener.accept().await else {
            break;
        };
        connections.spawn(answer(socket, route.clone(), hits.clone()));
    }
    std::future::pending::<()>().await;
}

async fn answer(mut socket: TcpStream, route: Arc<Route>, hits: Arc<Mutex<Vec<String>>>) {
    let Some(path) = read_request(&mut socket).await else {
        return;
    };
    let n = {
        let mut hits = hits.lock().unwrap();
        let n = hits.iter().filter(|p| **p == path).count();
        hits.push(path.clone());
        n
    };
    match route(&path, n) {
        Reply::Bytes(b) => {
            let _ = socket.write_all(b.as_bytes()).await;
        }
        Reply::Hang => std::future::pending::<()>().await,
        Reply::Huge { len, announced } => {
            let length = if announced {
                format!("content-length: {len}\r\n")
            } else {
                String::new()
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n"
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 64 << 10];
            // The client stops reading at its cap: writing then fails and ends this.
            for _ in 0..len.div_ceil(chunk.len()) {
                if socket.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// Reads one request (head and `Content-Length` body) and returns its path.
async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if data.len() > 64 << 10 {
            return None;
        }
        let n = socket.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    }
    let path = head.split_whitespace().nth(1)?;
    Some(path.split('?').next().unwrap_or(path).to_owned())
}

fn tokens(authority: &str, timing: TokenTiming) -> Arc<TokenProvider> {
    let identity = AppIdentity {
        authority: authority.to_owned(),
        tenant_id: tenant().into(),
        client_id: entra_sim::seed::default_ids().operator_client_id.as_str().into(),
        credential: Credential::ClientSecret {
            secret: Secret::new("s"),
        },
    };
    Arc::new(
        TokenProvider::new(reqwest::Client::new(), identity, "https://graph.microsoft.com")
            .with_timing(timing),
    )
}

fn timeout(ms: u64) -> TokenTiming {
    TokenTiming {
        timeout: Duration::from_millis(ms),
        ..TokenTiming::default()
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        timeout: Duration::from_secs(5),
        ..RetryPolicy::default()
    }
}

fn graph(fake: &Fake) -> GraphClient {
    GraphClient::new(
        reqwest::Client::new(),
        &format!("{}/v1.0", fake.url),
        tokens(&fake.url, TokenTiming::default()),
        Arc::new(Budget::unlimited()),
        policy(),
    )
}

fn compliance(fake: &Fake) -> ComplianceClient {
    ComplianceClient::new(
        &fake.url,
        tenant(),
        None,
        tokens(&fake.url, TokenTiming::default()),
        policy(),
    )
    .unwrap()
}

/// A bound for the test itself, so a regression fails instead of hanging.
async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, f).await.expect("finished in time")
}

#[tokio::test]
async fn a_token_endpoint_that_never_answers_fails_within_the_timeout() {
    let fake = Fake::start(|_, _| Reply::Hang).await;
    let tokens = tokens(&fake.url, timeout(300));
    let started = Instant::now();
    let e = within(Duration::from_secs(10), tokens.token()).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        matches!(
            &e,
            GraphError::Transport {
                what: "the token endpoint",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("no answer within 300ms"), "{e}");
    assert!(e.is_transient(), "a retry may find the endpoint back");
}

#[tokio::test]
async fn callers_with_a_valid_token_do_not_wait_for_a_hung_renewal() {
    // The first token request is answered; every later one hangs.
    let fake = Fake::start(|path, n| match (path.ends_with(TOKEN_PATH), n) {
        (true, 0) => token(0),
        _ => Reply::Hang,
    })
    .await;
    // Every cached token is at once due for renewal, so each call wants to renew it.
    let tokens = tokens(
        &fake.url,
        TokenTiming {
            timeout: Duration::from_millis(1500),
            renew_at_remaining: 1.0,
        },
    );
    let first = within(Duration::from_secs(5), tokens.token()).await.unwrap();
    assert_eq!(first.expose(), "tok-0");
    // This call starts the renewal in the background and answers at once.
    let cached = within(Duration::from_millis(250), tokens.token()).await.unwrap();
    assert_eq!(cached.expose(), "tok-0");
    // Wait (bounded) until the renewal reached the endpoint and hangs there.
    for _ in 0..200 {
        if fake.hits(TOKEN_PATH) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(fake.hits(TOKEN_PATH), 2, "the renewal is in flight");
    let callers = (0..8).map(|_| within(Duration::from_millis(250), tokens.token()));
    for answer in futures::future::join_all(callers).await {
        assert_eq!(answer.unwrap().expose(), "tok-0", "the cached token, at once");
    }
    assert_eq!(fake.hits(TOKEN_PATH), 2, "one renewal, shared by every caller");
    // Without a valid token, a caller waits for the hung renewal, and no longer than its timeout.
    tokens.invalidate().await;
    let started = Instant::now();
    let e = within(Duration::from_secs(10), tokens.token()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1500 + 1000),
        "{:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains("no answer within"), "{e}");
}

#[tokio::test]
async fn a_compliance_redirect_to_another_host_is_refused() {
    // Another host on loopback: `localhost` is not the configured `127.0.0.1`.
    let elsewhere = Fake::start(|_, _| json(200, r#"{"value":[]}"#)).await;
    let to = format!(
        "http://localhost:{}/eur03b/adminapi/beta/{}/InvokeCommand",
        elsewhere.port,
        tenant()
    );
    let location = to.clone();
    let fake = Fake::start(move |path, n| {
        if path.ends_with(TOKEN_PATH) {
            return token(n);
        }
        Reply::Bytes(format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ))
    })
    .await;
    let e = within(Duration::from_secs(10), compliance(&fake).segments())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ComplianceError::Redirect { location, .. } if *location == to),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains("refused") && message.contains(&fake.url),
        "{message}"
    );
    assert_eq!(elsewhere.hits(""), 0, "the token never went to the other host");
}

#[tokio::test]
async fn an_oversized_graph_answer_is_refused_with_the_endpoint_and_the_limit() {
    let fake = Fake::start(|path, n| match path {
        p if p.ends_with(TOKEN_PATH) => token(n),
        _ => Reply::Huge {
            len: 17 << 20,
            announced: false,
        },
    })
    .await;
    let e = within(Duration::from_secs(20), graph(&fake).get("/users"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, GraphError::TooLarge { limit, .. } if *limit == 16 << 20),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains("Microsoft Graph (GET")
            && message.contains("/v1.0/users")
            && message.contains("16 MiB"),
        "{message}"
    );
}

#[tokio::test]
async fn an_oversized_compliance_answer_is_refused_with_the_cmdlet_and_the_limit() {
    let fake = Fake::start(|path, n| match path {
        p if p.ends_with(TOKEN_PATH) => token(n),
        _ => Reply::Huge {
            len: 17 << 20,
            announced: true,
        },
    })
    .await;
    let e = within(Duration::from_secs(20), compliance(&fake).segments())
        .await
        .unwrap_err();
    assert!(matches!(&e, ComplianceError::TooLarge { .. }), "{e:?}");
    let message = e.to_string();
    assert!(
        message.contains("Get-OrganizationSegment") && message.contains("16 MiB"),
        "{message}"
    );
}

#[tokio::test]
async fn an_oversized_token_answer_is_refused() {
    let fake = Fake::start(|_, _| Reply::Huge {
        len: 100 << 10,
        announced: false,
    })
    .await;
    let tokens = tokens(&fake.url, TokenTiming::default());
    let e = within(Duration::from_secs(10), tokens.token()).await.unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("the token endpoint") && message.contains("64 KiB"),
        "{message}"
    );
}

#[tokio::test]
async fn a_batch_item_without_a_status_is_an_error_not_a_success() {
    let fake = Fake::start(|path, n| match path {
        p if p.ends_with(TOKEN_PATH) => token(n),
        _ => json(
            200,
            r#"{"responses":[{"id":"0","body":{"id":"u0"}},{"id":"1","status":201,"body":{"id":"u1"}}]}"#,
        ),
    })
    .await;
    let requests: Vec<BatchRequest> = (0..2)
        .map(|i| BatchRequest {
            method: Method::POST,
            path: "/users".into(),
            body: Some(serde_json::json!({"displayName": format!("u{i}")})),
        })
        .collect();
    let results = within(Duration::from_secs(10), graph(&fake).batch(&requests)).await;
    let e = results[0].as_ref().expect_err("no status is no success");
    assert!(e.to_string().contains("no valid status"), "{e}");
    assert_eq!(results[1].as_ref().unwrap().status, 201);
}

#[tokio::test]
async fn a_graph_request_that_never_gets_an_answer_times_out() {
    let fake = Fake::start(|path, n| match path {
        p if p.ends_with(TOKEN_PATH) => token(n),
        _ => Reply::Hang,
    })
    .await;
    let graph = GraphClient::new(
        reqwest::Client::new(),
        &format!("{}/v1.0", fake.url),
        tokens(&fake.url, TokenTiming::default()),
        Arc::new(Budget::unlimited()),
        RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            timeout: Duration::from_millis(300),
            ..RetryPolicy::default()
        },
    );
    let e = within(Duration::from_secs(10), graph.get("/users"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, GraphError::Exhausted { attempts: 2, last } if matches!(**last, GraphError::Transport { .. })),
        "{e:?}"
    );
}
