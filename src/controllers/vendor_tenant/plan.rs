//! The pure heart of the VendorTenant reconciler: from what [`observe`](super::observe) read,
//! the ordered writes that bring the vendor's groups, engineers, group licences and generated
//! BarrierSegments to the spec, and the problems a person must fix. The operator and the `plan`
//! command both call [`plan`], so what `plan` shows is what the operator does.

use super::generated_segments::{engineer_attribute, generated, generated_names};
use super::groups::{choose, membership_changes};
use super::seats::{self, Evaluation};
use crate::barriers::IbMode;
use crate::controllers::refusal::{Refusal, refusal};
use crate::controllers::remote_assist_license::plan::BarrierAttribute;
use crate::crd::vendor_tenant::{LicenseMode, MembershipMode};
use crate::crd::{BarrierSegment, RemoteAssistLicense, VendorTenant};
use crate::directory::{AssignedLicense, DirGroup, DirUser, SkuTable};
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Which of the vendor's two groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Accounts,
    Engineers,
}

/// A group as the tenant showed it: the one whose object id status holds, or else every group
/// of the display name.
#[derive(Clone, Debug)]
pub enum GroupSeen {
    ById(DirGroup),
    Named(Vec<DirGroup>),
}

impl GroupSeen {
    pub fn candidates(&self) -> &[DirGroup] {
        match self {
            GroupSeen::ById(g) => std::slice::from_ref(g),
            GroupSeen::Named(c) => c,
        }
    }
}

/// Everything the plan decides from, read by `observe` (or by the `plan` command).
#[derive(Clone, Debug)]
pub struct Observed {
    pub accounts_group: GroupSeen,
    pub engineers_group: GroupSeen,
    /// Each listed engineer's UPN and user, if the tenant has one.
    pub engineers: Vec<(String, Option<DirUser>)>,
    /// Direct members of each group the engineers' group may bind to, by group id.
    pub engineer_members: BTreeMap<String, BTreeSet<String>>,
    /// Every VendorTenant (an engineer listed by two is placed by neither).
    pub vendors: Vec<Arc<VendorTenant>>,
    /// The BarrierSegments that exist (in the cluster, or in the manifests for `plan`).
    pub segments: Vec<Arc<BarrierSegment>>,
    /// This vendor's RemoteAssistLicenses.
    pub accounts: Vec<Arc<RemoteAssistLicense>>,
    pub skus: SkuTable,
    /// The tenant's IB mode, if known: it decides the generated design.
    pub mode: Option<IbMode>,
    /// Why the compliance credential cannot be used, if it cannot (a revoked sign-in).
    pub compliance_problem: Option<String>,
}

/// A group a step writes to: one that exists, or the one this pass creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRef {
    Existing { id: String, name: String },
    New { role: Role, name: String },
}

impl GroupRef {
    pub fn name(&self) -> &str {
        match self {
            GroupRef::Existing { name, .. } | GroupRef::New { name, .. } => name,
        }
    }
}

/// One write, in the order it must run.
#[derive(Clone, Debug)]
pub enum Step {
    CreateGroup {
        role: Role,
        name: String,
    },
    PlaceEngineer {
        user_id: String,
        upn: String,
        attribute: BarrierAttribute,
    },
    AddMembers {
        group: GroupRef,
        ids: Vec<String>,
    },
    RemoveMember {
        group_id: String,
        group_name: String,
        id: String,
    },
    ApplySegment {
        segment: Box<BarrierSegment>,
    },
    /// A generated segment of the other design (the tenant's IB mode changed).
    DeleteSegment {
        name: String,
    },
    AssignGroupLicenses {
        group: GroupRef,
        add: Vec<AssignedLicense>,
        remove: Vec<String>,
    },
}

