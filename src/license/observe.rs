//! Reads what the tenant and the cluster hold for one account, and works out what it should be.

use super::credentials::{Credentials, ROTATE_ANNOTATION};
use super::plan::{BarrierAttribute, Desired, Licensing, Observed};
use crate::context::{Context, Error};
use crate::crd::vendor_tenant::LicenseMode;
use crate::crd::{RemoteAssistLicense, VendorTenant};
use crate::directory::view::Seen;
use crate::directory::{AssignedLicense, SkuTable};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::{Selector, SelectorExt};
use kube::{Api, ResourceExt};

/// Whether the vendor lets this namespace hold its accounts: by name, or by its selector over
/// the namespace's labels.
pub async fn namespace_allowed(ctx: &Context, vendor: &VendorTenant, namespace: &str) -> Result<bool, Error> {
    let allowed = &vendor.spec.allowed_namespaces;
    if allowed.names.iter().flatten().any(|n| n == namespace) {
        return Ok(true);
    }
    let Some(selector) = &allowed.selector else {
        return Ok(false);
    };
    let Ok(selector) = Selector::try_from(selector.clone()) else {
        return Ok(false);
    };
    let ns = Api::<Namespace>::all(ctx.kube.clone()).get_opt(namespace).await?;
    Ok(ns.is_some_and(|ns| selector.matches(ns.labels())))
}

/// The part numbers a licence asks for, resolved to SKU and plan ids; unknown part numbers and
/// plan names are returned as an error message for the `LicensesAssigned` condition.
pub fn resolve_licenses(
    requests: &[crate::crd::LicenseRequest],
    skus: &SkuTable,
) -> Result<Vec<AssignedLicense>, String> {
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for r in requests {
        let Some(sku) = skus.get(&r.sku_part_number) else {
            unknown.push(format!("SKU {}", r.sku_part_number));
            continue;
        };
        let mut disabled = Vec::new();
        for plan in &r.disabled_plans {
            match sku.plans.get(plan) {
                Some(id) => disabled.push(id.clone()),
                None => unknown.push(format!("service plan {plan} of {}", r.sku_part_number)),
            }
        }
        out.push(AssignedLicense {
            sku_id: sku.sku_id.clone(),
            disabled_plans: disabled,
        });
    }
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(format!("the tenant has no {}", unknown.join(", ")))
    }
}

/// What the account should be. `Err` carries a message for a licence request the tenant cannot
/// satisfy (unknown SKU or plan).
pub fn desired(
    ral: &RemoteAssistLicense,
    vendor: &VendorTenant,
    accounts_group_id: &str,
    skus: &SkuTable,
    enforced: bool,
) -> Result<Desired, String> {
    let requests = ral.spec.licenses.as_deref().unwrap_or(&vendor.spec.licenses);
    let licensing = match vendor.license_mode() {
        LicenseMode::Direct => Licensing::Direct(resolve_licenses(requests, skus)?),
        LicenseMode::Group => Licensing::Group(
            resolve_licenses(&vendor.spec.licenses, skus)?
                .into_iter()
                .map(|a| a.sku_id)
                .collect(),
        ),
    };
    let attribute = vendor
        .membership_attribute()
        .graph_property()
        .map(|(property, key)| BarrierAttribute {
            property,
            key,
            value: vendor.accounts_segment_value(),
        });
    Ok(Desired {
        owner_uid: ral.uid().unwrap_or_default(),
        upn: ral.user_principal_name(&vendor.spec.domain),
        display_name: ral.spec.display_name.clone(),
        mail_nickname: ral.spec.mail_nickname.clone(),
        usage_location: ral.spec.usage_location.clone(),
        adoption: ral.spec.adoption.unwrap_or_default(),
        accounts_group_id: accounts_group_id.to_owned(),
        licensing,
        attribute,
        barrier_required: vendor.barriers_required(),
        barrier_enforced: enforced,
        suspended: ral.spec.suspended.unwrap_or(false),
    })
}

/// Reads the user (by the id in status, else by UPN), its group membership and the Secret.
/// From the directory view unless `fresh`; the flag returned says whether everything came
/// from Graph rather than from the operator's own writes (see [`crate::directory::view`]).
pub async fn observe(
    ctx: &Context,
    ral: &RemoteAssistLicense,
    d: &Desired,
    fresh: bool,
) -> Result<(Observed, bool), Error> {
    let dir = &ctx.directory;
    let lookup = async |key: &str| -> Result<Option<Seen>, Error> {
        Ok(if fresh {
            dir.user(key).await?.map(|user| Seen {
                user,
                confirmed: true,
            })
        } else {
            dir.cached_user(key).await?
        })
    };
    if !fresh {
        dir.refresh().await?;
    }
    let status = ral.status.as_ref();
    let status_user_id = status.and_then(|s| s.user_id.clone());
    let mut deleted = false;
    let mut seen = None;
    if let Some(id) = &status_user_id {
        seen = lookup(id).await?;
        if seen.is_none() {
            deleted = dir.deleted_user(id).await?.is_some();
        }
    }
    if seen.is_none() && !deleted {
        seen = lookup(&d.upn).await?;
    }
    let (in_group, member_confirmed) = match &seen {
        Some(s) => dir.is_member(&d.accounts_group_id, &s.user.id, fresh).await?,
        None => (false, true),
    };
    let confirmed = member_confirmed && seen.as_ref().is_none_or(|s| s.confirmed);
    let secret = Credentials::new(ctx.kube.clone(), ral).state().await?;
    let observed = Observed {
        status_adopted: status.and_then(|s| s.created_by_operator) == Some(false),
        user: seen.map(|s| s.user),
        status_user_id,
        deleted,
        in_group,
        secret,
        rotation_request: ral.annotations().get(ROTATE_ANNOTATION).cloned(),
    };
    Ok((observed, confirmed))
}
