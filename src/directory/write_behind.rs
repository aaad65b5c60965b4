//! Adds to a group, written behind. A reconcile that needs its account in a group queues the
//! add and goes on; one sender flushes each group's queue in `members@odata.bind` PATCHes of
//! up to 20 (Graph's limit), and tells the owner of each add once its answer is in. Holding
//! adds costs nothing while writes queue for Graph's write budget anyway, and a full PATCH
//! spends one write where twenty single adds would spend twenty.
//!
//! A group's queue is sent in full PATCHes of 20 as it fills, and the rest when its first add
//! has waited [`MAX_HOLD`], or when no add has joined it for [`QUIET_ALONE`] (no account is on
//! its way to the group) or [`QUIET`] (some are). While writes wait for the budget the rest
//! waits longer: for [`QUIET_SATURATED`] when no account is on its way, else for 20 or
//! [`MAX_HOLD`], since the accounts on their way wait for their creates, their adds will
//! come, and a half-empty PATCH now would take another write's place.

use crate::graph::GraphError;
use futures::channel::mpsc;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Graph's limit on references in one `members@odata.bind`.
pub const BIND_LIMIT: usize = 20;
/// A group's queue that nothing joined for this long is sent when no account is on its way
/// to the group (see [`JoinQueue::expect`])...
pub const QUIET_ALONE: Duration = Duration::from_millis(250);
/// ... and when some are, unless writes wait for the budget (see [`due`]).
pub const QUIET: Duration = Duration::from_secs(1);
/// While writes wait for the budget, a queue nothing joined for this long is sent when no
/// account is on its way (adds at a budget's pace come seconds apart).
pub const QUIET_SATURATED: Duration = Duration::from_secs(5);
/// No add waits longer than this, whatever the budget.
pub const MAX_HOLD: Duration = Duration::from_secs(40);
/// How long an account on its way to a group is waited for (its create and the pass after).
pub const EXPECT_FOR: Duration = Duration::from_secs(10);
/// How often the sender looks again while adds wait (the budget's state has no signal).
const POLL: Duration = Duration::from_millis(250);

/// What became of a request to add a user to a group.
#[derive(Debug)]
pub enum Joined {
    /// In the group: sent on the spot (no sender runs), or sent behind since the owner last asked.
    Added,
    /// Queued, or being sent; the owner is told when the answer is in.
    Queued,
    /// The last attempt failed (the queue forgets it: asking again queues it again).
    Failed(GraphError),
}

/// One add and who to tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    pub user: String,
    /// The owner's key (`namespace/name`), sent on the subscription once the add is answered.
    pub owner: String,
}

#[derive(Default)]
struct GroupQueue {
    /// The adds waiting, in order, each with when it came.
    waiting: Vec<(Add, Instant)>,
    /// Taken by the sender and not yet answered.
    sending: HashSet<String>,
}

impl GroupQueue {
    /// When the oldest waiting add came.
    fn first(&self) -> Option<Instant> {
        self.waiting.first().map(|(_, at)| *at)
    }

    /// When the newest waiting add came.
    fn last(&self) -> Option<Instant> {
        self.waiting.last().map(|(_, at)| *at)
    }
}

/// How many of a group's waiting adds are due to be sent (pure): all of them, or only full
/// PATCHes. `coming`: accounts on their way to the group. While writes wait for the budget
/// those wait for their creates and their adds will come; a half-empty PATCH now would take
/// another write's place.
pub fn due(waiting: usize, held: Duration, quiet: Duration, writes_waiting: bool, coming: usize) -> usize {
    let quiet_enough = match (coming, writes_waiting) {
        (0, false) => quiet >= QUIET_ALONE,
        (0, true) => quiet >= QUIET_SATURATED,
        (_, false) => quiet >= QUIET,
        (_, true) => false,
    };
    if held >= MAX_HOLD || quiet_enough {
        waiting
    } else {
        waiting - waiting % BIND_LIMIT
    }
}

