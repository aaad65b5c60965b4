//! The information-barrier cmdlets and their documented rules: unique names, segments that
//! exist, one policy per segment, SegmentsAllowed and SegmentsBlocked mutually exclusive, an
//! allow policy that lists its own segment (a block policy that does not), a fixed policy
//! type, removal only when Inactive, a segment in use cannot be removed, `MemberOf` values that
//! are group object ids, and no change to segments or policies while an application is
//! NotStarted or InProgress.

use super::opath::{self, FilterError};
use super::state::{Application, Barriers, Mode, Policy, PolicyType, Segment};
use super::{CmdletError, Kind, Params, error};
use crate::model::Tenant;
use jiff::Timestamp;
use serde_json::Value;

type Result<T> = std::result::Result<T, CmdletError>;

/// The server named in "couldn't be found" messages.
const SERVER: &str = "SIMPR03B001DC01.SIMPR03B001.PROD.OUTLOOK.COM";

fn not_found(identity: &str) -> CmdletError {
    error(
        Kind::NotFound,
        format!(
            "The operation couldn't be performed because object '{identity}' couldn't be found on '{SERVER}'."
        ),
    )
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Runs one cmdlet against the tenant (already advanced to `now`).
pub fn run(t: &mut Tenant, name: &str, p: &Params, scale: f64, now: Timestamp) -> Result<Vec<Value>> {
    match name.to_ascii_lowercase().as_str() {
        "new-organizationsegment" => new_segment(t, p, now),
        "set-organizationsegment" => set_segment(t, p, now),
        "get-organizationsegment" => {
            p.only(&["Identity"])?;
            let b = &t.barriers;
            match p.string("Identity")? {
                Some(i) => Ok(vec![b.segments[segment(b, &i)?].to_json()]),
                None => Ok(b.segments.iter().map(Segment::to_json).collect()),
            }
        }
        "remove-organizationsegment" => remove_segment(&mut t.barriers, p, now),
        "new-informationbarrierpolicy" => new_policy(&mut t.barriers, p, now),
        "set-informationbarrierpolicy" => set_policy(&mut t.barriers, p, now),
        "get-informationbarrierpolicy" => {
            p.only(&["Identity"])?;
            let b = &t.barriers;
            match p.string("Identity")? {
                Some(i) => Ok(vec![b.policies[policy(b, &i)?].to_json()]),
                None => Ok(b.policies.iter().map(Policy::to_json).collect()),
            }
        }
        "remove-informationbarrierpolicy" => remove_policy(&mut t.barriers, p, now),
        "start-informationbarrierpoliciesapplication" => {
            p.only(&["Force"])?;
            p.flag("Force")?;
            let b = &mut t.barriers;
            idle(b, now)?;
            let app = Application::new(scale, now);
            let out = app.to_json(now);
            b.applications.push(app);
            Ok(vec![out])
        }
        "get-informationbarrierpoliciesapplicationstatus" => application_status(&t.barriers, p, now),
        "stop-informationbarrierpoliciesapplication" => stop(&mut t.barriers, p, now),
        "get-policyconfig" => {
            p.only(&[])?;
            Ok(vec![policy_config(t)])
        }
        "set-policyconfig" => set_policy_config(t, p, now),
        _ => Err(error(
            Kind::UnknownCmdlet,
            format!(
                "The term '{name}' is not recognized as a name of a cmdlet, function, script file, or executable program."
            ),
        )),
    }
}

/// The segment or policy a cmdlet names, as (its name, the policy's assigned segment), resolved
/// before the cmdlet runs (so a removal still names what it removed): for the journal, which
/// must relate a policy to its segment even when clients name both by object id. `None` for
/// cmdlets on applications, and when the object named does not exist.
pub fn target(b: &Barriers, cmdlet: &str, p: &Params) -> Option<(String, Option<String>)> {
    let param = |name: &str| p.string(name).ok().flatten();
    let segment_name = |identity: &str| segment(b, identity).ok().map(|at| b.segments[at].name.clone());
    match cmdlet.to_ascii_lowercase().as_str() {
        "new-organizationsegment" => Some((param("Name")?, None)),
        "set-organizationsegment" | "remove-organizationsegment" => {
            Some((segment_name(&param("Identity")?)?, None))
        }
        "new-informationbarrierpolicy" => {
            let assigned = param("AssignedSegment").map(|a| segment_name(&a).unwrap_or(a));
            Some((param("Name")?, assigned))
        }
        "set-informationbarrierpolicy" | "remove-informationbarrierpolicy" => {
            let q = &b.policies[policy(b, &param("Identity")?).ok()?];
            Some((q.name.clone(), Some(q.assigned.clone())))
        }
        _ => None,
    }
}

/// Refuses changes while an application is NotStarted or InProgress.
fn idle(b: &Barriers, now: Timestamp) -> Result<()> {
    match b.running(now) {
        Some((app, status)) => Err(error(
            Kind::ApplicationRunning,
            format!(
                "The information barrier policies application '{}' is {status}. Segments, policies and applications can't be changed until it has finished.",
                app.id
            ),
        )),
        None => Ok(()),
    }
}

/// Refuses a block policy in multi-segment mode: "all policies must be allow" lists
/// (https://learn.microsoft.com/purview/information-barriers-multi-segment).
fn allow_only(b: &Barriers, kind: PolicyType) -> Result<()> {
    if b.mode == Mode::MultiSegment && kind == PolicyType::Block {
        return Err(error(
            Kind::AllowOnly,
            "SegmentsBlocked can't be used: only allow policies are permitted in multi-segment mode. Use SegmentsAllowed.",
        ));
    }
    Ok(())
}

/// A stable identity for the tenant's single PolicyConfig object.
const POLICY_CONFIG_ID: &str = "c8a3f7d2-5e41-4b9a-8d6c-1f0e2a7b9c35";

/// The object Get-/Set-PolicyConfig return. Field names: the Set-PolicyConfig page
/// (https://learn.microsoft.com/powershell/module/exchangepowershell/set-policyconfig);
/// people search is restricted by default (ib-modes-and-product-status.md, Ref §5.6).
fn policy_config(t: &Tenant) -> Value {
    serde_json::json!({
        "Identity": POLICY_CONFIG_ID,
        "Name": "PolicyConfig",
        "InformationBarrierMode": t.barriers.mode.as_str(),
        "InformationBarrierPeopleSearchRestriction": "Enabled",
    })
}

/// `Set-PolicyConfig -InformationBarrierMode SingleSegment|MultiSegment`.
fn set_policy_config(t: &mut Tenant, p: &Params, now: Timestamp) -> Result<Vec<Value>> {
    p.only(&["InformationBarrierMode"])?;
    let wanted = p.required("InformationBarrierMode")?;
    // Only SingleSegment and MultiSegment are accepted; `Legacy` was dropped from the values
    // "since you can't revert back to Legacy after switching" (office-docs-powershell PR #11147;
    // the Set-PolicyConfig page).
    let to = match Mode::parse(&wanted) {
        Some(m @ (Mode::SingleSegment | Mode::MultiSegment)) => m,
        _ => {
            return Err(error(
                Kind::Parameter,
                format!(
                    "Cannot validate argument on parameter 'InformationBarrierMode'. The argument \"{wanted}\" does not belong to the set \"SingleSegment,MultiSegment\" specified by the ValidateSet attribute. Supply an argument that is in the set and then try the command again."
                ),
            ));
        }
    };
    idle(&t.barriers, now)?;
    let b = &mut t.barriers;
    let failed = |why: String| {
        error(
            Kind::ConfigUpdate,
            format!("Information Barrier config is not updated successfully. Error: {why}"),
        )
    };
    match (b.mode, to) {
        (from, to) if from == to => {}
        // A legacy tenant cannot be switched: the 40005 error of microsoft-365-docs #11597
        // (also #11773; the fix was a doc change to check the mode first, PR #11975).
        (Mode::Legacy, _) => {
            return Err(failed(
                r#"{"error":{"code":"40005","message":"Unrecognized mode, source mode and destination mode should be 'Single' or 'MultiAllow'"}}."#
                    .into(),
            ));
        }
        // Not reversible: "you cannot revert to single segment support"
        // (https://learn.microsoft.com/purview/information-barriers-multi-segment).
        (Mode::MultiSegment, _) => {
            return Err(failed(
                "the tenant is in MultiSegment mode, and you cannot revert to single segment support.".into(),
            ));
        }
        // Multi-segment mode permits allow policies only (same page), so a block policy (Active
        // or not) holds the switch back.
        (Mode::SingleSegment, _) => {
            if let Some(q) = b.policies.iter().find(|q| q.kind == PolicyType::Block) {
                return Err(failed(format!(
                    "the information barrier policy '{}' is a SegmentsBlocked policy, and multi-segment mode permits allow policies only. Remove every block policy before switching to MultiSegment.",
                    q.name
                )));
            }
            b.mode = to;
        }
    }
    Ok(vec![policy_config(t)])
}

fn segment(b: &Barriers, identity: &str) -> Result<usize> {
    b.segments
        .iter()
        .position(|s| {
            s.name.eq_ignore_ascii_case(identity)
                || s.id.eq_ignore_ascii_case(identity)
                || s.exo_id.eq_ignore_ascii_case(identity)
        })
        .ok_or_else(|| not_found(identity))
}

fn policy(b: &Barriers, identity: &str) -> Result<usize> {
    b.policies
        .iter()
        .position(|p| {
            p.name.eq_ignore_ascii_case(identity)
                || p.id.eq_ignore_ascii_case(identity)
                || p.exo_id.eq_ignore_ascii_case(identity)
        })
        .ok_or_else(|| not_found(identity))
}

/// Parses a filter and checks that every `MemberOf` value is an existing group's object id.
fn filter(t: &Tenant, text: &str) -> Result<opath::Expr> {
    let expr = opath::parse(text).map_err(|e| match e {
        FilterError::Syntax(at) => error(
            Kind::InvalidFilter,
            format!(
                "Invalid filter syntax. For a description of the filter parameter syntax see the command help.\n\"{text}\" at position {}.",
                at + 1
            ),
        ),
        FilterError::Unsupported(name) => error(
            Kind::InvalidFilter,
            format!(
                "The property '{name}' can't be used in UserGroupFilter. Supported properties: {}.",
                opath::SUPPORTED
            ),
        ),
    })?;
    for value in expr.member_of_values() {
        if !t.groups.keys().any(|g| g.eq_ignore_ascii_case(value)) {
            return Err(error(
                Kind::InvalidGroupId,
                format!(
                    "The group id \"{value}\" is neither a validExternalDirectoryObjectId nor a ProxyAddress."
                ),
            ));
        }
    }
    Ok(expr)
}

fn new_segment(t: &mut Tenant, p: &Params, now: Timestamp) -> Result<Vec<Value>> {
    p.only(&["Name", "UserGroupFilter"])?;
    let name = p.required("Name")?;
    let text = p.required("UserGroupFilter")?;
    idle(&t.barriers, now)?;
    if t.barriers
        .segments
        .iter()
        .any(|s| s.name.eq_ignore_ascii_case(&name))
    {
        return Err(error(
            Kind::AlreadyExists,
            format!("The organization segment '{name}' already exists. Choose a different name."),
        ));
    }
    // 250 segments for legacy tenants, 5,000 otherwise:
    // https://learn.microsoft.com/purview/information-barriers-multi-segment,
    // https://learn.microsoft.com/powershell/module/exchangepowershell/set-policyconfig.
    let limit = t.barriers.segment_limit();
    if t.barriers.segments.len() >= limit {
        return Err(error(
            Kind::SegmentLimit,
            format!(
                "The organization segment '{name}' can't be created: the tenant already has {} segments, the limit of {limit} segments in {} mode.",
                t.barriers.segments.len(),
                t.barriers.mode.as_str()
            ),
        ));
    }
    let expr = filter(t, &text)?;
    let s = Segment {
        id: id(),
        exo_id: id(),
        name,
        filter_text: text,
        filter: expr,
        created: now,
        changed: now,
    };
    let out = s.to_json();
    t.barriers.segments.push(s);
    Ok(vec![out])
}

fn set_segment(t: &mut Tenant, p: &Params, now: Timestamp) -> Result<Vec<Value>> {
    p.only(&["Identity", "UserGroupFilter"])?;
    let identity = p.required("Identity")?;
    let text = p.string("UserGroupFilter")?;
    idle(&t.barriers, now)?;
    let at = segment(&t.barriers, &identity)?;
    let expr = text.as_deref().map(|f| filter(t, f)).transpose()?;
    let s = &mut t.barriers.segments[at];
    if let (Some(text), Some(expr)) = (text, expr) {
        s.filter_text = text;
        s.filter = expr;
    }
    s.changed = now;
    Ok(vec![s.to_json()])
}

fn remove_segment(b: &mut Barriers, p: &Params, now: Timestamp) -> Result<Vec<Value>> {
    p.only(&["Identity", "Force"])?;
    let identity = p.required("Identity")?;
    p.flag("Force")?;
    idle(b, now)?;
    let at = segment(b, &identity)?;
    let name = b.segments[at].name.clone();
    if let Some(q) = b.policies.iter().find(|q| q.assigned == name) {
        return Err(error(
            Kind::SegmentInUse,
            format!(
                "The organization segment '{name}' is assigned to the information barrier policy '{}'. Remove the policy first.",
                q.name
            ),
        ));
    }
    if let Some(q) = b.policies.iter().find(|q| q.segments.contains(&name)) {
        return Err(error(
            Kind::SegmentInUse,
            format!(
                "The organization segment '{name}' is used by the information barrier policy '{}'. Change or remove the policy first.",
                q.name
            ),
        ));
    }
    b.segments.remove(at);
    Ok(vec![])
}

fn state(p: &Params) -> Result<Option<bool>> {
    match p.string("State")? {
        None => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("Active") => Ok(Some(true)),
        Some(s) if s.eq_ignore_ascii_case("Inactive") => Ok(Some(false)),
        Some(s) => Err(error(
            Kind::Parameter,
            format!(
                "Cannot bind parameter 'State'. Cannot convert value \"{s}\" to type \"Microsoft.Exchange.Data.InformationBarrierPolicyState\". Specify one of the following enumerator names and try again: Inactive, Active"
            ),
        )),
    }
}

/// SegmentsAllowed or SegmentsBlocked, whichever is given (both is an error).
fn lists(p: &Params) -> Result<Option<(PolicyType, Vec<String>)>> {
    match (p.list("SegmentsAllowed")?, p.list("SegmentsBlocked")?) {
        (Some(_), Some(_)) => Err(error(
            Kind::Parameter,
            "Parameter set cannot be resolved using the specified named parameters. SegmentsAllowed and SegmentsBlocked can't be used together.",
        )),
        (Some(a), None) => Ok(Some((PolicyType::Allow, a))),
        (None, Some(b)) => Ok(Some((PolicyType::Block, b))),
        (None, None) => Ok(None),
    }
}

/// Resolves listed segments to their names (each once) and applies the self-segment rule.
fn check_list(b: &Barriers, assigned: &str, kind: PolicyType, list: &[String]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for identity in list {
        let name = &b.segments[segment(b, identity)?].name;
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let lists_self = names.iter().any(|n| n == assigned);
    if lists_self != (kind == PolicyType::Allow) {
        return Err(error(
            Kind::SelfSegment,
            format!(
                "Segment '{assigned}' will not be able to communicate with itself. Please correct the SegmentsAllowed or SegmentsBlocked parameter."
            ),
        ));
    }
    Ok(names)
}

fn new_policy(b: &mut Barriers, p: &Params, now: Timestamp) -> Result<Vec<Value>> {
    p.only(&[
        "Name",
        "AssignedSegment",
        "SegmentsAllowed",
        "SegmentsBlocked",
        "State",
        "Comment",
        "Force",
        "ModerationAllowed",
    ])?;
    let name = p.required("Name")?;
    let assigned = p.required("AssignedSegment")?;
    let active = state(p)?.unwrap_or(false);
    let comment = p.string("Comment")?;
    let moderation_allowed = p.flag("ModerationAllowed")?.unwrap_or(false);
    p.flag("Force")?;
    let Some((kind, list)) = lists(p)? else {
        return Err(error(
            Kind::Parameter,
            "Parameter set cannot be resolved using the specified named parameters. Specify SegmentsAllowed or SegmentsBlocked.",
        ));
    };
    let length = name.chars().count();
    if length > 64 {
        return Err(error(
            Kind::Parameter,
            format!(
                "Cannot validate argument on parameter 'Name'. The character length of the {length} argument is too long. Shorten the character length of the argument so it is fewer than or equal to \"64\" characters, and then try the command again."
            ),
        ));
    }
    idle(b, now)?;
    allow_only(b, kind)?;
    if b.policies.iter().any(|q| q.name.eq_ignore_ascii_case(&name)) {
        return Err(error(
            Kind::AlreadyExists,
            format!("The information barrier policy '{name}' already exists. Choose a different name."),
        ));
    }
    let assigned = b.segments[segment(b, &assigned)?].name.clone();
    if let Some(q) = b.policies.iter().find(|q| q.assigned == assigned) {
        return Err(error(
            Kind::SegmentHasPolicy,
            format!(
                "Segment '{assigned}' is already assigned to the information barrier policy '{}'. A segment can be assigned only one policy.",
                q.name
            ),
        ));
    }
    let segments = check_list(b, &assigned, kind, &list)?;
    let policy = Policy {
        id: id(),
        exo_id: id(),
        name,
        assigned,
        kind,
        segments,
        active,
        comment,
        moderation_allowed,
        created: now,
        changed: now,
    };
    let out = policy.to_json();
    b.policies.push(policy);
    Ok(vec![out])
}

fn set_policy(b: &mut Barriers, p: &Params, now: Timestamp) -> Result<Vec<Value>> {
    p.only(&[
        "Identity",
        "SegmentsAllowed",
        "SegmentsBlocked",
        "State",
        "Comment",
        "Force",
        "ModerationAllowed",
    ])?;
    let identity = p.required("Identity")?;
    let active = state(p)?;
    let comment = p.string("Comment")?;
    let moderation_allowed = p.flag("ModerationAllowed")?;
    p.flag("Force")?;
    let list = lists(p)?;
    idle(b, now)?;
    if let Some((kind, _)) = &list {
        allow_only(b, *kind)?;
    }
    let at = policy(b, &identity)?;
    let current = &b.policies[at];
    let segments = match list {
        Some((kind, _)) if kind != current.kind => {
            let (is, wanted) = match current.kind {
                PolicyType::Allow => ("SegmentsAllowed", "SegmentsBlocked"),
                PolicyType::Block => ("SegmentsBlocked", "SegmentsAllowed"),
            };
            return Err(error(
                Kind::PolicyTypeFixed,
                format!(
                    "The information barrier policy '{}' is a {is} policy and can't be changed to a {wanted} policy. Remove it and create a new policy.",
                    current.name
                ),
            ));
        }
        Some((kind, list)) => Some(check_list(b, &current.assigned, kind, &list)?),
        None => None,
    };
    let q = &mut b.policies[at];
    if let Some(s) = segments {
        q.segments = s;
    }
    if let Some(a) = active {
        q.active = a;
    }
    if let Some(c) = comment {
        q.comment = Some(c);
    }
    if let Some(m) = moderation_allowed {
        q.moderation_allowed = m;
    }
    q.changed = now;
    Ok(vec![q.to_json()])
}

fn remove_policy(b: &mut Barriers, p: &Params, now: Timestamp) -> Result<Vec<Value>> {
    p.only(&["Identity", "Force"])?;
    let identity = p.required("Identity")?;
    p.flag("Force")?;
    idle(b, now)?;
    let at = policy(b, &identity)?;
    if b.policies[at].active {
        return Err(error(
            Kind::PolicyActive,
            format!(
                "The information barrier policy '{}' is Active. Set its State to Inactive before removing it.",
                b.policies[at].name
            ),
        ));
    }
    b.policies.remove(at);
    Ok(vec![])
}

fn application(b: &Barriers, identity: &str) -> Result<usize> {
    b.applications
        .iter()
        .position(|a| a.id.eq_ignore_ascii_case(identity))
        .ok_or_else(|| not_found(identity))
}

fn application_status(b: &Barriers, p: &Params, now: Timestamp) -> Result<Vec<Value>> {
    p.only(&["Identity", "All"])?;
    if let Some(identity) = p.string("Identity")? {
        return Ok(vec![b.applications[application(b, &identity)?].to_json(now)]);
    }
    let newest_first = b.applications.iter().rev();
    if p.flag("All")?.unwrap_or(false) {
        Ok(newest_first.map(|a| a.to_json(now)).collect())
    } else {
        Ok(newest_first.take(1).map(|a| a.to_json(now)).collect())
    }
}

fn stop(b: &mut Barriers, p: &Params, now: Timestamp) -> Result<Vec<Value>> {
    p.only(&["Identity", "Force"])?;
    let identity = p.required("Identity")?;
    p.flag("Force")?;
    let at = application(b, &identity)?;
    let app = &mut b.applications[at];
    let status = app.view(now).status;
    if !matches!(status, "NotStarted" | "InProgress") {
        return Err(error(
            Kind::ApplicationNotRunning,
            format!(
                "The information barrier policies application '{}' isn't running (Status: {status}).",
                app.id
            ),
        ));
    }
    app.stop_requested.get_or_insert(now);
    Ok(vec![app.to_json(now)])
}
