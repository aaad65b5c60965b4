//! Information-barrier state: segments, policies, policies applications and the applied state.
//!
//! An application's progress is computed from timestamps, scaled by the application's time
//! scale: 30 minutes NotStarted, then the tenant's users at 5,000 per hour InProgress, then
//! Completed. Its outcome is decided when processing begins ([`advance`] runs on every tenant
//! lock, before any change), from a snapshot of the Active policies, the segments and every
//! user's segments at that moment; the snapshot becomes the applied state on completion.

use super::opath::Expr;
use crate::model::{Tenant, User};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How long an application waits before processing begins (and a Stop takes to act).
pub const START_DELAY_SECONDS: f64 = 30.0 * 60.0;
/// Processing speed.
pub const USERS_PER_HOUR: f64 = 5000.0;

#[derive(Clone, Debug)]
pub struct Segment {
    pub id: String,
    pub exo_id: String,
    pub name: String,
    pub filter_text: String,
    pub filter: Expr,
    pub created: Timestamp,
    pub changed: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyType {
    Allow,
    Block,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub id: String,
    pub exo_id: String,
    pub name: String,
    /// The assigned segment's name.
    pub assigned: String,
    pub kind: PolicyType,
    /// SegmentsAllowed or SegmentsBlocked, by `kind` (segment names).
    pub segments: Vec<String>,
    pub active: bool,
    pub comment: Option<String>,
    pub moderation_allowed: bool,
    pub created: Timestamp,
    pub changed: Timestamp,
}

/// What processing began with: the outcome and, on success, the state to apply.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub total: usize,
    /// (FailureCategory, FailureMessage, FailedRecipients).
    pub failure: Option<(&'static str, String, usize)>,
    pub snapshot: Option<Applied>,
}

#[derive(Clone, Debug)]
pub struct Application {
    pub id: String,
    pub created: Timestamp,
    pub scale: f64,
    pub stop_requested: Option<Timestamp>,
    pub outcome: Option<Outcome>,
    /// Nothing more happens to it (applied, failed or stopped).
    pub settled: bool,
}

/// The state the last completed application put in place.
#[derive(Clone, Debug)]
pub struct Applied {
    pub application_id: String,
    pub completed_at: Timestamp,
    pub policies: Vec<Policy>,
    /// Segment names by user id, for every user present when processing began.
    pub user_segments: BTreeMap<String, Vec<String>>,
}

#[derive(Default)]
pub struct Barriers {
    pub segments: Vec<Segment>,
    pub policies: Vec<Policy>,
    /// Oldest first.
    pub applications: Vec<Application>,
    pub applied: Option<Applied>,
    /// Per user id: since when completed applications have kept the user under a policy.
    pub covered_since: BTreeMap<String, Timestamp>,
}

/// An application's state at some moment.
pub struct View {
    pub status: &'static str,
    pub total: usize,
    pub processed: usize,
    pub failed: usize,
    pub category: &'static str,
    pub message: Option<String>,
    pub started: Option<Timestamp>,
    pub ended: Option<Timestamp>,
}

impl Application {
    pub fn new(scale: f64, now: Timestamp) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Application {
            id: uuid::Uuid::new_v4().to_string(),
            created: now,
            scale,
            stop_requested: None,
            outcome: None,
            settled: false,
        }
    }

    fn scaled(&self, seconds: f64) -> SignedDuration {
        SignedDuration::try_from_secs_f64(seconds / self.scale).unwrap_or(SignedDuration::MAX)
    }

    pub fn start_at(&self) -> Timestamp {
        self.created
            .saturating_add(self.scaled(START_DELAY_SECONDS))
            .unwrap()
    }

    /// When processing ends (known once processing began): a failure ends it at once.
    pub fn end_at(&self) -> Option<Timestamp> {
        let o = self.outcome.as_ref()?;
        let work = if o.failure.is_some() {
            0.0
        } else {
            o.total as f64 * 3600.0 / USERS_PER_HOUR
        };
        Some(self.start_at().saturating_add(self.scaled(work)).unwrap())
    }

    pub fn stop_at(&self) -> Option<Timestamp> {
        self.stop_requested
            .map(|r| r.saturating_add(self.scaled(START_DELAY_SECONDS)).unwrap())
    }

    /// When a requested Stop cuts processing short, the moment it does.
    fn stopped_at(&self) -> Option<Timestamp> {
        let stop = self.stop_at()?;
        let o = self.outcome.as_ref()?;
        (o.failure.is_none() && stop < self.end_at()?).then_some(stop)
    }

