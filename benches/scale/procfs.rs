//! What the benchmark reads of the operator's process from /proc: liveness, peak memory and
//! CPU time.

/// A field of `/proc/<pid>/status`; `None` once the process is gone.
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    Some(line[field.len() + 1..].trim().to_owned())
}

pub fn alive(pid: u32) -> bool {
    proc_status(pid, "State").is_some_and(|s| !s.starts_with('Z'))
}

/// The operator's CPU time so far (user and system), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the 3rd field, utime
    // and stime the 14th and 15th.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless told).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The operator's resident-set high-water mark.
pub fn peak_mib(pid: u32) -> Option<f64> {
    let kb = proc_status(pid, "VmHWM")?;
    Some(kb.trim_end_matches(" kB").parse::<f64>().ok()? / 1024.0)
}