impl Step {
    /// The step's kind, stable for tests and the plan's JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::CreateGroup { .. } => "CreateGroup",
            Step::PlaceEngineer { .. } => "PlaceEngineer",
            Step::AddMembers { .. } => "AddMembers",
            Step::RemoveMember { .. } => "RemoveMember",
            Step::ApplySegment { .. } => "GenerateSegment",
            Step::DeleteSegment { .. } => "DeleteGeneratedSegment",
            Step::AssignGroupLicenses { .. } => "AssignGroupLicenses",
        }
    }

    /// The Event reason when the step is done.
    pub fn event_reason(&self) -> &'static str {
        match self {
            Step::CreateGroup { .. } => "GroupCreated",
            Step::PlaceEngineer { .. } => "EngineerPlaced",
            Step::AddMembers { .. } => "EngineersAdded",
            Step::RemoveMember { .. } => "EngineersRemoved",
            Step::ApplySegment { .. } => "SegmentGenerated",
            Step::DeleteSegment { .. } => "SegmentRetired",
            Step::AssignGroupLicenses { .. } => "GroupLicensesChanged",
        }
    }

    /// The object the step writes: a group or segment name, or an engineer's UPN.
    pub fn object(&self) -> String {
        match self {
            Step::CreateGroup { name, .. } => name.clone(),
            Step::PlaceEngineer { upn, .. } => upn.clone(),
            Step::AddMembers { group, .. } | Step::AssignGroupLicenses { group, .. } => group.name().into(),
            Step::RemoveMember { group_name, .. } => group_name.clone(),
            Step::ApplySegment { segment } => segment.name_any(),
            Step::DeleteSegment { name } => name.clone(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Step::CreateGroup { name, .. } => format!("create security group {name}"),
            Step::PlaceEngineer { upn, attribute, .. } => {
                format!("set {upn}'s barrier attribute to {}", attribute.value)
            }
            Step::AddMembers { group, ids } => format!("add {} engineer(s) to {}", ids.len(), group.name()),
            Step::RemoveMember { group_name, id, .. } => {
                format!("remove member {id}, not listed, from {group_name}")
            }
            Step::ApplySegment { segment } => format!("generate BarrierSegment {}", segment.name_any()),
            Step::DeleteSegment { name } => {
                format!("delete generated BarrierSegment {name}, which the tenant's IB mode no longer uses")
            }
            Step::AssignGroupLicenses { group, add, remove } => format!(
                "assign {} licence(s) to group {}, remove {}",
                add.len(),
                group.name(),
                remove.len()
            ),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// In the order the `GroupsReady` condition reports them (the first one wins).
    pub problems: Vec<Refusal>,
    /// Groups that were bound before and are gone: (name, the group bound now).
    pub rebound: Vec<(String, String)>,
    pub accounts_group: Option<GroupRef>,
    pub engineers_group: Option<GroupRef>,
    /// The seat pre-flight.
    pub seats: Evaluation,
}

/// The plan for `vt`. `owner_uid` is the VendorTenant's uid; `None` (the `plan` command, which
/// knows no uids) takes any operator-made group as this vendor's.
pub fn plan(vt: &VendorTenant, owner_uid: Option<&str>, status_ids: [Option<&str>; 2], o: &Observed) -> Plan {
    let mut p = Plan {
        steps: Vec::new(),
        problems: Vec::new(),
        rebound: Vec::new(),
        accounts_group: None,
        engineers_group: None,
        seats: seats::evaluate(vt, &o.accounts, &o.skus),
    };
    let accounts = bind(
        &mut p,
        Role::Accounts,
        vt.accounts_group_name(),
        &o.accounts_group,
        owner_uid,
        status_ids[0],
    );
    let engineers = bind(
        &mut p,
        Role::Engineers,
        vt.engineers_group_name(),
        &o.engineers_group,
        owner_uid,
        status_ids[1],
    );
    if let Some(group) = &engineers {
        plan_engineers(&mut p, vt, group, o);
    }
    if vt.generates_segments() {
        plan_segments(&mut p, vt, owner_uid, o);
    }
    if vt.license_mode() == LicenseMode::Group
        && let Some(group) = &accounts
    {
        plan_group_licenses(&mut p, group, owner_uid);
    }
    // Every vendor's barriers depend on the compliance credential, generated or not.
    if let Some(why) = &o.compliance_problem {
        p.problems.push(refusal("ComplianceSignInRequired", why.clone()));
    }
    p.accounts_group = accounts.map(|(r, _)| r);
    p.engineers_group = engineers.map(|(r, _)| r);
    p
}

/// Binds one group (pure): the status id's group, else the one [`choose`] picks, else a
/// `CreateGroup` step; a conflict is a problem and binds nothing.
fn bind(
    p: &mut Plan,
    role: Role,
    name: String,
    seen: &GroupSeen,
    owner_uid: Option<&str>,
    status_id: Option<&str>,
) -> Option<(GroupRef, Option<DirGroup>)> {
    let chosen = match seen {
        GroupSeen::ById(g) => Ok(Some(g.clone())),
        GroupSeen::Named(candidates) => choose(candidates.clone(), owner_uid, &name),
    };
    match chosen {
        Ok(Some(g)) => {
            if status_id.is_some_and(|id| id != g.id) {
                p.rebound.push((name.clone(), g.id.clone()));
            }
            let r = GroupRef::Existing {
                id: g.id.clone(),
                name,
            };
            Some((r, Some(g)))
        }
        Ok(None) => {
            p.steps.push(Step::CreateGroup {
                role,
                name: name.clone(),
            });
            Some((GroupRef::New { role, name }, None))
        }
        Err(message) => {
            p.problems.push(refusal("Conflict", message));
            None
        }
    }
}

/// The engineers: their barrier attribute (unless another vendor lists them too) and their
/// membership. With an unknown engineer nothing is removed: the list may just be mistyped.
fn plan_engineers(p: &mut Plan, vt: &VendorTenant, (group, _): &(GroupRef, Option<DirGroup>), o: &Observed) {
    let Some(se) = &vt.spec.support_engineers else {
        return;
    };
    let known: Vec<(String, DirUser)> = o
        .engineers
        .iter()
        .filter_map(|(upn, u)| u.clone().map(|u| (upn.clone(), u)))
        .collect();
    let unknown: Vec<String> = o
        .engineers
        .iter()
        .filter(|(_, u)| u.is_none())
        .map(|(upn, _)| upn.clone())
        .collect();
    let placed = engineer_changes(vt, &known, o);
    if let Some(attribute) = engineer_attribute(vt, o.mode) {
        for user in placed.write {
            p.steps.push(Step::PlaceEngineer {
                user_id: user.id.clone(),
                upn: user.user_principal_name.clone(),
                attribute: attribute.clone(),
            });
        }
    }
    if !placed.shared.is_empty() {
        let message = format!(
            "{} also serve another vendor; in a single-segment tenant a user can be in one segment only, so their barrier attribute is left as it is and they serve neither vendor. Fix: switch the tenant to multi-segment mode (Set-PolicyConfig -InformationBarrierMode MultiSegment, which cannot be undone; see docs/barriers.md), where an engineer is in each vendor's segment",
            placed.shared.join(", ")
        );
        p.problems.push(refusal("EngineerShared", message));
    }
    if !placed.over_limit.is_empty() {
        let message = format!(
            "{} already serve {} other vendors; a user can be in at most {} segments, so they are not added to this vendor's engineers",
            placed.over_limit.join(", "),
            placed.limit,
            crate::barriers::mode::MULTI_SEGMENTS_PER_USER
        );
        p.problems.push(refusal("EngineerSegmentLimit", message));
    }
    let wanted: BTreeSet<String> = known
        .iter()
        .filter(|(upn, _)| !placed.over_limit.contains(upn))
        .map(|(_, u)| u.id.clone())
        .collect();
    let exclusive = se.membership.unwrap_or_default() == MembershipMode::Exclusive;
    let current = match group {
        GroupRef::Existing { id, .. } => o.engineer_members.get(id).cloned().unwrap_or_default(),
        GroupRef::New { .. } => BTreeSet::new(),
    };
    let (add, remove) = membership_changes(&wanted, &current, exclusive && unknown.is_empty());
    if !add.is_empty() {
        p.steps.push(Step::AddMembers {
            group: group.clone(),
            ids: add,
        });
    }
    if let GroupRef::Existing { id, name } = group {
        p.steps
            .extend(remove.into_iter().map(|member| Step::RemoveMember {
                group_id: id.clone(),
                group_name: name.clone(),
                id: member,
            }));
    }
    if !unknown.is_empty() {
        p.problems.push(refusal(
            "EngineerNotFound",
            format!("no user {} in the tenant", unknown.join(", ")),
        ));
    }
}

/// How the listed engineers are placed.
pub struct Placement<'a> {
    /// Engineers whose barrier attribute must be written.
    pub write: Vec<&'a DirUser>,
    /// Single-segment mode: engineers another vendor lists too (reported, not flipped back and
    /// forth between two vendors' segments).
    pub shared: Vec<String>,
    /// Multi-segment mode: engineers who would be in more segments than a user may be; they
    /// keep the vendors that come first by name.
    pub over_limit: Vec<String>,
    /// The segments an engineer may hold for vendors, as counted for `over_limit`.
    pub limit: usize,
}

/// The vendors (by name) that list `upn` as an engineer.
fn vendors_of(upn: &str, vendors: &[Arc<VendorTenant>]) -> Vec<String> {
    let mut names: Vec<String> = vendors
        .iter()
        .filter(|v| {
            v.spec
                .support_engineers
                .as_ref()
                .is_some_and(|se| se.members.iter().any(|m| m.eq_ignore_ascii_case(upn)))
        })
        .map(|v| v.name_any())
        .collect();
    names.sort();
    names
}

/// How the engineers are placed (pure). In multi-segment mode every engineer may serve up to
/// ten vendors (one fewer with a host segment, which holds them too).
pub fn engineer_changes<'a>(
    vt: &VendorTenant,
    engineers: &'a [(String, DirUser)],
    o: &Observed,
) -> Placement<'a> {
    let host = o.segments.iter().any(|s| s.spec.members.host_staff.is_some());
    let limit = crate::barriers::mode::MULTI_SEGMENTS_PER_USER - usize::from(host);
    let mut out = Placement {
        write: Vec::new(),
        shared: Vec::new(),
        over_limit: Vec::new(),
        limit,
    };
    let name = vt.name_any();
    for (upn, user) in engineers {
        let serves = vendors_of(upn, &o.vendors);
        if o.mode.is_some_and(IbMode::multi) {
            if serves.iter().position(|v| *v == name).is_some_and(|i| i >= limit) {
                out.over_limit.push(upn.clone());
            }
            continue;
        }
        let Some(attr) = engineer_attribute(vt, o.mode) else {
            continue;
        };
        if serves.iter().any(|v| *v != name) {
            out.shared.push(upn.clone());
        } else if attr.observed(user).as_deref() != Some(&attr.value) {
            out.write.push(user);
        }
    }
    out
}

