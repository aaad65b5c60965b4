//! The end-to-end harness: a simulated tenant of its own per test, the operator binary watching only
//! this test's objects (`--watch-selector e2e=<id>`), manifests applied with kubectl against the
//! local API server, and waits on observable conditions (never fixed sleeps).

use super::cluster::{install_crds, kubectl_ok};
use super::fixtures::Manifests;
use super::kubectl::{Run, kubectl};
use super::repo::repo_root;
use entra_sim::seed::{DEFAULT_SEED, Seed};
use entra_sim::server::RunningSim;
use remote_assist_operator::directory::Directory;
use remote_assist_operator::graph::{
    AppIdentity, Budget, Credential, GRAPH_RESOURCE, GraphClient, RetryPolicy, Secret, TokenProvider,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub const TENANT: &str = "3f2b8c1e-7d4a-4e6b-9a1f-5c0d2e8b7a64";
pub const OPERATOR_APP: &str = "5b7e2f0c-1a3d-4c8e-9f6b-2d4a8c0e1f37";
pub const OPERATOR_SECRET: &str = "sim-operator-secret-change-me";

/// The tests of the suite share one local API server; a test that restarts it has it alone
/// (tokio's lock is fair: once such a test waits, the tests that start after it wait too).
static CLUSTER: RwLock<()> = RwLock::const_new(());

/// A test's turn on the shared API server, held as long as its [`Env`].
enum Turn {
    /// With the other tests.
    Shared { _guard: RwLockReadGuard<'static, ()> },
    /// Alone: no other test runs meanwhile.
    Alone { _guard: RwLockWriteGuard<'static, ()> },
    /// No API server used.
    NoCluster,
}

pub struct Env {
    /// Unique per test run; labels every object as `e2e=<id>`.
    pub id: String,
    pub sim: RunningSim,
    pub http: reqwest::Client,
    /// `pub(super)`: benches/scale.rs reads the operators' process ids (`tests/common/mod.rs`).
    pub(super) operators: Vec<Option<Child>>,
    /// The metrics port of the operator started last.
    pub metrics_port: Option<u16>,
    /// The kubeconfig the operators use: the operator's own ServiceAccount under the chart's
    /// RBAC when available, else the test's.
    pub kubeconfig: std::path::PathBuf,
    secret_file: PathBuf,
    pub log: PathBuf,
    pub resync: &'static str,
    /// `RUST_LOG` for the operators.
    pub log_filter: &'static str,
    /// `--concurrency` for the operators.
    pub concurrency: u16,
    /// `--barrier-debounce` and `--barrier-poll-interval` for the operators.
    pub barrier_timing: (&'static str, &'static str),
    /// Released after the operators are killed (fields drop after [`Env::drop`]).
    _turn: Turn,
}

impl Env {
    pub async fn start(name: &str) -> Env {
        let turn = Turn::Shared {
            _guard: CLUSTER.read().await,
        };
        install_crds();
        Self::new(name, turn).await
    }

    /// As [`Env::start`], for a test that restarts the API server: no other test runs until its
    /// `Env` is dropped.
    pub async fn start_alone(name: &str) -> Env {
        let turn = Turn::Alone {
            _guard: CLUSTER.write().await,
        };
        install_crds();
        Self::new(name, turn).await
    }

    /// A simulated tenant only, for commands that need no cluster.
    pub async fn start_without_cluster(name: &str) -> Env {
        Self::new(name, Turn::NoCluster).await
    }

    async fn new(name: &str, turn: Turn) -> Env {
        let seed = Seed::parse(DEFAULT_SEED).expect("default seed");
        let sim = entra_sim::server::start(seed, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("sim starts");
        let id = format!("{name}-{:04x}", rand::random::<u16>());
        let dir = repo_root().join("target/e2e");
        std::fs::create_dir_all(&dir).unwrap();
        let secret_file = dir.join(format!("{id}.secret"));
        std::fs::write(&secret_file, OPERATOR_SECRET).unwrap();
        let env = Env {
            log: dir.join(format!("{id}.log")),
            id,
            sim,
            http: reqwest::Client::new(),
            operators: Vec::new(),
            metrics_port: None,
            kubeconfig: std::env::var_os("OPERATOR_KUBECONFIG")
                .or_else(|| std::env::var_os("KUBECONFIG"))
                .map(Into::into)
                .unwrap_or_default(),
            secret_file,
            resync: "2s",
            log_filter: "info,remote_assist_operator=debug",
            concurrency: 4,
            barrier_timing: ("300ms", "200ms"),
            _turn: turn,
        };
        env.settings(json!({})).await;
        env
    }

    /// Starts (or restarts) the operator binary.
    pub fn start_operator(&mut self) {
        assert!(self.operators.is_empty(), "operator already running");
        self.spawn_operator(&[]);
    }

    /// Starts one more operator process with extra flags; returns its index and metrics port.
    pub fn spawn_operator(&mut self, extra: &[&str]) -> (usize, u16) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // A free port for /metrics, /healthz and /readyz (parallel tests run many operators).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_remote-assist-operator"))
            .args(["run", "--log-format", "json"])
            .args(["--concurrency", &self.concurrency.to_string()])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args([
                "--compliance-url",
                &self.sim.url(),
                "--tenant-initial-domain",
                "abcsim.onmicrosoft.com",
            ])
            .args(["--barrier-debounce", self.barrier_timing.0])
            .args(["--barrier-poll-interval", self.barrier_timing.1])
            .args(["--resync-period", self.resync])
            .args([
                "--graph-url",
                &self.sim.url(),
                "--authority-host",
                &self.sim.url(),
            ])
            .args(["--tenant-id", TENANT, "--client-id", OPERATOR_APP])
            .arg("--client-secret-file")
            .arg(&self.secret_file)
            .args(["--watch-selector", &format!("e2e={}", self.id)])
            .args(extra)
            .env("RUST_LOG", self.log_filter)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("operator binary starts");
        self.operators.push(Some(child));
        self.metrics_port = Some(port);
        (self.operators.len() - 1, port)
    }

    /// SIGKILL every operator: no chance to finish anything.
    pub fn kill_operator(&mut self) {
        for c in self.operators.drain(..).flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL one operator.
    pub fn kill_one(&mut self, index: usize) {
        if let Some(mut c) = self.operators[index].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM to one operator and waits for it to exit; returns whether it exited 0.
    /// An operator that has not exited within [`TERMINATE_BOUND`] is killed and fails the test,
    /// so a hung shutdown fails one test instead of hanging the suite.
    pub fn terminate(&mut self, index: usize) -> bool {
        let Some(c) = self.operators[index].take() else {
            return false;
        };
        terminate_within(c, TERMINATE_BOUND).unwrap_or_else(|e| panic!("operator {index}: {e}"))
    }

    /// GET on the latest operator's own HTTP endpoint: status and body.
    pub async fn operator_http(&self, path: &str) -> (u16, String) {
        let port = self.metrics_port.expect("an operator was started");
        match self
            .http
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    pub fn operator_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Applies manifests (YAML text, or the fixture builders' values), labelling each
    /// `e2e=<id>`.
    pub fn apply(&self, manifests: impl Manifests) {
        let labelled = manifests.labelled(&self.id);
        kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&labelled));
    }

    /// As [`Env::apply`], for manifests the API server may refuse: kubectl's outcome.
    pub fn try_apply(&self, manifests: impl Manifests) -> Run {
        let labelled = manifests.labelled(&self.id);
        kubectl(&["apply", "--server-side", "-f", "-"], Some(&labelled))
    }

    pub fn namespace(&self, suffix: &str) -> String {
        let ns = format!("{}-{suffix}", self.id);
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        ));
        ns
    }

    /// The object, or `None` when the API server says NotFound. Any other failure (an unknown
    /// kind, a refused connection, a denied read) fails the test: it is not absence.
    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let mut args = vec!["get", kind, name, "-o", "json"];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        let run = kubectl(&args, None);
        if run.ok {
            return Some(serde_json::from_str(&run.stdout).unwrap());
        }
        assert!(
            run.stderr.contains("(NotFound)"),
            "kubectl {args:?} failed, and not with NotFound:\n{}",
            run.stderr
        );
        None
    }

    pub fn condition(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        type_: &str,
    ) -> Option<(String, String)> {
        condition_in(&self.get(kind, namespace, name)?, type_, false)
    }

    /// The condition, only when it describes the object's current `metadata.generation`: a
    /// status written for an older spec says nothing about the current one.
    pub fn current_condition(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        type_: &str,
    ) -> Option<(String, String)> {
        current(&self.get(kind, namespace, name)?, type_)
    }

    /// Polls `check` every 100 ms until it holds; on timeout, fails with the operator's log.
    pub async fn wait_for(&self, what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = self.operator_log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "timed out after {timeout:?} waiting for {what}\n--- operator log (last lines, newest first) ---\n{}",
            tail.join("\n")
        );
    }

    pub async fn wait_condition(
        &self,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) {
        let what = format!("{kind} {name}: {type_}={status} {}", reason.unwrap_or(""));
        self.wait_for(&what, Duration::from_secs(90), async || {
            self.current_condition(kind, ns, name, type_)
                .is_some_and(|(s, r)| s == status && reason.is_none_or(|want| r == want))
        })
        .await;
    }

    /// Reconciles so far by the latest operator, from its own `/metrics` (every kind, every
    /// result).
    pub async fn reconciles(&self) -> u64 {
        let (status, text) = self.operator_http("/metrics").await;
        assert_eq!(status, 200, "/metrics: {text}");
        text.lines()
            .filter(|l| l.starts_with("remoteassist_reconciles_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

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
            tenant_id: TENANT.into(),
            client_id: OPERATOR_APP.into(),
            credential: Credential::ClientSecret {
                secret: Secret::new(OPERATOR_SECRET),
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
        tokio::time::sleep(outage).await;
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

    /// The password in a credentials Secret.
    pub fn secret_password(&self, ns: &str, name: &str) -> Option<String> {
        let s = self.get("secret", Some(ns), name)?;
        let b64 = s["data"]["password"].as_str()?;
        use base64::Engine;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
    }

    /// A Graph client with the operator app's rights, to change the tenant behind the
    /// operator's back (as an administrator in the portal would).
    pub fn portal(&self) -> Directory {
        let identity = self.operator_identity();
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
            TENANT,
            None,
            tokens,
            RetryPolicy::default(),
        )
        .unwrap()
    }

    /// Events recorded for an object, as `reason: note` lines.
    pub fn events(&self, ns: &str, name: &str) -> Vec<String> {
        let out = kubectl_ok(
            &[
                "get",
                "events",
                "-n",
                ns,
                "--field-selector",
                &format!("involvedObject.name={name}"),
                "-o",
                "json",
            ],
            None,
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["reason"].as_str().unwrap_or(""),
                    e["note"].as_str().or(e["message"].as_str()).unwrap_or("")
                )
            })
            .collect()
    }
}

/// `2s`, `5s`, `1m` as seconds.
fn resync_secs(period: &str) -> u64 {
    match period.strip_suffix('m') {
        Some(m) => m.parse::<u64>().unwrap() * 60,
        None => period.trim_end_matches('s').parse().unwrap(),
    }
}

/// How long an operator may take to exit after SIGTERM.
pub const TERMINATE_BOUND: Duration = Duration::from_secs(30);

/// Sends SIGTERM to `child` and waits at most `bound` for it to exit: `Ok(exited 0)`, or an
/// error (after a SIGKILL) when it was still running.
pub fn terminate_within(mut child: Child, bound: Duration) -> Result<bool, String> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < bound {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status.success());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("still running {bound:?} after SIGTERM; killed"))
}

/// `type_`'s condition as (status, reason), if it was written for `obj`'s current generation.
pub fn current(obj: &Value, type_: &str) -> Option<(String, String)> {
    condition_in(obj, type_, true)
}

/// `type_`'s condition in `obj` as (status, reason); with `current_only`, only when its
/// `observedGeneration` is `obj`'s `metadata.generation`.
fn condition_in(obj: &Value, type_: &str, current_only: bool) -> Option<(String, String)> {
    let c = obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    if current_only && c["observedGeneration"].as_i64() != obj["metadata"]["generation"].as_i64() {
        return None;
    }
    Some((c["status"].as_str()?.to_owned(), c["reason"].as_str()?.to_owned()))
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill_operator();
    }
}
