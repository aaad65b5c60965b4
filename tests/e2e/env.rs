//! The end-to-end harness: a simulated tenant of its own per test, the operator binary watching
//! only this test's objects (`--watch-selector e2e=<id>`), manifests applied with kubectl against
//! the local API server, and waits on observable conditions (a fixed stretch of time only
//! through `clock.rs`, which says why). This file is the cluster's and the operators' side;
//! `tenant.rs` is the simulated tenant's.

use super::clock::{poll_interval, poll_interval_blocking};
use super::cluster::{install_crds, kubectl_ok};
use super::fixtures::Manifests;
use super::kubectl::{Run, kubectl};
use super::repo::repo_root;
use entra_sim::seed::{DEFAULT_SEED, Seed};
use entra_sim::server::RunningSim;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn tenant() -> &'static str {
    &entra_sim::seed::default_ids().tenant_id
}
pub fn operator_app() -> &'static str {
    &entra_sim::seed::default_ids().operator_client_id
}
pub fn operator_secret() -> &'static str {
    &entra_sim::seed::default_ids().operator_secret
}

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

    /// As [`Env::start`], on the default seed changed by `edit`.
    pub async fn start_seeded(name: &str, edit: impl FnOnce(&mut Seed)) -> Env {
        let turn = Turn::Shared {
            _guard: CLUSTER.read().await,
        };
        install_crds();
        let mut seed = Seed::parse(DEFAULT_SEED).expect("default seed");
        edit(&mut seed);
        Self::with_seed(name, turn, seed).await
    }

    /// A simulated tenant only, for commands that need no cluster.
    pub async fn start_without_cluster(name: &str) -> Env {
        Self::new(name, Turn::NoCluster).await
    }

    async fn new(name: &str, turn: Turn) -> Env {
        Self::with_seed(name, turn, Seed::parse(DEFAULT_SEED).expect("default seed")).await
    }

    async fn with_seed(name: &str, turn: Turn, seed: Seed) -> Env {
        let sim = entra_sim::server::start(seed, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("sim starts");
        let id = format!("{name}-{:04x}", rand::random::<u16>());
        let dir = repo_root().join("target/e2e");
        std::fs::create_dir_all(&dir).unwrap();
        let secret_file = dir.join(format!("{id}.secret"));
        std::fs::write(&secret_file, operator_secret()).unwrap();
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
        // A free port for /metrics, /healthz and /readyz (parallel tests run many operators).
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_remote-assist-operator"));
        command
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
            .args(["--tenant-id", tenant(), "--client-id", operator_app()])
            .arg("--client-secret-file")
            .arg(&self.secret_file)
            .args(["--watch-selector", &format!("e2e={}", self.id)])
            .args(extra)
            .env("RUST_LOG", self.log_filter)
            .env("KUBECONFIG", &self.kubeconfig);
        self.spawn_command(command, port);
        (self.operators.len() - 1, port)
    }

    /// Starts an operator the test assembled itself (e.g. as the chart's Deployment says), with
    /// its output in the test's log; it is stopped with the others. `port` serves its metrics.
    pub fn spawn_command(&mut self, mut command: Command, port: u16) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("operator binary starts");
        self.operators.push(Some(child));
        self.metrics_port = Some(port);
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

    /// Polls `check` every poll interval until it holds; on timeout, fails with the operator's
    /// log.
    pub async fn wait_for(&self, what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if check().await {
                return;
            }
            poll_interval().await;
        }
        self.timed_out(what, timeout)
    }

    fn timed_out(&self, what: &str, timeout: Duration) -> ! {
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
        let timeout = Duration::from_secs(90);
        let start = Instant::now();
        while start.elapsed() < timeout {
            let now = self.current_condition(kind, ns, name, type_);
            if now.is_some_and(|(s, r)| s == status && reason.is_none_or(|want| r == want)) {
                return;
            }
            poll_interval().await;
        }
        // What the object says when the wait gives up: the first thing to read.
        let seen = self.get(kind, ns, name).map(|o| o["status"].clone());
        let what = format!(
            "{kind} {name}: {type_}={status} {}\n--- its status ---\n{:#}",
            reason.unwrap_or(""),
            seen.unwrap_or(Value::Null)
        );
        self.timed_out(&what, timeout)
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

    /// The password in a credentials Secret.
    pub fn secret_password(&self, ns: &str, name: &str) -> Option<String> {
        let s = self.get("secret", Some(ns), name)?;
        let b64 = s["data"]["password"].as_str()?;
        use base64::Engine;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
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

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        poll_interval_blocking();
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
