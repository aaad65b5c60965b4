//! Pure decisions for BarrierSegments: the segment filter and policy a spec asks for, the
//! commands that bring the tenant there, and the tenant-wide symmetry check that must pass
//! before policies are applied.

use super::members::{self, Scope};
use super::{invariant, ownership, pairing};
use crate::compliance::definitions::{Policy, Segment};
use crate::controllers::refusal::{Refusal, refusal};
use crate::crd::barrier_segment::CreatedObjects;
use crate::crd::barrier_segment::{PolicyState, PolicyType};
use crate::crd::{BarrierSegment, VendorTenant};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDesired {
    pub allowed: bool,
    /// Tenant segment names, sorted; an allow list always includes the segment itself.
    pub segments: Vec<String>,
    pub state: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub name: String,
    pub filter: String,
    pub policy: Option<PolicyDesired>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    CreateSegment { name: String, filter: String },
    UpdateSegment { id: String, filter: String },
    CreatePolicy { segment: String, policy: PolicyDesired },
    UpdatePolicy { id: String, policy: PolicyDesired },
}

impl Step {
    /// The step's kind, stable for tests and the plan's JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::CreateSegment { .. } => "CreateSegment",
            Step::UpdateSegment { .. } => "UpdateSegment",
            Step::CreatePolicy { .. } => "CreatePolicy",
            Step::UpdatePolicy { .. } => "UpdatePolicy",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Step::CreateSegment { name, filter } => format!("create segment {name} ({filter})"),
            Step::UpdateSegment { filter, .. } => format!("update the segment filter to {filter}"),
            Step::CreatePolicy { policy, .. } | Step::UpdatePolicy { policy, .. } => format!(
                "{} {} policy {} [{}]",
                if matches!(self, Step::CreatePolicy { .. }) {
                    "create"
                } else {
                    "update"
                },
                policy.state,
                if policy.allowed { "allowing" } else { "blocking" },
                policy.segments.join(", ")
            ),
        }
    }
}

/// An OPATH string literal: single quotes doubled, so a value is never read as filter syntax.
pub fn opath_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Tenant segment names of BarrierSegments, by object name.
pub fn segment_names(all: &[Arc<BarrierSegment>]) -> BTreeMap<String, String> {
    all.iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), s.segment_name()))
        .collect()
}

/// What the spec asks for. Referenced BarrierSegments must exist.
pub fn desired(
    bs: &BarrierSegment,
    all: &[Arc<BarrierSegment>],
    scope: Scope,
) -> Result<Desired, (&'static str, String)> {
    let name = bs.segment_name();
    let filter = members::filter(&bs.spec.members, scope).map_err(|m| ("MembersUnresolved", m))?;
    let names = segment_names(all);
    let resolve = |refs: &[String]| -> Result<Vec<String>, (&'static str, String)> {
        let mut out = Vec::new();
        for r in refs {
            let n = names
                .get(r)
                .ok_or(("UnknownSegment", format!("BarrierSegment {r} does not exist")))?;
            out.push(n.clone());
        }
        Ok(out)
    };
    let state = match bs.spec.policy_state.unwrap_or_default() {
        PolicyState::Active => "Active",
        PolicyState::Inactive => "Inactive",
    };
    let policy = match bs.policy_type() {
        PolicyType::Allow => {
            let mut segments = resolve(&pairing::allowed_refs(bs, all, scope.vendors))?;
            segments.push(name.clone());
            segments.sort();
            segments.dedup();
            Some(PolicyDesired {
                allowed: true,
                segments,
                state,
            })
        }
        PolicyType::Block => {
            let mut segments = resolve(bs.spec.blocked_segments.as_deref().unwrap_or_default())?;
            segments.sort();
            segments.dedup();
            Some(PolicyDesired {
                allowed: false,
                segments,
                state,
            })
        }
        PolicyType::None => None,
    };
    Ok(Desired { name, filter, policy })
}

/// Why a BarrierSegment goes no further than the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Its name is another object's, or another segment selects its vendor's accounts: nothing
    /// in the tenant is bound or changed, and its policy does not count as applied.
    Refused(Refusal),
    /// Its spec does not resolve (e.g. an allowed segment that does not exist).
    Invalid(Refusal),
}

