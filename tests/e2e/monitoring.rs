//! End to end: the chart's dashboard and alerts on a real Prometheus. Prometheus (Debian's
//! package) scrapes the operator every second while the tenant runs out of seats, throttles
//! the operator and goes away for a while; then every dashboard query and every alert
//! expression, rendered from the chart, runs through Prometheus's HTTP API.

use crate::clock::until_ok;
use crate::env::{Env, free_port};
use crate::fixtures::{license, vendor};
use crate::repo::repo_root;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const RAL: &str = "remoteassistlicense";

/// A Prometheus server on loopback, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The chart's rules and dashboard, rendered with `helm_args` (scripts/render-monitoring.sh).
fn render(dir: &std::path::Path, helm_args: &[&str]) -> Value {
    let out = Command::new(repo_root().join("scripts/render-monitoring.sh"))
        .arg(dir)
        .args(helm_args)
        .output()
        .expect("scripts/render-monitoring.sh runs");
    assert!(
        out.status.success(),
        "render-monitoring.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(dir.join("dashboard.json")).unwrap()).unwrap()
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second and evaluating `rules` every second.
    fn start(dir: &std::path::Path, target: u16) -> Prometheus {
        let version = Command::new("prometheus").arg("--version").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "prometheus is not installed: scripts/prometheus.sh installs Debian's package (scripts/test.sh runs it first)"
        );
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yaml]\n\
             scrape_configs:\n  - job_name: remote-assist-operator\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    async fn api(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let answer = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = answer.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{path} {params:?}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// An instant query's series. Panics when Prometheus refuses the query.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("query", &[("query", expr.to_owned())]).await;
        data.unwrap_or_else(|e| panic!("Prometheus refused {expr}: {e}"))["result"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The largest value `expr` took over the last `span`, at one-second steps.
    async fn max_over(&self, expr: &str, span: Duration) -> f64 {
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let params = [
            ("query", expr.to_owned()),
            ("start", (end - span.as_secs() as i64).to_string()),
            ("end", end.to_string()),
            ("step", "1".to_owned()),
        ];
        let data = self.api("query_range", &params).await.unwrap();
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().clone())
            .filter_map(|v| v[1].as_str().and_then(|x| x.parse::<f64>().ok()))
            .filter(|x| x.is_finite())
            .fold(0.0, f64::max)
    }

    /// The alerts in state `firing`, by name.
    async fn firing(&self) -> Vec<Value> {
        let data = self.api("alerts", &[]).await.unwrap();
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "firing")
            .cloned()
            .collect()
    }
}

/// Label names a target's legend uses (`{{vendor}} {{reason}}` -> vendor, reason).
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split_once("}}").map(|(l, _)| l.trim().to_owned()))
        .collect()
}

