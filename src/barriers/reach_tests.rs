use super::*;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn allow(p: &mut Policies, segment: &str, listed: &[&str]) {
    p.insert(segment, true, listed.iter().map(|s| s.to_string()));
}

/// The single-segment design with a host segment: accounts ↔ engineers, engineers ↔ host.
fn single_with_host() -> Policies {
    let mut p = Policies::default();
    allow(&mut p, "v1-accounts", &["v1-accounts", "v1-engineers"]);
    allow(&mut p, "v1-engineers", &["v1-engineers", "v1-accounts", "host"]);
    allow(&mut p, "v2-accounts", &["v2-accounts", "v2-engineers"]);
    allow(&mut p, "v2-engineers", &["v2-engineers", "v2-accounts", "host"]);
    allow(&mut p, "host", &["host", "v1-engineers", "v2-engineers"]);
    p
}

#[test]
fn single_segment_design_keeps_vendors_apart_and_engineers_with_their_colleagues() {
    let p = single_with_host();
    let m = IbMode::SingleSegment;
    let (a1, e1, a2, host, none) = (
        set(&["v1-accounts"]),
        set(&["v1-engineers"]),
        set(&["v2-accounts"]),
        set(&["host"]),
        set(&[]),
    );
    assert!(p.reachable(&a1, &e1, m));
    assert!(p.reachable(&e1, &host, m), "engineers keep their colleagues");
    assert!(!p.reachable(&a1, &host, m), "accounts never reach host staff");
    assert!(!p.reachable(&a1, &a2, m));
    assert!(!p.reachable(&a1, &set(&["v2-engineers"]), m));
    assert!(
        !p.reachable(&e1, &none, m),
        "an allow list never names a user in no segment"
    );
    assert!(p.reachable(&none, &none, m));
}

#[test]
fn in_multi_segment_mode_a_shared_segment_is_enough_and_every_policy_must_agree() {
    let mut p = Policies::default();
    for s in ["v1-all", "v2-all", "host"] {
        allow(&mut p, s, &[s]);
    }
    let m = IbMode::MultiSegment;
    let shared_engineer = set(&["v1-all", "v2-all", "host"]);
    assert!(p.reachable(&shared_engineer, &set(&["v1-all"]), m));
    assert!(p.reachable(&shared_engineer, &set(&["v2-all"]), m));
    assert!(p.reachable(&shared_engineer, &set(&["host"]), m));
    assert!(!p.reachable(&set(&["v1-all"]), &set(&["v2-all"]), m));
    assert!(!p.reachable(&set(&["v1-all"]), &set(&["host"]), m));
    // Without sharing, one segment's policy that does not name the other side is enough to
    // keep them apart, even if another of the user's segments would allow it.
    let mut q = Policies::default();
    allow(&mut q, "a", &["a", "c"]);
    allow(&mut q, "b", &["b"]);
    allow(&mut q, "c", &["c", "a"]);
    assert!(!q.reachable(&set(&["a", "b"]), &set(&["c"]), m));
    assert!(q.reachable(&set(&["a"]), &set(&["c"]), m));
}

#[test]
fn the_conduit_reading_applies_in_multi_segment_mode_only() {
    let p = single_with_host();
    let (e1, a1) = (set(&["v1-engineers"]), set(&["v1-accounts"]));
    assert!(p.reachable(&e1, &a1, IbMode::SingleSegment));
    // v1-engineers lists v1-accounts and host, which cannot reach each other: a conduit.
    assert!(!p.reachable(&e1, &a1, IbMode::MultiSegment));
}

#[test]
fn block_policies_block_what_they_list_and_nothing_else() {
    let mut p = Policies::default();
    p.insert("x", false, ["y".to_string()]);
    let m = IbMode::SingleSegment;
    assert!(!p.reachable(&set(&["x"]), &set(&["y"]), m));
    assert!(p.reachable(&set(&["x"]), &set(&["z"]), m));
    assert!(p.reachable(&set(&["x"]), &set(&[]), m));
}

#[test]
fn the_matrix_renders_every_pair() {
    let p = single_with_host();
    let classes = vec![
        Class {
            label: "v1 accounts".into(),
            segments: set(&["v1-accounts"]),
        },
        Class {
            label: "v1 engineers".into(),
            segments: set(&["v1-engineers"]),
        },
        Class {
            label: "host staff".into(),
            segments: set(&["host"]),
        },
    ];
    let m = Matrix::new(IbMode::SingleSegment, classes, &p);
    assert_eq!(m.can("v1 accounts", "v1 engineers"), Some(true));
    assert_eq!(m.can("v1 accounts", "host staff"), Some(false));
    assert_eq!(m.can("v1 engineers", "host staff"), Some(true));
    let text = m.render();
    assert!(text.contains("[1] v1 accounts (v1-accounts)"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains('✓')).count(), 3 + 1, "{text}");
}
