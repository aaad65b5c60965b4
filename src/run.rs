//! The `run` command: builds the shared context and runs the controllers until SIGTERM/SIGINT.

use crate::config::Config;
use crate::context::Context;
use crate::directory::Directory;
use crate::graph::{Budget, GRAPH_RESOURCE, GraphClient, RetryPolicy, TokenProvider};
use crate::{license, vendor, watch};
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
    let graph = GraphClient::new(http, &config.graph_base, tokens, budget, RetryPolicy::default());
    let (vendors, vendor_cache) = watch::vendor_cache(Api::all(kube.clone()), watch::config(&config));
    let ctx = Arc::new(Context::new(
        kube,
        Directory::new(graph, SKU_CACHE),
        config,
        vendors.clone(),
    ));
    tokio::spawn(vendor_cache);
    vendors.wait_until_ready().await?;
    tracing::info!(graph = %ctx.config.graph_base, "controllers starting");
    tokio::join!(vendor::run(ctx.clone()), license::run(ctx.clone()));
    tracing::info!("controllers stopped");
    Ok(())
}
