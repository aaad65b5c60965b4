//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas can run and only one
//! reconciles. The rules are client-go's leaderelection:
//!
//! - A standby judges expiry by its own monotonic clock: the lease is free once its record
//!   (holder, renewTime, resourceVersion) has not changed for a whole lease duration since this
//!   replica last saw it change. The record's renewTime is written for people and other tools,
//!   but never compared with the local wall clock, so skewed clocks cannot cause a takeover.
//! - The leader stops acting when it has not renewed for the renew deadline (2/3 of the lease
//!   duration, client-go's 10 s of 15 s), measured from the start of its last successful
//!   renewal; every call is bounded by that deadline. A standby saw that renewal no earlier than
//!   it started, so it waits at least a lease duration from then: the leader has stopped first.
//! - Renewal runs in the background from the moment the lease is won, also while the controllers
//!   are still starting. On shutdown the lease is released so a standby takes over at once.
//!
//! Updates carry the lease's resourceVersion, so two replicas can never both win one round.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease holds without renewal.
    pub lease: Duration,
}

/// How leadership is timed. Only [`Timing::new`] builds one, and it enforces
/// `retry_period < renew_deadline < lease`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    lease: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

impl Timing {
    /// Refuses a renew deadline that is not shorter than the lease: the leader would then act
    /// after a standby may have taken over.
    pub fn new(lease: Duration, renew_deadline: Duration, retry_period: Duration) -> Result<Timing, String> {
        if renew_deadline >= lease {
            return Err(format!(
                "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration ({lease:?})"
            ));
        }
        if retry_period.is_zero() || retry_period >= renew_deadline {
            return Err(format!(
                "the retry period ({retry_period:?}) must be above zero and shorter than the renew deadline ({renew_deadline:?})"
            ));
        }
        Ok(Timing {
            lease,
            renew_deadline,
            retry_period,
        })
    }

    /// client-go's proportions (15 s lease, 10 s renew deadline, 2 s retry) for any lease of at
    /// least a second (shorter ones are raised to a second).
    pub fn from_lease(lease: Duration) -> Timing {
        let lease = lease.max(Duration::from_secs(1));
        Timing::new(lease, lease * 2 / 3, lease * 2 / 15).expect("the proportions hold for any lease")
    }

    /// When a leader whose last successful renewal started at `renewed` must have stopped.
    pub fn leads_until(&self, renewed: Instant) -> Instant {
        renewed + self.renew_deadline
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    pub fn retry_period(&self) -> Duration {
        self.retry_period
    }
}

/// The parts of a lease record whose change shows that its holder is alive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub holder: Option<String>,
    pub renew_time: Option<Timestamp>,
    pub resource_version: Option<String>,
    /// What the holder says the lease lasts; a standby waits at least this long.
    pub lease_seconds: Option<i32>,
}

impl Record {
    pub fn of(lease: &Lease) -> Record {
        let spec = lease.spec.as_ref();
        Record {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            resource_version: lease.metadata.resource_version.clone(),
            lease_seconds: spec.and_then(|s| s.lease_duration_seconds),
        }
    }
}

/// What this replica last saw of the record, and when (on its monotonic clock) it changed.
#[derive(Debug, Default)]
pub struct Observer {
    last: Option<(Record, Instant)>,
}

impl Observer {
    /// Notes the record read at `now`; the clock restarts only when it differs from the last.
    pub fn observe(&mut self, record: Record, now: Instant) {
        if self.last.as_ref().is_none_or(|(r, _)| *r != record) {
            self.last = Some((record, now));
        }
    }

    /// Whether `me` may take the lease at `now`: it is free or already mine, or the record has
    /// not changed for a whole lease duration (the longer of `lease` and the record's own).
    pub fn may_take(&self, me: &str, lease: Duration, now: Instant) -> bool {
        let Some((record, changed)) = &self.last else {
            return false;
        };
        match record.holder.as_deref() {
            None => true,
            Some(holder) if holder == me => true,
            Some(_) => {
                let theirs = Duration::from_secs(record.lease_seconds.unwrap_or(0).max(0) as u64);
                now.saturating_duration_since(*changed) >= lease.max(theirs)
            }
        }
    }
}

/// The result of one round against the Lease.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    Held,
    /// Another replica holds a live lease.
    Taken,
    /// Someone wrote the lease between our read and our write: read again.
    Conflict,
}

struct Inner {
    api: Api<Lease>,
    config: LeaderConfig,
    timing: Timing,
    observer: Mutex<Observer>,
}

pub struct Elector {
    inner: Arc<Inner>,
    /// The background renewal while this replica leads; it ends when leadership is lost.
    renewal: Mutex<Option<JoinHandle<()>>>,
    /// Closes (its sender is dropped) when the renewal ends.
    lost: Mutex<Option<watch::Receiver<()>>>,
}

impl Elector {
    pub fn new(client: Client, config: LeaderConfig) -> Self {
        let timing = Timing::from_lease(config.lease);
        Elector::with_timing(client, config, timing)
    }

