//! Time in the end-to-end suite. Tests wait on observable conditions ([`Env::wait_for`] and the
//! helpers built on it, [`until_ok`]), looking again every [`POLL_INTERVAL`]. A fixed stretch of
//! time is [`hold_for`] (or [`always_for`], which checks all along it), and each use says why no
//! condition can stand in for it. Nothing else in the suite sleeps.
//!
//! [`Env::wait_for`]: super::env::Env::wait_for

use std::time::{Duration, Instant};

/// How long a wait-until loop lets pass between two looks.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// The pause between two looks of a wait-until loop.
pub async fn poll_interval() {
    pause(POLL_INTERVAL).await;
}

/// The same pause, in blocking code (waiting for a child process to exit).
pub fn poll_interval_blocking() {
    std::thread::sleep(POLL_INTERVAL);
}

/// Lets `window` pass doing nothing, on purpose: what the test needs is time itself (a fault that
/// lasts a while, a stretch in which nothing may happen), which no condition marks. `why` says
/// which, in the test's output.
pub async fn hold_for(window: Duration, why: &str) {
    println!("holding for {window:?}: {why}");
    pause(window).await;
}

/// As [`hold_for`], running `check` (which asserts) at the start and every `every` until `window`
/// has passed: for what must hold all along a stretch of time, not only at its end.
pub async fn always_for(window: Duration, every: Duration, why: &str, mut check: impl AsyncFnMut()) {
    println!("checking for {window:?}, every {every:?}: {why}");
    let until = Instant::now() + window;
    while Instant::now() < until {
        check().await;
        pause(every).await;
    }
}

/// Polls `attempt` until it gives `Ok`, for at most `timeout`; on timeout fails with the last
/// `Err`, which says what was still missing.
pub async fn until_ok<T>(timeout: Duration, mut attempt: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(missing) => assert!(Instant::now() < deadline, "{missing}"),
        }
        poll_interval().await;
    }
}
