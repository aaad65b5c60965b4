//! Scale benchmark (issue 7): N RemoteAssistLicenses across 10 vendors, against the real local
//! API server and a simulated tenant answering every request after 50 ms, with Graph's
//! throttling on. Per run it measures the time until all are Ready, Graph requests, sub-requests
//! and writes per account, 429s, compliance (information-barrier) requests, the operator's peak
//! memory, and an idle minute after convergence (resync every 10 s). A baseline run with
//! batching and the shared budget off gives the ratio of the two.
//!
//! Needs the local API server: run it through `scripts/bench.sh`, which starts a fresh one per
//! size. `cargo bench --bench scale -- --help` lists the options.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "scale/procfs.rs"]
mod procfs;
#[path = "scale/targets.rs"]
mod targets;

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use common::e2e::{Env, vendor};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, PostParams, ResourceExt as _};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use procfs::{alive, cpu_seconds, peak_mib};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VENDORS: usize = 10;
/// The SKUs `common::e2e::vendor()` assigns; each gets N + 100 seats.
const SKUS: [&str; 3] = [
    "MICROSOFT_REMOTE_ASSIST",
    "Microsoft_Teams_Enterprise_New",
    "SPE_E5",
];
/// Compliance cmdlets that change something (as `Env::tenant_writes` counts them).
const IB_WRITE_VERBS: [&str; 5] = ["New-", "Set-", "Remove-", "Start-", "Stop-"];
/// The idle period starts once none of the run's objects changed for this long (1.5 resync
/// periods), at most a minute after convergence: the vendors' roll-ups of the last accounts
/// land at their next resync, and they belong to convergence, not to idling.
const QUIET: Duration = Duration::from_secs(15);

/// Run it through `scripts/bench.sh`, which starts a fresh local API server per size.
#[derive(clap::Parser)]
struct Opts {
    /// Numbers of RemoteAssistLicenses, one run each.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    sizes: Vec<usize>,
    /// Licence modes.
    #[arg(long, value_delimiter = ',', default_value = "Direct,Group", value_parser = ["Direct", "Group"])]
    modes: Vec<String>,
    /// Also run the baseline for sizes up to this (0: never). At 5,000 both variants are bound
    /// by Graph's write limit and the baseline alone takes about 20 minutes.
    #[arg(long, default_value_t = 1000)]
    baseline_up_to: usize,
    /// The baseline's extra operator flags, separated by spaces.
    #[arg(
        long,
        allow_hyphen_values = true,
        default_value = "--graph-batching=false --graph-shared-budget=false"
    )]
    baseline_flags: String,
    /// Seconds of the idle measurement after convergence.
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// The operator's `--concurrency`.
    #[arg(long, default_value_t = 64)]
    concurrency: u16,
    /// Give up on a run after this long; it is reported as TIMEOUT.
    #[arg(long, default_value = "45m", value_parser = humantime::parse_duration)]
    timeout_per_run: Duration,
    /// Give up on a baseline run after this long. Without the shared budget, objects retrying
    /// on their own keep Graph's write bucket overdrawn (throttled requests count too), so a
    /// large baseline may never converge; its TIMEOUT row still counts the requests it sent.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    baseline_timeout: Duration,
    /// Append the results as JSON lines here [default: target/bench/scale-<time>.jsonl].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only print the table of a JSON-lines file that earlier runs wrote, and exit.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One run's results: a block after the run, a row of the table, a line of the JSON file.
#[derive(Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Outcome {
    size: usize,
    mode: String,
    variant: String,
    /// `ok`, `TIMEOUT` or `FAILED: <why>`.
    status: String,
    id: String,
    operator_log: String,
    ready: usize,
    ready_s: f64,
    /// Requests from the licences' creation until all are Ready.
    converge: Tally,
    /// Modifications of the run's objects in the API server during convergence.
    kube_modified: u64,
    peak_mib: f64,
    /// The operator's CPU seconds (user and system) from the licences' creation until Ready.
    cpu_s: f64,
    /// Seconds from convergence until the idle period started (see `QUIET`).
    settle_s: f64,
    idle_s: u64,
    idle: Tally,
    /// Modifications (MODIFIED watch events, status writes in practice) while idle, by kind.
    idle_modified: BTreeMap<String, u64>,
}