    pub fn view(&self, now: Timestamp) -> View {
        let mut v = View {
            status: "NotStarted",
            total: 0,
            processed: 0,
            failed: 0,
            category: "None",
            message: None,
            started: None,
            ended: None,
        };
        let start = self.start_at();
        let (Some(o), Some(end)) = (&self.outcome, self.end_at()) else {
            return v;
        };
        if now < start {
            return v;
        }
        v.total = o.total;
        v.started = Some(start);
        if let Some((category, message, failed)) = &o.failure {
            v.status = "Failed";
            v.category = category;
            v.message = Some(message.clone());
            v.failed = *failed;
            v.ended = Some(end);
            return v;
        }
        let progress_at = |t: Timestamp| {
            let span = end.duration_since(start).as_secs_f64();
            if span <= 0.0 {
                return o.total;
            }
            let done = t.duration_since(start).as_secs_f64() / span;
            ((o.total as f64 * done).floor() as usize).min(o.total)
        };
        match self.stopped_at() {
            Some(stop) if now >= stop => {
                v.status = "Stopped";
                v.processed = progress_at(stop);
                v.ended = Some(stop);
            }
            _ if now >= end => {
                v.status = "Completed";
                v.processed = o.total;
                v.ended = Some(end);
            }
            _ => {
                v.status = "InProgress";
                v.processed = progress_at(now);
            }
        }
        v
    }

    /// The object Get-/Start-/Stop- return.
    pub fn to_json(&self, now: Timestamp) -> Value {
        let v = self.view(now);
        let percent = if v.status == "Completed" {
            100
        } else {
            (v.processed * 100).checked_div(v.total).unwrap_or(0)
        };
        json!({
            "Identity": self.id,
            "Status": v.status,
            "PercentProgress": percent,
            "TotalRecipients": v.total,
            "ProcessedRecipients": v.processed,
            "FailedRecipients": v.failed,
            "FailureCategory": v.category,
            "FailureMessage": v.message,
            "CreationTime": self.created.to_string(),
            "ApplicationStartTime": v.started.map(|t| t.to_string()),
            "ApplicationEndTime": v.ended.map(|t| t.to_string()),
        })
    }
}

impl Segment {
    pub fn to_json(&self) -> Value {
        json!({
            "Name": self.name,
            "Identity": self.id,
            "UserGroupFilter": self.filter_text,
            "ExoSegmentId": self.exo_id,
            "WhenCreated": self.created.to_string(),
            "WhenChanged": self.changed.to_string(),
        })
    }
}

impl Policy {
    pub fn to_json(&self) -> Value {
        let (allowed, blocked): (&[String], &[String]) = match self.kind {
            PolicyType::Allow => (&self.segments, &[]),
            PolicyType::Block => (&[], &self.segments),
        };
        json!({
            "Name": self.name,
            "Identity": self.id,
            "AssignedSegment": self.assigned,
            "SegmentsAllowed": allowed,
            "SegmentsBlocked": blocked,
            "State": if self.active { "Active" } else { "Inactive" },
            "Comment": self.comment,
            "ModerationAllowed": self.moderation_allowed,
            "ExOPolicyId": self.exo_id,
            "WhenCreated": self.created.to_string(),
            "WhenChanged": self.changed.to_string(),
        })
    }
}

impl Barriers {
    /// Whether an application is NotStarted or InProgress, and which.
    pub fn running(&self, now: Timestamp) -> Option<(&Application, &'static str)> {
        let app = self.applications.last()?;
        let status = app.view(now).status;
        matches!(status, "NotStarted" | "InProgress").then_some((app, status))
    }
}

/// Decides the outcome of the latest application once processing has begun, and puts its
/// snapshot in place once it has completed.
pub fn advance(t: &mut Tenant, now: Timestamp) {
    let Some(app) = t.barriers.applications.last() else {
        return;
    };
    if app.settled {
        return;
    }
    if app.outcome.is_none() {
        if now < app.start_at() {
            return;
        }
        let id = app.id.clone();
        let outcome = decide(t, id);
        t.barriers.applications.last_mut().unwrap().outcome = Some(outcome);
    }
    let app = t.barriers.applications.last_mut().unwrap();
    let status = app.view(now).status;
    if matches!(status, "NotStarted" | "InProgress") {
        return;
    }
    app.settled = true;
    if status != "Completed" {
        return;
    }
    let end = app.end_at().unwrap();
    let Some(mut applied) = app.outcome.as_mut().and_then(|o| o.snapshot.take()) else {
        return;
    };
    applied.completed_at = end;
    let b = &mut t.barriers;
    let covered: BTreeSet<&String> = applied
        .user_segments
        .iter()
        .filter(|(_, segs)| {
            segs.iter()
                .any(|s| applied.policies.iter().any(|p| &p.assigned == s))
        })
        .map(|(id, _)| id)
        .collect();
    b.covered_since.retain(|id, _| covered.contains(id));
    for id in covered {
        b.covered_since.entry(id.clone()).or_insert(end);
    }
    b.applied = Some(applied);
}

/// The segments of every user, evaluated from attributes and direct group memberships now.
pub fn user_segments(t: &Tenant) -> BTreeMap<String, Vec<String>> {
    let mut groups: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for g in t.groups.values() {
        for m in &g.members {
            groups.entry(m.as_str()).or_default().insert(g.id.clone());
        }
    }
    let none = BTreeSet::new();
    let of = |u: &User| -> Vec<String> {
        let gs = groups.get(u.id.as_str()).unwrap_or(&none);
        t.barriers
            .segments
            .iter()
            .filter(|s| s.filter.matches(u, gs))
            .map(|s| s.name.clone())
            .collect()
    };
    t.users.values().map(|u| (u.id.clone(), of(u))).collect()
}

