//! Pure decisions about what a BarrierSegment may bind to and remove: its tenant name among
//! the other BarrierSegments (names are unique, compared without regard to case, and belong to
//! the earliest), and the tenant's segment and policy of that name by who created them.
//!
//! The operator knows what it created from its own records (see `adoptExisting` in the CRD):
//! the identities in `status.created`, the name in `status.created.pendingSegment` while a
//! create is in flight, and the `remoteassist.dev/owner=<uid>` marker in the Comment of every
//! policy it creates. Anything else in the tenant is someone else's: bound only with
//! `adoptExisting`, and never removed.

use crate::compliance::definitions::{Policy, Segment};
use crate::crd::BarrierSegment;
use crate::crd::barrier_segment::CreatedObjects;
use k8s_openapi::jiff::Timestamp;
use std::sync::Arc;

/// Reason of a BarrierSegment whose tenant name an earlier BarrierSegment holds.
pub const NAME_TAKEN: &str = "SegmentNameTaken";
/// Reason of a BarrierSegment whose name the tenant already uses for something not the
/// operator's.
pub const CONFLICT: &str = "Conflict";

/// Who comes first for a name: the earliest creationTimestamp, then the object name.
fn seniority(s: &BarrierSegment) -> (Timestamp, String) {
    (
        s.metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::MAX, |t| t.0),
        s.metadata.name.clone().unwrap_or_default(),
    )
}

/// The BarrierSegment that holds `bs`'s tenant segment name (and so its policy name) before
/// it, if another one does: segment names compare without regard to case, as the tenant
/// compares them.
pub fn name_holder<'a>(
    bs: &BarrierSegment,
    all: &'a [Arc<BarrierSegment>],
) -> Option<&'a Arc<BarrierSegment>> {
    let name = bs.segment_name();
    let mine = seniority(bs);
    all.iter()
        .filter(|o| o.metadata.name != bs.metadata.name)
        .filter(|o| o.segment_name().eq_ignore_ascii_case(&name))
        .filter(|o| seniority(o) < mine)
        .min_by_key(|o| seniority(o))
}

fn same(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.eq_ignore_ascii_case(b))
}

/// Whether the operator created this tenant segment for the BarrierSegment with `record`.
pub fn created_segment(s: &Segment, record: &CreatedObjects) -> bool {
    same(record.segment_id.as_deref(), &s.identity) || same(record.pending_segment.as_deref(), &s.name)
}

/// Whether the operator created this policy for the BarrierSegment `uid` with `record`.
pub fn created_policy(p: &Policy, uid: &str, record: &CreatedObjects) -> bool {
    same(record.policy_id.as_deref(), &p.identity) || (!uid.is_empty() && p.owner() == Some(uid))
}

/// The tenant objects a BarrierSegment binds to, and whether the operator created each
/// (`false`: adopted). `None`: there is none yet, and it will be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound<'a> {
    pub segment: Option<&'a Segment>,
    pub segment_created: bool,
    pub policy: Option<&'a Policy>,
    pub policy_created: bool,
}

/// What the BarrierSegment `uid` may bind to among the tenant's segments and policies, or why
/// it may not (a [`CONFLICT`]): a segment or policy of its name that the operator did not
/// create, unless `adopt`; a policy of its name assigned to another segment, always.
pub fn bind<'a>(
    name: &str,
    uid: &str,
    record: &CreatedObjects,
    adopt: bool,
    segments: &'a [Segment],
    policies: &'a [Policy],
) -> Result<Bound<'a>, String> {
    let segment = segments.iter().find(|s| s.name.eq_ignore_ascii_case(name));
    let segment_created = segment.is_some_and(|s| created_segment(s, record));
    if let Some(s) = segment.filter(|_| !segment_created && !adopt) {
        return Err(format!(
            "the tenant already has a segment named {} (identity {}) that the operator did not create; it is left alone. Set spec.adoptExisting: true to take it over",
            s.name, s.identity
        ));
    }
    if let Some(p) = policies
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name) && !p.assigned_segment.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "the tenant's policy {} is assigned to segment {}, so this segment's policy cannot have its name; it is left alone",
            p.name, p.assigned_segment
        ));
    }
    let policy = policies
        .iter()
        .find(|p| p.assigned_segment.eq_ignore_ascii_case(name));
    let policy_created = policy.is_some_and(|p| created_policy(p, uid, record));
    if let Some(p) = policy.filter(|_| !policy_created && !adopt) {
        return Err(format!(
            "the tenant's segment {name} already has a policy, {} (identity {}), that the operator did not create; it is left alone. Set spec.adoptExisting: true to take it over",
            p.name, p.identity
        ));
    }
    Ok(Bound {
        segment,
        segment_created,
        policy,
        policy_created,
    })
}

/// What deleting a BarrierSegment removes: only what the operator created for it, found by
/// its records (never by name alone), and what it leaves, in plain words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removal<'a> {
    pub policy: Option<&'a Policy>,
    pub segment: Option<&'a Segment>,
    pub left: Vec<String>,
}

pub fn removal<'a>(
    name: &str,
    uid: &str,
    record: &CreatedObjects,
    segments: &'a [Segment],
    policies: &'a [Policy],
) -> Removal<'a> {
    let mut out = Removal {
        policy: policies.iter().find(|p| created_policy(p, uid, record)),
        ..Removal::default()
    };
    let segment = segments.iter().find(|s| created_segment(s, record));
    // A policy someone else assigned to the operator's segment keeps the segment in use.
    let foreign = segment.and_then(|s| {
        policies
            .iter()
            .find(|p| p.assigned_segment.eq_ignore_ascii_case(&s.name) && !created_policy(p, uid, record))
    });
    match (segment, foreign) {
        (Some(s), Some(p)) => out.left.push(format!(
            "segment {} (the operator's, but policy {} that it did not create is assigned to it)",
            s.name, p.name
        )),
        (s, _) => out.segment = s,
    }
    if let Some(s) = segments
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name) && !created_segment(s, record))
    {
        out.left
            .push(format!("segment {} (not created by the operator)", s.name));
    }
    if let Some(p) = policies.iter().find(|p| {
        p.assigned_segment.eq_ignore_ascii_case(name)
            && !created_policy(p, uid, record)
            && foreign.is_none_or(|f| f.identity != p.identity)
    }) {
        out.left
            .push(format!("policy {} (not created by the operator)", p.name));
    }
    out
}

#[cfg(test)]
#[path = "ownership_tests.rs"]
mod tests;
