//! Resyncs that wait their turn. A licence that is done is looked at again after the resync
//! interval, in case its account drifted; at thousands of licences those looks alone can fill
//! every reconcile slot, and accounts still being provisioned would queue behind them. So a
//! done licence is not requeued by the controller: it is parked here, and released back to the
//! controller (through `reconcile_on`) when it is due *and* the passes doing real work leave
//! room. Real work always has at least half the slots to itself; resyncs always keep a
//! trickle, so a busy operator still notices drift, only later.

use futures::Stream;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Resync passes that may always run, however busy the operator is (never more than the
/// resyncs' share, so a controller of two slots keeps one for real work).
pub const MIN_RESYNC_SLOTS: usize = 2;
/// A released licence whose pass never started (it was deleted meanwhile, say) stops counting
/// against the resync slots after this long.
const RELEASE_TTL: Duration = Duration::from_secs(30);
/// How often a pacer with due resyncs and no free slot looks again, should no pass end first.
const IDLE_TICK: Duration = Duration::from_millis(200);

/// How many due resyncs may be released now. `limit` is the share of the controller's slots
/// resyncs may fill when nothing else runs; `work` passes doing real work are running and
/// `resyncs` resync passes are running or released. Pure.
pub fn releasable(limit: usize, work: usize, resyncs: usize) -> usize {
    limit
        .saturating_sub(work)
        .max(MIN_RESYNC_SLOTS.min(limit))
        .saturating_sub(resyncs)
}

/// The share of `concurrency` slots resyncs may fill: half, at least one.
pub fn resync_limit(concurrency: u16) -> usize {
    (usize::from(concurrency) / 2).max(1)
}

struct State<R> {
    /// Parked objects by due time (the counter keeps equal times apart).
    due: BTreeMap<(Instant, u64), R>,
    parked: HashMap<R, (Instant, u64)>,
    /// Released to the controller, pass not started yet; with when.
    released: HashMap<R, Instant>,
    work: usize,
    resyncs: usize,
    counter: u64,
}

/// The pacer for one controller's objects (see the module documentation).
pub struct Pacer<R> {
    state: Mutex<State<R>>,
    wake: Notify,
    limit: usize,
}

/// Held while a pass runs; its end frees the slot.
pub struct Pass<'a, R> {
    pacer: &'a Pacer<R>,
    resync: bool,
}

impl<R: Clone + Eq + Hash> Pacer<R> {
    pub fn new(limit: usize) -> Self {
        Pacer {
            state: Mutex::new(State {
                due: BTreeMap::new(),
                parked: HashMap::new(),
                released: HashMap::new(),
                work: 0,
                resyncs: 0,
                counter: 0,
            }),
            wake: Notify::new(),
            limit,
        }
    }

    /// Looks at `obj` again once `after` has passed and there is room.
    pub fn park(&self, obj: R, after: Duration) {
        let mut s = self.state.lock().expect("lock");
        if let Some(old) = s.parked.remove(&obj) {
            s.due.remove(&old);
        }
        s.counter += 1;
        let key = (Instant::now() + after, s.counter);
        s.due.insert(key, obj.clone());
        s.parked.insert(obj, key);
        drop(s);
        self.wake.notify_one();
    }

    /// A pass of `obj` starts: it is no longer parked (the pass decides anew when to look
    /// again), and it counts as a resync if the pacer released it.
    pub fn enter(&self, obj: &R) -> Pass<'_, R> {
        let mut s = self.state.lock().expect("lock");
        if let Some(key) = s.parked.remove(obj) {
            s.due.remove(&key);
        }
        let resync = s.released.remove(obj).is_some();
        if resync {
            s.resyncs += 1;
        } else {
            s.work += 1;
        }
        Pass { pacer: self, resync }
    }

    /// Parked objects.
    #[cfg(test)]
    fn parked(&self) -> usize {
        self.state.lock().expect("lock").parked.len()
    }

    /// The due objects there is room for now, taken out of the parked set; else how long to
    /// wait before looking again (`None`: until woken).
    fn take_due(&self, now: Instant) -> Result<Vec<R>, Option<Duration>> {
        let mut s = self.state.lock().expect("lock");
        s.released.retain(|_, at| now.duration_since(*at) < RELEASE_TTL);
        let room = releasable(self.limit, s.work, s.resyncs + s.released.len());
        let mut out = Vec::new();
        while out.len() < room {
            let Some(entry) = s.due.first_entry() else {
                break;
            };
            if entry.key().0 > now {
                break;
            }
            let obj = entry.remove();
            s.parked.remove(&obj);
            s.released.insert(obj.clone(), now);
            out.push(obj);
        }
        if !out.is_empty() {
            return Ok(out);
        }
        match s.due.keys().next() {
            None => Err(None),
            Some(_) if room == 0 => Err(Some(IDLE_TICK)),
            Some((at, _)) => Err(Some(at.saturating_duration_since(now))),
        }
    }
}

impl<R> Drop for Pass<'_, R> {
    fn drop(&mut self) {
        let mut s = self.pacer.state.lock().expect("lock");
        if self.resync {
            s.resyncs = s.resyncs.saturating_sub(1);
        } else {
            s.work = s.work.saturating_sub(1);
        }
        drop(s);
        self.pacer.wake.notify_one();
    }
}

/// The released objects, as a stream for the controller's `reconcile_on`.
pub fn released<K>(pacer: Arc<Pacer<ObjectRef<K>>>) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let batches = futures::stream::unfold(pacer, |pacer| async move {
        loop {
            match pacer.take_due(Instant::now()) {
                Ok(batch) => return Some((futures::stream::iter(batch), pacer)),
                Err(None) => pacer.wake.notified().await,
                Err(Some(wait)) => {
                    let _ = tokio::time::timeout(wait, pacer.wake.notified()).await;
                }
            }
        }
    });
    futures::StreamExt::flatten(batches)
}

#[cfg(test)]
#[path = "pacer_tests.rs"]
mod tests;
