//! The `run` command: builds the shared context and runs the controllers until SIGTERM/SIGINT.

use crate::compliance::{COMPLIANCE_RESOURCE, ComplianceClient};
use crate::config::Config;
use crate::context::Context;
use crate::crd::BarrierSegment;
use crate::directory::Directory;
use crate::graph::{Budget, GRAPH_RESOURCE, GraphClient, RetryPolicy, TokenProvider};
use crate::segment::application::Coordinator;
use crate::{license, segment, vendor, watch};
use kube::Api;
use std::sync::Arc;
use std::time::Duration;

/// How long a `subscribedSkus` read is reused by licence reconciles.
const SKU_CACHE: Duration = Duration::from_secs(30);

pub async fn run(config: Config) -> anyhow::Result<()> {
    let kube = kube::Client::try_default().await?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("remote-assist-operator/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let tokens = Arc::new(TokenProvider::new(
        http.clone(),
        config.identity.clone(),
        GRAPH_RESOURCE,
    ));
    // Fail fast on a credential that cannot work, with the token endpoint's own words.
    tokens
        .token()
        .await
        .map_err(|e| anyhow::anyhow!("cannot obtain a Graph token: {e}"))?;
    let budget = Arc::new(Budget::new(config.budget.clone()));
    let compliance_tokens = Arc::new(TokenProvider::new(
        http.clone(),
        config.identity.clone(),
        COMPLIANCE_RESOURCE,
    ));
    let compliance = Arc::new(ComplianceClient::new(
        &config.compliance_url,
        &config.identity.tenant_id,
        config.tenant_initial_domain.as_deref(),
        compliance_tokens,
        RetryPolicy::default(),
    )?);
    let graph = GraphClient::new(http, &config.graph_base, tokens, budget, RetryPolicy::default());
    let (vendors, vendor_cache) = watch::vendor_cache(Api::all(kube.clone()), watch::config(&config));
    let (segments, segment_stream) =
        watch::filtered::<BarrierSegment>(Api::all(kube.clone()), watch::config(&config));
    let coordinator = Arc::new(Coordinator::new(
        compliance.clone(),
        segments.clone(),
        config.barrier_debounce,
        config.barrier_poll,
    ));
    let ctx = Arc::new(Context::new(
        kube,
        Directory::new(graph, SKU_CACHE),
        compliance,
        config,
        vendors.clone(),
    ));
    ctx.set_barriers(segments.clone(), coordinator.clone());
    tokio::spawn(vendor_cache);
    vendors.wait_until_ready().await?;
    tokio::spawn(coordinator.run());
    tracing::info!(graph = %ctx.config.graph_base, "controllers starting");
    tokio::join!(
        vendor::run(ctx.clone()),
        license::run(ctx.clone()),
        segment::run(ctx.clone(), segments, segment_stream)
    );
    tracing::info!("controllers stopped");
    Ok(())
}