/// The decisions made from the cluster alone, before the tenant is read (pure): a refused
/// object never reaches the tenant.
pub fn admit(bs: &BarrierSegment, all: &[Arc<BarrierSegment>], scope: Scope) -> Result<Desired, Rejection> {
    let vendors = scope.vendors;
    use kube::ResourceExt;
    if let Some(holder) = ownership::name_holder(bs, all) {
        let message = format!(
            "BarrierSegment {} holds the segment name {} (names are compared without regard to case and belong to the one created first); nothing is written to the tenant for this one",
            holder.name_any(),
            holder.segment_name()
        );
        return Err(Rejection::Refused(refusal(ownership::NAME_TAKEN, message)));
    }
    if let Some((vendor, others)) = invariant::rivals(bs, all, vendors) {
        let message = format!(
            "BarrierSegments {} also select VendorTenant {vendor}'s accounts; exactly one may isolate them, so none is trusted, its accounts stay disabled, and nothing is written to the tenant for this one",
            others.join(", ")
        );
        return Err(Rejection::Refused(refusal("Conflict", message)));
    }
    desired(bs, all, scope).map_err(|(reason, message)| Rejection::Invalid(refusal(reason, message)))
}

/// The tenant objects `desired` binds to and the commands that bring them to it (pure), or a
/// [`ownership::CONFLICT`] refusal.
pub fn tenant_steps<'a>(
    desired: &Desired,
    uid: &str,
    record: &CreatedObjects,
    adopt: bool,
    segments: &'a [Segment],
    policies: &'a [Policy],
) -> Result<(ownership::Bound<'a>, Vec<Step>), Refusal> {
    let bound = ownership::bind(&desired.name, uid, record, adopt, segments, policies)
        .map_err(|message| refusal(ownership::CONFLICT, message))?;
    let steps = plan(desired, bound.segment, bound.policy);
    Ok((bound, steps))
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Commands that bring the tenant's segment and policy to `d`.
pub fn plan(d: &Desired, segment: Option<&Segment>, policy: Option<&Policy>) -> Vec<Step> {
    let mut actions = Vec::new();
    match segment {
        None => actions.push(Step::CreateSegment {
            name: d.name.clone(),
            filter: d.filter.clone(),
        }),
        Some(s) if s.user_group_filter != d.filter => actions.push(Step::UpdateSegment {
            id: s.identity.clone(),
            filter: d.filter.clone(),
        }),
        Some(_) => {}
    }
    if let Some(want) = &d.policy {
        match policy {
            None => actions.push(Step::CreatePolicy {
                segment: d.name.clone(),
                policy: want.clone(),
            }),
            Some(p) => {
                let have = if want.allowed {
                    &p.segments_allowed
                } else {
                    &p.segments_blocked
                };
                if sorted(have) != want.segments || !p.state.eq_ignore_ascii_case(want.state) {
                    actions.push(Step::UpdatePolicy {
                        id: p.identity.clone(),
                        policy: want.clone(),
                    });
                }
            }
        }
    }
    actions
}

/// Allow lists that are not mirrored: `(a, b)` means segment object `a` allows `b` but `b` does
/// not allow `a` back (or is not an Active allow policy). Policy application would fail on them.
pub fn asymmetries(all: &[Arc<BarrierSegment>], vendors: &[Arc<VendorTenant>]) -> Vec<(String, String)> {
    let active_allow = |s: &BarrierSegment| {
        s.policy_type() == PolicyType::Allow && s.spec.policy_state.unwrap_or_default() == PolicyState::Active
    };
    let by_name: BTreeMap<String, &Arc<BarrierSegment>> = all
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
        .collect();
    let mut out = Vec::new();
    for a in all
        .iter()
        .filter(|s| active_allow(s) && s.metadata.deletion_timestamp.is_none())
    {
        let a_name = a.metadata.name.clone().unwrap_or_default();
        for b_name in pairing::allowed_refs(a, all, vendors) {
            if b_name == a_name {
                continue;
            }
            let mirrored = by_name
                .get(&b_name)
                .is_some_and(|b| active_allow(b) && pairing::allowed_refs(b, all, vendors).contains(&a_name));
            if !mirrored {
                out.push((a_name.clone(), b_name));
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
