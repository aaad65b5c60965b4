//! The reachability preview (pure): the kinds of users the BarrierSegments place (each vendor's
//! accounts and engineers, engineers shared by several vendors, host staff, the members of
//! other segments, and users in no segment) and who of them can reach whom, for the policies
//! the segments ask for (`plan`) or the tenant's Active policies (`audit`).

use super::invariant::{Holder, holder};
use super::members::Scope;
use super::plan::desired;
use crate::barriers::IbMode;
use crate::barriers::reach::{Class, Matrix, Policies};
use crate::compliance::definitions::Policy;
use crate::crd::barrier_segment::PolicyState;
use crate::crd::{BarrierSegment, VendorTenant};
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Label of the class of users in no segment.
pub const UNSEGMENTED: &str = "unsegmented users";
/// Label of the host staff class.
pub const HOST_STAFF: &str = "host staff";

fn live(all: &[Arc<BarrierSegment>]) -> impl Iterator<Item = &Arc<BarrierSegment>> {
    all.iter().filter(|s| s.metadata.deletion_timestamp.is_none())
}

/// Tenant segment names of the live BarrierSegments whose holder passes `want`.
fn segments_where(
    all: &[Arc<BarrierSegment>],
    vendors: &[Arc<VendorTenant>],
    want: impl Fn(&Holder) -> bool,
) -> BTreeSet<String> {
    live(all)
        .filter(|s| want(&holder(&s.spec.members, vendors)))
        .map(|s| s.segment_name())
        .collect()
}

/// Each engineer's vendors, by lower-cased UPN.
fn engineers(vendors: &[Arc<VendorTenant>]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for v in vendors {
        for upn in v.spec.support_engineers.iter().flat_map(|se| &se.members) {
            out.entry(upn.to_lowercase()).or_default().insert(v.name_any());
        }
    }
    out
}

/// The segments an engineer serving `served` is in. In single-segment mode an engineer shared
/// by several vendors is placed in none of theirs and left out of the host segment's filter
/// only if they carry a vendor's engineers value, which the operator does not write for them:
/// they are shown in no segment (in the host segment instead if they carry its attribute).
fn engineer_segments(
    served: &BTreeSet<String>,
    all: &[Arc<BarrierSegment>],
    vendors: &[Arc<VendorTenant>],
    mode: IbMode,
) -> BTreeSet<String> {
    let host = segments_where(all, vendors, |h| *h == Holder::Host);
    if served.len() > 1 && !mode.multi() {
        return BTreeSet::new();
    }
    let mut segs = segments_where(
        all,
        vendors,
        |h| matches!(h, Holder::Engineers(v) | Holder::Vendor(v) if served.contains(v)),
    );
    if mode.multi() {
        segs.extend(host);
    }
    segs
}

/// The kinds of users, in a stable order.
pub fn classes(all: &[Arc<BarrierSegment>], vendors: &[Arc<VendorTenant>], mode: IbMode) -> Vec<Class> {
    let mut sorted: Vec<&Arc<VendorTenant>> = vendors.iter().collect();
    sorted.sort_by_key(|v| v.name_any());
    let by_engineer = engineers(vendors);
    let mut groups: BTreeMap<BTreeSet<String>, ()> = BTreeMap::new();
    for served in by_engineer.values() {
        groups.insert(served.clone(), ());
    }
    let mut out = Vec::new();
    for v in sorted {
        let name = v.name_any();
        out.push(Class {
            label: format!("{name} accounts"),
            segments: segments_where(
                all,
                vendors,
                |h| matches!(h, Holder::Accounts(x) | Holder::Vendor(x) if *x == name),
            ),
        });
        let only = BTreeSet::from([name.clone()]);
        if groups.contains_key(&only) {
            out.push(Class {
                label: format!("{name} engineers"),
                segments: engineer_segments(&only, all, vendors, mode),
            });
        }
    }
    for served in groups.keys().filter(|s| s.len() > 1) {
        let names: Vec<&str> = served.iter().map(String::as_str).collect();
        out.push(Class {
            label: format!("engineers of {}", names.join(" + ")),
            segments: engineer_segments(served, all, vendors, mode),
        });
    }
    let host = segments_where(all, vendors, |h| *h == Holder::Host);
    if !host.is_empty() {
        out.push(Class {
            label: HOST_STAFF.into(),
            segments: host,
        });
    }
    for s in live(all).filter(|s| holder(&s.spec.members, vendors) == Holder::Other) {
        out.push(Class {
            label: format!("members of {}", s.segment_name()),
            segments: BTreeSet::from([s.segment_name()]),
        });
    }
    out.push(Class {
        label: UNSEGMENTED.into(),
        segments: BTreeSet::new(),
    });
    out
}

/// The Active policies the BarrierSegments ask for (a segment whose spec does not resolve
/// contributes none).
pub fn asked_policies(all: &[Arc<BarrierSegment>], scope: Scope) -> Policies {
    let mut policies = Policies::default();
    for s in live(all).filter(|s| s.spec.policy_state.unwrap_or_default() == PolicyState::Active) {
        if let Ok(d) = desired(s, all, scope)
            && let Some(p) = d.policy
        {
            policies.insert(&d.name, p.allowed, p.segments);
        }
    }
    policies
}

/// The tenant's Active policies.
pub fn tenant_policies(policies: &[Policy]) -> Policies {
    let mut out = Policies::default();
    for p in policies.iter().filter(|p| p.state.eq_ignore_ascii_case("Active")) {
        let allow = !p.segments_allowed.is_empty() || p.segments_blocked.is_empty();
        let listed = if allow {
            &p.segments_allowed
        } else {
            &p.segments_blocked
        };
        out.insert(&p.assigned_segment, allow, listed.iter().cloned());
    }
    out
}

/// The preview for the policies the segments ask for.
pub fn asked(all: &[Arc<BarrierSegment>], vendors: &[Arc<VendorTenant>], mode: IbMode) -> Matrix {
    let scope = Scope {
        vendors,
        mode: Some(mode),
    };
    Matrix::new(mode, classes(all, vendors, mode), &asked_policies(all, scope))
}

/// Warnings a platform team should read before an application: engineers who can reach no
/// colleague outside their vendors.
pub fn warnings(m: &Matrix) -> Vec<String> {
    let mut out = Vec::new();
    let has_host = m.classes.iter().any(|c| c.label == HOST_STAFF);
    for c in m.classes.iter().filter(|c| c.label.contains("engineers")) {
        let target = if has_host { HOST_STAFF } else { UNSEGMENTED };
        if m.can(&c.label, target) == Some(false) {
            out.push(format!(
                "{} cannot reach {target}: they are cut off from their colleagues{}",
                c.label,
                if has_host {
                    ""
                } else {
                    " (add a hostStaff BarrierSegment naming the host's other staff; see docs/barriers.md)"
                }
            ));
        }
    }
    out
}

#[cfg(test)]
#[path = "preview_tests.rs"]
mod tests;
