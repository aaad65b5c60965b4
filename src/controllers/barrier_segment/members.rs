//! The segment filter (`UserGroupFilter`) a BarrierSegment's members ask for (pure). Vendor
//! sources follow the vendor's barrier attribute: its value (`<vendor>-accounts` /
//! `<vendor>-engineers`), or `MemberOf` the vendor's group by object id. An engineer who serves
//! several vendors can only be matched by something with several values, so the multi-segment
//! design matches engineers by `MemberOf` their vendor's engineers group.

use super::plan::opath_string;
use crate::barriers::IbMode;
use crate::crd::VendorTenant;
use crate::crd::barrier_segment::{SegmentMembers, UserAttributeMatch};
use crate::crd::vendor_tenant::MembershipAttribute;
use kube::ResourceExt;
use std::sync::Arc;

const MEMBER_OF: &str = "MemberOf";

/// What a filter may depend on besides the members: every vendor, and the tenant's IB mode.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub vendors: &'a [Arc<VendorTenant>],
    pub mode: Option<IbMode>,
}

impl Scope<'_> {
    fn vendor(&self, name: &str) -> Result<&Arc<VendorTenant>, String> {
        self.vendors
            .iter()
            .find(|v| v.name_any() == name)
            .ok_or_else(|| format!("VendorTenant {name} does not exist"))
    }
}

/// The information-barrier name of an attribute (its serde name).
fn ib_name<T: serde::Serialize>(a: T) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The left and right side of the comparison that selects a vendor's accounts (or engineers).
fn vendor_side(v: &VendorTenant, accounts: bool) -> Result<(String, String), String> {
    let attribute = v.membership_attribute();
    if attribute == MembershipAttribute::MemberOf {
        let status = v.status.clone().unwrap_or_default();
        let id = if accounts {
            status.accounts_group_id
        } else {
            status.engineers_group_id
        };
        let id = id.ok_or_else(|| format!("VendorTenant {} has no group id yet", v.name_any()))?;
        return Ok((MEMBER_OF.to_owned(), opath_string(&id)));
    }
    let value = if accounts {
        v.accounts_segment_value()
    } else {
        v.engineers_segment_value()
    };
    Ok((ib_name(attribute), opath_string(&value)))
}

fn equals((lhs, rhs): (String, String)) -> String {
    format!("{lhs} -eq {rhs}")
}

/// Not selected by the side: an unset attribute counts as different under either reading of
/// `-ne` with `$null`.
fn differs((lhs, rhs): (String, String)) -> String {
    if lhs == MEMBER_OF {
        format!("(MemberOf -ne {rhs})")
    } else {
        format!("({lhs} -ne {rhs} -or {lhs} -eq $null)")
    }
}

/// `MemberOf` the vendor's engineers group, if it has engineers and the group exists.
fn engineers_group(v: &VendorTenant) -> Result<Option<String>, String> {
    if v.spec.support_engineers.is_none() {
        return Ok(None);
    }
    let id = v.status.as_ref().and_then(|s| s.engineers_group_id.clone());
    let id = id.ok_or_else(|| format!("VendorTenant {} has no engineers group id yet", v.name_any()))?;
    Ok(Some(format!("MemberOf -eq {}", opath_string(&id))))
}

/// The multi-segment vendor segment: its accounts, or its engineers by group.
fn vendor_filter(v: &VendorTenant) -> Result<String, String> {
    let accounts = equals(vendor_side(v, true)?);
    Ok(match engineers_group(v)? {
        Some(engineers) => format!("({accounts}) -or ({engineers})"),
        None => accounts,
    })
}

/// The host's staff by their attribute, never a vendor's accounts. In single-segment mode the
/// vendors' engineers are left out (a user is in one segment only, and theirs is paired with
/// this one); in multi-segment mode they are put in (so they reach their colleagues directly).
fn host_filter(m: &UserAttributeMatch, scope: Scope) -> Result<String, String> {
    let mode = scope
        .mode
        .ok_or("the tenant's information-barrier mode is not known yet (Get-PolicyConfig)")?;
    let staff = format!("{} -eq {}", ib_name(m.attribute), opath_string(&m.value));
    let mut vendors: Vec<&Arc<VendorTenant>> = scope.vendors.iter().collect();
    vendors.sort_by_key(|v| v.name_any());
    let mut include = vec![staff];
    let mut exclude = Vec::new();
    for v in vendors {
        exclude.push(differs(vendor_side(v, true)?));
        if v.spec.support_engineers.is_none() {
            continue;
        }
        if mode.multi() {
            include.extend(engineers_group(v)?);
        } else {
            exclude.push(differs(vendor_side(v, false)?));
        }
    }
    let include = if include.len() == 1 {
        include.remove(0)
    } else {
        format!("({})", include.join(" -or "))
    };
    Ok(std::iter::once(include)
        .chain(exclude)
        .collect::<Vec<_>>()
        .join(" -and "))
}

/// The segment filter for `members`.
pub fn filter(members: &SegmentMembers, scope: Scope) -> Result<String, String> {
    match members {
        SegmentMembers {
            vendor_accounts: Some(v),
            ..
        } => Ok(equals(vendor_side(scope.vendor(v)?, true)?)),
        SegmentMembers {
            vendor_engineers: Some(v),
            ..
        } => Ok(equals(vendor_side(scope.vendor(v)?, false)?)),
        SegmentMembers { vendor: Some(v), .. } => vendor_filter(scope.vendor(v)?),
        SegmentMembers {
            host_staff: Some(m), ..
        } => host_filter(m, scope),
        SegmentMembers {
            group_id: Some(id), ..
        } => Ok(format!("MemberOf -eq {}", opath_string(id))),
        SegmentMembers {
            user_attribute: Some(m),
            ..
        } => Ok(format!("{} -eq {}", ib_name(m.attribute), opath_string(&m.value))),
        _ => Err("members names no source".into()),
    }
}
