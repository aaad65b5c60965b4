use super::*;

fn later(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[test]
fn resyncs_fill_at_most_their_share_and_yield_to_work() {
    // Idle: resyncs may fill their whole share.
    assert_eq!(releasable(32, 0, 0), 32);
    assert_eq!(releasable(32, 0, 30), 2);
    // Work takes slots from the resyncs' share first.
    assert_eq!(releasable(32, 20, 0), 12);
    assert_eq!(releasable(32, 20, 12), 0);
    // However busy the operator is, a trickle of resyncs still runs.
    assert_eq!(releasable(32, 64, 0), MIN_RESYNC_SLOTS);
    assert_eq!(releasable(32, 64, MIN_RESYNC_SLOTS), 0);
    // With two slots, resyncs never take both.
    assert_eq!(releasable(1, 2, 0), 1);
    assert_eq!(releasable(1, 2, 1), 0);
    assert_eq!(resync_limit(64), 32);
    assert_eq!(resync_limit(1), 1);
}

#[test]
fn a_parked_object_is_released_once_due_and_only_once() {
    let pacer = Pacer::new(4);
    pacer.park("a", Duration::from_secs(10));
    match pacer.take_due(Instant::now()) {
        Err(Some(wait)) => assert!(wait > Duration::from_secs(9), "{wait:?}"),
        other => panic!("not due yet, got {other:?}"),
    }
    assert_eq!(pacer.take_due(later(11)), Ok(vec!["a"]));
    assert_eq!(
        pacer.take_due(later(12)),
        Err(None),
        "released, not parked any more"
    );
    assert_eq!(pacer.parked(), 0);
}

#[test]
fn parking_again_moves_the_due_time_and_a_pass_unparks() {
    let pacer = Pacer::new(4);
    pacer.park("a", Duration::from_secs(1));
    pacer.park("a", Duration::from_secs(100));
    assert!(pacer.take_due(later(2)).is_err(), "the later due time holds");
    assert_eq!(pacer.parked(), 1);
    // A watch event starts a pass: the pass decides anew, so the object is no longer parked.
    let pass = pacer.enter(&"a");
    assert_eq!(pacer.parked(), 0);
    drop(pass);
    assert_eq!(pacer.take_due(later(200)), Err(None));
}

#[test]
fn busy_work_holds_resyncs_back_to_the_trickle() {
    let pacer = Pacer::new(4);
    for name in ["a", "b", "c", "d", "e", "f"] {
        pacer.park(name, Duration::ZERO);
    }
    let work: Vec<_> = ["w1", "w2", "w3", "w4"].iter().map(|w| pacer.enter(w)).collect();
    let first = pacer.take_due(later(1)).unwrap();
    assert_eq!(
        first.len(),
        MIN_RESYNC_SLOTS,
        "only the trickle while work fills the share"
    );
    assert_eq!(
        pacer.take_due(later(1)),
        Err(Some(IDLE_TICK)),
        "released ones count until they start"
    );
    // The released ones start and end; the work ends too: the whole share opens.
    for name in &first {
        drop(pacer.enter(name));
    }
    drop(work);
    let second = pacer.take_due(later(1)).unwrap();
    assert_eq!(second.len(), 4);
    assert_eq!(pacer.parked(), 0);
}

#[test]
fn a_release_whose_pass_never_starts_stops_holding_a_slot() {
    let pacer = Pacer::new(2);
    pacer.park("gone", Duration::ZERO);
    pacer.park("next", Duration::ZERO);
    let _busy: Vec<_> = ["w1", "w2"].iter().map(|w| pacer.enter(w)).collect();
    let now = later(1);
    assert_eq!(pacer.take_due(now).unwrap().len(), MIN_RESYNC_SLOTS);
    pacer.park("third", Duration::ZERO);
    assert!(
        pacer.take_due(now).is_err(),
        "both released passes hold their slots"
    );
    assert_eq!(pacer.take_due(now + RELEASE_TTL).unwrap(), vec!["third"]);
}
