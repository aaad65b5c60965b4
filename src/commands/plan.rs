//! `plan`: what the operator would change in the tenant for a set of manifests (what a GitOps
//! pull request contains), from a read-only look at the tenant. It reuses the reconcilers'
//! observe and pure plan steps, so a plan shown here and the work the operator does cannot
//! disagree. It only ever reads: every request is a GET (Graph) or a `Get-*` cmdlet.

use super::{Manifests, Tenant};
use crate::compliance::barriers::{Policy, Segment};
use crate::crd::vendor_tenant::{LicenseMode, MembershipMode};
use crate::crd::{BarrierSegment, RemoteAssistLicense, VendorTenant};
use crate::license::plan::{Observed, SecretState, plan as plan_account};
use crate::segment::plan as segments;
use crate::vendor::groups::{choose, membership_changes};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The plan for one resource.
#[derive(Debug, Default, Serialize)]
pub struct ResourcePlan {
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub actions: Vec<String>,
    /// Why something cannot be done (the condition the operator would report).
    pub problems: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub resources: Vec<ResourcePlan>,
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
                out.push_str(&format!("  + {a}\n"));
            }
            for p in &r.problems {
                out.push_str(&format!("  ! {p}\n"));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out.push_str(&format!(
            "\n{} change(s) planned; nothing was changed.\n",
            self.changes()
        ));
        out
    }
}

/// The groups a vendor's manifests would bind, by display name: the existing id, if unique.
struct VendorGroups {
    accounts: Option<String>,
}

async fn plan_vendor(t: &Tenant, vt: &VendorTenant, r: &mut ResourcePlan) -> anyhow::Result<VendorGroups> {
    let dir = &t.directory;
    let mut accounts = None;
    for (name, is_accounts) in [
        (vt.accounts_group_name(), true),
        (vt.engineers_group_name(), false),
    ] {
        let group = match choose(dir.groups_named(&name).await?, None, &name) {
            Ok(Some(g)) => Some(g),
            Ok(None) => {
                r.actions.push(format!("create security group {name}"));
                None
            }
            Err(conflict) => {
                r.problems.push(conflict);
                None
            }
        };
        if is_accounts {
            accounts = group.as_ref().map(|g| g.id.clone());
            if let (Some(g), LicenseMode::Group) = (&group, vt.license_mode()) {
                let skus = dir.skus(false).await?;
                match crate::license::observe::resolve_licenses(&vt.spec.licenses, &skus) {
                    Ok(wanted) => {
                        let (add, remove) =
                            crate::vendor::seats::group_changes(g, &wanted, g.managed_by().is_some());
                        if !add.is_empty() || !remove.is_empty() {
                            r.actions.push(format!(
                                "assign {} licence(s) to group {name}, remove {}",
                                add.len(),
                                remove.len()
                            ));
                        }
                    }
                    Err(m) => r.problems.push(m),
                }
            } else if vt.license_mode() == LicenseMode::Group {
                r.actions.push(format!(
                    "assign {} licence(s) to group {name}",
                    vt.spec.licenses.len()
                ));
            }
            continue;
        }
        let Some(se) = &vt.spec.support_engineers else {
            continue;
        };
        let mut wanted = BTreeSet::new();
        for upn in &se.members {
            match dir.user(upn).await? {
                Some(u) => {
                    wanted.insert(u.id);
                }
                None => r
                    .problems
                    .push(format!("no user {upn} in the tenant (EngineerNotFound)")),
            }
        }
        let current = match &group {
            Some(g) => dir.members(&g.id).await?,
            None => BTreeSet::new(),
        };
        let exclusive = se.membership.unwrap_or_default() == MembershipMode::Exclusive;
        let (add, remove) = membership_changes(&wanted, &current, exclusive);
        if !add.is_empty() {
            r.actions.push(format!("add {} engineer(s) to {name}", add.len()));
        }
        if !remove.is_empty() {
            r.actions
                .push(format!("remove {} unlisted member(s) from {name}", remove.len()));
        }
    }
    Ok(VendorGroups { accounts })
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
    let adoption = match crate::license::authority::authorize(ral, vendor, &[]) {
        Ok(a) => a,
        Err(refusal) => {
            r.problems
                .push(format!("{} ({})", refusal.message, refusal.reason));
            return Ok(());
        }
    };
    let skus = t.directory.skus(false).await?;
    // Barrier timing is the tenant's business, not the plan's: assume it will be in force.
    let group_id = group.unwrap_or("(new group)");
    let mut desired = match crate::license::observe::desired(ral, vendor, adoption, group_id, &skus, true) {
        Ok(d) => d,
        Err(m) => {
            r.problems.push(m);
            return Ok(());
        }
    };
    let user = t.directory.user(&desired.upn).await?;
    // A user the operator marked is taken to be this manifest's (its uid is not known here).
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
    let observed = Observed {
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
    };
    let plan = plan_account(&desired, &observed);
    if let Some(b) = &plan.blocked {
        r.problems.push(format!("{} ({})", b.message, b.reason));
    }
    r.actions.extend(plan.actions.iter().map(|a| a.describe()));
    Ok(())
}

