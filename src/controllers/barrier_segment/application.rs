//! The one policy-application coordinator of the tenant. Applying barrier policies is slow
//! (about 30 minutes before it starts, then about 5,000 users an hour) and only one can run at a
//! time, so every reconciler only *asks* for an application; the coordinator folds a burst of
//! asks into one, never starts two at once, refuses to start one that would fail on asymmetric
//! allow lists, follows the running one, and tells the controllers when it ends.

use super::plan::asymmetries;
use crate::compliance::ComplianceClient;
use crate::compliance::definitions::{Application, ApplicationStatus};
use crate::crd::{BarrierSegment, VendorTenant};
use crate::watch::Cache;
use futures::Stream;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast, watch};

/// How far the endpoint's clock may run ahead of ours before a time counts as from the future.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(300);

/// The start of a run whose time cannot be trusted: never after anything.
pub const UNKNOWN_START: Timestamp = Timestamp::MIN;

/// An application and when it certainly started, on this operator's clock: anything recorded
/// earlier is in its snapshot. [`UNKNOWN_START`] when the endpoint's answer gives no readable,
/// credible time.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub id: String,
    pub started_at: Timestamp,
    pub status: String,
    pub percent: i64,
    pub failure: Option<String>,
    /// For an application this operator started: its clock just before the request.
    pub asked_at: Option<Timestamp>,
}

impl Run {
    /// Whether the start time is known (the endpoint's answer could be read and believed).
    pub fn start_known(&self) -> bool {
        self.started_at != UNKNOWN_START
    }

    /// Whether the endpoint's answer about it could not be read or believed (as opposed to
    /// an application that failed): it says nothing either way, so it is worth asking again.
    pub fn unreadable(&self) -> bool {
        !self.start_known()
            || self
                .failure
                .as_deref()
                .is_some_and(|f| f.starts_with("UnreadableAnswer"))
    }

    /// Whether the run certainly started after `t`; never for an unknown start.
    pub fn started_after(&self, t: Timestamp) -> bool {
        self.start_known() && self.started_at > t
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// An application has been asked for since this instant and not yet started.
    pub requested: Option<Instant>,
    pub running: Option<Run>,
    /// The latest completed application whose answer could be trusted: its policies (or
    /// newer ones) are in effect.
    pub applied: Option<Run>,
    /// The latest failed or stopped application, or one whose answer could not be trusted,
    /// if newer than `applied`.
    pub failed: Option<Run>,
    /// Why a requested application is being held back (a path between vendors, or asymmetric
    /// allow lists), naming the segments.
    pub held: Option<String>,
    /// The reason for `held`: `CrossVendorPath` or `Asymmetric`.
    pub held_reason: Option<&'static str>,
    /// Applications in a row whose answers could not be trusted; each doubles the wait before
    /// the next one starts, so a misbehaving endpoint does not get one application after another.
    pub untrusted: u32,
    /// No application starts before this instant.
    pub backoff_until: Option<Instant>,
    /// The tenant's application history has been read since start-up. Until then nothing may
    /// ask for an application: not knowing the last one is not a reason for a new one.
    pub recovered: bool,
}

/// How long a reconcile after start-up waits for the application history before judging.
pub const HISTORY_WAIT: Duration = Duration::from_secs(10);

pub struct Coordinator {
    compliance: Arc<ComplianceClient>,
    segments: Cache<BarrierSegment>,
    vendors: Cache<VendorTenant>,
    state: Mutex<State>,
    wake: Notify,
    changed: broadcast::Sender<()>,
    /// Becomes true once the history is read (see [`State::recovered`]).
    history: watch::Sender<bool>,
    debounce: Duration,
    poll: Duration,
    /// The tenant's IB mode, read by its own loop (started with [`Coordinator::run`]).
    pub mode: Arc<super::tenant_mode::TenantMode>,
}

/// When `app` certainly started, on this operator's clock. Its `CreationTime` must be readable
/// and not from the future; for an application this operator asked for (`asked_at`) it must
/// also be no older than the request, and the start is the request's time. Otherwise
/// [`UNKNOWN_START`].
pub fn started_at(app: &Application, asked_at: Option<Timestamp>, now: Timestamp) -> Timestamp {
    let Some(created) = app.created() else {
        return UNKNOWN_START;
    };
    if created > now.saturating_add(CLOCK_SKEW).unwrap_or(now) {
        return UNKNOWN_START;
    }
    match asked_at {
        Some(asked) if created >= asked.saturating_sub(CLOCK_SKEW).unwrap_or(asked) => asked,
        // Older than the request: not the application this operator started.
        Some(_) => UNKNOWN_START,
        None => created,
    }
}

/// The run an answer describes. An application that ended without a consistent Completed
/// answer, or whose start is unknown, carries a failure saying why it does not count.
pub fn run_of(app: &Application, asked_at: Option<Timestamp>, now: Timestamp) -> Run {
    let started_at = started_at(app, asked_at, now);
    let failure = if app.is_running() {
        None
    } else if app.state() == ApplicationStatus::Failed || app.state() == ApplicationStatus::Stopped {
        Some(format!(
            "{}: {}",
            app.failure_category.clone().unwrap_or_else(|| app.status.clone()),
            app.failure_message.clone().unwrap_or_default()
        ))
    } else if !app.completed() {
        Some(format!(
            "UnreadableAnswer: the compliance endpoint answered Status {:?} with PercentProgress {:?}; that is not a completed application",
            app.status, app.percent_progress
        ))
    } else if started_at == UNKNOWN_START {
        Some(format!(
            "UnreadableAnswer: CreationTime {:?} is missing, unreadable or not credible, so the application cannot count as started after anything",
            app.creation_time
        ))
    } else {
        None
    };
    Run {
        id: app.identity.clone(),
        started_at,
        status: if app.status.is_empty() {
            "Unknown".into()
        } else {
            app.status.clone()
        },
        percent: app.percent_progress.unwrap_or(0),
        failure,
        asked_at,
    }
}

/// Whether an ended run put its policies in effect and can be trusted to have.
fn trusted_completion(run: &Run) -> bool {
    run.failure.is_none() && run.start_known()
}

/// The tenant's history as the coordinator keeps it: newest first by start time (unknown
/// starts last, whatever order the endpoint answered in), the running one, and the latest
/// trusted completion.
pub fn recovered(apps: &[Application], now: Timestamp) -> (Option<Run>, Option<Run>) {
    let mut runs: Vec<(Run, bool)> = apps
        .iter()
        .map(|a| (run_of(a, None, now), a.is_running()))
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.0.started_at));
    let running = runs.iter().find(|(_, r)| *r).map(|(run, _)| run.clone());
    let applied = runs
        .iter()
        .find(|(run, r)| !r && trusted_completion(run))
        .map(|(run, _)| run.clone());
    (running, applied)
}

