//! A vendor's generated barriers: the BarrierSegments it owns, by the tenant's IB mode, and the
//! attribute that places its engineers in theirs.

use crate::barriers::IbMode;
use crate::context::Context;
use crate::controllers::remote_assist_license::plan::BarrierAttribute;
use crate::crd::barrier_segment::{BarrierSegmentSpec, PolicyState, SegmentMembers};
use crate::crd::{BarrierSegment, VendorTenant};
use crate::error::Error;
use kube::api::DeleteParams;
use kube::{Api, Resource, ResourceExt};

/// The names of every segment a vendor may generate, in either design.
pub fn generated_names(vt: &VendorTenant) -> [String; 3] {
    [
        vt.accounts_segment_value(),
        vt.engineers_segment_value(),
        vt.vendor_segment_value(),
    ]
}

/// The segments a vendor with `generateSegments` owns in `mode` (pure). Single-segment (and
/// legacy) tenants get two: its accounts and its engineers, allowed to reach only each other.
/// Multi-segment tenants get one holding both, allowed to reach only itself, so that an
/// engineer who serves several vendors can be in each of their segments.
pub fn generated(vt: &VendorTenant, mode: IbMode) -> Vec<BarrierSegment> {
    let name = vt.name_any();
    let segment = |own: &str, allowed: &str, members: SegmentMembers| {
        let mut s = BarrierSegment::new(
            own,
            BarrierSegmentSpec {
                segment_name: None,
                members,
                allowed_segments: Some(vec![allowed.to_owned()]),
                blocked_segments: None,
                policy_state: Some(PolicyState::Active),
                adopt_existing: None,
            },
        );
        s.metadata.labels = Some(vt.labels().clone());
        s.metadata.owner_references = vt.controller_owner_ref(&()).map(|o| vec![o]);
        s
    };
    if mode.multi() {
        let own = vt.vendor_segment_value();
        let members = SegmentMembers {
            vendor: Some(name),
            ..SegmentMembers::default()
        };
        return vec![segment(&own, &own, members)];
    }
    let (accounts, engineers) = (vt.accounts_segment_value(), vt.engineers_segment_value());
    vec![
        segment(
            &accounts,
            &engineers,
            SegmentMembers {
                vendor_accounts: Some(name.clone()),
                ..SegmentMembers::default()
            },
        ),
        segment(
            &engineers,
            &accounts,
            SegmentMembers {
                vendor_engineers: Some(name),
                ..SegmentMembers::default()
            },
        ),
    ]
}

/// Deletes the generated segments; true once they are gone (their own finalizers remove the
/// policies and segments from the tenant first).
pub async fn delete_generated(ctx: &Context, vt: &VendorTenant) -> Result<bool, Error> {
    let api: Api<BarrierSegment> = Api::all(ctx.kube.clone());
    let mut gone = true;
    for name in generated_names(vt) {
        if let Some(have) = api.get_opt(&name).await?
            && super::plan::owned_by(&have, vt.uid().as_deref())
        {
            gone = false;
            if have.metadata.deletion_timestamp.is_none() {
                api.delete(&name, &DeleteParams::default()).await?;
            }
        }
    }
    Ok(gone)
}

/// The engineers' barrier attribute value to write, per engineer; `None` for `MemberOf`, and in
/// multi-segment mode, where engineers are placed by their group.
pub fn engineer_attribute(vt: &VendorTenant, mode: Option<IbMode>) -> Option<BarrierAttribute> {
    if mode.is_some_and(IbMode::multi) {
        return None;
    }
    vt.membership_attribute()
        .graph_property()
        .map(|(property, key)| BarrierAttribute {
            property,
            key,
            value: vt.engineers_segment_value(),
        })
}
