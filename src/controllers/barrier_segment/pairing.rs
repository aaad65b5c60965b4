//! The host pairing (pure): with a `hostStaff` segment, every vendor's engineers segment, the
//! other vendors' engineers segments and the host segment allow each other, so engineers keep
//! reaching their colleagues (single-segment mode; in multi-segment mode they share the host
//! segment instead) while the
//! vendors' accounts (whose allow lists never change) still reach only their own engineers.
//! Each side is added only while the other is an Active allow policy, so the lists stay
//! mirrored and the application is never refused as asymmetric.

use super::invariant::{Holder, active_allow, holder};
use crate::crd::{BarrierSegment, VendorTenant};
use kube::ResourceExt;
use std::sync::Arc;

/// The BarrierSegment objects `bs`'s allow list names: its spec's, plus the host pairing.
pub fn allowed_refs(
    bs: &BarrierSegment,
    all: &[Arc<BarrierSegment>],
    vendors: &[Arc<VendorTenant>],
) -> Vec<String> {
    let mut refs = bs.spec.allowed_segments.clone().unwrap_or_default();
    let paired = |want: fn(&Holder) -> bool| {
        all.iter()
            .filter(|s| active_allow(s) && want(&holder(&s.spec.members, vendors)))
            .map(|s| s.name_any())
            .collect::<Vec<_>>()
    };
    if active_allow(bs) {
        match holder(&bs.spec.members, vendors) {
            // With a host segment, the engineers of every vendor are colleagues too.
            Holder::Engineers(_) if !paired(|h| *h == Holder::Host).is_empty() => {
                refs.extend(paired(|h| matches!(h, Holder::Host | Holder::Engineers(_))));
            }
            Holder::Host => refs.extend(paired(|h| matches!(h, Holder::Engineers(_)))),
            _ => {}
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

/// The BarrierSegments whose allow list follows `changed`: the engineers' segments for a host
/// segment, the host and the other engineers' segments for an engineers' segment.
pub fn partners(
    changed: &BarrierSegment,
    all: &[Arc<BarrierSegment>],
    vendors: &[Arc<VendorTenant>],
) -> Vec<kube::runtime::reflector::ObjectRef<BarrierSegment>> {
    let want: fn(&Holder) -> bool = match holder(&changed.spec.members, vendors) {
        Holder::Host => |h| matches!(h, Holder::Engineers(_)),
        Holder::Engineers(_) => |h| matches!(h, Holder::Host | Holder::Engineers(_)),
        _ => return Vec::new(),
    };
    all.iter()
        .filter(|s| want(&holder(&s.spec.members, vendors)))
        .map(|s| kube::runtime::reflector::ObjectRef::from_obj(s.as_ref()))
        .collect()
}
