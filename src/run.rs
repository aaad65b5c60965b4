//! The `run` command: the health and metrics server first, then (with leader election) waiting
//! for the lease, then the shared context and the controllers until SIGTERM/SIGINT, when the
//! controllers finish what they are doing and the lease is released.

use crate::compliance::ComplianceClient;
use crate::config::Config;
use crate::context::{Caches, Context, Parts};
use crate::controllers::barrier_segment::application::Coordinator;
use crate::controllers::{barrier_segment, remote_assist_license, vendor_tenant};
use crate::crd::{BarrierSegment, RemoteAssistLicense, VendorTenant};
use crate::directory::Directory;
use crate::graph::{Budget, GRAPH_RESOURCE, GraphClient, RetryPolicy, TokenProvider};
use crate::leader::Elector;
use crate::metrics::Metrics;
use crate::server::Health;
use crate::{server, watch};
use futures::Stream;
use kube::Api;
use kube::runtime::reflector::Store;
use std::pin::Pin;
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
    let tokens = Arc::new(
        TokenProvider::new(http.clone(), config.identity.clone(), GRAPH_RESOURCE)
            .with_failure_metric(metrics.clone(), "graph"),
    );
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
        prerequisites: Default::default(),
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

    let (compliance, graph) = tenant_clients(&config, kube.clone(), http, tokens, &metrics)?;
    let (ctx, streams) = wire(kube, config, compliance, graph, metrics);
    let _ = health.context.set(ctx.clone());
    // Licence reconciles look vendors up without waiting: the vendor cache is listed first.
    ctx.caches().vendors.synced().await;
    tokio::spawn({
        let (config, ctx, health) = (ctx.config.clone(), ctx.clone(), health.clone());
        async move {
            if let Some(report) = crate::doctor::check_at_start_up(&config, &ctx).await {
                let _ = health.prerequisites.set(report);
            }
        }
    });
    tracing::info!(graph = %ctx.config.graph_base, "controllers starting");
    let controllers = async {
        tokio::join!(
            vendor_tenant::run(ctx.clone(), streams.vendor_store, streams.vendors),
            remote_assist_license::run(ctx.clone(), streams.licenses, streams.segment_updates),
            barrier_segment::run(ctx.clone(), streams.segments)
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

/// The compliance endpoint's client and the Graph client, as the configuration asks.
fn tenant_clients(
    config: &Config,
    kube: kube::Client,
    http: reqwest::Client,
    tokens: Arc<TokenProvider>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(Arc<ComplianceClient>, GraphClient)> {
    let compliance_tokens = Arc::new(
        crate::compliance::sign_in::token_provider(http.clone(), config, Some(kube))?
            .with_failure_metric(metrics.clone(), "compliance"),
    );
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
    Ok((compliance, graph))
}

type Watched<K> = Pin<Box<dyn Stream<Item = Result<K, kube::runtime::watcher::Error>> + Send>>;

/// The controllers' main streams (each feeds its cache in the context).
struct Streams {
    vendor_store: Store<VendorTenant>,
    vendors: Watched<VendorTenant>,
    licenses: Watched<RemoteAssistLicense>,
    segments: Watched<BarrierSegment>,
    /// Segments as the segment cache takes them in, for the licence controller.
    segment_updates: kube::runtime::reflector::ReflectHandle<BarrierSegment>,
}

/// Every watch and the context, in one place: the caches go into the context whole, so no part
/// of it is filled in later. The vendor cache is driven here; the others by their controllers.
fn wire(
    kube: kube::Client,
    config: Config,
    compliance: Arc<ComplianceClient>,
    graph: GraphClient,
    metrics: Arc<Metrics>,
) -> (Arc<Context>, Streams) {
    let wc = watch::config(&config);
    let (vendors, vendor_cache) = watch::vendor_cache(Api::all(kube.clone()), wc.clone(), &metrics);
    let (vendor_store, vendor_stream) = watch::filtered::<VendorTenant>(
        Api::all(kube.clone()),
        wc.clone(),
        watch::forget_managed_fields,
        &metrics,
    );
    let (licenses, license_stream) = watch::filtered(
        Api::all(kube.clone()),
        wc.clone(),
        watch::forget_unread_license_metadata,
        &metrics,
    );
    let (segments, segment_stream, segment_updates) =
        watch::filtered_subscribed::<BarrierSegment>(Api::all(kube.clone()), wc, &metrics);
    let coordinator = Arc::new(Coordinator::new(
        compliance.clone(),
        segments.clone(),
        vendors.clone(),
        config.barrier_debounce,
        config.barrier_poll,
    ));
    // What was read is kept for one resync period, so each resync reads the tenant about once.
    let directory = Directory::new(graph, SKU_CACHE.min(config.resync)).with_view(config.resync);
    let caches = Caches {
        vendors,
        licenses,
        segments,
    };
    let ctx = Arc::new(Context::new(Parts {
        kube,
        directory,
        compliance,
        coordinator: coordinator.clone(),
        caches,
        config,
        metrics,
    }));
    tokio::spawn(vendor_cache);
    // Waits for its caches' first lists itself, before it starts anything.
    tokio::spawn(coordinator.run());
    let streams = Streams {
        vendor_store: vendor_store.current().clone(),
        vendors: Box::pin(vendor_stream),
        licenses: Box::pin(license_stream),
        segments: Box::pin(segment_stream),
        segment_updates,
    };
    (ctx, streams)
}