/// How long to wait before the next start after `untrusted` untrusted applications in a row.
fn backoff(debounce: Duration, untrusted: u32) -> Duration {
    let base = debounce.max(Duration::from_secs(1));
    base.saturating_mul(2u32.saturating_pow(untrusted.min(16)))
        .min(Duration::from_secs(3600))
}

impl Coordinator {
    pub fn new(
        compliance: Arc<ComplianceClient>,
        segments: Cache<BarrierSegment>,
        vendors: Cache<VendorTenant>,
        debounce: Duration,
        poll: Duration,
    ) -> Self {
        Coordinator {
            compliance,
            segments,
            vendors,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            changed: broadcast::channel(16).0,
            history: watch::Sender::new(false),
            debounce,
            poll,
            mode: Arc::default(),
        }
    }

    /// Asks for an application, saying why; bursts of asks within the debounce become one.
    pub fn request(&self, why: &str) {
        tracing::debug!(why, "policy application requested");
        self.state.lock().expect("lock").requested = Some(Instant::now());
        self.wake.notify_one();
    }

    /// Waits at most `within` for the tenant's application history to be read after start-up;
    /// whether it was. Judging a barrier before then would count nothing as applied.
    pub async fn history_read(&self, within: Duration) -> bool {
        let mut rx = self.history.subscribe();
        matches!(
            tokio::time::timeout(within, rx.wait_for(|read| *read)).await,
            Ok(Ok(_))
        )
    }

    pub fn snapshot(&self) -> State {
        self.state.lock().expect("lock").clone()
    }

