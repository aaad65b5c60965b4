//! `audit`'s vendor invariant, read from the tenant itself: a vendor's accounts can reach only
//! that vendor's accounts and the engineers assigned to that vendor. People are placed in
//! segments by evaluating each segment's filter on them (an attribute value, or `MemberOf` a
//! group), whatever kind of BarrierSegment made it, and accounts are found through the vendors'
//! groups as well as the operator's mark, so adopted and orphaned accounts are included.

use super::audit::{Finding, simple_filter, user_value};
use crate::compliance::definitions::{Policy, Segment};
use crate::directory::DirUser;
use std::collections::{BTreeMap, BTreeSet};

/// Who a person is to the invariant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// An account of this vendor.
    Account(String),
    /// The host's engineers serving these vendors.
    Engineer(BTreeSet<String>),
}

/// A person the invariant is about, with the groups they are a direct member of.
pub struct Person {
    pub user: DirUser,
    pub role: Role,
    pub groups: BTreeSet<String>,
}

/// Whether a segment's filter selects the person: `Attr -eq 'v'` or `MemberOf -eq '<id>'`.
/// A filter the audit cannot read selects no one, and is reported by the caller.
pub fn selects(filter: &str, p: &Person) -> bool {
    let Some((attribute, value)) = simple_filter(filter) else {
        return false;
    };
    if attribute == "memberof" {
        return p.groups.iter().any(|g| g.eq_ignore_ascii_case(&value));
    }
    user_value(&p.user, &attribute).as_deref() == Some(value.as_str())
}

/// The Active policy of a segment, if any.
fn policy<'a>(segment: &str, policies: &'a [Policy]) -> Option<&'a Policy> {
    policies
        .iter()
        .find(|p| p.assigned_segment == segment && p.state.eq_ignore_ascii_case("Active"))
}

/// Whether `from`'s members may reach `to` (`None`: someone in no segment).
fn one_way(from: Option<&str>, to: Option<&str>, policies: &[Policy]) -> bool {
    let Some(from) = from else {
        return true;
    };
    match (policy(from, policies), to) {
        (None, _) => true,
        // Users in no segment are on no allow list (the most restrictive reading).
        (Some(p), None) => p.segments_allowed.is_empty(),
        (Some(p), Some(to)) if !p.segments_allowed.is_empty() => p.segments_allowed.iter().any(|s| s == to),
        (Some(p), Some(to)) => !p.segments_blocked.iter().any(|s| s == to),
    }
}

/// Whether people in segments `a` and `b` can reach each other under the Active policies.
pub fn reach(a: &BTreeSet<String>, b: &BTreeSet<String>, policies: &[Policy]) -> bool {
    if a.intersection(b).next().is_some() {
        return true;
    }
    let sides = |s: &BTreeSet<String>| -> Vec<Option<String>> {
        if s.is_empty() {
            vec![None]
        } else {
            s.iter().cloned().map(Some).collect()
        }
    };
    sides(a).iter().any(|x| {
        sides(b).iter().any(|y| {
            one_way(x.as_deref(), y.as_deref(), policies) && one_way(y.as_deref(), x.as_deref(), policies)
        })
    })
}

/// Whether an account of `vendor` may reach someone with `role`.
fn permitted(vendor: &str, role: &Role) -> bool {
    match role {
        Role::Account(v) => v == vendor,
        Role::Engineer(vendors) => vendors.contains(vendor),
    }
}

/// Every pair that breaks the invariant, one finding per pair of (role, segments) groups with an
/// example of each side.
pub fn findings(people: &[Person], segments: &[Segment], policies: &[Policy]) -> Vec<Finding> {
    let mut groups: BTreeMap<(Role, BTreeSet<String>), Vec<&str>> = BTreeMap::new();
    for p in people {
        let segs: BTreeSet<String> = segments
            .iter()
            .filter(|s| selects(&s.user_group_filter, p))
            .map(|s| s.name.clone())
            .collect();
        groups
            .entry((p.role.clone(), segs))
            .or_default()
            .push(&p.user.user_principal_name);
    }
    let mut out = Vec::new();
    for ((role_a, segs_a), who_a) in &groups {
        let Role::Account(vendor) = role_a else {
            continue;
        };
        for ((role_b, segs_b), who_b) in &groups {
            if permitted(vendor, role_b) || !reach(segs_a, segs_b, policies) {
                continue;
            }
            let whose = match role_b {
                Role::Account(v) => format!("an account of vendor {v}"),
                Role::Engineer(v) => format!(
                    "an engineer of {}",
                    v.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            let name = |s: &BTreeSet<String>| {
                if s.is_empty() {
                    "no segment".to_owned()
                } else {
                    s.iter().cloned().collect::<Vec<_>>().join("+")
                }
            };
            out.push(Finding {
                kind: "CrossVendorPath",
                message: format!(
                    "{} (an account of vendor {vendor}, in {}) can reach {} ({whose}, in {}) under the Active policies",
                    who_a[0],
                    name(segs_a),
                    who_b[0],
                    name(segs_b)
                ),
            });
        }
    }
    out
}

#[cfg(test)]
#[path = "audit_paths_tests.rs"]
mod tests;

/// A group's members; a group the tenant does not have (a VendorTenant of another tenant, or
/// one whose group was deleted) has none.
async fn members(
    dir: &crate::directory::Directory,
    group: &str,
) -> Result<BTreeSet<String>, crate::graph::GraphError> {
    match dir.members(group).await {
        Err(e) if e.is_not_found() => Ok(BTreeSet::new()),
        other => other,
    }
}

/// The people the invariant is about: every member of the vendors' accounts groups (orphaned
/// and adopted accounts included) and engineers groups, and every user the operator marked,
/// each with its direct groups (from `known_groups` where the caller already read them).
pub async fn people(
    dir: &crate::directory::Directory,
    vendors: &[crate::crd::VendorTenant],
    marked: &[(DirUser, Option<String>)],
    known_groups: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<Person>, crate::graph::GraphError> {
    use kube::ResourceExt;
    let mut roles: BTreeMap<String, Role> = BTreeMap::new();
    let mut users: BTreeMap<String, DirUser> = BTreeMap::new();
    for (user, vendor) in marked {
        if let Some(v) = vendor {
            roles.insert(user.id.clone(), Role::Account(v.clone()));
        }
        users.insert(user.id.clone(), user.clone());
    }
    for v in vendors {
        let status = v.status.clone().unwrap_or_default();
        if let Some(g) = &status.accounts_group_id {
            for id in members(dir, g).await? {
                roles.entry(id).or_insert_with(|| Role::Account(v.name_any()));
            }
        }
        if let Some(g) = &status.engineers_group_id {
            for id in members(dir, g).await? {
                let role = roles.entry(id).or_insert_with(|| Role::Engineer(BTreeSet::new()));
                if let Role::Engineer(served) = role {
                    served.insert(v.name_any());
                }
            }
        }
    }
    let mut out = Vec::new();
    for (id, role) in roles {
        let user = match users.remove(&id) {
            Some(u) => u,
            None => match dir.user(&id).await? {
                Some(u) => u,
                None => continue,
            },
        };
        let groups = match known_groups.get(&id) {
            Some(g) => g.clone(),
            None => dir.member_of(&id).await?,
        };
        out.push(Person { user, role, groups });
    }
    Ok(out)
}
