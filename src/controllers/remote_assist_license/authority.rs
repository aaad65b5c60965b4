//! What a RemoteAssistLicense may ask of the operator. Licences are written by people with
//! rights in a vendor namespace, far less trusted than the platform team that writes
//! VendorTenants, while the operator's Graph identity can change any user in the tenant. So
//! every field of a licence is a request to a privileged deputy, checked here against what its
//! VendorTenant allows before anything is read or written in the tenant. Pure: no I/O.

use crate::crd::remote_assist_license::AdoptionPolicy;
use crate::crd::{LicenseRequest, RemoteAssistLicense, VendorTenant};
use crate::directory::upn_domain;
use kube::ResourceExt;
use std::collections::BTreeSet;

pub use crate::controllers::refusal::Refusal;
use crate::controllers::refusal::refusal;

/// The user principal name must be in the vendor's domain (compared case-insensitively):
/// a licence can never name, create or adopt an account of the host or of another vendor.
pub fn check_domain(upn: &str, vendor: &VendorTenant) -> Result<(), Refusal> {
    let domain = upn_domain(upn);
    if domain == vendor.spec.domain.to_ascii_lowercase() {
        return Ok(());
    }
    Err(refusal(
        "OutsideVendorDomain",
        format!(
            "userPrincipalName {upn} is not in VendorTenant {}'s domain {}; a licence may only name accounts under its vendor's domain, and nothing was read or written for it",
            vendor.name_any(),
            vendor.spec.domain
        ),
    ))
}

/// The adoption policy in force: the VendorTenant decides, the licence can only narrow it.
/// `AdoptOnly` where the vendor never adopts is refused; `AdoptOrCreate` becomes `CreateOnly`.
pub fn effective_adoption(
    ral: &RemoteAssistLicense,
    vendor: &VendorTenant,
) -> Result<AdoptionPolicy, Refusal> {
    let asked = ral.spec.adoption.unwrap_or_default();
    match (asked, vendor.adoption_allowed()) {
        (_, true) | (AdoptionPolicy::CreateOnly, false) => Ok(asked),
        (AdoptionPolicy::AdoptOrCreate, false) => Ok(AdoptionPolicy::CreateOnly),
        (AdoptionPolicy::AdoptOnly, false) => Err(refusal(
            "AdoptionNotAllowed",
            format!(
                "adoption is AdoptOnly but VendorTenant {} does not allow adopting existing users (spec.adoption.policy); nothing was changed in the tenant",
                vendor.name_any()
            ),
        )),
    }
}

/// A licence override may name only SKUs its vendor lists: a namespace cannot spend seats of
/// licences the platform team did not offer that vendor.
pub fn check_license_override(ral: &RemoteAssistLicense, vendor: &VendorTenant) -> Result<(), Refusal> {
    let Some(requests) = &ral.spec.licenses else {
        return Ok(());
    };
    let offered: BTreeSet<&str> = vendor
        .spec
        .licenses
        .iter()
        .map(|l| l.sku_part_number.as_str())
        .collect();
    let extra: Vec<&str> = requests
        .iter()
        .map(|r: &LicenseRequest| r.sku_part_number.as_str())
        .filter(|p| !offered.contains(p))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(refusal(
        "LicenseNotOffered",
        format!(
            "spec.licenses names {} which VendorTenant {} does not list in spec.licenses; an override may only choose among the vendor's licences",
            extra.join(", "),
            vendor.name_any()
        ),
    ))
}

/// A licence's place among its vendor's licences: by creation time, then namespace and name,
/// so that the first `maxAccounts` keep their accounts whatever order reconciles run in.
fn order_key(l: &RemoteAssistLicense) -> (Option<k8s_openapi::jiff::Timestamp>, String, String) {
    (
        l.metadata.creation_timestamp.as_ref().map(|t| t.0),
        l.namespace().unwrap_or_default(),
        l.name_any(),
    )
}

/// Refuses a licence beyond its vendor's `maxAccounts`. `peers` are the vendor's licences
/// not being deleted and in a namespace the vendor allows (so licences another namespace
/// writes for this vendor cannot use up its slots); of those, ones refused for their domain or
/// their licences never get an account and hold no slot.
pub fn check_account_limit(
    ral: &RemoteAssistLicense,
    vendor: &VendorTenant,
    peers: &[&RemoteAssistLicense],
) -> Result<(), Refusal> {
    let max = vendor.max_accounts();
    let mine = order_key(ral);
    let before = peers
        .iter()
        .filter(|p| p.uid() != ral.uid() && order_key(p) < mine)
        .filter(|p| {
            check_domain(&p.user_principal_name(&vendor.spec.domain), vendor).is_ok()
                && check_license_override(p, vendor).is_ok()
        })
        .count();
    if before < max {
        return Ok(());
    }
    Err(refusal(
        "AccountLimitReached",
        format!(
            "VendorTenant {} allows at most {max} accounts (spec.maxAccounts) and {before} older licences hold them; no account is made for this one",
            vendor.name_any()
        ),
    ))
}

/// Every check that needs nothing from the tenant, in order; the effective adoption policy
/// when all pass.
pub fn authorize(
    ral: &RemoteAssistLicense,
    vendor: &VendorTenant,
    peers: &[&RemoteAssistLicense],
) -> Result<AdoptionPolicy, Refusal> {
    check_domain(&ral.user_principal_name(&vendor.spec.domain), vendor)?;
    check_license_override(ral, vendor)?;
    check_account_limit(ral, vendor, peers)?;
    effective_adoption(ral, vendor)
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
