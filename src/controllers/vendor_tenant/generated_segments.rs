//! A vendor's generated barriers: two BarrierSegments it owns (its accounts and its engineers,
//! allowed to reach only each other), and the attribute that places its engineers in theirs.

use crate::context::Context;
use crate::controllers::remote_assist_license::plan::BarrierAttribute;
use crate::crd::barrier_segment::{BarrierSegmentSpec, PolicyState, SegmentMembers};
use crate::crd::{BarrierSegment, VendorTenant};
use crate::error::Error;
use kube::api::DeleteParams;
use kube::{Api, Resource, ResourceExt};

/// The two segments a vendor with `generateSegments` owns (pure).
pub fn generated(vt: &VendorTenant) -> Vec<BarrierSegment> {
    let name = vt.name_any();
    let (accounts, engineers) = (vt.accounts_segment_value(), vt.engineers_segment_value());
    let segment = |own: &str, other: &str, members: SegmentMembers| {
        let mut s = BarrierSegment::new(
            own,
            BarrierSegmentSpec {
                segment_name: None,
                members,
                allowed_segments: Some(vec![other.to_owned()]),
                blocked_segments: None,
                policy_state: Some(PolicyState::Active),
                adopt_existing: None,
            },
        );
        s.metadata.labels = Some(vt.labels().clone());
        s.metadata.owner_references = vt.controller_owner_ref(&()).map(|o| vec![o]);
        s
    };
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
    for want in generated(vt) {
        let name = want.name_any();
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

/// The engineers' barrier attribute value to write, per engineer; `None` for `MemberOf`.
pub fn engineer_attribute(vt: &VendorTenant) -> Option<BarrierAttribute> {
    vt.membership_attribute()
        .graph_property()
        .map(|(property, key)| BarrierAttribute {
            property,
            key,
            value: vt.engineers_segment_value(),
        })
}
