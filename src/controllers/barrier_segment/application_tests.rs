use super::*;
use crate::controllers::barrier_segment::applied::policy_applied;
use crate::crd::barrier_segment::PolicyType;
use crate::crd::conditions::Status;
use serde_json::{Value, json};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn app(id: &str, status: &str, percent: Value, created: Value) -> Application {
    serde_json::from_value(json!({
        "Identity": id, "Status": status, "PercentProgress": percent, "CreationTime": created,
    }))
    .unwrap()
}

fn completed(id: &str, created: Value) -> Application {
    app(id, "Completed", json!(100), created)
}

const NOW: &str = "2024-05-01T12:00:00Z";

#[test]
fn a_start_is_known_only_from_a_readable_credible_time() {
    let now = ts(NOW);
    let at = |created: Value, asked: Option<&str>| started_at(&completed("a", created), asked.map(ts), now);
    assert_eq!(
        at(json!("2024-05-01T11:00:00Z"), None),
        ts("2024-05-01T11:00:00Z")
    );
    assert_eq!(
        at(json!("/Date(1714561200000)/"), None),
        ts("2024-05-01T11:00:00Z"),
        "the .NET form is a real time"
    );
    for bad in [
        json!("not a time"),
        Value::Null,
        json!(1714561200000i64),
        json!("2024-05-01T11:00:00"),
    ] {
        assert_eq!(at(bad.clone(), None), UNKNOWN_START, "{bad}");
    }
    assert_eq!(
        at(json!("2024-05-01T13:00:00Z"), None),
        UNKNOWN_START,
        "from the future"
    );
    // One this operator asked for starts at its own clock, if the answer is that recent.
    let asked = Some("2024-05-01T11:59:00Z");
    assert_eq!(
        at(json!("2024-05-01T11:59:01Z"), asked),
        ts("2024-05-01T11:59:00Z")
    );
    assert_eq!(
        at(json!("2024-05-01T11:56:00Z"), asked),
        ts("2024-05-01T11:59:00Z"),
        "within the clock skew"
    );
    assert_eq!(
        at(json!("2024-04-01T00:00:00Z"), asked),
        UNKNOWN_START,
        "an old application answered for a new request is not the one asked for"
    );
    assert_eq!(at(json!("garbage"), asked), UNKNOWN_START);
}

#[test]
fn an_unknown_start_never_counts_as_after_anything() {
    let run = run_of(&completed("a", json!("??")), None, ts(NOW));
    assert!(!run.start_known());
    assert!(!run.started_after(Timestamp::MIN));
    assert!(!run.started_after(ts("1970-01-01T00:00:00Z")));
    assert!(run.failure.as_deref().unwrap().starts_with("UnreadableAnswer"));
    let good = run_of(&completed("b", json!("2024-05-01T11:00:00Z")), None, ts(NOW));
    assert!(good.started_after(ts("2024-05-01T10:59:59Z")));
    assert!(!good.started_after(ts("2024-05-01T11:00:00Z")));
    assert_eq!(good.failure, None);
}

#[test]
fn an_inconsistent_or_unreadable_status_is_not_a_completion() {
    let now = ts(NOW);
    let created = json!("2024-05-01T11:00:00Z");
    for (status, percent) in [
        ("Completed", Value::Null),
        ("Completed", json!("most")),
        ("Completed", json!(50)),
        ("", json!(100)),
        ("Done", json!(100)),
    ] {
        let run = run_of(&app("a", status, percent.clone(), created.clone()), None, now);
        assert!(
            run.failure
                .as_deref()
                .is_some_and(|f| f.starts_with("UnreadableAnswer")),
            "{status} {percent}: {run:?}"
        );
    }
    let failed = run_of(&app("a", "Failed", json!(0), created), None, now);
    assert!(
        failed
            .failure
            .as_deref()
            .is_some_and(|f| !f.starts_with("UnreadableAnswer"))
    );
}

#[test]
fn history_is_sorted_by_time_whatever_order_it_comes_in() {
    let now = ts(NOW);
    let history = [
        completed("old", json!("2024-05-01T08:00:00Z")),
        completed("newest", json!("/Date(1714564800000)/")), // 12:00
        completed("unreadable", json!("yesterday")),
        app("failed", "Failed", json!(0), json!("2024-05-01T10:00:00Z")),
        completed("middle", json!("2024-05-01T09:00:00+02:00")), // 07:00 UTC
    ];
    let (running, applied) = recovered(&history, now);
    assert_eq!(running, None);
    let applied = applied.unwrap();
    assert_eq!(applied.id, "newest");
    assert_eq!(applied.started_at, ts("2024-05-01T12:00:00Z"));
    // Reversed, the same answer.
    let mut reversed = history.to_vec();
    reversed.reverse();
    assert_eq!(recovered(&reversed, now).1.unwrap().id, "newest");
}

