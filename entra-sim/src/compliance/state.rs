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
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How long an application waits before processing begins (and a Stop takes to act).
pub const START_DELAY_SECONDS: f64 = 30.0 * 60.0;
/// Processing speed.
pub const USERS_PER_HOUR: f64 = 5000.0;

/// The tenant's information-barrier mode (`InformationBarrierMode` of `Get-PolicyConfig`).
///
/// Legacy: IB enabled before 2023-02-15, at most 250 segments and one segment per user
/// (https://learn.microsoft.com/purview/information-barriers-multi-segment). SingleSegment and
/// MultiSegment: non-legacy, at most 5,000 segments; one segment per user, or up to 10 in
/// MultiSegment (https://learn.microsoft.com/powershell/module/exchangepowershell/set-policyconfig).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Legacy,
    #[default]
    SingleSegment,
    MultiSegment,
}

/// Segments a user may be in under MultiSegment mode (Set-PolicyConfig page, cited on [`Mode`]).
pub const MULTI_SEGMENTS_PER_USER: usize = 10;

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Legacy, Mode::SingleSegment, Mode::MultiSegment];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Legacy => "Legacy",
            Mode::SingleSegment => "SingleSegment",
            Mode::MultiSegment => "MultiSegment",
        }
    }

    /// A mode by name, without regard to case (as PowerShell binds enum values).
    pub fn parse(name: &str) -> Option<Mode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// The most segments a tenant may hold: 250 for legacy tenants, 5,000 otherwise
    /// (https://learn.microsoft.com/purview/information-barriers-multi-segment and the
    /// Set-PolicyConfig page).
    pub fn segment_limit(self) -> usize {
        match self {
            Mode::Legacy => 250,
            Mode::SingleSegment | Mode::MultiSegment => 5000,
        }
    }
}

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
    /// The tenant's mode when processing began (it decides the conduit rule of [`reachable`]).
    pub mode: Mode,
}

#[derive(Default)]
pub struct Barriers {
    /// The tenant's IB mode (`informationBarrierMode` in the seed; `Set-PolicyConfig`).
    pub mode: Mode,
    /// A lower segment limit than the mode's, for tests (`informationBarrierSegmentLimit` in the
    /// seed); simulator-only.
    pub segment_limit_override: Option<usize>,
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
    /// The most segments the tenant may hold now.
    pub fn segment_limit(&self) -> usize {
        self.segment_limit_override
            .unwrap_or_else(|| self.mode.segment_limit())
    }

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
            // The mirror rule: the listed segment must allow this one back, and a segment with
            // no Active allow policy does not (microsoft-365-docs #1837: a one-way allow policy
            // fails with AsymmetricPoliciesException even when the other segment has no policy).
            let why = match allow_of(other) {
                Some(q) if q.segments.iter().any(|s| s.eq_ignore_ascii_case(&p.assigned)) => continue,
                Some(q) => format!(
                    "the policy '{}' assigned to segment '{other}' does not allow segment '{}'",
                    q.name, p.assigned
                ),
                None => format!(
                    "segment '{other}' has no Active allow policy that allows segment '{}'",
                    p.assigned
                ),
            };
            return fail(
                "AsymmetricPolicies",
                format!(
                    "AsymmetricPoliciesException: segment '{}' allows segment '{other}', but {why}. Allow policies must be symmetrical.",
                    p.assigned
                ),
                0,
            );
        }
    }
    if let Some(failure) = match b.mode {
        // Legacy and single-segment mode: one segment per user; a user in two fails the
        // application (troubleshooting doc: "check for users in more than one segment",
        // https://learn.microsoft.com/office365/troubleshoot/information-barriers/information-barriers-troubleshooting).
        Mode::Legacy | Mode::SingleSegment => too_many_segments(t, &users, 1),
        // Multi-segment mode: allow policies only ("all policies must be allow" / "multi-segment
        // mode requires allow policies only", https://learn.microsoft.com/purview/information-barriers-multi-segment),
        // so an Active block policy fails the application; and at most 10 segments per user
        // (https://learn.microsoft.com/powershell/module/exchangepowershell/set-policyconfig).
        Mode::MultiSegment => policies
            .iter()
            .find(|p| p.kind == PolicyType::Block)
            .map(|p| {
                (
                    "BlockPolicyInMultiSegmentMode",
                    format!(
                        "The information barrier policy '{}' of segment '{}' is a SegmentsBlocked policy. Only allow policies are permitted in multi-segment mode.",
                        p.name, p.assigned
                    ),
                    0,
                )
            })
            .or_else(|| too_many_segments(t, &users, MULTI_SEGMENTS_PER_USER)),
    } {
        let (category, message, failed) = failure;
        return fail(category, message, failed);
    }
    Outcome {
        total,
        failure: None,
        snapshot: Some(Applied {
            application_id,
            completed_at: Timestamp::UNIX_EPOCH,
            policies,
            user_segments: users,
            mode: b.mode,
        }),
    }
}

