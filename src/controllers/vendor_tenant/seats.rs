//! Seat pre-flight (pure): for each SKU the vendor asks for, the seats free in the tenant and the
//! seats its accounts still need; and the group-licence changes in `Group` mode.

use crate::controllers::remote_assist_license::observe::resolve_licenses;
use crate::crd::conditions::{Status, types};
use crate::crd::vendor_tenant::SeatStatus;
use crate::crd::{RemoteAssistLicense, VendorTenant};
use crate::directory::{AssignedLicense, DirGroup, SkuTable};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Evaluation {
    pub seats: Vec<SeatStatus>,
    pub condition: (Status, &'static str, String),
    /// The vendor's licences resolved to ids, or why they cannot be.
    pub resolved: Result<Vec<AssignedLicense>, String>,
}

/// Whether an account still needs a seat of `part`: it asks for it, is not suspended, is
/// allowed to exist, and does not hold it yet.
fn needs(account: &RemoteAssistLicense, vendor: &VendorTenant, part: &str) -> bool {
    if account.spec.suspended == Some(true) {
        return false;
    }
    let requests = account.spec.licenses.as_deref().unwrap_or(&vendor.spec.licenses);
    let status = account.status.as_ref();
    let refused = status
        .and_then(|s| crate::crd::conditions::find(&s.conditions, types::ACCOUNT_READY))
        .is_some_and(|c| {
            matches!(
                c.reason.as_str(),
                "NamespaceNotAllowed" | "Conflict" | "LicenseOverrideRefused"
            )
        });
    requests.iter().any(|r| r.sku_part_number == part)
        && !refused
        && !status.is_some_and(|s| s.assigned_licenses.iter().any(|p| p == part))
}

pub fn evaluate(vendor: &VendorTenant, accounts: &[Arc<RemoteAssistLicense>], skus: &SkuTable) -> Evaluation {
    let mut parts: Vec<String> = vendor
        .spec
        .licenses
        .iter()
        .map(|l| l.sku_part_number.clone())
        .collect();
    for a in accounts {
        for l in a.spec.licenses.iter().flatten() {
            if !parts.contains(&l.sku_part_number) {
                parts.push(l.sku_part_number.clone());
            }
        }
    }
    let mut seats = Vec::new();
    let mut short = Vec::new();
    let mut unknown = Vec::new();
    for part in &parts {
        let Some(sku) = skus.get(part) else {
            unknown.push(part.clone());
            continue;
        };
        let needed = accounts.iter().filter(|a| needs(a, vendor, part)).count() as i32;
        let free = sku.free().min(i32::MAX as i64) as i32;
        if needed > free {
            short.push(format!("{part} needs {needed}, {free} free"));
        }
        seats.push(SeatStatus {
            sku_part_number: part.clone(),
            free,
            needed,
        });
    }
    let condition = if !unknown.is_empty() {
        (
            Status::False,
            "UnknownLicense",
            format!("the tenant has no SKU {}", unknown.join(", ")),
        )
    } else if !short.is_empty() {
        (
            Status::False,
            "InsufficientSeats",
            format!("not enough seats: {}", short.join("; ")),
        )
    } else {
        (
            Status::True,
            "SeatsAvailable",
            "every SKU has the seats this vendor's accounts need".into(),
        )
    };
    Evaluation {
        seats,
        condition,
        resolved: resolve_licenses(&vendor.spec.licenses, skus),
    }
}

/// Licences to add to and remove from the accounts group. Only a group the operator created
/// loses licences the spec does not ask for.
pub fn group_changes(
    group: &DirGroup,
    wanted: &[AssignedLicense],
    owned: bool,
) -> (Vec<AssignedLicense>, Vec<String>) {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let add = wanted
        .iter()
        .filter(|w| {
            !group
                .assigned_licenses
                .iter()
                .any(|a| a.sku_id == w.sku_id && sorted(&a.disabled_plans) == sorted(&w.disabled_plans))
        })
        .cloned()
        .collect();
    let remove = if owned {
        group
            .assigned_licenses
            .iter()
            .filter(|a| !wanted.iter().any(|w| w.sku_id == a.sku_id))
            .map(|a| a.sku_id.clone())
            .collect()
    } else {
        Vec::new()
    };
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Sku;

    fn vendor() -> VendorTenant {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "remoteassist.dev/v1alpha1", "kind": "VendorTenant",
            "metadata": {"name": "v1"},
            "spec": {"displayName": "V1", "domain": "v.example", "allowedNamespaces": {"names": ["a"]},
                     "licenses": [{"skuPartNumber": "RA"}, {"skuPartNumber": "E5"}]}
        }))
        .unwrap()
    }

    fn account(assigned: &[&str], suspended: bool) -> Arc<RemoteAssistLicense> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "remoteassist.dev/v1alpha1", "kind": "RemoteAssistLicense",
                "metadata": {"name": "a", "namespace": "a"},
                "spec": {"vendorRef": {"name": "v1"}, "displayName": "A", "mailNickname": "a", "usageLocation": "US", "suspended": suspended},
                "status": {"assignedLicenses": assigned}
            }))
            .unwrap(),
        )
    }

    fn skus(ra_free: i64) -> SkuTable {
        let sku = |id: &str, part: &str, enabled: i64| Sku {
            sku_id: id.into(),
            part_number: part.into(),
            enabled,
            consumed: 0,
            plans: Default::default(),
        };
        [
            ("RA".to_string(), sku("ra", "RA", ra_free)),
            ("E5".to_string(), sku("e5", "E5", 100)),
        ]
        .into()
    }

    #[test]
    fn seats_needed_count_only_accounts_still_waiting() {
        let accounts = vec![
            account(&["RA", "E5"], false),
            account(&[], false),
            account(&[], true),
        ];
        let e = evaluate(&vendor(), &accounts, &skus(5));
        let ra = e.seats.iter().find(|s| s.sku_part_number == "RA").unwrap();
        assert_eq!((ra.free, ra.needed), (5, 1));
        assert_eq!(e.condition.0, Status::True);
        let e = evaluate(&vendor(), &accounts, &skus(0));
        assert_eq!(e.condition.1, "InsufficientSeats");
        assert!(e.condition.2.contains("RA needs 1, 0 free"), "{}", e.condition.2);
    }

    #[test]
    fn unknown_sku_is_reported() {
        let mut v = vendor();
        v.spec.licenses[0].sku_part_number = "NOPE".into();
        assert_eq!(evaluate(&v, &[], &skus(1)).condition.1, "UnknownLicense");
    }

    #[test]
    fn group_licenses_removed_only_from_own_group() {
        let g = DirGroup {
            id: "g".into(),
            display_name: "G".into(),
            description: None,
            assigned_licenses: vec![AssignedLicense {
                sku_id: "old".into(),
                disabled_plans: vec![],
            }],
        };
        let wanted = vec![AssignedLicense {
            sku_id: "ra".into(),
            disabled_plans: vec![],
        }];
        let (add, remove) = group_changes(&g, &wanted, true);
        assert_eq!((add.len(), remove), (1, vec!["old".to_string()]));
        assert!(group_changes(&g, &wanted, false).1.is_empty());
    }
}
