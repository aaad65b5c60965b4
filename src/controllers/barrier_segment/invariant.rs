//! The vendor invariant, checked before every policy application (pure): a vendor's accounts
//! can reach only that vendor's accounts and the engineers assigned to that vendor. An account
//! is enabled only behind an Active allow policy (see `license::barrier`), and an allow list
//! bounds whom its members reach, so the invariant holds exactly when every Active allow list
//! of a vendor's accounts segment names only that vendor's own segments. Segments are placed
//! by what the operator knows of their members: `vendorAccounts`/`vendorEngineers`, the
//! vendor's group ids, or the attribute value the vendor's accounts or engineers carry.

use crate::crd::barrier_segment::{PolicyState, PolicyType, SegmentMembers};
use crate::crd::{BarrierSegment, VendorTenant};
use kube::ResourceExt;
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Whose members a segment holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    Accounts(String),
    Engineers(String),
    /// A vendor's accounts and its engineers together (the multi-segment design).
    Vendor(String),
    /// The host's other staff (`hostStaff`).
    Host,
    /// Not known to be any vendor's (host users, a group the operator does not own, ...).
    Other,
}

/// What the operator knows of whose members a segment selects.
pub fn holder<V: Borrow<VendorTenant>>(members: &SegmentMembers, vendors: &[V]) -> Holder {
    if let Some(v) = &members.vendor_accounts {
        return Holder::Accounts(v.clone());
    }
    if let Some(v) = &members.vendor_engineers {
        return Holder::Engineers(v.clone());
    }
    if let Some(v) = &members.vendor {
        return Holder::Vendor(v.clone());
    }
    if members.host_staff.is_some() {
        return Holder::Host;
    }
    for v in vendors.iter().map(Borrow::borrow) {
        let name = v.name_any();
        let status = v.status.as_ref();
        let same = |a: Option<&str>| matches!((members.group_id.as_deref(), a), (Some(g), Some(a)) if g.eq_ignore_ascii_case(a));
        if same(status.and_then(|s| s.accounts_group_id.as_deref())) {
            return Holder::Accounts(name);
        }
        if same(status.and_then(|s| s.engineers_group_id.as_deref())) {
            return Holder::Engineers(name);
        }
        if let Some(a) = &members.user_attribute {
            let attribute = format!("{:?}", a.attribute) == format!("{:?}", v.membership_attribute());
            if attribute && a.value == v.accounts_segment_value() {
                return Holder::Accounts(name);
            }
            if attribute && a.value == v.engineers_segment_value() {
                return Holder::Engineers(name);
            }
        }
    }
    Holder::Other
}

pub fn active_allow(s: &BarrierSegment) -> bool {
    s.policy_type() == PolicyType::Allow
        && s.spec.policy_state.unwrap_or_default() == PolicyState::Active
        && s.metadata.deletion_timestamp.is_none()
}

/// Every path the Active policies would open from a vendor's accounts to anyone not that
/// vendor's, as `(accounts segment, segment it could reach, whose that segment is)`.
pub fn cross_vendor_paths(
    all: &[Arc<BarrierSegment>],
    vendors: &[Arc<VendorTenant>],
) -> Vec<(String, String, String)> {
    let by_name: BTreeMap<String, &Arc<BarrierSegment>> = all.iter().map(|s| (s.name_any(), s)).collect();
    let mut out = Vec::new();
    for s in all.iter().filter(|s| active_allow(s)) {
        let (Holder::Accounts(vendor) | Holder::Vendor(vendor)) = holder(&s.spec.members, vendors) else {
            continue;
        };
        for target in s.spec.allowed_segments.iter().flatten() {
            if *target == s.name_any() {
                continue;
            }
            let whose = by_name
                .get(target)
                .map_or(Holder::Other, |t| holder(&t.spec.members, vendors));
            let own = matches!(&whose, Holder::Accounts(v) | Holder::Engineers(v) | Holder::Vendor(v) if *v == vendor);
            if !own {
                let whose = match whose {
                    Holder::Accounts(v) => format!("VendorTenant {v}'s accounts"),
                    Holder::Engineers(v) => format!("VendorTenant {v}'s engineers"),
                    Holder::Vendor(v) => format!("VendorTenant {v}'s accounts and engineers"),
                    Holder::Host => "the host's staff".into(),
                    Holder::Other => "users that are not this vendor's".into(),
                };
                out.push((s.name_any(), target.clone(), whose));
            }
        }
    }
    out
}

/// The held-back message for the paths found, naming each pair.
pub fn describe(paths: &[(String, String, String)]) -> String {
    paths
        .iter()
        .map(|(a, b, whose)| format!("{a} (a vendor's accounts) would reach {b} ({whose})"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[path = "invariant_tests.rs"]
mod tests;

/// The vendor whose accounts `bs` selects, and the other BarrierSegments (not being deleted)
/// that select them too. Exactly one segment may isolate a vendor's accounts: with rivals,
/// all of them are a `Conflict` and the accounts stay disabled.
pub fn rivals(
    bs: &BarrierSegment,
    all: &[Arc<BarrierSegment>],
    vendors: &[Arc<VendorTenant>],
) -> Option<(String, Vec<String>)> {
    use crate::controllers::remote_assist_license::enforcement::selects_accounts;
    let vendor = vendors.iter().find(|v| selects_accounts(bs, v))?;
    let others: Vec<String> = all
        .iter()
        .filter(|o| o.name_any() != bs.name_any() && o.metadata.deletion_timestamp.is_none())
        .filter(|o| selects_accounts(o, vendor))
        .map(|o| o.name_any())
        .collect();
    (!others.is_empty()).then(|| (vendor.name_any(), others))
}
