use super::*;

fn app(v: Value) -> Application {
    serde_json::from_value(v).unwrap()
}

#[test]
fn times_are_read_in_every_form_the_endpoint_uses() {
    let t: Timestamp = "2023-11-14T22:13:20Z".parse().unwrap();
    assert_eq!(parse_time("/Date(1700000000000)/"), Some(t));
    assert_eq!(
        parse_time("/Date(1700000000000+0100)/"),
        Some(t),
        "the offset of the .NET form is informational; the milliseconds are UTC"
    );
    assert_eq!(parse_time("/Date(1700000000000-0500)/"), Some(t));
    assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(t));
    assert_eq!(parse_time("2023-11-14T23:13:20+01:00"), Some(t));
    assert_eq!(parse_time("2023-11-14T22:13:20.0000000Z"), Some(t));
    assert_eq!(
        parse_time("/Date(-1000)/"),
        Some("1969-12-31T23:59:59Z".parse().unwrap())
    );
}

#[test]
fn unreadable_or_ambiguous_times_are_none() {
    for bad in [
        "",
        "soon",
        "2023-11-14T22:13:20",
        "2023-11-14",
        "/Date()/",
        "/Date(-)/",
        "/Date(abc)/",
        "/Date(1700000000000+01)/",
        "/Date(1700000000000)",
        "Date(1700000000000)/",
        "/Date(99999999999999999999999)/",
        "/Date(1700000000000 )/",
    ] {
        assert_eq!(parse_time(bad), None, "{bad:?}");
    }
}

#[test]
fn an_application_decodes_whatever_its_fields_hold() {
    let a =
        app(json!({"Identity": "a", "Status": 7, "PercentProgress": "x", "CreationTime": 1700000000000i64}));
    assert_eq!(a.state(), ApplicationStatus::Unknown);
    assert_eq!((a.percent_progress, a.created()), (None, None));
    assert!(!a.completed() && !a.is_running());
    let a = app(json!({"Identity": "a"}));
    assert_eq!(a.state(), ApplicationStatus::Unknown);
    assert!(!a.completed());
    assert!(serde_json::from_value::<Application>(json!({"Status": "Completed"})).is_err());
}

#[test]
fn only_a_consistent_completed_answer_counts_as_applied() {
    let done = |status: &str, percent: Value| {
        app(json!({"Identity": "a", "Status": status, "PercentProgress": percent})).completed()
    };
    assert!(done("Completed", json!(100)));
    assert!(done("Completed", json!("100")));
    assert!(done("completed", json!(100)));
    assert!(!done("Completed", json!(99)));
    assert!(!done("Completed", Value::Null));
    assert!(!done("Completed", json!("all")));
    assert!(!done("Complete", json!(100)));
    assert!(!done("Failed", json!(100)));
    let a = app(json!({"Identity": "a", "Status": "InProgress", "PercentProgress": 40}));
    assert!(a.is_running() && !a.completed());
}

#[test]
fn the_owner_marker_is_found_in_a_comment() {
    let policy = |comment: Value| -> Policy {
        serde_json::from_value(json!({
            "Name": "p", "Identity": "i", "AssignedSegment": "s", "State": "Active", "Comment": comment,
        }))
        .unwrap()
    };
    let uid = "0f8e4c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
    let marked = policy(json!(format!(
        "Managed by remote-assist-operator. {}.",
        owner_marker(uid)
    )));
    assert_eq!(marked.owner(), Some(uid));
    assert_eq!(policy(json!("hand-made")).owner(), None);
    assert_eq!(policy(Value::Null).owner(), None);
    assert_eq!(policy(json!(42)).owner(), None);
    assert_eq!(policy(json!("remoteassist.dev/owner=")).owner(), None);
}