/// The queues, by group, and what the sender found.
#[derive(Default)]
pub struct JoinQueue {
    groups: Mutex<HashMap<String, GroupQueue>>,
    failed: Mutex<HashMap<(String, String), GraphError>>,
    /// Adds sent, until their owner's next pass takes them (for its Event).
    joined: Mutex<HashSet<(String, String)>>,
    /// Accounts on their way to each group, by owner, since when (see [`JoinQueue::expect`]).
    expected: Mutex<HashMap<String, HashMap<String, Instant>>>,
    wake: Notify,
    subscriber: Mutex<Option<mpsc::UnboundedSender<String>>>,
    running: AtomicBool,
}

impl JoinQueue {
    /// Whether a sender runs (else adds are sent on the spot).
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Owners of answered adds, from now on (a new subscription replaces the last one). From
    /// here on adds are queued: the subscriber runs the sender next.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded();
        *self.subscriber.lock().unwrap() = Some(tx);
        self.running.store(true, Ordering::Release);
        rx
    }

    /// Marks the sender as running until the guard drops; then adds are sent on the spot again,
    /// and adds it had taken and not answered are forgotten, so their owners queue them again.
    pub fn start(&self) -> Running<'_> {
        self.running.store(true, Ordering::Release);
        Running(self)
    }

    /// Queues an add (once: asking again while it waits or is sent changes nothing); returns
    /// the last attempt's failure instead, if there is one, and `Added` (once) when it was sent
    /// since the owner last asked: a pass that looked at the group before that PATCH's answer
    /// must not queue the add again, as Graph refuses a second add of a member.
    pub fn enqueue(&self, group: &str, add: Add) -> Joined {
        if let Some(owners) = self.expected.lock().unwrap().get_mut(group) {
            owners.remove(&add.owner);
        }
        let key = (group.to_owned(), add.user.clone());
        if let Some(e) = self.failed.lock().unwrap().remove(&key) {
            return Joined::Failed(e);
        }
        if self.joined.lock().unwrap().remove(&key) {
            return Joined::Added;
        }
        let mut groups = self.groups.lock().unwrap();
        let q = groups.entry(group.to_owned()).or_default();
        if q.sending.contains(&add.user) || q.waiting.iter().any(|(a, _)| a.user == add.user) {
            return Joined::Queued;
        }
        q.waiting.push((add, Instant::now()));
        if q.waiting.len() == 1 || q.waiting.len() >= BIND_LIMIT {
            self.wake.notify_one();
        }
        Joined::Queued
    }

    /// Takes every group's due adds (marked as being sent) and says how soon to look again.
    pub fn take_due(&self, writes_waiting: bool) -> (Vec<(String, Vec<Add>)>, Option<Duration>) {
        let now = Instant::now();
        let mut groups = self.groups.lock().unwrap();
        let mut taken = Vec::new();
        let mut next: Option<Duration> = None;
        for (group, q) in groups.iter_mut() {
            let since = |t: Option<Instant>| t.map_or(Duration::ZERO, |t| now.duration_since(t));
            let (held, quiet) = (since(q.first()), since(q.last()));
            let coming = self.coming(group, now);
            let n = due(q.waiting.len(), held, quiet, writes_waiting, coming);
            if n > 0 {
                let adds: Vec<Add> = q.waiting.drain(..n).map(|(a, _)| a).collect();
                q.sending.extend(adds.iter().map(|a| a.user.clone()));
                taken.push((group.clone(), adds));
            }
            if !q.waiting.is_empty() {
                // The rest's own age: its first add may have come well after the taken ones.
                let held = since(q.first());
                let until = MAX_HOLD
                    .saturating_sub(held)
                    .min(QUIET_ALONE.saturating_sub(quiet))
                    .max(POLL);
                next = Some(next.map_or(until, |n| n.min(until)));
            }
        }
        groups.retain(|_, q| !q.waiting.is_empty() || !q.sending.is_empty());
        (taken, next)
    }

    /// Records the answer to one add and tells its owner.
    pub fn answered(&self, group: &str, add: &Add, result: Result<(), GraphError>) {
        if let Some(q) = self.groups.lock().unwrap().get_mut(group) {
            q.sending.remove(&add.user);
        }
        let key = (group.to_owned(), add.user.clone());
        match result {
            Ok(()) => drop(self.joined.lock().unwrap().insert(key)),
            Err(e) => drop(self.failed.lock().unwrap().insert(key, e)),
        }
        if let Some(tx) = self.subscriber.lock().unwrap().as_ref() {
            let _ = tx.unbounded_send(add.owner.clone());
        }
    }

    /// Says the owner's account is on its way to `group` (being created, restored or adopted):
    /// its add will come within [`EXPECT_FOR`], or the expectation lapses.
    pub fn expect(&self, group: &str, owner: &str) {
        let mut expected = self.expected.lock().unwrap();
        let group = expected.entry(group.to_owned()).or_default();
        group.insert(owner.to_owned(), Instant::now());
    }

    /// Accounts on their way to `group` now (lapsed expectations are dropped).
    fn coming(&self, group: &str, now: Instant) -> usize {
        let mut expected = self.expected.lock().unwrap();
        let Some(owners) = expected.get_mut(group) else {
            return 0;
        };
        owners.retain(|_, since| now.duration_since(*since) < EXPECT_FOR);
        let n = owners.len();
        if n == 0 {
            expected.remove(group);
        }
        n
    }

    /// Whether an add of this user to this group was sent since the last time anyone asked.
    pub fn take_joined(&self, group: &str, user: &str) -> bool {
        let key = (group.to_owned(), user.to_owned());
        self.joined.lock().unwrap().remove(&key)
    }

    /// Waits until an add joins an empty or a full queue, or `at_most` has passed.
    pub async fn idle(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.wake.notified()).await;
    }
}

