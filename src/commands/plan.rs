//! `plan`: what the operator would change in the tenant for a set of manifests (what a GitOps
//! pull request contains), from a read-only look at the tenant. It reuses the reconcilers'
//! observe and pure plan steps, so a plan shown here and the work the operator does cannot
//! disagree. It only ever reads: every request is a GET (Graph) or a `Get-*` cmdlet.

use super::{Manifests, Tenant};
use crate::barriers::IbMode;
use crate::barriers::reach::Matrix;
use crate::compliance::definitions::{Policy, Segment};
use crate::controllers::barrier_segment::members::Scope;
use crate::controllers::barrier_segment::plan::{self as segments, Rejection};
use crate::controllers::barrier_segment::{invariant, preview};
use crate::controllers::refusal::Refusal;
use crate::controllers::remote_assist_license::course::course;
use crate::controllers::remote_assist_license::observe::license_error_stale;
use crate::controllers::remote_assist_license::plan::{Desired, Observed as AccountObserved, SecretState};
use crate::controllers::vendor_tenant::generated_segments::generated;
use crate::controllers::vendor_tenant::plan::{GroupRef, GroupSeen, Observed, plan as vendor_plan};
use crate::crd::barrier_segment::CreatedObjects;
use crate::crd::conditions::Status;
use crate::crd::{BarrierSegment, RemoteAssistLicense, VendorTenant};
use kube::ResourceExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One planned write: its kind (the step's name in the reconciler's plan), the object it
/// writes (a group, segment or policy name, or a user principal name) and the plain words.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedAction {
    pub kind: &'static str,
    pub object: String,
    pub description: String,
}

/// The plan for one resource.
#[derive(Debug, Default, Serialize)]
pub struct ResourcePlan {
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub actions: Vec<PlannedAction>,
    /// Why something cannot be done (the condition the operator would report).
    pub problems: Vec<String>,
}

impl ResourcePlan {
    fn act(&mut self, kind: &'static str, object: impl Into<String>, description: String) {
        self.actions.push(PlannedAction {
            kind,
            object: object.into(),
            description,
        });
    }