/// A series as `{label=value,...} value`, for the printout.
fn show(series: &Value) -> String {
    let labels: Vec<String> = series["metric"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !["instance", "job"].contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    format!(
        "{{{}}} {}",
        labels.join(","),
        series["value"][1].as_str().unwrap_or("?")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server and Prometheus: run with scripts/test.sh"]
async fn dashboard_queries_and_alerts_answer_on_a_real_prometheus() {
    let mut env = Env::start_seeded("prom", |seed| {
        let ra = seed
            .skus
            .iter_mut()
            .find(|s| s.sku_part_number == "MICROSOFT_REMOTE_ASSIST");
        ra.unwrap().prepaid_units = 2;
    })
    .await;
    let dir = repo_root().join(format!("target/e2e/{}-prometheus", env.id));
    std::fs::create_dir_all(&dir).unwrap();
    // Alerts fire as soon as their condition holds, so the scenario need not last minutes.
    let dashboard = render(
        &dir,
        &[
            "--set=metrics.prometheusRule.accountStuckSeconds=1",
            "--set=metrics.prometheusRule.tokenFailuresPer15m=1000",
            // A storm of seconds, not the minutes the default threshold is for.
            "--set-json=metrics.prometheusRule.throttledPerSecond=0.005",
            "--set=metrics.prometheusRule.for.accountStuck=0s",
            "--set=metrics.prometheusRule.for.throttling=0s",
            "--set=metrics.prometheusRule.for.seats=0s",
            "--set=metrics.prometheusRule.for.application=0s",
            "--set=metrics.prometheusRule.for.noLeader=0s",
        ],
    );
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
    env.start_operator();
    let prometheus = Prometheus::start(&dir, env.metrics_port.unwrap());
    until_ok(Duration::from_secs(60), async || {
        match prometheus.api("query", &[("query", "up".to_owned())]).await {
            Ok(d) if d["result"][0]["value"][1] == "1" => Ok(()),
            other => Err(format!("the operator is not scraped yet: {other:?}")),
        }
    })
    .await;

    // Three accounts for two seats: one waits with NoSeats.
    let names: Vec<String> = (0..3).map(|i| format!("{}-t{i}", env.id)).collect();
    env.apply(
        names
            .iter()
            .map(|n| license(&ns, n).vendor(&v).build())
            .collect::<Vec<_>>(),
    );
    until_ok(Duration::from_secs(120), async || {
        let ready = names
            .iter()
            .filter(|n| {
                env.current_condition(RAL, Some(&ns), n, "Ready")
                    .is_some_and(|c| c.0 == "True")
            })
            .count();
        let no_seats = names
            .iter()
            .filter(|n| {
                env.current_condition(RAL, Some(&ns), n, "Ready")
                    .is_some_and(|c| c.1 == "NoSeats")
            })
            .count();
        if (ready, no_seats) == (2, 1) {
            Ok(())
        } else {
            Err(format!("{ready} Ready, {no_seats} NoSeats"))
        }
    })
    .await;

    a_throttling_storm(&env, &prometheus).await;
    an_outage(&mut env, &prometheus).await;

    every_panel_answers(&prometheus, &dashboard).await;
    let storm = prometheus
        .max_over(
            "sum(rate(remoteassist_graph_throttled_total[5m]))",
            Duration::from_secs(300),
        )
        .await;
    assert!(storm > 0.0, "the throttling panel shows the storm");
    println!("throttling panel: the storm peaked at {storm:.3} answers 429 per second");
    the_alerts_that_should_fire_do(&prometheus, &dir).await;
}

/// The tenant throttles (30 resource units per 10 s) until Prometheus has seen 429s.
async fn a_throttling_storm(env: &Env, prometheus: &Prometheus) {
    env.settings(json!({"throttling": {"enabled": true, "resourceUnitsPer10s": 30}}))
        .await;
    until_ok(Duration::from_secs(60), async || {
        let seen = prometheus
            .query("sum(remoteassist_graph_throttled_total) >= 10")
            .await;
        if seen.is_empty() {
            Err("fewer than 10 throttled answers scraped".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    env.settings(json!({})).await;
}

/// The tenant goes away until reconciles have failed (TenantUnreachable) and Prometheus has
/// scraped the errors: a reconcile fails only once its bounded retries are spent, so one
/// outage may end before any does.
async fn an_outage(env: &mut Env, prometheus: &Prometheus) {
    for _ in 0..4 {
        env.outage(Duration::from_secs(15)).await;
        // Failures end with the outage; a few scrapes after it tell whether any happened.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if !prometheus
                .query("remoteassist_reconcile_errors_total")
                .await
                .is_empty()
            {
                return;
            }
            crate::clock::poll_interval().await;
        }
    }
    panic!("four outages of 15 s and no reconcile failed");
}

/// Every target of every panel returns series carrying the labels its legend names.
async fn every_panel_answers(prometheus: &Prometheus, dashboard: &Value) {
    let panels = dashboard["panels"].as_array().unwrap();
    let mut queries = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let wanted = legend_labels(target["legendFormat"].as_str().unwrap_or_default());
            let series = until_ok(Duration::from_secs(60), async || {
                let series = prometheus.query(expr).await;
                let labelled = series
                    .iter()
                    .all(|s| wanted.iter().all(|l| s["metric"].get(l).is_some()));
                if !series.is_empty() && labelled {
                    Ok(series)
                } else {
                    Err(format!(
                        "panel {:?}: {expr} gave {series:?}, wanted labels {wanted:?}",
                        panel["title"]
                    ))
                }
            })
            .await;
            queries += 1;
            let shown: Vec<String> = series.iter().map(show).collect();
            println!(
                "panel {:?}: {expr}\n    -> {}",
                panel["title"].as_str().unwrap(),
                shown.join("; ")
            );
        }
    }
    assert!(queries >= 14, "only {queries} dashboard queries");
}

/// Seats, throttling and the waiting account fire; the others answer with nothing.
async fn the_alerts_that_should_fire_do(prometheus: &Prometheus, dir: &std::path::Path) {
    let rules = std::fs::read_to_string(dir.join("rules.yaml")).unwrap();
    let alerts: Vec<(String, String)> = rules
        .split("- alert: ")
        .skip(1)
        .map(|chunk| {
            let name = chunk.lines().next().unwrap().trim().to_owned();
            let expr = chunk
                .lines()
                .find_map(|l| l.trim().strip_prefix("expr: "))
                .unwrap()
                .trim_matches('\'')
                .to_owned();
            (name, expr)
        })
        .collect();
    assert_eq!(alerts.len(), 7, "every alert's expression was read: {alerts:?}");
    let fire = ["RemoteAssistSeatsLow", "RemoteAssistAccountStuck"];
    for (name, expr) in &alerts {
        let series = prometheus.query(expr).await;
        // The storm's 5-minute rate stays above the threshold for minutes after it.
        let expected = fire.contains(&name.as_str()) || name == "RemoteAssistGraphThrottled";
        assert_eq!(!series.is_empty(), expected, "{name}: {expr} gave {series:?}");
        let shown: Vec<String> = series.iter().map(show).collect();
        println!(
            "alert {name}: {expr}\n    -> {}",
            if shown.is_empty() {
                "(nothing)".into()
            } else {
                shown.join("; ")
            }
        );
    }
    let firing = until_ok(Duration::from_secs(30), async || {
        let firing = prometheus.firing().await;
        let names: Vec<&str> = firing
            .iter()
            .filter_map(|a| a["labels"]["alertname"].as_str())
            .collect();
        if fire.iter().all(|f| names.contains(f)) && names.contains(&"RemoteAssistGraphThrottled") {
            Ok(firing)
        } else {
            Err(format!("firing: {names:?}"))
        }
    })
    .await;
    let seats = firing
        .iter()
        .find(|a| a["labels"]["alertname"] == "RemoteAssistSeatsLow")
        .unwrap();
    assert_eq!(seats["labels"]["sku"], "MICROSOFT_REMOTE_ASSIST", "{seats}");
    assert!(
        seats["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .ends_with("#remoteassistseatslow")
    );
    for a in &firing {
        println!(
            "firing: {} {} ({})",
            a["labels"]["alertname"].as_str().unwrap(),
            a["annotations"]["summary"].as_str().unwrap_or_default(),
            a["labels"]
        );
    }
}
