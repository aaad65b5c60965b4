//! What the BarrierSegment reconciler reads: the cluster's BarrierSegments and VendorTenants
//! (from the caches, once listed), then the tenant's segments and policies.

use super::application::HISTORY_WAIT;
use super::members::Scope;
use crate::barriers::IbMode;
use crate::compliance::definitions::{Policy, Segment};
use crate::context::Context;
use crate::crd::{BarrierSegment, VendorTenant};
use crate::error::Error;
use std::sync::Arc;

pub struct Cluster {
    pub segments: Vec<Arc<BarrierSegment>>,
    pub vendors: Vec<Arc<VendorTenant>>,
    /// The tenant's IB mode, if known (waited for briefly after start-up).
    pub mode: Option<IbMode>,
}

impl Cluster {
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            vendors: &self.vendors,
            mode: self.mode,
        }
    }
}

/// Every BarrierSegment and VendorTenant, and the IB mode.
pub async fn cluster(ctx: &Context) -> Result<Cluster, Error> {
    Ok(Cluster {
        segments: ctx.segments().await?.state(),
        vendors: ctx.caches().vendors.current().state(),
        mode: ctx.coordinator().mode.read_within(HISTORY_WAIT).await,
    })
}

/// The tenant's segments and policies.
pub async fn tenant(ctx: &Context) -> Result<(Vec<Segment>, Vec<Policy>), Error> {
    Ok(ctx.compliance().definitions().await?)
}
