//! The one policy-application coordinator of the tenant. Applying barrier policies is slow
//! (about 30 minutes before it starts, then about 5,000 users an hour) and only one can run at a
//! time, so every reconciler only *asks* for an application; the coordinator folds a burst of
//! asks into one, never starts two at once, refuses to start one that would fail on asymmetric
//! allow lists, follows the running one, and tells the controllers when it ends.

use super::plan::asymmetries;
use crate::compliance::ComplianceClient;
use crate::compliance::barriers::Application;
use crate::crd::BarrierSegment;
use futures::Stream;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::Store;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast};

/// An application and when it was asked for (by this operator's clock, taken just before the
/// request, so anything recorded earlier is certainly in its snapshot).
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub id: String,
    pub started_at: Timestamp,
    pub status: String,
    pub percent: i64,
    pub failure: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// An application has been asked for since this instant and not yet started.
    pub requested: Option<Instant>,
    pub running: Option<Run>,
    /// The latest completed application: its policies are the ones in effect.
    pub applied: Option<Run>,
    /// The latest failed or stopped application, if newer than `applied`.
    pub failed: Option<Run>,
    /// Why a requested application is being held back (asymmetric allow lists).
    pub held: Option<String>,
}

pub struct Coordinator {
    compliance: Arc<ComplianceClient>,
    segments: Store<BarrierSegment>,
    state: Mutex<State>,
    wake: Notify,
    changed: broadcast::Sender<()>,
    debounce: Duration,
    poll: Duration,
}

fn run_of(app: &Application, started_at: Timestamp) -> Run {
    Run {
        id: app.identity.clone(),
        started_at,
        status: app.status.clone(),
        percent: app.percent_progress.unwrap_or(0),
        failure: (app.status == "Failed" || app.status == "Stopped").then(|| {
            format!(
                "{}: {}",
                app.failure_category.clone().unwrap_or_else(|| app.status.clone()),
                app.failure_message.clone().unwrap_or_default()
            )
        }),
    }
}

fn created_at(app: &Application) -> Timestamp {
    app.creation_time
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(Timestamp::now)
}

impl Coordinator {
    pub fn new(
        compliance: Arc<ComplianceClient>,
        segments: Store<BarrierSegment>,
        debounce: Duration,
        poll: Duration,
    ) -> Self {
        Coordinator {
            compliance,
            segments,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            changed: broadcast::channel(16).0,
            debounce,
            poll,
        }
    }

    /// Asks for an application; bursts of asks within the debounce become one.
    pub fn request(&self) {
        self.state.lock().expect("lock").requested = Some(Instant::now());
        self.wake.notify_one();
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
                    self.update(|s| {
                        s.running = apps
                            .iter()
                            .find(|a| a.is_running())
                            .map(|a| run_of(a, created_at(a)));
                        s.applied = apps
                            .iter()
                            .find(|a| a.status == "Completed")
                            .map(|a| run_of(a, created_at(a)));
                    });
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the policy applications; retrying");
                    tokio::time::sleep(self.poll.max(Duration::from_secs(1))).await;
                }
            }
        }
    }

    pub async fn run(self: Arc<Self>) {
        self.recover().await;
        loop {
            let state = self.snapshot();
            let wait = match (&state.running, state.requested) {
                (Some(_), _) => self.poll,
                (None, Some(at)) => self.debounce.saturating_sub(at.elapsed()),
                (None, None) => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            let state = self.snapshot();
            if let Some(run) = state.running {
                self.follow(run).await;
            } else if state.requested.is_some_and(|at| at.elapsed() >= self.debounce) {
                self.start().await;
            }
        }
    }

    async fn follow(&self, run: Run) {
        match self.compliance.application(&run.id).await {
            Ok(app) if app.is_running() => {
                self.update(|s| s.running = Some(run_of(&app, run.started_at)));
            }
            Ok(app) => {
                let done = run_of(&app, run.started_at);
                tracing::info!(application = %done.id, status = %done.status, failure = ?done.failure, "policy application ended");
                self.update(|s| {
                    s.running = None;
                    if done.status == "Completed" {
                        s.applied = Some(done);
                        s.failed = None;
                    } else {
                        s.failed = Some(done);
                    }
                });
            }
            Err(e) => {
                tracing::warn!(application = %run.id, error = %e, "cannot read the policy application's status")
            }
        }
    }

    async fn start(&self) {
        let pairs = asymmetries(&self.segments.state());
        if !pairs.is_empty() {
            let held = pairs
                .iter()
                .map(|(a, b)| {
                    let inactive = self.segments.state().iter().any(|s| {
                        s.metadata.name.as_deref() == Some(b.as_str())
                            && s.spec.policy_state == Some(crate::crd::barrier_segment::PolicyState::Inactive)
                    });
                    let why = if inactive { " (its policy is Inactive)" } else { "" };
                    format!("{a} allows {b} but {b} does not allow {a}{why}")
                })
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!(%held, "policy application held back: it would fail on asymmetric allow lists");
            self.update(|s| s.held = Some(held));
            // Asked again when a BarrierSegment changes.
            self.update(|s| s.requested = None);
            return;
        }
        let started_at = Timestamp::now();
        match self.compliance.start_application().await {
            Ok(app) => {
                tracing::info!(application = %app.identity, "policy application started");
                self.update(|s| {
                    s.running = Some(run_of(&app, started_at));
                    s.requested = None;
                    s.held = None;
                });
            }
            Err(e) if e.is_application_running() => self.recover().await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a policy application; will retry");
                self.update(|s| s.requested = Some(Instant::now()));
            }
        }
    }
}
