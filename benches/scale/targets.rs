//! The scale targets (issue 18), computed from a run's own figures and printed beside them,
//! each with `met` or `NOT MET`: writes per account, time to Ready against the write bound,
//! peak memory, the idle cost, CPU, and across runs the memory slope and the baseline ratios.

use super::{Outcome, Tally};

/// The operator's write budget: 95 % of Graph's 3,000 writes per 150 s per app and tenant, a
/// burst of 2,850 and then 19 per second.
const BURST: f64 = 2850.0;
const WRITES_PER_SECOND: f64 = 19.0;
/// The benchmark's resync period (`env.resync`).
const RESYNC_S: f64 = 10.0;

/// The least time in which `writes` can be made within the budget.
pub fn write_bound_s(writes: u64) -> f64 {
    (writes as f64 - BURST).max(0.0) / WRITES_PER_SECOND
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

fn per_account(x: u64, size: usize) -> f64 {
    x as f64 / size.max(1) as f64
}

/// Graph requests as Graph counts them for throttling: each request inside a `$batch` once,
/// the `$batch` envelope not at all.
fn graph_requests(t: &Tally) -> u64 {
    let batches: u64 = t
        .by_route
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(route, _)| route.contains("$batch"))
        .flat_map(|(_, statuses)| statuses.as_object().into_iter().flatten())
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    t.http.saturating_sub(batches) + t.sub
}

/// Per 100 objects per resync while idle: (HTTP requests, Graph requests as Graph counts them).
fn idle_per_100_per_resync(idle: &Tally, idle_s: u64, size: usize) -> (f64, f64) {
    let resyncs = (idle_s as f64 / RESYNC_S).max(1.0);
    let per = |x: u64| x as f64 / resyncs / (size.max(1) as f64 / 100.0);
    (per(idle.http), per(graph_requests(idle)))
}

/// One line: a target with its verdict where the issue sets it for this size, else the figure
/// and the sizes the target is set for.
fn judged(what: &str, figures: String, met: bool, applies: bool, set_for: &str) -> String {
    if applies {
        format!("target {what}: {figures} ({})", verdict(met))
    } else {
        format!("{what}: {figures} (a target at {set_for} only)")
    }
}

/// The per-run target lines (batched runs only: the baseline is the comparison). Writes per
/// account are a target at 1,000 and 5,000; time to Ready, memory and the idle request rate at
/// 5,000; idle writes and 429s at every size.
pub fn run_lines(r: &Outcome) -> Vec<String> {
    if r.variant != "batched" || r.status != "ok" {
        return Vec::new();
    }
    let large = r.size >= 5000;
    let writes = per_account(r.converge.writes, r.size);
    let limit = if r.mode == "Group" { 2.10 } else { 3.10 };
    let bound = write_bound_s(r.converge.writes);
    let allowed = 1.1 * bound + 30.0;
    let ratio = if bound > 0.0 {
        format!("{:.2}x the bound", r.ready_s / bound)
    } else {
        "the bound is 0".into()
    };
    let idle = idle_per_100_per_resync(&r.idle, r.idle_s, r.size);
    let idle_status: u64 = r.idle_modified.values().sum();
    vec![
        judged(
            &format!("writes/acct <= {limit:.2}"),
            format!("{writes:.2}"),
            writes <= limit,
            r.size >= 1000,
            "1,000 and 5,000",
        ),
        judged(
            "Ready <= 1.1 x write bound + 30 s",
            format!(
                "write bound {bound:.0} s from {} writes, Ready after {:.1} s = {ratio}, allowed {allowed:.0} s",
                r.converge.writes, r.ready_s
            ),
            r.ready_s <= allowed,
            large,
            "5,000",
        ),
        judged(
            "peak memory <= 64 MiB",
            format!("{:.1} MiB", r.peak_mib),
            r.peak_mib <= 64.0,
            large,
            "5,000",
        ),
        format!(
            "target idle: {} Graph writes, {idle_status} status writes; at most 0 and 0 ({})",
            r.idle.writes,
            verdict(r.idle.writes == 0 && idle_status == 0)
        ),
        judged(
            "idle Graph requests per 100 objects per resync <= 1",
            format!(
                "{:.2} HTTP requests, {:.2} counting each request inside a $batch (judged on the second)",
                idle.0, idle.1
            ),
            idle.1 <= 1.0,
            large,
            "5,000",
        ),
        format!(
            "target no 429 with the default budget: {} ({})",
            r.converge.throttled,
            verdict(r.converge.throttled == 0)
        ),
        format!(
            "operator CPU: {:.1} s until Ready, {:.2} s per 1,000 accounts",
            r.cpu_s,
            r.cpu_s * 1000.0 / r.size.max(1) as f64
        ),
    ]
}

/// The targets that compare runs: memory per 1,000 accounts between 1,000 and 5,000, Group at
/// 100 against its baseline, and the baseline's Graph requests at 1,000.
pub fn table_lines(rows: &[Outcome]) -> Vec<String> {
    let find = |size: usize, mode: &str, variant: &str| {
        rows.iter()
            .find(|r| r.size == size && r.mode == mode && r.variant == variant && r.status == "ok")
    };
    let mut lines = Vec::new();
    for mode in ["Direct", "Group"] {
        if let (Some(a), Some(b)) = (find(1000, mode, "batched"), find(5000, mode, "batched")) {
            let slope = (b.peak_mib - a.peak_mib) / 4.0;
            lines.push(format!(
                "{mode}: {slope:.1} MiB per 1,000 accounts between 1,000 and 5,000"
            ));
        }
        if let (Some(a), Some(b)) = (find(1000, mode, "batched"), find(1000, mode, "baseline")) {
            let fewer = b.converge.http as f64 / a.converge.http.max(1) as f64;
            lines.push(format!(
                "target {mode} at 1,000: at least 15x fewer Graph HTTP requests than the baseline: {fewer:.1}x ({})",
                verdict(fewer >= 15.0)
            ));
        }
    }
    if let (Some(a), Some(b)) = (find(100, "Group", "batched"), find(100, "Group", "baseline")) {
        lines.push(format!(
            "target Group at 100: batched no slower than the baseline: {:.1} s against {:.1} s ({})",
            a.ready_s,
            b.ready_s,
            verdict(a.ready_s <= b.ready_s)
        ));
    }
    lines
}
