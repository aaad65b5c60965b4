//! The `run` command: the health and metrics server first, then (with leader election) waiting
//! for the lease, then the shared context and the controllers until SIGTERM/SIGINT, when the
//! controllers finish what they are doing and the lease is released.

use crate::compliance::{COMPLIANCE_RESOURCE, ComplianceClient};
use crate::config::Config;
use crate::context::Context;
use crate::crd::BarrierSegment;
use crate::directory::Directory;
use crate::graph::{Budget, GRAPH_RESOURCE, GraphClient, RetryPolicy, TokenProvider};
use crate::leader::Elector;
use crate::segment::application::Coordinator;
use crate::server::Health;
use crate::telemetry::Metrics;
use crate::{license, segment, server, vendor, watch};
use kube::Api;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long a `subscribedSkus` read is reused by licence reconciles.
const SKU_CACHE: Duration = Duration::from_secs(30);

async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let kube = kube::Client::try_default().await?;
    let http = crate::graph::transport::http_client()?;
    let metrics = Arc::new(Metrics::default());
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

    let health = Arc::new(Health {
        metrics: metrics.clone(),
        tokens: tokens.clone(),
        leading: false.into(),
        context: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(config.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    tokio::spawn(server::serve(listener, health.clone()));

    let elector = config.leader.clone().map(|l| Elector::new(kube.clone(), l));
    if let Some(e) = &elector {
        tokio::select! {
            _ = e.acquire() => {}
            _ = shutdown_signal() => return Ok(()),
        }
    }
    health.leading.store(true, Ordering::Relaxed);
    metrics.set_leader(true);

    let compliance_tokens = Arc::new(TokenProvider::new(
        http.clone(),
        config.identity.clone(),
        COMPLIANCE_RESOURCE,
    ));
    let compliance = Arc::new(
        ComplianceClient::new(
            &config.compliance_url,
            &config.identity.tenant_id,
            config.tenant_initial_domain.as_deref(),
            compliance_tokens,
            RetryPolicy::default(),
        )?
        .with_metrics(metrics.clone())
        .keep_definitions_for(config.resync),
    );
    let budget = Arc::new(if config.graph_shared_budget {
        Budget::new(config.budget.clone())
    } else {
        Budget::unlimited()
    });
    let mut graph = GraphClient::new(http, &config.graph_base, tokens, budget, RetryPolicy::default())
        .with_metrics(metrics.clone());
    if config.graph_batching {
        graph = graph.with_batching();
    }
    let (vendors, vendor_cache) = watch::vendor_cache(Api::all(kube.clone()), watch::config(&config));
    let (segments, segment_stream) =
        watch::filtered::<BarrierSegment>(Api::all(kube.clone()), watch::config(&config));
    let coordinator = Arc::new(Coordinator::new(
        compliance.clone(),
        segments.clone(),
        vendors.clone(),
        config.barrier_debounce,
        config.barrier_poll,
    ));
    // What was read is kept for one resync period, so each resync reads the tenant about once.
    let directory = Directory::new(graph, SKU_CACHE.min(config.resync)).with_view(config.resync);
    let ctx = Arc::new(Context::new(
        kube,
        directory,
        compliance,
        config,
        vendors.clone(),
        metrics,
    ));
    ctx.set_barriers(segments.clone(), coordinator.clone());
    let _ = health.context.set(ctx.clone());
    tokio::spawn(vendor_cache);
    vendors.wait_until_ready().await?;
    tokio::spawn(coordinator.run());
    tracing::info!(graph = %ctx.config.graph_base, "controllers starting");

    let controllers = async {
        tokio::join!(
            vendor::run(ctx.clone()),
            license::run(ctx.clone()),
            segment::run(ctx.clone(), segments, segment_stream)
        );
    };
    match &elector {
        Some(e) => {
            // Biased: once the lease is lost (even during start-up), the controllers never run.
            tokio::select! {
                biased;
                _ = e.hold() => anyhow::bail!("lost the leader lease; exiting so that a fresh start stands by"),
                _ = controllers => e.release().await,
            }
        }
        None => controllers.await,
    }
    tracing::info!("controllers stopped");
    Ok(())
}