fn plan_segment(
    bs: &BarrierSegment,
    all: &[Arc<BarrierSegment>],
    vendors: &BTreeMap<String, Arc<VendorTenant>>,
    observed: Option<&(Vec<Segment>, Vec<Policy>)>,
    r: &mut ResourcePlan,
) {
    let desired = match segments::desired(bs, all, &|n| vendors.get(n).cloned()) {
        Ok(d) => d,
        Err((reason, message)) => {
            r.problems.push(format!("{message} ({reason})"));
            return;
        }
    };
    let Some((segs, pols)) = observed else {
        r.actions.push(format!(
            "ensure segment {} ({}) and its policy; the tenant's barriers could not be read",
            desired.name, desired.filter
        ));
        return;
    };
    let seg = segs.iter().find(|s| s.name.eq_ignore_ascii_case(&desired.name));
    let pol = pols
        .iter()
        .find(|p| p.assigned_segment.eq_ignore_ascii_case(&desired.name));
    r.actions
        .extend(segments::plan(&desired, seg, pol).iter().map(|a| a.describe()));
}

pub async fn plan(t: &Tenant, m: &Manifests) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut vendors = BTreeMap::new();
    let mut groups = BTreeMap::new();
    let mut all_segments: Vec<Arc<BarrierSegment>> = m.segments.iter().cloned().map(Arc::new).collect();
    for vt in &m.vendors {
        let name = vt.metadata.name.clone().unwrap_or_default();
        let mut r = ResourcePlan {
            kind: "VendorTenant",
            name: name.clone(),
            ..ResourcePlan::default()
        };
        let g = plan_vendor(t, vt, &mut r).await?;
        groups.insert(name.clone(), g.accounts);
        if vt.generates_segments() {
            all_segments.extend(crate::vendor::barriers::generated(vt).into_iter().map(Arc::new));
        }
        vendors.insert(name, Arc::new(vt.clone()));
        report.resources.push(r);
    }
    let observed = match (t.compliance.segments().await, t.compliance.policies().await) {
        (Ok(s), Ok(p)) => Some((s, p)),
        (Err(e), _) | (_, Err(e)) => {
            report.notes.push(format!("the information barriers could not be read ({e}); segment plans are shown without the tenant's state"));
            None
        }
    };
    for bs in &all_segments {
        let mut r = ResourcePlan {
            kind: "BarrierSegment",
            name: bs.metadata.name.clone().unwrap_or_default(),
            ..ResourcePlan::default()
        };
        plan_segment(bs, &all_segments, &vendors, observed.as_ref(), &mut r);
        report.resources.push(r);
    }
    let vendor_list: Vec<Arc<VendorTenant>> = vendors.values().cloned().collect();
    let paths = crate::segment::invariant::cross_vendor_paths(&all_segments, &vendor_list);
    if !paths.is_empty() {
        report.notes.push(format!(
            "the policy application would be held back (CrossVendorPath): {}",
            crate::segment::invariant::describe(&paths)
        ));
    }
    for (a, b) in segments::asymmetries(&all_segments) {
        report.notes.push(format!(
            "{a} allows {b} but {b} does not allow {a}: the policy application would be held back"
        ));
    }
    for ral in &m.licenses {
        let mut r = ResourcePlan {
            kind: "RemoteAssistLicense",
            name: ral.metadata.name.clone().unwrap_or_default(),
            namespace: ral.metadata.namespace.clone(),
            ..ResourcePlan::default()
        };
        let vendor = vendors.get(&ral.spec.vendor_ref.name);
        let group = groups.get(&ral.spec.vendor_ref.name).cloned().flatten();
        plan_license(t, ral, vendor, group.as_deref(), &mut r).await?;
        report.resources.push(r);
    }
    Ok(report)
}