    fn refused(&mut self, r: &Refusal) {
        self.problems.push(format!("{} ({})", r.message, r.reason));
    }
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The tenant's IB mode, if it could be read.
    pub information_barrier_mode: Option<IbMode>,
    pub resources: Vec<ResourcePlan>,
    /// Who could reach whom once the planned policies are applied.
    pub reachability: Option<Matrix>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn changes(&self) -> usize {
        self.resources.iter().map(|r| r.actions.len()).sum()
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for r in &self.resources {
            let ns = r.namespace.as_ref().map(|n| format!("{n}/")).unwrap_or_default();
            let state = if r.actions.is_empty() && r.problems.is_empty() {
                "  (no changes)"
            } else {
                ""
            };
            out.push_str(&format!("{} {ns}{}{state}\n", r.kind, r.name));
            for a in &r.actions {
                out.push_str(&format!("  + {}\n", a.description));
            }
            for p in &r.problems {
                out.push_str(&format!("  ! {p}\n"));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if let Some(m) = &self.reachability {
            out.push_str("\nOnce these policies are applied, ");
            out.push_str(&m.render());
        }
        out.push_str(&format!(
            "\n{} change(s) planned; nothing was changed.\n",
            self.changes()
        ));
        out
    }
}

/// What the VendorTenant reconciler would read, from the tenant and the manifests (which stand
/// in for the cluster: their vendors, segments and licences).
async fn observe_vendor(
    t: &Tenant,
    vt: &VendorTenant,
    m: &Manifests,
    existing: &[Arc<BarrierSegment>],
) -> anyhow::Result<Observed> {
    let dir = &t.directory;
    let accounts_group = GroupSeen::Named(dir.groups_named(&vt.accounts_group_name()).await?);
    let engineers_group = GroupSeen::Named(dir.groups_named(&vt.engineers_group_name()).await?);
    let mut engineers = Vec::new();
    for upn in vt.spec.support_engineers.iter().flat_map(|se| &se.members) {
        engineers.push((upn.clone(), dir.user(upn).await?));
    }
    let mut engineer_members = BTreeMap::new();
    if vt.spec.support_engineers.is_some() {
        for g in engineers_group.candidates() {
            engineer_members.insert(g.id.clone(), dir.members(&g.id).await?);
        }
    }
    let name = vt.metadata.name.clone().unwrap_or_default();
    Ok(Observed {
        accounts_group,
        engineers_group,
        engineers,
        engineer_members,
        vendors: m.vendors.iter().cloned().map(Arc::new).collect(),
        segments: m
            .segments
            .iter()
            .cloned()
            .map(Arc::new)
            .chain(existing.iter().cloned())
            .collect(),
        accounts: m
            .licenses
            .iter()
            .filter(|l| l.spec.vendor_ref.name == name)
            .cloned()
            .map(Arc::new)
            .collect(),
        skus: dir.skus(false).await?,
        mode: t.mode,
        compliance_problem: t.compliance.credential_problem(),
    })
}

/// The vendor's plan, as the reconciler makes it; returns the vendor with the group ids it
/// would have (a group still to be created gets a stand-in), for the segment filters.
async fn plan_vendor(
    t: &Tenant,
    vt: &VendorTenant,
    m: &Manifests,
    existing: &[Arc<BarrierSegment>],
    r: &mut ResourcePlan,
) -> anyhow::Result<VendorTenant> {
    let observed = observe_vendor(t, vt, m, existing).await?;
    let plan = vendor_plan(vt, None, [None, None], &observed);
    for step in &plan.steps {
        r.act(step.kind(), step.object(), step.describe());
    }
    for p in &plan.problems {
        r.refused(p);
    }
    let (status, reason, message) = &plan.seats.condition;
    if *status == Status::False {
        r.problems.push(format!("{message} ({reason})"));
    }
    let id = |g: &Option<GroupRef>| match g {
        Some(GroupRef::Existing { id, .. }) => Some(id.clone()),
        Some(GroupRef::New { name, .. }) => Some(format!("(new group {name})")),
        None => None,
    };
    let mut planned = vt.clone();
    let status = planned.status.get_or_insert_with(Default::default);
    status.accounts_group_id = id(&plan.accounts_group);
    status.engineers_group_id = id(&plan.engineers_group);
    Ok(planned)
}

/// What the RemoteAssistLicense reconciler would read of the account, read-only. A user the
/// operator marked is taken to be this manifest's (its uid is not known here).
async fn observe_account(
    t: &Tenant,
    desired: &mut Desired,
    group: Option<&str>,
) -> anyhow::Result<AccountObserved> {
    let user = t.directory.user(&desired.upn).await?;
    if let Some(uid) = user.as_ref().and_then(|u| u.managed_by()) {
        desired.owner_uid = uid.to_owned();
    }
    let in_group = match (&user, group) {
        (Some(u), Some(g)) => t.directory.member_of(&u.id).await?.contains(g),
        _ => false,
    };
    let directory_roles = match &user {
        Some(u) if u.managed_by().is_none() && u.upn_domain() == desired.vendor_domain => {
            Some(t.directory.directory_roles(&u.id).await?)
        }
        _ => None,
    };
    let free_seats = crate::directory::free_seats(&t.directory.skus(false).await?);
    let license_error_stale = user.as_ref().is_some_and(|u| license_error_stale(u, desired));
    Ok(AccountObserved {
        free_seats,
        license_error_stale,
        directory_roles,
        rotation_wait: None,
        secret: if user.is_some() {
            SecretState::Ready {
                pending: false,
                rotated_for: None,
            }
        } else {
            SecretState::Missing
        },
        user,
        status_user_id: None,
        deleted: false,
        status_adopted: false,
        in_group,
        rotation_request: None,
    })
}

async fn plan_license(
    t: &Tenant,
    ral: &RemoteAssistLicense,
    vendor: Option<&Arc<VendorTenant>>,
    group: Option<&str>,
    r: &mut ResourcePlan,
) -> anyhow::Result<()> {
    let Some(vendor) = vendor else {
        r.problems.push(format!(
            "VendorTenant {} is not in these manifests",
            ral.spec.vendor_ref.name
        ));
        return Ok(());
    };
    let ns = r.namespace.clone().unwrap_or_default();
    let allowed = &vendor.spec.allowed_namespaces;
    if !allowed.names.iter().flatten().any(|n| *n == ns) && allowed.selector.is_none() {
        r.problems.push(format!(
            "VendorTenant {} does not allow namespace {ns} (NamespaceNotAllowed)",
            vendor.metadata.name.clone().unwrap_or_default()
        ));
        return Ok(());
    }
    // The same authority checks as the operator (the account limit is counted in the cluster).
    let adoption = match crate::controllers::remote_assist_license::authority::authorize(ral, vendor, &[]) {
        Ok(a) => a,
        Err(refusal) => {
            r.refused(&refusal);
            return Ok(());
        }
    };
    let skus = t.directory.skus(false).await?;
    // Barrier timing is the tenant's business, not the plan's: assume it will be in force.
    let group_id = group.unwrap_or("(new group)");
    let mut desired = match crate::controllers::remote_assist_license::observe::desired(
        ral, vendor, adoption, group_id, &skus, true,
    ) {
        Ok(d) => d,
        Err(m) => {
            r.problems.push(m);
            return Ok(());
        }
    };
    let observed = observe_account(t, &mut desired, group).await?;
    let (steps, last) = course(&desired, &observed);
    if let Some(b) = &last.blocked {
        r.refused(b);
    }
    for a in &steps {
        r.act(a.kind(), desired.upn.clone(), a.describe());
    }
    Ok(())
}

/// The segment's plan, as the reconciler makes it: the cluster-side admission, then the
/// tenant's objects bound and the commands.
fn plan_segment(
    bs: &BarrierSegment,
    all: &[Arc<BarrierSegment>],
    scope: Scope,
    observed: Option<&(Vec<Segment>, Vec<Policy>)>,
    r: &mut ResourcePlan,
) {
    let desired = match segments::admit(bs, all, scope) {
        Ok(d) => d,
        Err(Rejection::Refused(refusal) | Rejection::Invalid(refusal)) => return r.refused(&refusal),
    };
    let Some((segs, pols)) = observed else {
        let description = format!(
            "ensure segment {} ({}) and its policy; the tenant's barriers could not be read",
            desired.name, desired.filter
        );
        return r.act("EnsureSegment", desired.name.clone(), description);
    };
    let record = operator_made(&desired.name, segs, pols);
    match segments::tenant_steps(&desired, "", &record, bs.adopts_existing(), segs, pols) {
        Ok((_, steps)) => {
            for step in &steps {
                r.act(step.kind(), desired.name.clone(), step.describe());
            }
        }
        Err(refusal) => r.refused(&refusal),
    }
}

/// The manifests carry no uid and no status, so no record of what the operator created: a
/// segment whose policy (of the same name) carries the operator's marker stands in for it.
fn operator_made(name: &str, segments: &[Segment], policies: &[Policy]) -> CreatedObjects {
    let policy = policies
        .iter()
        .find(|p| p.assigned_segment.eq_ignore_ascii_case(name) && p.owner().is_some());
    let segment = segments.iter().find(|s| s.name.eq_ignore_ascii_case(name));
    match (segment, policy) {
        (Some(s), Some(p)) => CreatedObjects {
            segment_id: Some(s.identity.clone()),
            policy_id: Some(p.identity.clone()),
            ..CreatedObjects::default()
        },
        _ => CreatedObjects::default(),
    }
}

/// The plan for the manifests `m`. `cluster`, when given, is read for the BarrierSegments that
/// exist (the vendors' generated ones are otherwise shown as to be generated).
pub async fn plan(t: &Tenant, m: &Manifests, cluster: Option<kube::Client>) -> anyhow::Result<Report> {
    let mut report = Report {
        information_barrier_mode: t.mode,
        ..Report::default()
    };
    if let Some(why) = &t.mode_unread {
        report.notes.push(format!(
            "the tenant's information-barrier mode could not be read ({why}): generated segments and the reachability preview are left out"
        ));
    }
    let existing = existing_segments(cluster, &mut report).await;
    let mut vendors: Vec<Arc<VendorTenant>> = Vec::new();
    let mut all_segments: Vec<Arc<BarrierSegment>> = m.segments.iter().cloned().map(Arc::new).collect();
    for vt in &m.vendors {
        let mut r = resource("VendorTenant", vt);
        vendors.push(Arc::new(plan_vendor(t, vt, m, &existing, &mut r).await?));
        if vt.generates_segments()
            && let Some(mode) = t.mode
        {
            all_segments.extend(generated(vt, mode).into_iter().map(Arc::new));
        }
        report.resources.push(r);
    }
    plan_segments(t, &all_segments, &vendors, &mut report).await;
    if let Some(mode) = t.mode {
        let matrix = preview::asked(&all_segments, &vendors, mode);
        report.notes.extend(preview::warnings(&matrix));
        report.reachability = Some(matrix);
    }
    for ral in &m.licenses {
        let mut r = resource("RemoteAssistLicense", ral);
        let vendor = vendors.iter().find(|v| v.name_any() == ral.spec.vendor_ref.name);
        let group = vendor
            .and_then(|v| v.status.as_ref())
            .and_then(|s| s.accounts_group_id.clone())
            .filter(|id| !id.starts_with("(new group"));
        plan_license(t, ral, vendor, group.as_deref(), &mut r).await?;
        report.resources.push(r);
    }
    Ok(report)
}

/// The cluster's BarrierSegments, or none (and a note) without cluster access.
async fn existing_segments(cluster: Option<kube::Client>, report: &mut Report) -> Vec<Arc<BarrierSegment>> {
    let listed = match cluster {
        Some(client) => kube::Api::<BarrierSegment>::all(client)
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string()),
        None => Err("no cluster access".into()),
    };
    match listed {
        Ok(list) => list.items.into_iter().map(Arc::new).collect(),
        Err(e) => {
            report.notes.push(format!(
                "the cluster's BarrierSegments could not be read ({e}); generated segments are shown as to be generated"
            ));
            Vec::new()
        }
    }
}

fn resource<K: kube::Resource>(kind: &'static str, obj: &K) -> ResourcePlan {
    ResourcePlan {
        kind,
        name: obj.meta().name.clone().unwrap_or_default(),
        namespace: obj.meta().namespace.clone(),
        ..ResourcePlan::default()
    }
}

/// Every BarrierSegment's plan (those in the manifests and those the vendors generate), and
/// the tenant-wide checks that would hold the policy application back.
async fn plan_segments(
    t: &Tenant,
    all: &[Arc<BarrierSegment>],
    vendors: &[Arc<VendorTenant>],
    report: &mut Report,
) {
    let observed = match (t.compliance.segments().await, t.compliance.policies().await) {
        (Ok(s), Ok(p)) => Some((s, p)),
        (Err(e), _) | (_, Err(e)) => {
            report.notes.push(format!("the information barriers could not be read ({e}); segment plans are shown without the tenant's state"));
            None
        }
    };
    for bs in all {
        let mut r = resource("BarrierSegment", bs.as_ref());
        let scope = Scope {
            vendors,
            mode: t.mode,
        };
        plan_segment(bs, all, scope, observed.as_ref(), &mut r);
        report.resources.push(r);
    }
    let paths = invariant::cross_vendor_paths(all, vendors);
    if !paths.is_empty() {
        report.notes.push(format!(
            "the policy application would be held back (CrossVendorPath): {}",
            invariant::describe(&paths)
        ));
    }
    for (a, b) in segments::asymmetries(all, vendors) {
        report.notes.push(format!(
            "{a} allows {b} but {b} does not allow {a}: the policy application would be held back"
        ));
    }
}
