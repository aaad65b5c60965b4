//! The operator's own HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (cheap liveness:
//! the process answers) and `/readyz` (a token can be obtained and, on the leader, the watch
//! caches are synced; a standby replica is ready as long as it could take over).

use crate::context::Context;
use crate::graph::TokenProvider;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

pub struct Health {
    pub metrics: Arc<Metrics>,
    pub tokens: Arc<TokenProvider>,
    /// This replica leads (or runs without election).
    pub leading: AtomicBool,
    pub context: OnceLock<Arc<Context>>,
    /// The prerequisite checks made at start-up, once they ran.
    pub prerequisites: OnceLock<crate::doctor::Report>,
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(h): State<Arc<Health>>) -> Response {
    if let Some(ctx) = h.context.get() {
        crate::metrics::scrape::refresh(&h.metrics, ctx).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(h): State<Arc<Health>>) -> Response {
    if let Err(e) = h.tokens.token().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot obtain a token: {e}"),
        )
            .into_response();
    }
    let synced = crate::watch::SYNCED_LISTS.load(Ordering::Relaxed) >= crate::watch::CONTROLLER_WATCHES;
    if h.leading.load(Ordering::Relaxed) && !synced {
        return (StatusCode::SERVICE_UNAVAILABLE, "watch caches are not synced yet").into_response();
    }
    match h.prerequisites.get() {
        // Ready even with a failed check: the operator keeps reporting conditions, and the
        // failures are here, in the log and in an Event.
        Some(report) => format!("ok\nprerequisites:\n{}", report.render_text()).into_response(),
        None => "ok\nprerequisites: not checked yet\n".into_response(),
    }
}

/// Serves until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, health: Arc<Health>) {
    if let Err(e) = axum::serve(listener, router(health)).await {
        tracing::error!(error = %e, "the metrics and health server stopped");
    }
}