/// Request counts from the simulator's `/_sim/counters`.
#[derive(Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Tally {
    /// Graph HTTP requests (a `$batch` counts once), its sub-requests, writes (direct or
    /// inside a batch), 429s (likewise) and token requests.
    http: u64,
    sub: u64,
    writes: u64,
    throttled: u64,
    tokens: u64,
    /// Compliance InvokeCommand requests, those that change something, and their 429s.
    ib: u64,
    ib_writes: u64,
    ib_throttled: u64,
    /// Requests by `METHOD /route` and status, as the simulator counted them (JSON only).
    by_route: Value,
}

/// Graph's counters are the top-level fields; compliance requests appear only in `byRoute`
/// (`POST /adminapi/beta/{tenant}/InvokeCommand` for the redirect, `InvokeCommand <cmdlet>`).
fn tally(c: &Value) -> Tally {
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let mut t = Tally {
        http: n("httpRequests"),
        sub: n("batchItems"),
        writes: n("writes"),
        throttled: n("throttled"),
        tokens: n("tokenRequests"),
        by_route: c["byRoute"].clone(),
        ..Tally::default()
    };
    for (route, statuses) in c["byRoute"].as_object().into_iter().flatten() {
        if !route.contains("InvokeCommand") {
            continue;
        }
        let count: u64 = statuses
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        t.ib += count;
        if let Some(cmdlet) = route.strip_prefix("InvokeCommand ")
            && IB_WRITE_VERBS.iter().any(|v| cmdlet.starts_with(v))
        {
            t.ib_writes += count;
        }
        t.ib_throttled += statuses["429"].as_u64().unwrap_or(0);
    }
    t
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("remoteassist.dev", "v1alpha1", kind),
        plural,
    )
}

/// What a watch on one kind has seen: each object's `Ready` ("True", else "<status>/<reason>")
/// and how many modifications arrived after the initial list, or since they were last taken.
#[derive(Default)]
struct Seen {
    ready: HashMap<String, String>,
    changes: u64,
}