    pub fn with_timing(client: Client, config: LeaderConfig, timing: Timing) -> Self {
        Elector {
            inner: Arc::new(Inner {
                api: Api::namespaced(client, &config.namespace),
                config,
                timing,
                observer: Mutex::default(),
            }),
            renewal: Mutex::default(),
            lost: Mutex::default(),
        }
    }

    /// Waits until this replica holds the lease, then keeps renewing it in the background.
    pub async fn acquire(&self) {
        let inner = &self.inner;
        let mut announced = false;
        loop {
            let started = Instant::now();
            match inner.bounded_round(inner.timing.renew_deadline).await {
                Ok(Round::Held) => {
                    tracing::info!(lease = %inner.config.name, identity = %inner.config.identity, "became the leader");
                    let (tx, rx) = watch::channel(());
                    let task = tokio::spawn(renew(inner.clone(), started, tx));
                    *guard(&self.renewal) = Some(task);
                    *guard(&self.lost) = Some(rx);
                    return;
                }
                Ok(_) if !announced => {
                    tracing::info!(lease = %inner.config.name, "another replica leads; standing by");
                    announced = true;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the leader lease"),
            }
            tokio::time::sleep(inner.timing.retry_period).await;
        }
    }

    /// Returns when this replica has stopped leading: the lease was taken, or it could not be
    /// renewed within the renew deadline. Returns at once when it does not lead.
    pub async fn hold(&self) {
        let lost = guard(&self.lost).clone();
        if let Some(mut lost) = lost {
            // Nothing is ever sent: `changed` fails when the renewal ends and drops the sender.
            while lost.changed().await.is_ok() {}
        }
    }

    /// Stops renewing and gives the lease up so a standby takes over without waiting for it to
    /// expire.
    pub async fn release(&self) {
        let renewal = guard(&self.renewal).take();
        if let Some(task) = renewal {
            task.abort();
            let _ = task.await;
        }
        let inner = &self.inner;
        if let Ok(Some(mut lease)) = inner.api.get_opt(&inner.config.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(inner.config.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            if inner
                .api
                .replace(&inner.config.name, &PostParams::default(), &lease)
                .await
                .is_ok()
            {
                tracing::info!(lease = %inner.config.name, "released the leader lease");
            }
        }
    }
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Renews every retry period until leadership is lost, then returns (dropping `_lost`, which
/// ends [`Elector::hold`]). `renewed` is when the last successful renewal started.
async fn renew(inner: Arc<Inner>, mut renewed: Instant, _lost: watch::Sender<()>) {
    let timing = inner.timing;
    let mut next = renewed + timing.retry_period;
    loop {
        let deadline = timing.leads_until(renewed);
        tokio::time::sleep_until(next.min(deadline)).await;
        let started = Instant::now();
        if started >= deadline {
            tracing::error!(deadline = ?timing.renew_deadline, "the leader lease could not be renewed in time; stepping down");
            return;
        }
        match inner.bounded_round(deadline - started).await {
            Ok(Round::Held) => renewed = started,
            Ok(Round::Taken) => {
                tracing::error!("the leader lease was taken by another replica");
                return;
            }
            Ok(Round::Conflict) => tracing::warn!("the leader lease changed under us; reading it again"),
            Err(e) => tracing::warn!(error = %e, "cannot renew the leader lease; retrying"),
        }
        next = Instant::now() + timing.retry_period;
    }
}

impl Inner {
    /// One round, given up after `limit` (a hung API server must not outlast the deadline).
    async fn bounded_round(&self, limit: Duration) -> Result<Round, String> {
        match tokio::time::timeout(limit, self.round()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }

    /// Reads the lease and takes or renews it if this replica may.
    async fn round(&self) -> Result<Round, kube::Error> {
        let me = &self.config.identity;
        let seconds = i32::try_from(self.timing.lease.as_secs().max(1)).unwrap_or(15);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return self.create(seconds).await;
        };
        let may_take = {
            let mut observer = guard(&self.observer);
            let now = Instant::now();
            observer.observe(Record::of(&lease), now);
            observer.may_take(me, self.timing.lease, now)
        };
        if !may_take {
            return Ok(Round::Taken);
        }
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(me.as_str());
        let now = MicroTime(Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if mine {
                spec.acquire_time.clone()
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(!mine)),
            ..spec
        });
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Round::Held),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Conflict),
            Err(e) => Err(e),
        }
    }

