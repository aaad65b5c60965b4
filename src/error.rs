//! The reconcilers' error type, and its classification into a reason for Events, conditions
//! and metrics.

use crate::graph::GraphError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Compliance(#[from] crate::compliance::ComplianceError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The reconcile must wait for something else first (cleanup for other objects, or a cache
    /// for its first full list). An error because the finalizer helper removes the finalizer on
    /// any `Ok`: this keeps it, and is retried quietly.
    #[error("waiting: {0}")]
    Waiting(String, Duration),
}

impl Error {
    /// A CamelCase reason for Events and conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Graph(e) if e.is_throttled() => "Throttled",
            Error::Graph(GraphError::Auth { .. } | GraphError::Credential(_)) => "AuthenticationFailed",
            Error::Graph(GraphError::Transport { .. }) => "TenantUnreachable",
            Error::Graph(GraphError::Exhausted { last, .. })
                if matches!(**last, GraphError::Transport { .. }) =>
            {
                "TenantUnreachable"
            }
            Error::Graph(GraphError::Exhausted { last, .. }) if last.is_throttled() => "Throttled",
            Error::Graph(e) if e.status() == Some(403) => "PermissionDenied",
            Error::Graph(e) if e.is_transient() => "GraphUnavailable",
            Error::Graph(GraphError::Exhausted { .. }) => "GraphUnavailable",
            Error::Graph(_) => "GraphError",
            Error::Compliance(crate::compliance::ComplianceError::Transport(_)) => "ComplianceUnreachable",
            Error::Compliance(_) => "ComplianceError",
            Error::Kube(_) => "KubernetesError",
            Error::Finalizer(_) => "FinalizerUpdateFailed",
            Error::Waiting(..) => "Waiting",
        }
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Graph(GraphError::Exhausted { last, .. }) => last.retry_after(),
            Error::Graph(e) => e.retry_after(),
            _ => None,
        }
    }
}
