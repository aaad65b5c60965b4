//! The checks at start-up: logged, told in a Warning Event on every VendorTenant when one fails
//! (the object a platform team already watches), and kept for `/readyz`'s body.

use super::{Outcome, Report, examine};
use crate::commands::Tenant;
use crate::config::Config;
use crate::context::Context;
use kube::runtime::events::EventType;
use std::sync::Arc;

/// The Event reason when a prerequisite check fails.
pub const PREREQUISITE_FAILED: &str = "PrerequisiteFailed";

/// Runs the checks once the vendor cache is synced; `None` if the tenant clients cannot be made.
pub async fn check_at_start_up(config: &Config, ctx: &Arc<Context>) -> Option<Report> {
    let tenant = match Tenant::connect(config, Some(ctx.kube.clone())) {
        Ok(t) => t.read_mode().await,
        Err(e) => {
            tracing::warn!(error = %e, "prerequisite checks could not start");
            return None;
        }
    };
    let vendors: Vec<_> = ctx
        .caches()
        .vendors
        .current()
        .state()
        .iter()
        .map(|v| (**v).clone())
        .collect();
    let report = examine(&tenant, &vendors).await;
    for c in &report.checks {
        match c.outcome {
            Outcome::Pass => tracing::info!(check = c.id, detail = %c.detail, "prerequisite met"),
            Outcome::Fail => {
                tracing::warn!(check = c.id, detail = %c.detail, fix = %c.fix, docs = c.docs, "prerequisite FAILED")
            }
            Outcome::Unknown => {
                tracing::info!(check = c.id, detail = %c.detail, fix = %c.fix, "prerequisite not checked")
            }
        }
    }
    if let Some(summary) = report.failure_summary() {
        let note = format!("{summary} (run `remote-assist-operator doctor` for the fixes)");
        for v in &vendors {
            ctx.event(
                v,
                EventType::Warning,
                PREREQUISITE_FAILED,
                "CheckPrerequisites",
                note.clone(),
            )
            .await;
        }
    }
    Some(report)
}
