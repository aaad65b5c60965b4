//! What the VendorTenant reconciler reads before it decides: its groups, its engineers and the
//! engineers' group, the SKUs, its accounts, the other vendors and the BarrierSegments. Reads
//! only; the decisions are in [`plan`](super::plan).

use super::plan::{GroupSeen, Observed};
use crate::context::Context;
use crate::controllers::barrier_segment::application::HISTORY_WAIT;
use crate::crd::VendorTenant;
use crate::directory::Directory;
use crate::error::Error;
use kube::ResourceExt;
use std::collections::BTreeMap;

/// The tenant's and the cluster's view for `vt`, through the operator's caches.
pub async fn observe(ctx: &Context, vt: &VendorTenant) -> Result<Observed, Error> {
    let dir = &ctx.directory;
    dir.refresh().await?;
    let status = vt.status.clone().unwrap_or_default();
    let accounts_group = group(
        dir,
        &vt.accounts_group_name(),
        status.accounts_group_id.as_deref(),
    )
    .await?;
    let engineers_group = group(
        dir,
        &vt.engineers_group_name(),
        status.engineers_group_id.as_deref(),
    )
    .await?;
    let mut engineers = Vec::new();
    for upn in vt.spec.support_engineers.iter().flat_map(|se| &se.members) {
        engineers.push((upn.clone(), dir.cached_user(upn).await?.map(|seen| seen.user)));
    }
    let mut engineer_members = BTreeMap::new();
    if vt.spec.support_engineers.is_some() {
        for g in engineers_group.candidates() {
            engineer_members.insert(g.id.clone(), dir.cached_members(&g.id).await?);
        }
    }
    let segments = if vt.generates_segments() {
        ctx.segments().await?.state()
    } else {
        Vec::new()
    };
    Ok(Observed {
        accounts_group,
        engineers_group,
        engineers,
        engineer_members,
        vendors: ctx.caches().vendors.current().state(),
        segments,
        accounts: super::accounts(ctx, &vt.name_any()).await?,
        skus: dir.skus(false).await?,
        mode: ctx.coordinator().mode.read_within(HISTORY_WAIT).await,
        compliance_problem: ctx.compliance().credential_problem(),
    })
}

/// The group whose id status holds, else every group of the display name.
async fn group(dir: &Directory, name: &str, status_id: Option<&str>) -> Result<GroupSeen, Error> {
    if let Some(id) = status_id
        && let Some(g) = dir.cached_group(id).await?
    {
        return Ok(GroupSeen::ById(g));
    }
    Ok(GroupSeen::Named(dir.groups_named(name).await?))
}