/// A watch on the run's objects of one kind. Watching instead of listing every second keeps
/// the load of 5,000 objects off the API server the operator is being measured against.
struct Follow {
    /// `[<run id>] <kind>`, for progress lines.
    what: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Follow {
    fn start(client: &kube::Client, ar: &ApiResource, id: &str) -> Follow {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let events = watcher(
            Api::<DynamicObject>::all_with(client.clone(), ar),
            watcher::Config::default().labels(&format!("e2e={id}")),
        )
        .default_backoff();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                let mut s = s.lock().unwrap();
                match event {
                    Ok(watcher::Event::InitApply(o)) => {
                        s.ready.insert(o.uid().unwrap_or_default(), ready_of(&o));
                    }
                    Ok(watcher::Event::Apply(o)) => {
                        // An object seen before was modified (else it was just created).
                        if s.ready
                            .insert(o.uid().unwrap_or_default(), ready_of(&o))
                            .is_some()
                        {
                            s.changes += 1;
                        }
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        s.ready.remove(&o.uid().unwrap_or_default());
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                    Err(e) => eprintln!("watch error (retrying): {e}"),
                }
            }
        });
        let what = format!("[{id}] {}", ar.plural);
        Follow { what, seen, task }
    }

    fn ready_count(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .ready
            .values()
            .filter(|r| *r == "True")
            .count()
    }

    /// Objects that are not Ready, counted by `<status>/<reason>`.
    fn not_ready(&self, want: usize) -> String {
        let seen = self.seen.lock().unwrap();
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for r in seen.ready.values().filter(|r| *r != "True") {
            *by.entry(r).or_default() += 1;
        }
        let mut parts: Vec<String> = by.iter().map(|(r, n)| format!("{n} {r}")).collect();
        if seen.ready.len() < want {
            parts.push(format!("{} not seen", want - seen.ready.len()));
        }
        parts.join(", ")
    }

    fn take_changes(&self) -> u64 {
        std::mem::take(&mut self.seen.lock().unwrap().changes)
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ready_of(o: &DynamicObject) -> String {
    let conditions = o.data["status"]["conditions"].as_array();
    match conditions.into_iter().flatten().find(|c| c["type"] == "Ready") {
        Some(c) if c["status"] == "True" => "True".into(),
        Some(c) => format!(
            "{}/{}",
            c["status"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or("?")
        ),
        None => "no Ready condition".into(),
    }
}

/// Waits until `want` objects are Ready: `Some(elapsed since `since`)`, or `None` at the
/// deadline. Fails if the operator exits. Progress goes to stderr every 10 s.
async fn wait_ready(
    f: &Follow,
    want: usize,
    since: Instant,
    deadline: Instant,
    pid: u32,
) -> Result<Option<Duration>> {
    let mut next_progress = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = f.ready_count();
        if ready >= want {
            return Ok(Some(since.elapsed()));
        }
        if !alive(pid) {
            bail!("the operator exited (see its log)");
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        if Instant::now() >= next_progress {
            let (what, elapsed) = (&f.what, since.elapsed().as_secs_f64());
            eprintln!("{what}: {ready}/{want} Ready after {elapsed:.0}s");
            next_progress += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates the licences through the API directly: kubectl would take minutes for 5,000.
async fn create_licenses(client: &kube::Client, id: &str, namespaces: &[String], n: usize) -> Result<()> {
    let ar = resource("RemoteAssistLicense", "remoteassistlicenses");
    futures::stream::iter(0..n)
        .map(|i| {
            let (ns, name) = (&namespaces[i % VENDORS], format!("t{:05}", i + 1));
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar);
            let mut obj = DynamicObject::new(&name, &ar).within(ns).data(json!({"spec": {
                "vendorRef": {"name": format!("{id}-v{}", i % VENDORS)},
                "displayName": format!("Technician {name}"),
                "mailNickname": name,
                "usageLocation": "US",
            }}));
            obj.metadata.labels = Some(BTreeMap::from([("e2e".to_owned(), id.to_owned())]));
            async move {
                api.create(&PostParams::default(), &obj)
                    .await
                    .with_context(|| format!("create {ns}/{name}"))
            }
        })
        .buffer_unordered(32)
        .try_for_each(|_| async { Ok(()) })
        .await
}

async fn run(o: &Opts, client: &kube::Client, size: usize, mode: &str, baseline: bool) -> Outcome {
    let variant = if baseline { "baseline" } else { "batched" };
    let mut env = Env::start(&format!("b{size}-{}-{variant}", mode.to_ascii_lowercase())).await;
    let mut out = Outcome {
        size,
        mode: mode.into(),
        variant: variant.into(),
        status: "ok".into(),
        id: env.id.clone(),
        operator_log: env.log.display().to_string(),
        ..Outcome::default()
    };
    if let Err(e) = measure(o, client, &mut env, &mut out, baseline).await {
        let log = env.operator_log();
        let last: String = log.lines().last().unwrap_or("").chars().take(300).collect();
        out.status = format!("FAILED: {e:#}; the operator's last log line: {last}");
    }
    out.peak_mib = env.operator_pid(0).and_then(peak_mib).unwrap_or(0.0);
    out // dropping the Env kills the operator and stops the simulated tenant
}

async fn measure(
    o: &Opts,
    client: &kube::Client,
    env: &mut Env,
    out: &mut Outcome,
    baseline: bool,
) -> Result<()> {
    let (n, id) = (out.size, env.id.clone());
    env.settings(json!({"latencyMs": 50, "throttling": {"enabled": true}}))
        .await;
    for sku in SKUS {
        let seats = json!({"prepaidUnits": n + 100});
        env.admin(Method::PUT, &format!("/skus/{sku}"), Some(seats)).await;
    }
    let follow = |kind: &str, plural: &str| Follow::start(client, &resource(kind, plural), &id);
    let licenses = follow("RemoteAssistLicense", "remoteassistlicenses");
    let vendors = follow("VendorTenant", "vendortenants");
    let segments = follow("BarrierSegment", "barriersegments");
    let all = [
        ("RemoteAssistLicense", &licenses),
        ("VendorTenant", &vendors),
        ("BarrierSegment", &segments),
    ];
    let mut namespaces = Vec::new();
    for i in 0..VENDORS {
        let ns = env.namespace(&format!("v{i}"));
        let mode = format!("  licenseMode: {}\n", out.mode);
        env.apply(&vendor(&format!("{id}-v{i}"), &[&ns], &mode));
        namespaces.push(ns);
    }
    env.resync = "10s";
    env.concurrency = o.concurrency;
    env.barrier_timing = ("1s", "500ms");
    env.log_filter = "warn";
    let extra: Vec<&str> = match baseline {
        true => o.baseline_flags.split_whitespace().collect(),
        false => Vec::new(),
    };
    env.spawn_operator(&extra);
    let pid = env.operator_pid(0).context("the operator's pid")?;
    let setup = Instant::now();
    let deadline = setup
        + match baseline {
            true => o.baseline_timeout.min(o.timeout_per_run),
            false => o.timeout_per_run,
        };
    let vendors_deadline = deadline.min(setup + Duration::from_secs(180));
    if wait_ready(&vendors, VENDORS, setup, vendors_deadline, pid)
        .await?
        .is_none()
    {
        let why = vendors.not_ready(VENDORS);
        bail!("the vendors are not Ready after {:?}: {why}", setup.elapsed());
    }

    // Convergence: only the licences' cost is counted, not the vendors' setup.
    env.admin(Method::POST, "/counters/reset", None).await;
    all.iter().for_each(|(_, f)| _ = f.take_changes());
    eprintln!("[{id}] creating {n} RemoteAssistLicenses");
    let start = Instant::now();
    let cpu_at_start = cpu_seconds(pid).unwrap_or(0.0);
    create_licenses(client, &id, &namespaces, n).await?;
    eprintln!("[{id}] created {n} in {:.1}s", start.elapsed().as_secs_f64());
    let converged = wait_ready(&licenses, n, start, deadline, pid).await?;
    out.ready = licenses.ready_count();
    out.ready_s = converged.unwrap_or(start.elapsed()).as_secs_f64();
    out.converge = tally(&env.counters().await);
    out.cpu_s = cpu_seconds(pid).unwrap_or(0.0) - cpu_at_start;
    out.kube_modified = all.iter().map(|(_, f)| f.take_changes()).sum();
    if converged.is_none() {
        out.status = format!("TIMEOUT: not Ready: {}", licenses.not_ready(n));
        eprintln!("[{id}] {}", out.status);
        return Ok(());
    }

    // The idle period: what the operator costs when nothing changes.
    eprintln!("[{id}] all Ready after {:.1}s", out.ready_s);
    let (mut quiet_since, all_ready) = (Instant::now(), Instant::now());
    while quiet_since.elapsed() < QUIET && all_ready.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if all.iter().map(|(_, f)| f.take_changes()).sum::<u64>() > 0 {
            quiet_since = Instant::now();
        }
    }
    out.settle_s = all_ready.elapsed().as_secs_f64();
    env.admin(Method::POST, "/counters/reset", None).await;
    all.iter().for_each(|(_, f)| _ = f.take_changes());
    tokio::time::sleep(Duration::from_secs(o.idle)).await;
    out.idle = tally(&env.counters().await);
    out.idle_s = o.idle;
    out.idle_modified = all
        .iter()
        .map(|(k, f)| (k.to_string(), f.take_changes()))
        .collect();
    if !alive(pid) {
        bail!("the operator exited during the idle period (see its log)");
    }
    Ok(())
}

fn per_account(x: u64, r: &Outcome) -> f64 {
    x as f64 / r.size.max(1) as f64
}

/// One line of request counts; `per` also gives them per account.
fn describe(t: &Tally, per: Option<usize>) -> String {
    let n = |x: u64| match per {
        Some(accounts) => format!("{x} ({:.2}/acct)", x as f64 / accounts.max(1) as f64),
        None => x.to_string(),
    };
    let (graph, ib) = (n(t.http), n(t.ib));
    let (sub, writes, ib_writes) = (n(t.sub), n(t.writes), n(t.ib_writes));
    format!(
        "Graph {graph} HTTP requests, {sub} sub-requests, {writes} writes, {} 429s, {} token requests; \
         compliance {ib} requests, {ib_writes} writes, {} 429s",
        t.throttled, t.tokens, t.ib_throttled
    )
}

fn print_block(r: &Outcome) {
    let (size, mode, variant, id, status) = (r.size, &r.mode, &r.variant, &r.id, &r.status);
    println!("\n== {size} licences, {mode}, {variant} [{id}]: {status}");
    println!("   operator log: {}", r.operator_log);
    let (ready, ready_s, peak, modified) = (r.ready, r.ready_s, r.peak_mib, r.kube_modified);
    let per = per_account(modified, r);
    println!("   {ready}/{size} Ready after {ready_s:.1} s; operator peak memory (VmHWM) {peak:.1} MiB");
    println!("   until Ready: {}", describe(&r.converge, Some(size)));
    println!("   until Ready: {modified} modifications of the run's objects ({per:.2}/acct)");
    if r.idle_s > 0 {
        let (idle, settle, counts) = (r.idle_s, r.settle_s, describe(&r.idle, None));
        println!("   idle {idle} s from {settle:.0} s after convergence (resync 10 s): {counts}");
        println!("   idle: status writes (MODIFIED events) {:?}", r.idle_modified);
    }
    for line in targets::run_lines(r) {
        println!("   {line}");
    }
}

/// The table's columns for one run: (header, value).
fn columns(r: &Outcome) -> Vec<(&'static str, String)> {
    let (c, i, per) = (&r.converge, &r.idle, |x| format!("{:.2}", per_account(x, r)));
    vec![
        ("size", r.size.to_string()),
        ("mode", r.mode.clone()),
        ("variant", r.variant.clone()),
        ("status", r.status.split(':').next().unwrap_or("").to_owned()),
        ("ready_s", format!("{:.1}", r.ready_s)),
        ("http/acct", per(c.http)),
        ("sub/acct", per(c.sub)),
        ("writes/acct", per(c.writes)),
        ("429s", (c.throttled + c.ib_throttled).to_string()),
        ("ib/acct", per(c.ib)),
        ("peak_MiB", format!("{:.1}", r.peak_mib)),
        ("idle_http", i.http.to_string()),
        ("idle_sub", i.sub.to_string()),
        ("idle_writes", i.writes.to_string()),
        ("idle_ib", i.ib.to_string()),
        (
            "idle_status_writes",
            r.idle_modified.values().sum::<u64>().to_string(),
        ),
    ]
}

fn print_table(rows: &[Outcome]) {
    let line = |cells: Vec<(&str, String)>, header: bool| {
        let cells = cells.iter().map(|(h, v)| {
            let w = h.len().max(8);
            format!("{:>w$}", if header { h } else { v.as_str() })
        });
        println!("{}", cells.collect::<Vec<_>>().join(" "));
    };
    println!();
    line(columns(&Outcome::default()), true);
    rows.iter().for_each(|r| line(columns(r), false));
    // The baseline against the batched run of the same size and mode.
    for b in rows.iter().filter(|r| r.variant == "baseline") {
        let same = |a: &&Outcome| a.variant == "batched" && a.size == b.size && a.mode == b.mode;
        let Some(a) = rows.iter().find(same) else {
            continue;
        };
        let ratio = |x: f64, y: f64| match y > 0.0 {
            true => format!("{:.2}x", x / y),
            false => "n/a".into(),
        };
        let (bc, ac) = (&b.converge, &a.converge);
        let (http, writes) = (
            ratio(bc.http as f64, ac.http as f64),
            ratio(bc.writes as f64, ac.writes as f64),
        );
        let converged = if a.status == "ok" && b.status == "ok" {
            ""
        } else {
            " (a run did not converge)"
        };
        println!(
            "ratio baseline/batched, {} {}: Graph HTTP requests {http}, Graph writes {writes}, ready time {}{converged}",
            b.size,
            b.mode,
            ratio(b.ready_s, a.ready_s),
        );
    }
    for r in rows.iter().filter(|r| !targets::run_lines(r).is_empty()) {
        println!("targets, {} {} {}:", r.size, r.mode, r.variant);
        targets::run_lines(r).iter().for_each(|l| println!("   {l}"));
    }
    for line in targets::table_lines(rows) {
        println!("{line}");
    }
}

fn append(path: &Path, r: &Outcome) -> Result<()> {
    std::fs::create_dir_all(path.parent().context("--out has no directory")?)?;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{}", serde_json::to_string(r)?)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = Opts::parse();
    if let Some(file) = &o.report {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str);
        print_table(&rows.collect::<Result<Vec<Outcome>, _>>()?);
        return Ok(());
    }
    let out = o.out.clone().unwrap_or_else(|| {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        common::repo_root().join(format!("target/bench/scale-{}.jsonl", now.replace(':', "")))
    });
    let client = kube::Client::try_default()
        .await
        .context("no cluster: run the benchmark with scripts/bench.sh")?;
    eprintln!("results: {}", out.display());
    let mut rows = Vec::new();
    for &size in &o.sizes {
        for mode in &o.modes {
            for baseline in [false, true] {
                if baseline && size > o.baseline_up_to {
                    continue;
                }
                let r = run(&o, &client, size, mode, baseline).await;
                print_block(&r);
                append(&out, &r)?;
                rows.push(r);
            }
        }
    }
    print_table(&rows);
    Ok(())
}