/// The failure of an application whose users may be in at most `limit` segments, if any user
/// is in more.
fn too_many_segments(
    t: &Tenant,
    users: &BTreeMap<String, Vec<String>>,
    limit: usize,
) -> Option<(&'static str, String, usize)> {
    let over: Vec<(&String, &Vec<String>)> = users.iter().filter(|(_, s)| s.len() > limit).collect();
    let (id, segments) = over.first()?;
    let upn = t.users.get(*id).map_or(id.as_str(), |u| u.upn.as_str());
    let list = segments.join("', '");
    Some(if limit == 1 {
        let more = match over.len() {
            1 => String::new(),
            n => format!(" ({} more users are in more than one segment.)", n - 1),
        };
        (
            "UserInMultipleSegments",
            format!(
                "User '{upn}' is in more than one segment: '{list}'. In single-segment mode a user may be in one segment only.{more}"
            ),
            over.len(),
        )
    } else {
        let more = match over.len() {
            1 => String::new(),
            n => format!(" ({} more users are in more than {limit} segments.)", n - 1),
        };
        (
            "UserInTooManySegments",
            format!(
                "User '{upn}' is in {} segments: '{list}'. In multi-segment mode a user may be in at most {limit} segments.{more}",
                segments.len()
            ),
            over.len(),
        )
    })
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn quoted(names: &[String]) -> String {
    match names {
        [one] => format!("segment '{one}'"),
        many => format!("any of segments '{}'", many.join("', '")),
    }
}

/// The applied policies assigned to a segment (an application leaves at most one).
fn policies_of<'a>(applied: &'a Applied, segment: &'a str) -> impl Iterator<Item = &'a Policy> {
    applied
        .policies
        .iter()
        .filter(move |p| same(&p.assigned, segment))
}

/// Whether segment `a`'s effective allow list names segment `b`, on the declared lists: every
/// policy of `a` permits `b` (an allow policy lists it, a block policy does not); a segment
/// without a policy is unrestricted, as in [`direction`].
fn names(applied: &Applied, a: &str, b: &str) -> bool {
    policies_of(applied, a).all(|p| match p.kind {
        PolicyType::Allow => p.segments.iter().any(|s| same(s, b)),
        PolicyType::Block => !p.segments.iter().any(|s| same(s, b)),
    })
}

/// The "conduit" rule, MultiSegment mode only: an allow policy of segment S whose listed
/// segments other than S include two that are not mutually allowed (neither one's effective
/// allow list names the other, on the declared lists) is treated as listing S only, so that
/// S's users cannot pass information between the two. Source: a techcommunity reply (author
/// unverified) on IB v2 compiling policies into per-user "stamped" segments, recorded in the
/// project's reference notes (ib-modes-and-product-status.md §1) [unconfirmed]. Gives the pair.
fn conduit<'a>(applied: &Applied, p: &'a Policy) -> Option<(&'a str, &'a str)> {
    if applied.mode != Mode::MultiSegment || p.kind != PolicyType::Allow {
        return None;
    }
    let others: Vec<&str> = p
        .segments
        .iter()
        .map(String::as_str)
        .filter(|s| !same(s, &p.assigned))
        .collect();
    others.iter().enumerate().find_map(|(i, x)| {
        others[i + 1..]
            .iter()
            .find(|y| !names(applied, x, y) && !names(applied, y, x))
            .map(|y| (*x, *y))
    })
}

/// Whether `from` can reach `to` (ids and labels) under the applied policies: iff EVERY policy
/// assigned to any of `from`'s segments permits `to`. An allow policy permits `to` when it
/// lists at least one of `to`'s segments; a block policy when it lists none of them. A user in
/// no segment, or only in segments without policies, passes (nothing restricts them). An allow
/// policy never permits a user in no segment: users in no segment are on no allow list (not
/// said in as many words by the docs; the most restrictive reading, ib-modes-and-product-status.md
/// §0). Sources: an allow policy lets its segment "communicate with only certain other
/// segments", a block policy covers one direction
/// (https://learn.microsoft.com/purview/information-barriers-policies). Several policies on one
/// user (MultiSegment mode, https://learn.microsoft.com/purview/information-barriers-multi-segment)
/// must all permit: the docs are silent on combining them, so the most restrictive reading.
fn direction(applied: &Applied, from: (&str, &str), to: (&str, &str)) -> Result<(), String> {
    let none = Vec::new();
    let segs = |id: &str| applied.user_segments.get(id).unwrap_or(&none);
    let (from_segs, to_segs) = (segs(from.0), segs(to.0));
    for s in from_segs {
        for policy in policies_of(applied, s) {
            let lists = |x: &String| policy.segments.iter().any(|l| same(l, x));
            let head = format!(
                "policy '{}' of segment '{}' ({})",
                policy.name, policy.assigned, from.1
            );
            match policy.kind {
                PolicyType::Allow if to_segs.is_empty() => {
                    return Err(format!(
                        "{head} does not allow users in no segment ({}): they are on no allow list",
                        to.1
                    ));
                }
                PolicyType::Allow => {
                    if let Some((x, y)) = conduit(applied, policy) {
                        return Err(format!(
                            "{head} allows only its own segment in multi-segment mode, because its listed segments '{x}' and '{y}' do not allow each other (conduit rule); it does not allow {} ({})",
                            quoted(to_segs),
                            to.1
                        ));
                    }
                    if !to_segs.iter().any(lists) {
                        return Err(format!("{head} does not allow {} ({})", quoted(to_segs), to.1));
                    }
                }
                PolicyType::Block => {
                    if let Some(x) = to_segs.iter().find(|x| lists(x)) {
                        return Err(format!("{head} blocks segment '{x}' ({})", to.1));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whether two users (id, label) can communicate under the applied state, and why: the same
/// user, or users sharing any segment, always can ("If users share assignment to the same
/// segment, they are compatible", https://learn.microsoft.com/purview/information-barriers-multi-segment;
/// IB cannot block a segment from itself, OfficeDocs-SkypeForBusiness#5155); otherwise iff
/// [`direction`] passes both ways.
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
    if let Some(s) = a_segs.iter().find(|s| b_segs.iter().any(|x| same(x, s))) {
        return (true, format!("both are in segment '{s}'"));
    }
    match direction(applied, a, b).and_then(|_| direction(applied, b, a)) {
        Ok(()) => (true, "allowed in both directions by the applied policies".into()),
        Err(why) => (false, why),
    }
}
