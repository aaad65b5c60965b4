//! The HTTP service: the routes (Graph under `/v1.0`, the token endpoint, Security &
//! Compliance, the admin API) wired to their handlers inside the per-request pipeline of
//! [`crate::pipeline`], and starting it on an address or in-process.

use crate::pipeline::{count_tokens, graph_pipeline, method_not_allowed, request_ids, unknown_segment};
use crate::seed::Seed;
use crate::state::Sim;
use crate::{admin, auth, batch, compliance, directory, groups, licensing, users};
use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds the full router: Graph under `/v1.0`, the token endpoint, the admin API under `/_sim`.
pub fn router(sim: Arc<Sim>) -> Router {
    let graph = Router::new()
        .route("/v1.0/users", get(users::list).post(users::create))
        .route(
            "/v1.0/users/{id}",
            get(users::get_one).patch(users::update).delete(users::delete),
        )
        .route("/v1.0/users/{id}/assignLicense", post(licensing::assign_to_user))
        .route(
            "/v1.0/users/{id}/reprocessLicenseAssignment",
            post(licensing::reprocess_user),
        )
        .route(
            "/v1.0/users/{id}/revokeSignInSessions",
            post(users::revoke_sign_in_sessions),
        )
        .route("/v1.0/users/{id}/licenseDetails", get(licensing::license_details))
        .route("/v1.0/users/{id}/memberOf", get(groups::member_of))
        .route(
            "/v1.0/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole",
            get(groups::directory_roles),
        )
        .route(
            "/v1.0/directory/deletedItems/microsoft.graph.user",
            get(users::list_deleted),
        )
        .route(
            "/v1.0/directory/deletedItems/{id}",
            get(users::get_deleted).delete(users::purge),
        )
        .route("/v1.0/directory/deletedItems/{id}/restore", post(users::restore))
        .route("/v1.0/groups", get(groups::list).post(groups::create))
        .route(
            "/v1.0/groups/{id}",
            get(groups::get_one).patch(groups::update).delete(groups::delete),
        )
        .route("/v1.0/groups/{id}/members", get(groups::members))
        .route("/v1.0/groups/{id}/members/$ref", post(groups::add_member))
        .route(
            "/v1.0/groups/{id}/members/{member}/$ref",
            axum::routing::delete(groups::remove_member),
        )
        .route(
            "/v1.0/groups/{id}/assignLicense",
            post(licensing::assign_to_group),
        )
        .route("/v1.0/subscribedSkus", get(licensing::subscribed_skus))
        .route("/v1.0/organization", get(directory::organization))
        .route("/v1.0/servicePrincipals", get(directory::service_principals))
        .route(
            "/v1.0/roleManagement/directory/roleAssignments",
            get(directory::role_assignments),
        )
        .route(
            "/v1.0/directory/administrativeUnits/{id}",
            get(directory::administrative_unit),
        )
        .route("/v1.0/$batch", post(batch::batch))
        .route_layer(middleware::from_fn_with_state(sim.clone(), graph_pipeline))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_segment)
        // Outermost, so 405s and unknown segments carry request ids too.
        .layer(middleware::from_fn(request_ids))
        .with_state(sim.clone());
    let _ = sim.graph.set(graph.clone());
    let rest = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token_endpoint))
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            post(auth::delegated::device_code_endpoint),
        )
        .nest("/_sim", admin::router())
        .with_state(sim.clone());
    // Security & Compliance InvokeCommand; request ids give it `base_url()` and `request-id`.
    let compliance = compliance::router()
        .layer(middleware::from_fn(request_ids))
        .with_state(sim.clone());
    Router::new()
        .merge(graph)
        .merge(rest)
        .merge(compliance)
        .layer(middleware::from_fn_with_state(sim, count_tokens))
}

/// A simulator bound to a local address, running until dropped or stopped.
pub struct RunningSim {
    pub sim: Arc<Sim>,
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningSim {
    /// `http://127.0.0.1:<port>`: Graph is at `<url>/v1.0`, the authority at `<url>/`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the simulator on `addr` (use port 0 for a free port) inside the current runtime.
pub async fn start(seed: Seed, addr: SocketAddr) -> anyhow::Result<RunningSim> {
    serve(Sim::new(seed)?, addr).await
}

/// Serves an existing tenant on `addr`: after [`RunningSim::stop`], the same tenant can come back
/// on the same address (an outage, not a reset).
pub async fn serve(sim: Arc<Sim>, addr: SocketAddr) -> anyhow::Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = router(sim.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let background = sim.clone();
    let task = tokio::spawn(async move {
        let ticker = tokio::spawn(group_licensing_loop(background));
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        ticker.abort();
    });
    Ok(RunningSim {
        sim,
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Group-based licensing reaches members asynchronously, as in Entra.
async fn group_licensing_loop(sim: Arc<Sim>) {
    loop {
        let delay = sim
            .misbehaviour
            .lock()
            .unwrap()
            .settings
            .group_licensing_delay_ms
            .max(10);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let retention = Duration::from_secs(
            sim.misbehaviour
                .lock()
                .unwrap()
                .settings
                .deleted_retention_seconds,
        );
        let mut t = sim.tenant();
        t.process_group_licensing();
        t.purge_expired(retention, Instant::now());
    }
}