    /// Fires whenever an application starts, ends, or is held back: controllers re-evaluate.
    pub fn changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.changed.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let before = self.snapshot();
        let mut state = self.state.lock().expect("lock");
        f(&mut state);
        let changed = *state != before;
        drop(state);
        if changed {
            let _ = self.changed.send(());
        }
    }

    /// Picks up the tenant's application history after a restart.
    async fn recover(&self) {
        loop {
            match self.compliance.applications().await {
                Ok(apps) => {
                    let (running, applied) = recovered(&apps, Timestamp::now());
                    self.update(|s| {
                        s.running = running;
                        s.applied = applied;
                        s.recovered = true;
                    });
                    self.history.send_replace(true);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the policy applications; retrying");
                    tokio::time::sleep(self.poll.max(Duration::from_secs(1))).await;
                }
            }
        }
    }

    /// How long until an application may start: the debounce after the last ask, and any
    /// backoff after untrusted answers.
    fn start_wait(&self, state: &State, at: Instant) -> Duration {
        let debounce = self.debounce.saturating_sub(at.elapsed());
        let backoff = state.backoff_until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(Instant::now())
        });
        debounce.max(backoff)
    }

    pub async fn run(self: Arc<Self>) {
        tokio::spawn(self.mode.clone().follow(self.compliance.clone(), self.poll));
        // The invariant check reads every segment and vendor: never start an application on a
        // cache still filling after a restart, which could miss a path between vendors.
        self.segments.synced().await;
        self.vendors.synced().await;
        self.recover().await;
        loop {
            let state = self.snapshot();
            let wait = match (&state.running, state.requested) {
                (Some(_), _) => self.poll,
                (None, Some(at)) => self.start_wait(&state, at),
                (None, None) => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            let state = self.snapshot();
            if let Some(run) = state.running {
                self.follow(run).await;
            } else if state
                .requested
                .is_some_and(|at| self.start_wait(&state, at).is_zero())
            {
                self.start().await;
            }
        }
    }

    async fn follow(&self, run: Run) {
        match self.compliance.application(&run.id).await {
            Ok(app) if !app.identity.eq_ignore_ascii_case(&run.id) => {
                tracing::warn!(application = %run.id, answered = %app.identity, "the compliance endpoint answered about another application; not believed");
            }
            Ok(app) if app.is_running() => {
                let now = Timestamp::now();
                self.update(|s| s.running = Some(run_of(&app, run.asked_at, now)));
            }
            Ok(app) => self.ended(run_of(&app, run.asked_at, Timestamp::now())),
            Err(e) => {
                tracing::warn!(application = %run.id, error = %e, "cannot read the policy application's status")
            }
        }
    }

    /// Records an application that ended: a trusted completion becomes the applied state;
    /// anything else is a failure, and an untrusted answer also backs off the next start.
    fn ended(&self, done: Run) {
        tracing::info!(application = %done.id, status = %done.status, failure = ?done.failure, "policy application ended");
        let untrusted = done.unreadable();
        let debounce = self.debounce;
        self.update(|s| {
            s.running = None;
            if trusted_completion(&done) {
                s.applied = Some(done);
                s.failed = None;
                s.untrusted = 0;
                s.backoff_until = None;
            } else {
                if untrusted {
                    s.untrusted += 1;
                    s.backoff_until = Some(Instant::now() + backoff(debounce, s.untrusted));
                }
                s.failed = Some(done);
            }
        });
    }

    /// Why the Active policies must not be applied now, if they must not: a path they would
    /// open between vendors (checked first: it is the invariant), or allow lists that are not
    /// mirrored (the tenant would refuse them).
    fn hold_back(&self) -> Option<(&'static str, String)> {
        // Both caches are synced before `run` starts anything (see there).
        let segments = self.segments.current().state();
        let vendors = self.vendors.current().state();
        let paths = super::invariant::cross_vendor_paths(&segments, &vendors);
        if !paths.is_empty() {
            return Some(("CrossVendorPath", super::invariant::describe(&paths)));
        }
        let pairs = asymmetries(&segments, &vendors);
        if pairs.is_empty() {
            return None;
        }
        let held = pairs
            .iter()
            .map(|(a, b)| {
                let inactive = segments.iter().any(|s| {
                    s.metadata.name.as_deref() == Some(b.as_str())
                        && s.spec.policy_state == Some(crate::crd::barrier_segment::PolicyState::Inactive)
                });
                let why = if inactive { " (its policy is Inactive)" } else { "" };
                format!("{a} allows {b} but {b} does not allow {a}{why}")
            })
            .collect::<Vec<_>>()
            .join("; ");
        Some(("Asymmetric", held))
    }

    async fn start(&self) {
        if let Some((reason, held)) = self.hold_back() {
            tracing::warn!(reason, %held, "policy application held back");
            // Asked again when a BarrierSegment changes.
            self.update(|s| {
                s.held = Some(held);
                s.held_reason = Some(reason);
                s.requested = None;
            });
            return;
        }
        let asked_at = Timestamp::now();
        match self.compliance.start_application().await {
            Ok(app) => {
                tracing::info!(application = %app.identity, "policy application started");
                let run = run_of(&app, Some(asked_at), Timestamp::now());
                self.update(|s| {
                    s.requested = None;
                    s.held = None;
                    s.held_reason = None;
                });
                if app.is_running() {
                    self.update(|s| s.running = Some(run));
                } else {
                    // The start answer already says it ended (or says something unreadable).
                    self.ended(run);
                }
            }
            Err(e) if e.is_application_running() => {
                self.recover().await;
                // Ask again after the debounce, not at once, if the history shows none running.
                self.update(|s| s.requested = Some(Instant::now()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a policy application; will retry");
                self.update(|s| s.requested = Some(Instant::now()));
            }
        }
    }
}

#[cfg(test)]
#[path = "application_tests.rs"]
mod tests;
