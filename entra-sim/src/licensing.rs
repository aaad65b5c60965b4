//! Licensing: `subscribedSkus` with exact counts, `assignLicense` on users (direct) and groups
//! (group-based, reaching members asynchronously), and `licenseDetails`.

use crate::auth::{Principal, require};
use crate::model::Assigned;
use crate::odata::{GraphError, Query};
use crate::request::{base_url, json_body};
use crate::roles::UserWrite;
use crate::state::Sim;
use crate::users::visible_user_id;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

const SKU_READ: &[&str] = &[
    "LicenseAssignment.Read.All",
    "LicenseAssignment.ReadWrite.All",
    "Organization.Read.All",
    "Organization.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const ASSIGN_USER: &[&str] = &[
    "LicenseAssignment.ReadWrite.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const ASSIGN_GROUP: &[&str] = &[
    "LicenseAssignment.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const DETAILS_READ: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "LicenseAssignment.Read.All",
    "LicenseAssignment.ReadWrite.All",
];

type Result<T> = std::result::Result<T, GraphError>;

pub async fn subscribed_skus(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(&p, SKU_READ)?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    if query.filter.is_some() {
        return Err(GraphError::unsupported_query(
            "The $filter query option is not supported on subscribedSkus.",
        ));
    }
    let t = sim.tenant();
    let value: Vec<Value> = t
        .skus
        .iter()
        .map(|s| {
            json!({
                "id": format!("{}_{}", t.tenant_id, s.sku_id),
                "accountId": t.tenant_id,
                "accountName": t.initial_domain.split('.').next().unwrap_or_default(),
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": t.consumed.get(&s.sku_id).copied().unwrap_or(0),
                "prepaidUnits": {"enabled": s.prepaid, "suspended": 0, "warning": 0, "lockedOut": 0},
                "servicePlans": s.plans.iter().map(|(id, name)| json!({
                    "servicePlanId": id, "servicePlanName": name, "provisioningStatus": "Success", "appliesTo": "User"
                })).collect::<Vec<_>>(),
                "skuId": s.sku_id,
                "skuPartNumber": s.part_number,
                "subscriptionIds": [format!("{}-sub", &s.sku_id[..8])],
            })
        })
        .collect();
    Ok(axum::Json(
        json!({"@odata.context": format!("{}/v1.0/$metadata#subscribedSkus", base_url()), "value": value}),
    )
    .into_response())
}