    async fn create(&self, seconds: i32) -> Result<Round, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Round::Held),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Conflict),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn record(holder: Option<&str>, version: u32, renew_time: &str) -> Record {
        Record {
            holder: holder.map(str::to_owned),
            renew_time: Some(renew_time.parse().unwrap()),
            resource_version: Some(version.to_string()),
            lease_seconds: Some(15),
        }
    }

    #[test]
    fn the_renew_deadline_must_be_shorter_than_the_lease() {
        let s = Duration::from_secs;
        assert!(Timing::new(s(15), s(15), s(2)).is_err());
        assert!(Timing::new(s(15), s(20), s(2)).is_err());
        assert!(Timing::new(s(15), s(10), s(10)).is_err());
        assert!(Timing::new(s(15), s(10), Duration::ZERO).is_err());
        let t = Timing::from_lease(s(15));
        assert_eq!(
            (t.renew_deadline(), t.retry_period()),
            (s(10), s(2)),
            "client-go's defaults"
        );
        for lease in [Duration::ZERO, Duration::from_millis(300), s(3), s(3600)] {
            let t = Timing::from_lease(lease);
            assert!(t.retry_period() < t.renew_deadline() && t.renew_deadline() < t.lease());
        }
    }

    #[test]
    fn a_skewed_standby_does_not_take_over_while_the_record_keeps_changing() {
        // The holder's renewTime is read against no clock: far in the past or the future.
        for renew_time in ["1999-01-01T00:00:00Z", "2999-01-01T00:00:00Z"] {
            let t0 = Instant::now();
            let mut standby = Observer::default();
            let mut version = 0;
            // A live leader renews every 2 s for a minute, four lease durations.
            for step in 0..30u32 {
                let now = t0 + Duration::from_secs(2 * u64::from(step));
                version += 1;
                standby.observe(record(Some("a"), version, renew_time), now);
                assert!(!standby.may_take("b", LEASE, now), "{renew_time} at {step}");
            }
            // The leader stops: the same record, read again and again.
            let last_change = t0 + Duration::from_secs(58);
            for ms in (100..15_000).step_by(100) {
                let now = last_change + Duration::from_millis(ms);
                standby.observe(record(Some("a"), version, renew_time), now);
                assert!(!standby.may_take("b", LEASE, now), "{renew_time} +{ms} ms");
            }
            let now = last_change + LEASE;
            standby.observe(record(Some("a"), version, renew_time), now);
            assert!(
                standby.may_take("b", LEASE, now),
                "{renew_time}: unchanged for a lease"
            );
        }
    }

    #[test]
    fn the_first_sighting_starts_the_clock_and_free_or_own_leases_are_taken_at_once() {
        let t0 = Instant::now();
        let mut standby = Observer::default();
        assert!(!standby.may_take("b", LEASE, t0), "nothing seen yet");
        // Written long ago by the record's clock; this replica has only just seen it.
        standby.observe(record(Some("a"), 7, "2001-01-01T00:00:00Z"), t0);
        assert!(!standby.may_take("b", LEASE, t0 + Duration::from_secs(14)));
        assert!(standby.may_take("b", LEASE, t0 + LEASE));
        assert!(standby.may_take("a", LEASE, t0), "its own lease");
        standby.observe(record(None, 8, "2001-01-01T00:00:00Z"), t0);
        assert!(standby.may_take("b", LEASE, t0), "released");
    }

    #[test]
    fn a_longer_lease_written_by_the_holder_is_waited_out() {
        let t0 = Instant::now();
        let mut standby = Observer::default();
        let mut r = record(Some("a"), 1, "2030-01-01T00:00:00Z");
        r.lease_seconds = Some(60);
        standby.observe(r, t0);
        assert!(!standby.may_take("b", LEASE, t0 + Duration::from_secs(59)));
        assert!(standby.may_take("b", LEASE, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn the_leader_stops_before_a_standby_can_take_over() {
        for lease in [Duration::from_secs(3), LEASE] {
            let timing = Timing::from_lease(lease);
            let renewal_started = Instant::now();
            // The standby sees the renewal no earlier than it started.
            for seen_after in [Duration::ZERO, Duration::from_millis(1), Duration::from_secs(1)] {
                let mut standby = Observer::default();
                standby.observe(
                    record(Some("a"), 1, "2000-01-01T00:00:00Z"),
                    renewal_started + seen_after,
                );
                let stops = timing.leads_until(renewal_started);
                for ms in (0..40_000).step_by(50) {
                    let now = renewal_started + Duration::from_millis(ms);
                    let leading = now < stops;
                    assert!(
                        !(leading && standby.may_take("b", timing.lease(), now)),
                        "two leaders at +{ms} ms ({lease:?}, seen after {seen_after:?})"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_leader_whose_api_server_hangs_steps_down_by_the_renew_deadline() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hung = tokio::spawn(async move {
            let mut open = Vec::new();
            for _ in 0..16 {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                open.push(socket);
            }
            std::future::pending::<()>().await;
        });
        let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        let timing = Timing::new(
            Duration::from_millis(900),
            Duration::from_millis(600),
            Duration::from_millis(100),
        )
        .unwrap();
        let config = LeaderConfig {
            namespace: "default".into(),
            name: "lease".into(),
            identity: "a".into(),
            lease: timing.lease(),
        };
        let elector = Elector::with_timing(client, config, timing);
        let (tx, rx) = watch::channel(());
        *guard(&elector.lost) = Some(rx);
        let renewed = Instant::now();
        tokio::spawn(renew(elector.inner.clone(), renewed, tx));
        tokio::time::timeout(Duration::from_secs(5), elector.hold())
            .await
            .expect("the leader steps down instead of waiting on the API server");
        let stepped_down = renewed.elapsed();
        hung.abort();
        assert!(
            stepped_down >= timing.renew_deadline() && stepped_down < timing.lease(),
            "stepped down after {stepped_down:?}"
        );
    }
}
