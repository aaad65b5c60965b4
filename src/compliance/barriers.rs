//! Information-barrier cmdlets as typed calls: organization segments, policies, and policy
//! applications.

use super::{ComplianceClient, ComplianceError};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Segment {
    pub name: String,
    pub identity: String,
    #[serde(default)]
    pub user_group_filter: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    pub name: String,
    pub identity: String,
    pub assigned_segment: String,
    #[serde(default)]
    pub segments_allowed: Vec<String>,
    #[serde(default)]
    pub segments_blocked: Vec<String>,
    pub state: String,
    #[serde(default)]
    pub when_changed: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Application {
    pub identity: String,
    pub status: String,
    #[serde(default)]
    pub percent_progress: Option<i64>,
    #[serde(default)]
    pub failure_category: Option<String>,
    #[serde(default)]
    pub failure_message: Option<String>,
    #[serde(default)]
    pub creation_time: Option<String>,
    #[serde(default)]
    pub application_end_time: Option<String>,
}

impl Application {
    /// Still queued or being processed.
    pub fn is_running(&self) -> bool {
        matches!(self.status.as_str(), "NotStarted" | "InProgress")
    }
}

fn decode<T: for<'de> Deserialize<'de>>(items: Vec<Value>) -> Result<Vec<T>, ComplianceError> {
    items
        .into_iter()
        .map(|v| {
            serde_json::from_value(v).map_err(|e| ComplianceError::Unexpected {
                status: 200,
                message: format!("undecodable object: {e}"),
            })
        })
        .collect()
}

fn one<T>(mut v: Vec<T>, cmdlet: &str) -> Result<T, ComplianceError> {
    v.pop().ok_or_else(|| ComplianceError::Unexpected {
        status: 200,
        message: format!("{cmdlet} returned nothing"),
    })
}

/// When a listing was read, and what it showed.
type Listing = (std::time::Instant, Vec<Segment>, Vec<Policy>);

/// Segments and policies read together and kept for a while (the resync period): twenty
/// segment reconciles at a resync read them once. Any command that changes the tenant, from
/// this client, forgets them.
#[derive(Default)]
pub struct Definitions {
    ttl: std::sync::OnceLock<std::time::Duration>,
    kept: tokio::sync::Mutex<Option<Listing>>,
    /// Bumped by every change, so a listing that raced one is not kept.
    changes: std::sync::atomic::AtomicU64,
}

impl Definitions {
    pub fn forget(&self) {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl ComplianceClient {
    /// Keep segments and policies read through [`Self::definitions`] for `ttl`.
    pub fn keep_definitions_for(self, ttl: std::time::Duration) -> Self {
        let _ = self.definitions.ttl.set(ttl);
        self
    }

    /// Every segment and every policy, from the shared listing when it is fresh and nothing
    /// changed since.
    pub async fn definitions(&self) -> Result<(Vec<Segment>, Vec<Policy>), ComplianceError> {
        use std::sync::atomic::Ordering::SeqCst;
        let d = &self.definitions;
        let ttl = d.ttl.get().copied().unwrap_or_default();
        let mut kept = d.kept.lock().await;
        let change = d.changes.load(SeqCst);
        if let Some((at, segments, policies)) = kept.as_ref()
            && at.elapsed() < ttl
            && change == 0
        {
            return Ok((segments.clone(), policies.clone()));
        }
        let segments = self.segments().await?;
        let policies = self.policies().await?;
        // Keep the listing only if nothing changed while it was read.
        *kept = (d.changes.compare_exchange(change, 0, SeqCst, SeqCst).is_ok() && !ttl.is_zero())
            .then(|| (std::time::Instant::now(), segments.clone(), policies.clone()));
        Ok((segments, policies))
    }

    pub async fn segments(&self) -> Result<Vec<Segment>, ComplianceError> {
        decode(self.invoke("Get-OrganizationSegment", json!({})).await?)
    }

    pub async fn new_segment(&self, name: &str, filter: &str) -> Result<Segment, ComplianceError> {
        let params = json!({"Name": name, "UserGroupFilter": filter});
        one(
            decode(self.invoke("New-OrganizationSegment", params).await?)?,
            "New-OrganizationSegment",
        )
    }

    pub async fn set_segment(&self, identity: &str, filter: &str) -> Result<(), ComplianceError> {
        let params = json!({"Identity": identity, "UserGroupFilter": filter});
        self.invoke("Set-OrganizationSegment", params).await.map(drop)
    }

    pub async fn remove_segment(&self, identity: &str) -> Result<(), ComplianceError> {
        match self
            .invoke("Remove-OrganizationSegment", json!({"Identity": identity}))
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    pub async fn policies(&self) -> Result<Vec<Policy>, ComplianceError> {
        decode(self.invoke("Get-InformationBarrierPolicy", json!({})).await?)
    }

    /// Creates a policy; `allowed` true puts `segments` in `SegmentsAllowed`, else `SegmentsBlocked`.
    pub async fn new_policy(
        &self,
        name: &str,
        segment: &str,
        allowed: bool,
        segments: &[String],
        state: &str,
    ) -> Result<Policy, ComplianceError> {
        let list = if allowed {
            "SegmentsAllowed"
        } else {
            "SegmentsBlocked"
        };
        let params =
            json!({"Name": name, "AssignedSegment": segment, list: segments, "State": state, "Force": true});
        one(
            decode(self.invoke("New-InformationBarrierPolicy", params).await?)?,
            "New-InformationBarrierPolicy",
        )
    }

    pub async fn set_policy(
        &self,
        identity: &str,
        allowed: bool,
        segments: &[String],
        state: &str,
    ) -> Result<(), ComplianceError> {
        let list = if allowed {
            "SegmentsAllowed"
        } else {
            "SegmentsBlocked"
        };
        let params = json!({"Identity": identity, list: segments, "State": state, "Force": true});
        self.invoke("Set-InformationBarrierPolicy", params)
            .await
            .map(drop)
    }

    pub async fn set_policy_state(&self, identity: &str, state: &str) -> Result<(), ComplianceError> {
        let params = json!({"Identity": identity, "State": state, "Force": true});
        self.invoke("Set-InformationBarrierPolicy", params)
            .await
            .map(drop)
    }

    pub async fn remove_policy(&self, identity: &str) -> Result<(), ComplianceError> {
        match self
            .invoke("Remove-InformationBarrierPolicy", json!({"Identity": identity}))
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    pub async fn start_application(&self) -> Result<Application, ComplianceError> {
        let items = self
            .invoke(
                "Start-InformationBarrierPoliciesApplication",
                json!({"Force": true}),
            )
            .await?;
        one(decode(items)?, "Start-InformationBarrierPoliciesApplication")
    }

    pub async fn application(&self, identity: &str) -> Result<Application, ComplianceError> {
        let items = self
            .invoke(
                "Get-InformationBarrierPoliciesApplicationStatus",
                json!({"Identity": identity}),
            )
            .await?;
        one(decode(items)?, "Get-InformationBarrierPoliciesApplicationStatus")
    }

    /// Every application, newest first.
    pub async fn applications(&self) -> Result<Vec<Application>, ComplianceError> {
        decode(
            self.invoke(
                "Get-InformationBarrierPoliciesApplicationStatus",
                json!({"All": true}),
            )
            .await?,
        )
    }
}
