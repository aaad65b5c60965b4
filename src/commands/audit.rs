//! `audit`: what the tenant really allows, read from the tenant itself (and, when a cluster is
//! reachable, compared with the RemoteAssistLicenses and VendorTenants in it). Findings: a path
//! between one vendor and another vendor's segments, an account enabled without an applied
//! barrier, an account in another vendor's group, and a licensed account the operator made whose
//! RemoteAssistLicense is gone (a cost leak).

use super::Tenant;
use crate::barriers::IbMode;
use crate::barriers::reach::Matrix;
use crate::compliance::definitions::{Policy, Segment};
use crate::controllers::barrier_segment::preview;
use crate::crd::{BarrierSegment, RemoteAssistLicense, VendorTenant};
use crate::directory::{DirUser, SkuTable};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Serialize)]
pub struct Account {
    pub user_principal_name: String,
    pub segment: Option<String>,
    pub barrier_applied: bool,
    pub enabled: bool,
    pub licenses: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Seats {
    pub sku: String,
    pub free: i64,
    pub enabled: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct AuditReport {
    pub accounts: Vec<Account>,
    /// Segment pairs that can reach each other under the applied policies.
    pub reachable: Vec<(String, String)>,
    pub seats: Vec<Seats>,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    /// The tenant's IB mode, if it could be read.
    #[serde(rename = "informationBarrierMode")]
    pub information_barrier_mode: Option<IbMode>,
    /// Who can reach whom under the applied Active policies, by the cluster's BarrierSegments.
    pub reachability: Option<Matrix>,
}

impl AuditReport {
    pub fn render_text(&self) -> String {
        let mut out = String::from("Managed vendor accounts:\n");
        for a in &self.accounts {
            out.push_str(&format!(
                "  {:<42} segment {:<22} barrier {:<11} {:<8} licences: {}\n",
                a.user_principal_name,
                a.segment.as_deref().unwrap_or("(none)"),
                if a.barrier_applied {
                    "applied"
                } else {
                    "NOT applied"
                },
                if a.enabled { "enabled" } else { "disabled" },
                if a.licenses.is_empty() {
                    "none".to_owned()
                } else {
                    a.licenses.join(", ")
                }
            ));
        }
        out.push_str("Segments that can reach each other (applied, Active policies):\n");
        for (a, b) in &self.reachable {
            out.push_str(&format!("  {a} <-> {b}\n"));
        }
        if let Some(m) = &self.reachability {
            out.push_str("Under the applied policies, ");
            out.push_str(&m.render());
        }
        out.push_str("Seats:\n");
        for s in &self.seats {
            out.push_str(&format!(
                "  {:<34} {:>6} free of {:>6}\n",
                s.sku, s.free, s.enabled
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if self.findings.is_empty() {
            out.push_str("\nNo findings.\n");
        } else {
            out.push_str(&format!("\n{} finding(s):\n", self.findings.len()));
            for f in &self.findings {
                out.push_str(&format!("  [{}] {}\n", f.kind, f.message));
            }
        }
        out
    }
}

/// The value a simple segment filter (`Attribute -eq 'value'`) matches, with its attribute.
pub fn simple_filter(filter: &str) -> Option<(String, String)> {
    let (attribute, rest) = filter.trim().split_once(" -eq ")?;
    let quoted = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    // A lone quote inside means more filter follows (`-and`, `-or`): not a simple filter.
    if quoted.replace("''", "").contains('\'') {
        return None;
    }
    Some((attribute.trim().to_ascii_lowercase(), quoted.replace("''", "'")))
}

pub fn user_value(user: &DirUser, attribute: &str) -> Option<String> {
    match attribute {
        "department" => user.department.clone(),
        "company" => user.company_name.clone(),
        a => a.strip_prefix("extensionattribute").and_then(|n| {
            user.on_premises_extension_attributes
                .get(&format!("extensionAttribute{n}"))
                .cloned()
                .flatten()
        }),
    }
}

/// The vendor a segment belongs to, from the value the operator writes (`<vendor>-accounts`).
fn vendor_of(segment: &Segment) -> Option<(String, bool)> {
    let (_, value) = simple_filter(&segment.user_group_filter)?;
    if let Some(v) = value.strip_suffix("-accounts") {
        return Some((v.to_owned(), true));
    }
    value.strip_suffix("-engineers").map(|v| (v.to_owned(), false))
}

/// Whether members of `from` may reach members of `to` under `from`'s Active policy.
fn allows(from: &str, to: &str, policies: &[Policy]) -> bool {
    let Some(p) = policies
        .iter()
        .find(|p| p.assigned_segment == from && p.state.eq_ignore_ascii_case("Active"))
    else {
        return true;
    };
    if !p.segments_allowed.is_empty() {
        p.segments_allowed.iter().any(|s| s == to)
    } else {
        !p.segments_blocked.iter().any(|s| s == to)
    }
}

fn parse_time(t: Option<&String>) -> Option<Timestamp> {
    t.and_then(|t| t.parse().ok())
}

/// The tenant's barriers as the audit reads them.
struct Barriers {
    /// Sorted by name: the tenant lists them in no particular order, the report is stable.
    segments: Vec<Segment>,
    policies: Vec<Policy>,
    last_completed: Option<Timestamp>,
}

impl Barriers {
    /// A policy is applied when a completed application ended after its last change.
    fn applied(&self, segment: &str) -> bool {
        self.policies.iter().any(|p| {
            p.assigned_segment == segment
                && p.state.eq_ignore_ascii_case("Active")
                && self
                    .last_completed
                    .is_some_and(|done| parse_time(p.when_changed.as_ref()).is_none_or(|c| c < done))
        })
    }
}

/// The cluster's view, when reachable: licenses by uid, vendors' groups, the vendors.
#[derive(Default)]
struct ClusterView {
    accounts_by_uid: BTreeMap<String, RemoteAssistLicense>,
    vendor_groups: BTreeMap<String, String>,
    vendors: Vec<VendorTenant>,
    segments: Vec<BarrierSegment>,
}

pub async fn audit(t: &Tenant, cluster: Option<kube::Client>) -> anyhow::Result<AuditReport> {
    let mut report = AuditReport::default();
    let dir = &t.directory;
    let users = dir.managed_users().await?;
    let skus = dir.skus(true).await?;
    report.seats = skus
        .values()
        .map(|s| Seats {
            sku: s.part_number.clone(),
            free: s.free(),
            enabled: s.enabled,
        })
        .collect();
    let barriers = read_barriers(t, &mut report).await;
    if let Some(b) = &barriers {
        reachability(b, &mut report);
    }
    let view = read_cluster(cluster, &mut report).await;
    let segments = barriers.as_ref().map_or(&[][..], |b| &b.segments[..]);
    let member_of_segments = segments
        .iter()
        .any(|s| simple_filter(&s.user_group_filter).is_some_and(|(a, _)| a == "memberof"));
    // Each user's groups are read once, where `MemberOf` segments, the group findings or the
    // invariant below need them.
    let mut groups_by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for u in &users {
        let groups = if member_of_segments || view.is_some() {
            let read = dir.member_of(&u.id).await?;
            groups_by_user.insert(u.id.clone(), read.clone());
            read
        } else {
            BTreeSet::new()
        };
        audit_account(u, groups, barriers.as_ref(), view.as_ref(), &skus, &mut report);
    }
    if let (Some(b), Some(view), Some(mode)) = (&barriers, &view, t.mode) {
        report.reachability = Some(applied_matrix(b, view, mode));
    }
    report.information_barrier_mode = t.mode;
    if let Some(why) = &t.mode_unread {
        report.notes.push(format!(
            "the information-barrier mode could not be read ({why}); no reachability matrix"
        ));
    }
    if let (Some(b), Some(view)) = (&barriers, &view) {
        vendor_invariant(t, &users, b, view, &groups_by_user, &mut report).await?;
    }
    Ok(report)
}

/// The matrix for the applied Active policies, with the classes the cluster's segments place.
fn applied_matrix(b: &Barriers, view: &ClusterView, mode: IbMode) -> Matrix {
    let segments: Vec<Arc<BarrierSegment>> = view.segments.iter().cloned().map(Arc::new).collect();
    let vendors: Vec<Arc<VendorTenant>> = view.vendors.iter().cloned().map(Arc::new).collect();
    let applied: Vec<Policy> = b
        .policies
        .iter()
        .filter(|p| b.applied(&p.assigned_segment))
        .cloned()
        .collect();
    let classes = preview::classes(&segments, &vendors, mode);
    Matrix::new(mode, classes, &preview::tenant_policies(&applied))
}

/// Segments, policies and the last completed application; `None` (and a note) if unreadable.
async fn read_barriers(t: &Tenant, report: &mut AuditReport) -> Option<Barriers> {
    let c = &t.compliance;
    match (c.segments().await, c.policies().await, c.applications().await) {
        (Ok(mut segments), Ok(policies), Ok(apps)) => {
            segments.sort_by(|a, b| a.name.cmp(&b.name));
            let last_completed = apps
                .iter()
                .filter(|a| a.status == "Completed")
                .filter_map(|a| parse_time(a.application_end_time.as_ref()))
                .max();
            Some(Barriers {
                segments,
                policies,
                last_completed,
            })
        }
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            report.notes.push(format!(
                "information barriers could not be read ({e}); barrier findings are skipped"
            ));
            None
        }
    }
}

/// Reachability between segments, and a `CrossVendorPath` for two vendors' segments.
fn reachability(b: &Barriers, report: &mut AuditReport) {
    for (i, x) in b.segments.iter().enumerate() {
        for y in b.segments.iter().skip(i + 1) {
            if !(b.applied(&x.name) || b.applied(&y.name))
                || !(allows(&x.name, &y.name, &b.policies) && allows(&y.name, &x.name, &b.policies))
            {
                continue;
            }
            report.reachable.push((x.name.clone(), y.name.clone()));
            if let (Some((vx, _)), Some((vy, _))) = (vendor_of(x), vendor_of(y))
                && vx != vy
            {
                report.findings.push(Finding {
                    kind: "CrossVendorPath",
                    message: format!(
                        "segment {} (vendor {vx}) and segment {} (vendor {vy}) can reach each other",
                        x.name, y.name
                    ),
                });
            }
        }
    }
}

/// The cluster's licenses and vendors; `None` (and a note) without cluster access.
async fn read_cluster(cluster: Option<kube::Client>, report: &mut AuditReport) -> Option<ClusterView> {
    let Some(client) = cluster else {
        report
            .notes
            .push("no cluster access: cost-leak and group findings are skipped".into());
        return None;
    };
    let rals = kube::Api::<RemoteAssistLicense>::all(client.clone())
        .list(&Default::default())
        .await;
    let vts = kube::Api::<VendorTenant>::all(client.clone())
        .list(&Default::default())
        .await;
    let bss = kube::Api::<BarrierSegment>::all(client)
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string());
    let (rals, vts, bss) = match (
        rals.map_err(|e| e.to_string()),
        vts.map_err(|e| e.to_string()),
        bss,
    ) {
        (Ok(rals), Ok(vts), Ok(bss)) => (rals, vts, bss),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            report.notes.push(format!(
                "the cluster could not be read ({e}); cost-leak and group findings are skipped"
            ));
            return None;
        }
    };
    let mut view = ClusterView {
        accounts_by_uid: rals
            .items
            .into_iter()
            .filter_map(|r| Some((r.uid()?, r)))
            .collect(),
        vendors: vts.items.clone(),
        segments: bss.items,
        ..ClusterView::default()
    };
    for v in vts.items {
        let status = v.status.clone().unwrap_or_default();
        for id in [status.accounts_group_id, status.engineers_group_id]
            .into_iter()
            .flatten()
        {
            view.vendor_groups.insert(id, v.name_any());
        }
    }
    Some(view)
}

/// One managed account: its segment and barrier, and the `EnabledWithoutBarrier`, `CostLeak`
/// and `WrongVendorGroup` findings.
fn audit_account(
    u: &DirUser,
    groups: BTreeSet<String>,
    barriers: Option<&Barriers>,
    view: Option<&ClusterView>,
    skus: &SkuTable,
    report: &mut AuditReport,
) {
    let part = |id: &str| {
        skus.values()
            .find(|s| s.sku_id == id)
            .map(|s| s.part_number.clone())
            .unwrap_or(id.to_owned())
    };
    let person = super::audit_paths::Person {
        user: u.clone(),
        role: super::audit_paths::Role::Engineer(BTreeSet::new()),
        groups,
    };
    let segment = barriers.and_then(|b| {
        b.segments
            .iter()
            .find(|s| super::audit_paths::selects(&s.user_group_filter, &person))
    });
    let barrier_applied = segment.is_some_and(|s| barriers.is_some_and(|b| b.applied(&s.name)));
    let enabled = u.account_enabled.unwrap_or(false);
    let licenses: Vec<String> = u.assigned_licenses.iter().map(|a| part(&a.sku_id)).collect();
    if enabled && barriers.is_some() && !barrier_applied {
        report.findings.push(Finding {
            kind: "EnabledWithoutBarrier",
            message: format!(
                "{} is enabled but no applied barrier covers it",
                u.user_principal_name
            ),
        });
    }
    if let Some(view) = view {
        ownership_findings(u, &person.groups, &licenses, view, report);
    }
    report.accounts.push(Account {
        user_principal_name: u.user_principal_name.clone(),
        segment: segment.map(|s| s.name.clone()),
        barrier_applied,
        enabled,
        licenses,
    });
}

/// A licensed account whose RemoteAssistLicense is gone, or one in another vendor's group.
fn ownership_findings(
    u: &DirUser,
    groups: &BTreeSet<String>,
    licenses: &[String],
    view: &ClusterView,
    report: &mut AuditReport,
) {
    match u.managed_by().and_then(|uid| view.accounts_by_uid.get(uid)) {
        None if !licenses.is_empty() => report.findings.push(Finding {
            kind: "CostLeak",
            message: format!(
                "{} holds {} licence(s) ({}) but its RemoteAssistLicense no longer exists",
                u.user_principal_name,
                licenses.len(),
                licenses.join(", ")
            ),
        }),
        Some(ral) => {
            let own = &ral.spec.vendor_ref.name;
            for g in groups {
                if let Some(other) = view.vendor_groups.get(g).filter(|v| *v != own) {
                    report.findings.push(Finding {
                        kind: "WrongVendorGroup",
                        message: format!(
                            "{} (vendor {own}) is a member of vendor {other}'s group {g}",
                            u.user_principal_name
                        ),
                    });
                }
            }
        }
        None => {}
    }
}

/// The vendor invariant, person by person, for every kind of segment.
async fn vendor_invariant(
    t: &Tenant,
    users: &[DirUser],
    b: &Barriers,
    view: &ClusterView,
    groups_by_user: &BTreeMap<String, BTreeSet<String>>,
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    let marked: Vec<(DirUser, Option<String>)> = users
        .iter()
        .map(|u| {
            let vendor = u
                .managed_by()
                .and_then(|uid| view.accounts_by_uid.get(uid))
                .map(|ral| ral.spec.vendor_ref.name.clone());
            (u.clone(), vendor)
        })
        .collect();
    let people = super::audit_paths::people(&t.directory, &view.vendors, &marked, groups_by_user).await?;
    for s in b
        .segments
        .iter()
        .filter(|s| simple_filter(&s.user_group_filter).is_none())
    {
        report.notes.push(format!(
            "segment {} has a filter the audit cannot evaluate ({}); its members are not checked",
            s.name, s.user_group_filter
        ));
    }
    report
        .findings
        .extend(super::audit_paths::findings(&people, &b.segments, &b.policies));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_filters_are_read_and_others_are_not() {
        assert_eq!(
            simple_filter("ExtensionAttribute15 -eq 'v1-accounts'"),
            Some(("extensionattribute15".into(), "v1-accounts".into()))
        );
        assert_eq!(simple_filter("Department -eq 'R''n D'").unwrap().1, "R'n D");
        assert!(simple_filter("Department -eq 'A' -or Department -eq 'B'").is_none());
    }

    fn policy(segment: &str, allowed: &[&str], blocked: &[&str]) -> Policy {
        Policy {
            name: segment.into(),
            identity: segment.into(),
            assigned_segment: segment.into(),
            segments_allowed: allowed.iter().map(|s| s.to_string()).collect(),
            segments_blocked: blocked.iter().map(|s| s.to_string()).collect(),
            state: "Active".into(),
            when_changed: None,
            comment: None,
        }
    }

    #[test]
    fn policies_allow_and_block_as_documented() {
        let p = vec![policy("a", &["a", "b"], &[]), policy("c", &[], &["a"])];
        assert!(allows("a", "b", &p));
        assert!(!allows("a", "c", &p));
        assert!(!allows("c", "a", &p));
        assert!(allows("c", "b", &p));
        assert!(allows("x", "a", &p), "no policy: unrestricted");
    }
}