/// The generated BarrierSegments: written when missing or different; a segment of that name
/// this vendor does not own is never taken over.
fn plan_segments(p: &mut Plan, vt: &VendorTenant, owner_uid: Option<&str>, o: &Observed) {
    let Some(mode) = o.mode else {
        let message = "the tenant's information-barrier mode is not known yet (Get-PolicyConfig), and it decides the generated design; the generated BarrierSegments are left as they are".into();
        p.problems.push(refusal("BarrierModeUnknown", message));
        return;
    };
    let wanted = generated(vt, mode);
    for name in generated_names(vt) {
        let retired = !wanted.iter().any(|w| w.name_any() == name);
        let have = o.segments.iter().find(|s| s.name_any() == name);
        if retired
            && let Some(have) = have
            && owned_by(have, owner_uid)
            && have.metadata.deletion_timestamp.is_none()
        {
            p.steps.push(Step::DeleteSegment { name });
        }
    }
    for want in wanted {
        let name = want.name_any();
        match o.segments.iter().find(|s| s.name_any() == name) {
            Some(have) if !owned_by(have, owner_uid) => {
                let message =
                    format!("BarrierSegment {name} exists and is not generated by this VendorTenant");
                p.problems.push(refusal("SegmentNameTaken", message));
                return;
            }
            Some(have) if have.spec == want.spec && have.labels() == want.labels() => continue,
            _ => p.steps.push(Step::ApplySegment {
                segment: Box::new(want),
            }),
        }
    }
}

/// Whether the VendorTenant with `uid` owns the segment; `None` (`plan`) counts a segment that
/// names any owner as owned.
pub fn owned_by(s: &BarrierSegment, uid: Option<&str>) -> bool {
    s.owner_references()
        .iter()
        .any(|o| uid.is_none_or(|uid| o.uid == uid))
}

/// The accounts group's own licences in `Group` mode. Only a group the operator created loses
/// licences the spec does not ask for.
fn plan_group_licenses(
    p: &mut Plan,
    (group, existing): &(GroupRef, Option<DirGroup>),
    owner_uid: Option<&str>,
) {
    let Ok(wanted) = &p.seats.resolved else {
        return;
    };
    let (add, remove) = match existing {
        Some(g) => {
            let owned = g
                .managed_by()
                .is_some_and(|m| owner_uid.is_none_or(|uid| uid == m));
            seats::group_changes(g, wanted, owned)
        }
        None => (wanted.clone(), Vec::new()),
    };
    if !add.is_empty() || !remove.is_empty() {
        p.steps.push(Step::AssignGroupLicenses {
            group: group.clone(),
            add,
            remove,
        });
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