fn decide(t: &Tenant, application_id: String) -> Outcome {
    let b = &t.barriers;
    let policies: Vec<Policy> = b.policies.iter().filter(|p| p.active).cloned().collect();
    let users = user_segments(t);
    let total = users.len();
    let fail = |category, message: String, failed| Outcome {
        total,
        failure: Some((category, message, failed)),
        snapshot: None,
    };
    for s in &b.segments {
        let assigned: Vec<&str> = policies
            .iter()
            .filter(|p| p.assigned.eq_ignore_ascii_case(&s.name))
            .map(|p| p.name.as_str())
            .collect();
        if assigned.len() > 1 {
            return fail(
                "SegmentWithMultiplePolicies",
                format!(
                    "Segment '{}' is assigned more than one policy: '{}'. Assign at most one policy to a segment.",
                    s.name,
                    assigned.join("', '")
                ),
                0,
            );
        }
    }
    let allow_of = |segment: &str| {
        policies
            .iter()
            .find(|p| p.assigned.eq_ignore_ascii_case(segment) && p.kind == PolicyType::Allow)
    };
    for p in policies.iter().filter(|p| p.kind == PolicyType::Allow) {
        for other in p.segments.iter().filter(|s| !s.eq_ignore_ascii_case(&p.assigned)) {
            if let Some(q) = allow_of(other)
                && !q.segments.iter().any(|s| s.eq_ignore_ascii_case(&p.assigned))
            {
                return fail(
                    "AsymmetricPolicies",
                    format!(
                        "AsymmetricPoliciesException: segment '{}' allows segment '{other}', but the policy '{}' assigned to segment '{other}' does not allow segment '{}'. Allow policies must be symmetrical.",
                        p.assigned, q.name, p.assigned
                    ),
                    0,
                );
            }
        }
    }
    let overlapping: Vec<(&String, &Vec<String>)> = users.iter().filter(|(_, s)| s.len() > 1).collect();
    if let Some((id, segments)) = overlapping.first() {
        let upn = t.users.get(*id).map_or(id.as_str(), |u| u.upn.as_str());
        let more = match overlapping.len() {
            1 => String::new(),
            n => format!(" ({} more users are in more than one segment.)", n - 1),
        };
        return fail(
            "UserInMultipleSegments",
            format!(
                "User '{upn}' is in more than one segment: '{}'. In single-segment mode a user may be in one segment only.{more}",
                segments.join("', '")
            ),
            overlapping.len(),
        );
    }
    Outcome {
        total,
        failure: None,
        snapshot: Some(Applied {
            application_id,
            completed_at: Timestamp::UNIX_EPOCH,
            policies,
            user_segments: users,
        }),
    }
}

/// Whether `from` can reach `to` under the applied policy of `from`'s segment.
fn direction(applied: &Applied, from: (&str, &str), to: (&str, &str)) -> Result<(), String> {
    let none = Vec::new();
    let segs = |id: &str| applied.user_segments.get(id).unwrap_or(&none);
    let (from_segs, to_segs) = (segs(from.0), segs(to.0));
    let Some(policy) = from_segs
        .iter()
        .find_map(|s| applied.policies.iter().find(|p| &p.assigned == s))
    else {
        return Ok(());
    };
    let listed = to_segs
        .iter()
        .find(|s| policy.segments.iter().any(|x| x.eq_ignore_ascii_case(s)));
    let where_to = match to_segs.first() {
        Some(s) => format!("segment '{s}'"),
        None => "no segment".to_owned(),
    };
    match (policy.kind, listed) {
        (PolicyType::Allow, Some(_)) | (PolicyType::Block, None) => Ok(()),
        (PolicyType::Allow, None) => Err(format!(
            "policy '{}' of segment '{}' ({}) does not allow {where_to} ({})",
            policy.name, policy.assigned, from.1, to.1
        )),
        (PolicyType::Block, Some(s)) => Err(format!(
            "policy '{}' of segment '{}' ({}) blocks segment '{s}' ({})",
            policy.name, policy.assigned, from.1, to.1
        )),
    }
}

/// Whether two users (id, label) can communicate under the applied state, and why.
pub fn reachable(applied: Option<&Applied>, a: (&str, &str), b: (&str, &str)) -> (bool, String) {
    let Some(applied) = applied else {
        return (true, "no information barrier policies are applied".into());
    };
    if a.0 == b.0 {
        return (true, "same user".into());
    }
    let none = Vec::new();
    let a_segs = applied.user_segments.get(a.0).unwrap_or(&none);
    let b_segs = applied.user_segments.get(b.0).unwrap_or(&none);
    if let Some(s) = a_segs.iter().find(|s| b_segs.contains(s)) {
        return (true, format!("both are in segment '{s}'"));
    }
    match direction(applied, a, b).and_then(|_| direction(applied, b, a)) {
        Ok(()) => (true, "allowed in both directions by the applied policies".into()),
        Err(why) => (false, why),
    }
}