/// Parses and checks an assignLicense body against the tenant's SKUs.
fn parse_body(sim: &Sim, body: &Value) -> Result<(Vec<Assigned>, Vec<String>)> {
    let (Some(add), Some(remove)) = (
        body.get("addLicenses").and_then(Value::as_array),
        body.get("removeLicenses").and_then(Value::as_array),
    ) else {
        return Err(GraphError::bad_request(
            "Invalid value specified for property 'addLicenses' or 'removeLicenses': both are required (use [] for none).",
        ));
    };
    let t = sim.tenant();
    let mut adds = Vec::new();
    for a in add {
        let sku_id = a["skuId"].as_str().unwrap_or_default().to_owned();
        let Some(sku) = t.sku(&sku_id) else {
            return Err(GraphError::bad_request(format!(
                "License {sku_id} does not correspond to a valid company License."
            )));
        };
        let disabled: Vec<String> = a["disabledPlans"]
            .as_array()
            .map(|d| d.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if let Some(bad) = disabled
            .iter()
            .find(|d| !sku.plans.iter().any(|(id, _)| id.eq_ignore_ascii_case(d)))
        {
            return Err(GraphError::bad_request(format!(
                "Service plan {bad} is not part of license {sku_id}."
            )));
        }
        adds.push(Assigned {
            sku_id: sku.sku_id.clone(),
            disabled_plans: disabled,
        });
    }
    let removes: Vec<String> = remove
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for r in &removes {
        if t.sku(r).is_none() {
            return Err(GraphError::bad_request(format!(
                "License {r} does not correspond to a valid company License."
            )));
        }
    }
    Ok((adds, removes))
}

pub async fn assign_to_user(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response> {
    require(&p, ASSIGN_USER)?;
    let body = json_body(&body)?;
    let id = visible_user_id(&sim, &key)?;
    let (adds, removes) = parse_body(&sim, &body)?;
    let mut t = sim.tenant();
    sim.roles
        .lock()
        .unwrap()
        .check_user_write(&sim, &t, &p, &id, UserWrite::Licenses)?;
    let user = &t.users[&id];
    if !adds.is_empty() && user.usage_location.is_none() {
        return Err(GraphError::bad_request(
            "License assignment cannot be done for user with invalid usage location.",
        ));
    }
    if let Some(r) = removes
        .iter()
        .find(|r| !user.direct.iter().any(|a| a.sku_id.eq_ignore_ascii_case(r)))
    {
        return Err(GraphError::bad_request(format!(
            "User does not have a corresponding license {r}."
        )));
    }
    let held = crate::model::Tenant::effective_skus(user);
    for a in &adds {
        if !held.contains(&a.sku_id) && t.free(&a.sku_id) <= 0 {
            return Err(GraphError::bad_request(format!(
                "Subscription with SKU {} does not have any available licenses.",
                a.sku_id
            )));
        }
    }
    let user = t.users.get_mut(&id).unwrap();
    user.direct
        .retain(|a| !removes.iter().any(|r| r.eq_ignore_ascii_case(&a.sku_id)));
    for a in adds {
        match user.direct.iter_mut().find(|d| d.sku_id == a.sku_id) {
            Some(existing) => existing.disabled_plans = a.disabled_plans,
            None => user.direct.push(a),
        }
    }
    t.recompute_licenses(&id);
    let mut out = t.users[&id].to_json();
    out.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#users/$entity", base_url())),
    );
    Ok((StatusCode::OK, axum::Json(Value::Object(out))).into_response())
}

pub async fn assign_to_group(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    require(&p, ASSIGN_GROUP)?;
    let body = json_body(&body)?;
    let (adds, removes) = parse_body(&sim, &body)?;
    let mut t = sim.tenant();
    let group = match t.groups.get_mut(&id) {
        Some(g) if g.visible_at <= Instant::now() => g,
        _ => return Err(GraphError::not_found(&id)),
    };
    group
        .licenses
        .retain(|a| !removes.iter().any(|r| r.eq_ignore_ascii_case(&a.sku_id)));
    for a in adds {
        match group.licenses.iter_mut().find(|d| d.sku_id == a.sku_id) {
            Some(existing) => existing.disabled_plans = a.disabled_plans,
            None => group.licenses.push(a),
        }
    }
    // Members get (or lose) these licences asynchronously; errors land in their
    // licenseAssignmentStates, not in this response.
    let mut out = group.to_json();
    out.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#groups/$entity", base_url())),
    );
    Ok((StatusCode::ACCEPTED, axum::Json(Value::Object(out))).into_response())
}

pub async fn license_details(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Response> {
    require(&p, DETAILS_READ)?;
    let id = visible_user_id(&sim, &key)?;
    let t = sim.tenant();
    let user = &t.users[&id];
    let mut seen = std::collections::BTreeSet::new();
    let value: Vec<Value> = user
        .states
        .iter()
        .filter(|s| s.state == "Active" && seen.insert(s.sku_id.clone()))
        .filter_map(|s| {
            let sku = t.sku(&s.sku_id)?;
            Some(json!({
                "id": format!("{}{}", &id[..8], &sku.sku_id[..8]),
                "skuId": sku.sku_id,
                "skuPartNumber": sku.part_number,
                "servicePlans": sku.plans.iter().map(|(pid, name)| json!({
                    "servicePlanId": pid, "servicePlanName": name, "appliesTo": "User",
                    "provisioningStatus": if s.disabled_plans.iter().any(|d| d.eq_ignore_ascii_case(pid)) { "Disabled" } else { "Success" },
                })).collect::<Vec<_>>(),
            }))
        })
        .collect();
    Ok(axum::Json(json!({"@odata.context": format!("{}/v1.0/$metadata#users('{id}')/licenseDetails", base_url()), "value": value})).into_response())
}

/// `POST /users/{id}/reprocessLicenseAssignment`: group licensing processes the user again, so
/// an inherited licence in error gets another try (the only way out of an error state here, as
/// "Force group license processing to resolve errors" describes:
/// https://learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems). Answers
/// 200 with the user (https://learn.microsoft.com/graph/api/user-reprocesslicenseassignment).
pub async fn reprocess_user(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Response> {
    require(&p, ASSIGN_USER)?;
    let id = visible_user_id(&sim, &key)?;
    let mut t = sim.tenant();
    sim.roles
        .lock()
        .unwrap()
        .check_user_write(&sim, &t, &p, &id, UserWrite::Licenses)?;
    t.reprocess_licenses(&id);
    let mut out = t.users[&id].to_json();
    out.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#users/$entity", base_url())),
    );
    Ok((StatusCode::OK, axum::Json(Value::Object(out))).into_response())
}