#[test]
fn a_history_of_unreadable_completions_recovers_nothing_applied() {
    let now = ts(NOW);
    let history = [
        completed("a", json!("not a time")),
        completed("b", Value::Null),
        app("c", "Completed", Value::Null, json!("2024-05-01T11:00:00Z")),
        app("d", "", json!(100), json!("2024-05-01T11:30:00Z")),
    ];
    assert_eq!(recovered(&history, now), (None, None));
    let running = [
        app("r", "InProgress", json!(10), json!("garbage")),
        completed("a", json!("2024-05-01T08:00:00Z")),
    ];
    let (r, a) = recovered(&running, now);
    assert_eq!(r.unwrap().id, "r");
    assert_eq!(a.unwrap().id, "a");
}

#[test]
fn untrusted_answers_back_off_the_next_start() {
    let d = Duration::from_millis(300);
    assert_eq!(backoff(d, 0), Duration::from_secs(1));
    assert_eq!(backoff(d, 3), Duration::from_secs(8));
    assert_eq!(backoff(d, 40), Duration::from_secs(3600));
}

fn state_with(applied: Option<Run>, failed: Option<Run>) -> State {
    State {
        applied,
        failed,
        recovered: true,
        ..State::default()
    }
}

#[test]
fn nothing_is_asked_for_before_the_history_is_read() {
    let v = policy_applied(PolicyType::Allow, "s", None, &State::default());
    assert_eq!(
        (v.reason, v.request),
        ("Pending", false),
        "a restart is no reason to apply"
    );
    let v = policy_applied(PolicyType::Allow, "s", None, &state_with(None, None));
    assert!(v.request);
}

#[test]
fn policy_applied_needs_a_known_start_after_the_last_change() {
    let now = ts(NOW);
    let good = run_of(&completed("good", json!("2024-05-01T11:00:00Z")), None, now);
    let unknown = run_of(&completed("bad", json!("?")), None, now);
    let changed = Some(ts("2024-05-01T10:00:00Z"));
    let v = policy_applied(
        PolicyType::Allow,
        "s",
        changed,
        &state_with(Some(good.clone()), None),
    );
    assert_eq!((v.status, v.reason), (Status::True, "Applied"));
    assert_eq!(v.applied_by.as_deref(), Some("good"));
    let later = Some(ts("2024-05-01T11:30:00Z"));
    let v = policy_applied(PolicyType::Allow, "s", later, &state_with(Some(good), None));
    assert_eq!((v.status, v.reason, v.request), (Status::False, "Pending", true));
    // Never changed (no record), an unknown start still does not count.
    let v = policy_applied(
        PolicyType::Allow,
        "s",
        None,
        &state_with(Some(unknown.clone()), None),
    );
    assert_eq!(v.status, Status::False);
    let v = policy_applied(PolicyType::Allow, "s", None, &state_with(None, Some(unknown)));
    assert_eq!((v.status, v.reason), (Status::False, "Unverified"));
    assert!(v.message.contains("UnreadableAnswer"), "{}", v.message);
    // An unreadable status with a readable time: unverified too, and asked again.
    let unreadable = run_of(
        &app("u", "", json!(100), json!("2024-05-01T11:00:00Z")),
        None,
        now,
    );
    let v = policy_applied(
        PolicyType::Allow,
        "s",
        changed,
        &state_with(None, Some(unreadable)),
    );
    assert_eq!(
        (v.status, v.reason, v.request),
        (Status::False, "Unverified", true)
    );
    // A real failure is reported as one, and not retried on its own.
    let failed = run_of(
        &app("f", "Failed", json!(0), json!("2024-05-01T11:00:00Z")),
        None,
        now,
    );
    let v = policy_applied(PolicyType::Allow, "s", changed, &state_with(None, Some(failed)));
    assert_eq!(
        (v.status, v.reason, v.request),
        (Status::False, "ApplicationFailed", false)
    );
    let v = policy_applied(PolicyType::None, "s", None, &State::default());
    assert_eq!(v.status, Status::True);
}
