//! What the BarrierSegment reconciler reads: the cluster's BarrierSegments and VendorTenants
//! (from the caches, once listed), then the tenant's segments and policies.

use crate::compliance::definitions::{Policy, Segment};
use crate::context::Context;
use crate::crd::{BarrierSegment, VendorTenant};
use crate::error::Error;
use std::sync::Arc;

pub struct Cluster {
    pub segments: Vec<Arc<BarrierSegment>>,
    pub vendors: Vec<Arc<VendorTenant>>,
}

/// Every BarrierSegment and VendorTenant.
pub async fn cluster(ctx: &Context) -> Result<Cluster, Error> {
    Ok(Cluster {
        segments: ctx.segments().await?.state(),
        vendors: ctx.caches().vendors.current().state(),
    })
}

/// The tenant's segments and policies.
pub async fn tenant(ctx: &Context) -> Result<(Vec<Segment>, Vec<Policy>), Error> {
    Ok(ctx.compliance().definitions().await?)
}
