//! Read-only directory routes an administrator's checks need: the organization and its verified
//! domains, service principals, directory role assignments, administrative units.

use crate::auth::{Principal, require};
use crate::odata::{GraphError, Query, page};
use crate::request::base_url;
use crate::roles::role_template_id;
use crate::state::Sim;
use crate::users::check_filterable;
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;

type Result<T> = std::result::Result<T, GraphError>;

const ORGANIZATION_READ: &[&str] = &[
    "Organization.Read.All",
    "Organization.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const APPLICATION_READ: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const ROLE_READ: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleManagement.ReadWrite.Directory",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const UNIT_READ: &[&str] = &[
    "AdministrativeUnit.Read.All",
    "AdministrativeUnit.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A filtered, paged collection answer.
fn collection(
    sim: &Sim,
    items: Vec<Map<String, Value>>,
    query: &Query,
    path: &str,
    context: &str,
) -> Response {
    let items = query.apply(items.into_iter(), None);
    axum::Json(page(
        items,
        query,
        &base_url(),
        path,
        context,
        sim.page_size(query.top),
    ))
    .into_response()
}

/// `GET /organization`: the tenant, with its verified domains (the initial one included).
pub async fn organization(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
) -> Result<Response> {
    require(&p, ORGANIZATION_READ)?;
    let t = sim.tenant();
    let mut domains = vec![
        json!({"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": false,
        "isInitial": true, "name": t.initial_domain, "type": "Managed"}),
    ];
    for (i, d) in t.domains.iter().filter(|d| **d != t.initial_domain).enumerate() {
        domains.push(
            json!({"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": i == 0,
            "isInitial": false, "name": d, "type": "Managed"}),
        );
    }
    let org = json!({"id": t.tenant_id, "displayName": "ABC (simulated)", "verifiedDomains": domains});
    Ok(axum::Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#organization", base_url()),
        "value": [org],
    }))
    .into_response())
}

/// `GET /servicePrincipals`: the seed's apps and the other publishers' principals.
pub async fn service_principals(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(&p, APPLICATION_READ)?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    check_filterable(&query, &["id", "appId", "displayName"], "ServicePrincipal")?;
    let own = sim.apps.iter().map(|a| {
        json!({"id": crate::seed::service_principal_id(&a.seed), "appId": a.seed.client_id,
               "displayName": a.seed.display_name, "servicePrincipalType": "Application",
               "appOwnerOrganizationId": sim.seed.tenant_id})
    });
    let others = sim.seed.service_principals.iter().map(|s| {
        let id =
            s.id.clone()
                .unwrap_or_else(|| crate::roles::stable_id(&format!("sp/{}", s.app_id)));
        json!({"id": id, "appId": s.app_id, "displayName": s.display_name,
               "servicePrincipalType": "Application"})
    });
    let items = own.chain(others).map(object).collect();
    Ok(collection(
        &sim,
        items,
        &query,
        "/servicePrincipals",
        "servicePrincipals",
    ))
}

/// `GET /roleManagement/directory/roleAssignments`: who holds which role, over which scope.
pub async fn role_assignments(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(&p, ROLE_READ)?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    check_filterable(
        &query,
        &["id", "principalId", "roleDefinitionId", "directoryScopeId"],
        "UnifiedRoleAssignment",
    )?;
    let items = sim
        .roles
        .lock()
        .unwrap()
        .assignments
        .iter()
        .map(|a| {
            object(json!({"id": a.id, "principalId": a.principal_id,
                "roleDefinitionId": role_template_id(&a.role).unwrap_or_default(),
                "directoryScopeId": a.directory_scope_id()}))
        })
        .collect();
    Ok(collection(
        &sim,
        items,
        &query,
        "/roleManagement/directory/roleAssignments",
        "roleManagement/directory/roleAssignments",
    ))
}

/// `GET /directory/administrativeUnits/{id}`.
pub async fn administrative_unit(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response> {
    require(&p, UNIT_READ)?;
    let u = sim
        .roles
        .lock()
        .unwrap()
        .units
        .iter()
        .find(|u| u.id.eq_ignore_ascii_case(&id))
        .cloned()
        .ok_or_else(|| GraphError::not_found(&id))?;
    let dynamic = u.membership_rule.is_some();
    Ok(axum::Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#directory/administrativeUnits/$entity", base_url()),
        "id": u.id,
        "displayName": u.display_name,
        "description": null,
        "isMemberManagementRestricted": u.restricted,
        "membershipType": if dynamic { "Dynamic" } else { "Assigned" },
        "membershipRule": u.membership_rule,
        "membershipRuleProcessingState": if dynamic { Some("On") } else { None },
        "visibility": null,
    }))
    .into_response())
}
