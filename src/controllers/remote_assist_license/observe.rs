//! Reads what the tenant and the cluster hold for one account, and works out what it should be.

use super::credentials::{Credentials, ROTATE_ANNOTATION};
use super::plan::{BarrierAttribute, Desired, Licensing, Observed};
use crate::context::Context;
use crate::crd::remote_assist_license::AdoptionPolicy;
use crate::crd::vendor_tenant::LicenseMode;
use crate::crd::{RemoteAssistLicense, VendorTenant};
use crate::directory::view::Seen;
use crate::directory::{AssignedLicense, SkuTable};
use crate::error::Error;
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
    adoption: AdoptionPolicy,
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
        vendor_domain: vendor.spec.domain.to_ascii_lowercase(),
        display_name: ral.spec.display_name.clone(),
        mail_nickname: ral.spec.mail_nickname.clone(),
        usage_location: ral.spec.usage_location.clone(),
        adoption,
        manage_adopted_credentials: vendor.manages_adopted_credentials(),
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
    // Only a user that may be adopted now has its roles read (fail closed: no read, no adoption).
    let directory_roles = match &seen {
        Some(s)
            if s.user.managed_by().is_none()
                && d.adoption != AdoptionPolicy::CreateOnly
                && s.user.upn_domain() == d.vendor_domain =>
        {
            Some(dir.directory_roles(&s.user.id).await?)
        }
        _ => None,
    };
    let free_seats = crate::directory::free_seats(&dir.skus(false).await?);
    let license_error_stale = seen.as_ref().is_some_and(|s| license_error_stale(&s.user, d));
    let observed = Observed {
        free_seats,
        license_error_stale,
        directory_roles,
        rotation_wait: rotation_wait(ral, ctx.config.rotation_interval),
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

/// How long until the next password may be set: rotations and resets are at most one per
/// `interval` per licence, so nobody with write access to a licence or its Secret can make the
/// operator rewrite passwords in a loop.
pub fn rotation_wait(
    ral: &RemoteAssistLicense,
    interval: std::time::Duration,
) -> Option<std::time::Duration> {
    let last = ral.status.as_ref()?.password_set_at.as_ref()?.0;
    let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(last);
    let elapsed = std::time::Duration::try_from(elapsed).unwrap_or_default();
    interval.checked_sub(elapsed).filter(|w| !w.is_zero())
}

/// The vendor's licences that count against its `maxAccounts`: not being deleted, and in a
/// namespace the vendor allows (each namespace checked once).
pub async fn counted_licenses(
    ctx: &Context,
    vendor: &VendorTenant,
) -> Result<Vec<std::sync::Arc<RemoteAssistLicense>>, Error> {
    // A full list, never a cache still filling after a restart: maxAccounts counts them all.
    let mut all = crate::watch::licenses_of(ctx.licenses().await?, &vendor.name_any());
    all.retain(|l| l.metadata.deletion_timestamp.is_none());
    let namespaces: std::collections::BTreeSet<String> =
        all.iter().map(|l| l.namespace().unwrap_or_default()).collect();
    let mut allowed = std::collections::BTreeMap::new();
    for ns in namespaces {
        let ok = namespace_allowed(ctx, vendor, &ns).await?;
        allowed.insert(ns, ok);
    }
    all.retain(|l| allowed[&l.namespace().unwrap_or_default()]);
    Ok(all)
}

/// How long a group licence error the operator cannot see the cause of waits before a reprocess.
const LICENSE_ERROR_RETRY: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Whether the account's failed group licence was last processed more than
/// [`LICENSE_ERROR_RETRY`] ago (an unreadable time counts as not stale: no reprocess loop).
pub fn license_error_stale(user: &crate::directory::DirUser, d: &Desired) -> bool {
    let now = k8s_openapi::jiff::Timestamp::now();
    user.group_license_failures(&d.accounts_group_id)
        .filter_map(|s| {
            s.last_updated_date_time
                .as_deref()?
                .parse::<k8s_openapi::jiff::Timestamp>()
                .ok()
        })
        .any(|at| now.duration_since(at).unsigned_abs() > LICENSE_ERROR_RETRY)
}
