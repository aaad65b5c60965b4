//! Information-barrier cmdlets as typed calls: organization segments, policies, and policy
//! applications.

use super::{ComplianceClient, ComplianceError};
use k8s_openapi::jiff::Timestamp;
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
    /// Free text; the operator writes its ownership marker here (see [`owner_marker`]).
    #[serde(default, deserialize_with = "lenient::string")]
    pub comment: Option<String>,
}

/// The marker the operator writes into the Comment of every policy it creates, naming the
/// BarrierSegment (by uid) that owns it. Policies have a Comment; segments do not.
pub fn owner_marker(uid: &str) -> String {
    format!("remoteassist.dev/owner={uid}")
}

impl Policy {
    /// The uid of the BarrierSegment whose marker the Comment carries, if any.
    pub fn owner(&self) -> Option<&str> {
        let comment = self.comment.as_deref()?;
        let at = comment.find("remoteassist.dev/owner=")? + "remoteassist.dev/owner=".len();
        let rest = &comment[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        Some(&rest[..end]).filter(|u| !u.is_empty())
    }
}

/// A policies application as the endpoint describes it. Decoding is lenient (a missing or
/// odd field never makes a listing undecodable) and reading is strict: a status, progress or
/// time that is missing or cannot be read means "not applied" ([`Application::completed`],
/// [`Application::created`]).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Application {
    pub identity: String,
    /// As answered; empty when missing or not text. See [`Application::state`].
    #[serde(default, deserialize_with = "lenient::status")]
    pub status: String,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub percent_progress: Option<i64>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub failure_category: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub failure_message: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub creation_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub application_end_time: Option<String>,
}

/// The documented statuses of an application, and `Unknown` for anything else (missing,
/// misspelt, not text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplicationStatus {
    NotStarted,
    InProgress,
    Completed,
    Failed,
    Stopped,
    Unknown,
}

impl Application {
    pub fn state(&self) -> ApplicationStatus {
        use ApplicationStatus::*;
        [NotStarted, InProgress, Completed, Failed, Stopped]
            .into_iter()
            .find(|s| self.status.eq_ignore_ascii_case(&format!("{s:?}")))
            .unwrap_or(Unknown)
    }

    /// Still queued or being processed.
    pub fn is_running(&self) -> bool {
        matches!(
            self.state(),
            ApplicationStatus::NotStarted | ApplicationStatus::InProgress
        )
    }

    /// Completed, and the answer says so consistently: `Status` Completed and
    /// `PercentProgress` 100. Anything less is not applied.
    pub fn completed(&self) -> bool {
        self.state() == ApplicationStatus::Completed && self.percent_progress == Some(100)
    }

    /// `CreationTime`, when it is present and readable ([`parse_time`]).
    pub fn created(&self) -> Option<Timestamp> {
        self.creation_time.as_deref().and_then(parse_time)
    }
}

/// A time as the compliance endpoint may write it: RFC 3339 with `Z` or an offset, or the
/// .NET JSON form `/Date(<milliseconds since 1970 UTC>[+-HHMM])/` (the offset there is
/// informational; the milliseconds are UTC). A time without an offset is ambiguous by up to a
/// day and so unreadable, like anything else: `None`.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix("/Date(").and_then(|t| t.strip_suffix(")/")) {
        let digits_end = inner
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
            .map_or(inner.len(), |(i, _)| i);
        let (ms, offset) = inner.split_at(digits_end);
        let offset_ok = offset.is_empty()
            || (offset.len() == 5
                && offset.starts_with(['+', '-'])
                && offset[1..].chars().all(|c| c.is_ascii_digit()));
        if !offset_ok || ms.is_empty() || ms == "-" {
            return None;
        }
        return Timestamp::from_millisecond(ms.parse().ok()?).ok();
    }
    text.parse().ok()
}

/// Field decoders that turn what cannot be read into "absent" instead of failing the object.
mod lenient {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => Some(s),
            _ => None,
        })
    }

    pub fn status<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(string(d)?.unwrap_or_default())
    }

    /// An integer, or text holding one; anything else is absent.
    pub fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
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
        self.new_policy_with_comment(name, segment, allowed, segments, state, None)
            .await
    }

    /// [`Self::new_policy`] with a Comment (where the operator writes its ownership marker).
    pub async fn new_policy_with_comment(
        &self,
        name: &str,
        segment: &str,
        allowed: bool,
        segments: &[String],
        state: &str,
        comment: Option<&str>,
    ) -> Result<Policy, ComplianceError> {
        let list = if allowed {
            "SegmentsAllowed"
        } else {
            "SegmentsBlocked"
        };
        let mut params =
            json!({"Name": name, "AssignedSegment": segment, list: segments, "State": state, "Force": true});
        if let Some(c) = comment {
            params["Comment"] = json!(c);
        }
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

    /// Every application the endpoint lists, in the order it answered (which is not to be
    /// trusted: sort by [`Application::created`]). An entry that cannot be decoded at all
    /// (no Identity) is left out with a warning: it can be neither followed nor trusted.
    pub async fn applications(&self) -> Result<Vec<Application>, ComplianceError> {
        let items = self
            .invoke(
                "Get-InformationBarrierPoliciesApplicationStatus",
                json!({"All": true}),
            )
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|v| match serde_json::from_value(v) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an undecodable policies application");
                    None
                }
            })
            .collect())
    }
}

#[cfg(test)]
#[path = "definitions_tests.rs"]
mod tests;

/// The part of `Get-PolicyConfig` the operator reads.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyConfig {
    #[serde(default)]
    pub information_barrier_mode: Option<String>,
}

impl ComplianceClient {
    /// The tenant's information-barrier mode; `None` if the answer names none this operator
    /// knows. Read only: the operator never sends `Set-PolicyConfig`.
    pub async fn ib_mode(&self) -> Result<Option<crate::barriers::IbMode>, ComplianceError> {
        let config: PolicyConfig = one(
            decode(self.invoke("Get-PolicyConfig", json!({})).await?)?,
            "Get-PolicyConfig",
        )?;
        Ok(config
            .information_barrier_mode
            .as_deref()
            .and_then(crate::barriers::IbMode::parse))
    }
}