/// The sender's mark; see [`JoinQueue::start`].
pub struct Running<'a>(&'a JoinQueue);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
        let mut groups = self.0.groups.lock().unwrap();
        groups.values_mut().for_each(|q| q.sending.clear());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(user: &str) -> Add {
        Add {
            user: user.into(),
            owner: format!("ns/{user}"),
        }
    }

    #[test]
    fn full_patches_go_at_once_and_the_rest_when_quiet_for_the_budget_s_state() {
        let (s, ms) = (Duration::from_secs, Duration::from_millis);
        assert_eq!(due(0, s(100), s(100), false, 0), 0, "nothing to send");
        assert_eq!(
            due(2, ms(300), QUIET_ALONE, false, 0),
            2,
            "nothing else is coming: go"
        );
        assert_eq!(
            due(2, ms(300), QUIET_ALONE, false, 1),
            0,
            "another add is on its way"
        );
        assert_eq!(due(20, s(0), s(0), true, 9), 20, "20 fill a PATCH");
        assert_eq!(
            due(45, s(1), s(0), true, 9),
            40,
            "full PATCHes go, the rest fills"
        );
        assert_eq!(
            due(5, s(10), s(4), true, 3),
            0,
            "writes wait and adds are coming: a half-empty PATCH would take a place"
        );
        assert_eq!(
            due(5, s(10), s(4), true, 0),
            0,
            "writes wait: adds at the budget's pace come seconds apart"
        );
        assert_eq!(
            due(5, s(10), QUIET_SATURATED, true, 0),
            5,
            "writes wait, but no add came for long and none is coming"
        );
        assert_eq!(
            due(5, s(10), s(5), false, 3),
            5,
            "quiet, and the write costs nobody anything"
        );
        assert_eq!(due(5, s(10), ms(200), false, 0), 0, "others are still joining");
        assert_eq!(
            due(1, MAX_HOLD, s(0), true, 9),
            1,
            "no add waits longer than MAX_HOLD"
        );
        assert_eq!(due(21, MAX_HOLD, s(0), true, 9), 21, "the overdue one goes too");
    }

    #[tokio::test(start_paused = true)]
    async fn the_rest_of_a_full_take_waits_by_its_own_age() {
        let q = JoinQueue::default();
        for i in 0..2 {
            q.enqueue("g", add(&format!("a{i}")));
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        for i in 0..20 {
            q.enqueue("g", add(&format!("b{i}")));
        }
        q.expect("g", "ns/coming");
        let (taken, _) = q.take_due(true);
        assert_eq!(taken[0].1.len(), 20, "one full PATCH, the oldest first; two wait");
        assert_eq!(taken[0].1[0], add("a0"));
        tokio::time::advance(Duration::from_secs(10)).await;
        q.expect("g", "ns/coming");
        assert!(
            q.take_due(true).0.is_empty(),
            "the two came 10 s ago, not 40 s: they wait to fill a PATCH"
        );
        tokio::time::advance(MAX_HOLD - Duration::from_secs(10)).await;
        q.expect("g", "ns/coming");
        let (taken, _) = q.take_due(true);
        assert_eq!(taken[0].1, vec![add("b18"), add("b19")], "overdue now");
    }

    #[tokio::test(start_paused = true)]
    async fn an_add_is_queued_once_and_its_failure_is_told_once() {
        let q = JoinQueue::default();
        let mut answers = q.subscribe();
        assert!(matches!(q.enqueue("g", add("u1")), Joined::Queued));
        assert!(matches!(q.enqueue("g", add("u1")), Joined::Queued));
        let (taken, next) = q.take_due(false);
        assert!(taken.is_empty(), "not quiet yet");
        assert_eq!(next, Some(QUIET_ALONE));
        tokio::time::advance(QUIET_ALONE).await;
        let (taken, _) = q.take_due(false);
        assert_eq!(taken, vec![("g".to_owned(), vec![add("u1")])], "one add, once");
        assert!(matches!(q.enqueue("g", add("u1")), Joined::Queued), "being sent");
        assert!(q.take_due(false).0.is_empty(), "not taken twice");
        let refused = GraphError::Decode("refused".into());
        q.answered("g", &add("u1"), Err(refused));
        assert!(!q.take_joined("g", "u1"), "it failed");
        assert_eq!(answers.try_recv().unwrap(), "ns/u1".to_owned());
        assert!(matches!(q.enqueue("g", add("u1")), Joined::Failed(_)));
        assert!(
            matches!(q.enqueue("g", add("u1")), Joined::Queued),
            "asked again: queued again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_add_asked_for_again_after_its_answer_is_not_sent_twice() {
        let q = JoinQueue::default();
        let _answers = q.subscribe();
        q.enqueue("g", add("u1"));
        tokio::time::advance(QUIET_ALONE).await;
        let (taken, _) = q.take_due(false);
        q.answered("g", &taken[0].1[0], Ok(()));
        // The owner's pass looked before the answer and asks again.
        assert!(matches!(q.enqueue("g", add("u1")), Joined::Added));
        tokio::time::advance(MAX_HOLD).await;
        assert!(q.take_due(false).0.is_empty(), "nothing is sent again");
        assert!(!q.take_joined("g", "u1"), "told once, by the enqueue");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_queue_waits_for_coming_adds_only_while_writes_wait() {
        let q = JoinQueue::default();
        q.enqueue("g", add("u1"));
        q.expect("g", "ns/u2");
        tokio::time::advance(QUIET).await;
        assert!(q.take_due(true).0.is_empty(), "an add is coming and writes wait");
        tokio::time::advance(EXPECT_FOR).await;
        assert_eq!(q.take_due(true).0.len(), 1, "the expectation lapsed");
        q.expect("g", "ns/u3");
        q.enqueue("g", add("u3"));
        tokio::time::advance(QUIET_ALONE).await;
        assert!(
            q.take_due(true).0.is_empty(),
            "nothing is coming, but while writes wait adds come seconds apart"
        );
        assert_eq!(q.take_due(false).0.len(), 1, "writes do not wait: go");
        q.enqueue("g", add("u4"));
        tokio::time::advance(QUIET_SATURATED).await;
        assert_eq!(
            q.take_due(true).0.len(),
            1,
            "its add came and no other for long: nothing is coming any more"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn full_patches_go_at_once_and_a_stopped_sender_lets_its_adds_be_queued_again() {
        let q = JoinQueue::default();
        for i in 0..45 {
            q.enqueue("g", add(&format!("u{i}")));
        }
        let running = q.start();
        let (taken, _) = q.take_due(true);
        assert_eq!(taken[0].1.len(), 40, "two full PATCHes; five wait for more");
        tokio::time::advance(QUIET_ALONE).await;
        let (taken, _) = q.take_due(false);
        assert_eq!(taken[0].1.len(), 5, "quiet, and writes do not wait");
        assert!(matches!(q.enqueue("g", add("u3")), Joined::Queued));
        drop(running);
        assert!(!q.running());
        q.enqueue("g", add("u3"));
        tokio::time::advance(MAX_HOLD).await;
        let (taken, _) = q.take_due(true);
        assert_eq!(
            taken[0].1,
            vec![add("u3")],
            "taken again after the sender stopped"
        );
    }
}
