use super::*;
use crate::compliance::definitions::owner_marker;
use serde_json::json;

const UID: &str = "6d1f0e2a-3b4c-4d5e-8f90-a1b2c3d4e5f6";

fn object(name: &str, created: &str, segment_name: Option<&str>) -> Arc<BarrierSegment> {
    let mut spec = json!({"members": {"groupId": "11111111-1111-1111-1111-111111111111"}});
    if let Some(n) = segment_name {
        spec["segmentName"] = json!(n);
    }
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "BarrierSegment",
            "metadata": {"name": name, "creationTimestamp": created}, "spec": spec,
        }))
        .unwrap(),
    )
}

fn segment(name: &str, id: &str) -> Segment {
    Segment {
        name: name.into(),
        identity: id.into(),
        user_group_filter: "Department -eq 'X'".into(),
    }
}

fn policy(name: &str, id: &str, assigned: &str, comment: Option<String>) -> Policy {
    Policy {
        name: name.into(),
        identity: id.into(),
        assigned_segment: assigned.into(),
        segments_allowed: vec![assigned.into()],
        segments_blocked: vec![],
        state: "Active".into(),
        when_changed: None,
        comment,
    }
}

fn record(segment: Option<&str>, policy: Option<&str>, pending: Option<&str>) -> CreatedObjects {
    CreatedObjects {
        segment_id: segment.map(Into::into),
        policy_id: policy.map(Into::into),
        pending_segment: pending.map(Into::into),
    }
}

#[test]
fn a_name_belongs_to_the_earliest_segment_whatever_its_case() {
    let first = object("first", "2024-01-01T00:00:00Z", Some("Support"));
    let later = object("later", "2024-01-02T00:00:00Z", Some("SUPPORT"));
    let other = object("other", "2023-01-01T00:00:00Z", Some("Finance"));
    let all = vec![later.clone(), other.clone(), first.clone()];
    assert!(name_holder(&first, &all).is_none());
    assert_eq!(
        name_holder(&later, &all).map(|h| h.metadata.name.clone()),
        Some(Some("first".into()))
    );
    assert!(name_holder(&other, &all).is_none());
    // The default segment name is the object's name, in the same comparison.
    let by_object = object("support", "2023-06-01T00:00:00Z", None);
    let all = vec![first.clone(), by_object.clone()];
    assert!(name_holder(&by_object, &all).is_none());
    assert!(name_holder(&first, &all).is_some(), "the older object holds it");
}

#[test]
fn a_tie_in_time_is_broken_by_object_name() {
    let a = object("a", "2024-01-01T00:00:00Z", Some("S"));
    let b = object("b", "2024-01-01T00:00:00Z", Some("s"));
    let all = vec![b.clone(), a.clone()];
    assert!(name_holder(&a, &all).is_none());
    assert_eq!(name_holder(&b, &all).unwrap().metadata.name.as_deref(), Some("a"));
}

#[test]
fn nothing_in_the_tenant_binds_to_be_created() {
    let b = bind("S", UID, &CreatedObjects::default(), false, &[], &[]).unwrap();
    assert_eq!((b.segment, b.policy), (None, None));
}

#[test]
fn a_segment_the_operator_did_not_create_is_a_conflict_unless_adopted() {
    let host = [segment("s", "host-seg")];
    let host_policy = [policy("s-policy", "host-pol", "s", Some("made by hand".into()))];
    let none = CreatedObjects::default();
    let e = bind("S", UID, &none, false, &host, &[]).unwrap_err();
    assert!(e.contains("host-seg") && e.contains("adoptExisting"), "{e}");
    // Another object's record does not make it this one's.
    let stale = record(Some("other-seg"), None, None);
    assert!(bind("S", UID, &stale, false, &host, &[]).is_err());
    let adopted = bind("S", UID, &none, true, &host, &host_policy).unwrap();
    assert_eq!(adopted.segment.unwrap().identity, "host-seg");
    assert!(!adopted.segment_created && !adopted.policy_created);
    assert_eq!(adopted.policy.unwrap().identity, "host-pol");
}

#[test]
fn the_operators_own_segment_and_policy_bind_by_record_or_marker() {
    let segs = [segment("S", "seg-1")];
    let marked = [policy("S", "pol-1", "S", Some(owner_marker(UID)))];
    let r = record(Some("SEG-1"), None, None);
    let b = bind("s", UID, &r, false, &segs, &marked).unwrap();
    assert!(b.segment_created && b.policy_created, "{b:?}");
    let by_id = [policy("S", "pol-1", "S", None)];
    let r = record(Some("seg-1"), Some("pol-1"), None);
    assert!(bind("S", UID, &r, false, &segs, &by_id).unwrap().policy_created);
    // Someone else's marker is someone else's policy.
    let theirs = [policy("S", "pol-2", "S", Some(owner_marker("another-uid")))];
    let e = bind(
        "S",
        UID,
        &record(Some("seg-1"), None, None),
        false,
        &segs,
        &theirs,
    )
    .unwrap_err();
    assert!(e.contains("pol-2"), "{e}");
}

#[test]
fn a_segment_created_just_before_a_crash_is_recognised_by_the_pending_record() {
    let segs = [segment("S", "seg-1")];
    let r = record(None, None, Some("s"));
    let b = bind("S", UID, &r, false, &segs, &[]).unwrap();
    assert!(b.segment_created);
}

#[test]
fn a_policy_of_this_name_on_another_segment_is_a_conflict_even_when_adopting() {
    let segs = [segment("S", "seg-1"), segment("T", "seg-2")];
    let pols = [policy("S", "pol-1", "T", None)];
    let r = record(Some("seg-1"), None, None);
    for adopt in [false, true] {
        let e = bind("S", UID, &r, adopt, &segs, &pols).unwrap_err();
        assert!(e.contains("assigned to segment T"), "{e}");
    }
}

#[test]
fn deletion_removes_only_what_the_operator_created() {
    let segs = [segment("S", "seg-1")];
    let host_policy = [policy("S-host", "pol-h", "S", None)];
    let none = CreatedObjects::default();
    // Adopted (or never bound): nothing is removed, and both are named as left.
    let r = removal("S", UID, &none, &segs, &host_policy);
    assert_eq!((r.segment, r.policy), (None, None));
    assert_eq!(r.left.len(), 2, "{:?}", r.left);
    // Its own: both go, found by identity and marker.
    let own = [policy("S", "pol-1", "S", Some(owner_marker(UID)))];
    let r = removal("S", UID, &record(Some("seg-1"), None, None), &segs, &own);
    assert_eq!(r.segment.unwrap().identity, "seg-1");
    assert_eq!(r.policy.unwrap().identity, "pol-1");
    assert!(r.left.is_empty());
    // Its own segment with someone else's policy on it: the policy stays, so the segment does.
    let r = removal("S", UID, &record(Some("seg-1"), None, None), &segs, &host_policy);
    assert_eq!((r.segment, r.policy), (None, None));
    assert!(r.left[0].contains("S-host"), "{:?}", r.left);
    // A refused object (name taken) has no records: the holder's objects are untouched.
    let r = removal("s", "refused-uid", &none, &segs, &own);
    assert_eq!((r.segment, r.policy), (None, None));
}
