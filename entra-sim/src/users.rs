//! `/users` and `/directory/deletedItems`: create, read, list, update, soft delete, restore,
//! purge.

mod validate;

use crate::auth::{Principal, require};
use crate::model::{Tenant, USER_DEFAULT_PROPERTIES, User, new_id, now_string};
use crate::odata::{GraphError, Query, page, project};
use crate::request::{base_url, json_body};
use crate::roles::UserWrite;
use crate::state::Sim;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use validate::{NewUser, Patch, employee_type, str_field};

pub const READ: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
pub const WRITE: &[&str] = &["User.ReadWrite.All", "Directory.ReadWrite.All"];

/// Properties `$filter` accepts on users.
const FILTERABLE: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "mailNickname",
    "accountEnabled",
    "usageLocation",
    "mail",
    "department",
    "companyName",
    "employeeType",
    "assignedLicenses",
];

type Result<T> = std::result::Result<T, GraphError>;

/// Finds a visible user by id or UPN; a user still replicating is "not found".
pub fn visible_user_id(sim: &Sim, key: &str) -> Result<String> {
    let t = sim.tenant();
    let id = t.user_id(key).ok_or_else(|| GraphError::not_found(key))?;
    if t.users[&id].visible_at > Instant::now() {
        return Err(GraphError::not_found(key));
    }
    Ok(id)
}

pub async fn get_one(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(&p, READ)?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    let id = visible_user_id(&sim, &key)?;
    let t = sim.tenant();
    let mut body = project(
        t.users[&id].to_json(),
        query.select.as_ref(),
        Some(USER_DEFAULT_PROPERTIES),
    );
    body["@odata.context"] = json!(format!("{}/v1.0/$metadata#users/$entity", base_url()));
    Ok(axum::Json(body).into_response())
}

pub async fn list(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(&p, READ)?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    check_filterable(&query, FILTERABLE, "User")?;
    let now = Instant::now();
    let items = query.apply(
        sim.tenant()
            .users
            .values()
            .filter(|u| u.visible_at <= now)
            .map(User::to_json),
        Some(USER_DEFAULT_PROPERTIES),
    );
    Ok(axum::Json(page(
        items,
        &query,
        &base_url(),
        "/users",
        "users",
        sim.page_size(query.top),
    ))
    .into_response())
}

pub fn check_filterable(query: &Query, allowed: &[&str], resource: &str) -> Result<()> {
    if let Some(f) = &query.filter {
        for prop in f.properties() {
            let ok = allowed.contains(&prop)
                || (prop.starts_with("onPremisesExtensionAttributes/extensionAttribute")
                    && resource == "User");
            if !ok {
                return Err(GraphError::unsupported_query(format!(
                    "Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'."
                )));
            }
        }
    }
    Ok(())
}

pub async fn create(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> Result<Response> {
    require(&p, WRITE)?;
    let body = json_body(&body)?;
    let new = validate::new_user(&sim, &body)?;
    let delay = sim.replication_delay();
    let mut t = sim.tenant();
    if t.upn_index.contains_key(&new.upn.to_lowercase()) {
        return Err(GraphError::conflict("userPrincipalName"));
    }
    let user = build_user(&body, new, delay)?;
    let mut out = user.to_json();
    out.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#users/$entity", base_url())),
    );
    t.insert_user(user);
    Ok((StatusCode::CREATED, axum::Json(Value::Object(out))).into_response())
}

/// The created user. Department, company name and employee type are read only here, after the
/// UPN conflict check, so a conflict is reported before a bad value of theirs.
fn build_user(body: &Value, new: NewUser, delay: Duration) -> Result<User> {
    let NewUser {
        account_enabled,
        display_name,
        nickname,
        upn,
        password,
        usage_location,
        extension_attributes,
    } = new;
    Ok(User {
        id: new_id(),
        upn,
        display_name,
        mail_nickname: nickname,
        account_enabled,
        enabled_at: account_enabled.then(jiff::Timestamp::now),
        enabled_uncovered: u32::from(account_enabled),
        usage_location,
        pending_usage_location: None,
        department: str_field(body, "department")?.map(str::to_owned),
        company_name: str_field(body, "companyName")?.map(str::to_owned),
        employee_type: employee_type(body)?,
        extension_attributes: extension_attributes
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        password: Some(password),
        directory_roles: Vec::new(),
        tokens_valid_from: None,
        direct: Vec::new(),
        states: Vec::new(),
        created: now_string(),
        deleted: None,
        visible_at: Instant::now() + delay,
    })
}

const UPDATABLE: &[&str] = &[
    "accountEnabled",
    "displayName",
    "mailNickname",
    "userPrincipalName",
    "usageLocation",
    "passwordProfile",
    "department",
    "companyName",
    "employeeType",
    "onPremisesExtensionAttributes",
    "givenName",
    "surname",
    "jobTitle",
];

pub async fn update(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response> {
    require(&p, WRITE)?;
    let body = json_body(&body)?;
    let Some(map) = body.as_object() else {
        return Err(GraphError::bad_request("Empty Payload, JSON content expected."));
    };
    if let Some(k) = map.keys().find(|k| !UPDATABLE.contains(&k.as_str())) {
        return Err(GraphError::bad_request(format!(
            "Property '{k}' does not exist on type 'microsoft.graph.user' or is read-only."
        )));
    }
    let id = visible_user_id(&sim, &key)?;
    let patch = validate::patch(&sim, &body)?;
    let delay = sim.replication_delay();
    let mut t = sim.tenant();
    let what = if body.get("passwordProfile").is_some() {
        UserWrite::Password
    } else {
        UserWrite::Properties
    };
    sim.roles
        .lock()
        .unwrap()
        .check_user_write(&sim, &t, &p, &id, what)?;
    if let Some(upn) = str_field(&body, "userPrincipalName")?
        && t.upn_index
            .get(&upn.to_lowercase())
            .is_some_and(|other| *other != id)
    {
        return Err(GraphError::conflict("userPrincipalName"));
    }
    apply_patch(&mut t, &id, &body, patch, delay)?;
    t.recompute_licenses(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Writes a checked PATCH to the user, then keeps the UPN index and the users with a pending
/// usage location in step. A text field of the wrong type (`validate::patch` does not check
/// displayName, department or companyName) fails here, after the fields before it are written.
fn apply_patch(t: &mut Tenant, id: &str, body: &Value, patch: Patch, delay: Duration) -> Result<()> {
    let old_upn = t.users[id].upn.clone();
    let covered = t.barriers.covered_since.contains_key(id);
    let user = t.users.get_mut(id).unwrap();
    if let Some(v) = body.get("accountEnabled").and_then(Value::as_bool) {
        if v && !user.account_enabled {
            user.enabled_at = Some(jiff::Timestamp::now());
            // Every enabling counts, not only the last: a test can prove none happened outside
            // an applied barrier.
            if !covered {
                user.enabled_uncovered += 1;
            }
        }
        user.account_enabled = v;
    }
    if let Some(v) = str_field(body, "displayName")? {
        user.display_name = v.to_owned();
    }
    if let Some(v) = str_field(body, "mailNickname")? {
        user.mail_nickname = v.to_owned();
    }
    if let Some(v) = str_field(body, "department")? {
        user.department = Some(v.to_owned());
    }
    if let Some(v) = str_field(body, "companyName")? {
        user.company_name = Some(v.to_owned());
    }
    if body.get("employeeType").is_some() {
        user.employee_type = patch.employee_type;
    }
    if let Some(pw) = body.get("passwordProfile").and_then(|p| p["password"].as_str()) {
        user.password = Some(pw.to_owned());
        // A new password ends the user's sign-in sessions: their refresh tokens stop working.
        user.tokens_valid_from = Some(jiff::Timestamp::now());
    }
    for (n, v) in patch.extension_attributes {
        match v {
            Some(v) => user.extension_attributes.insert(n, v),
            None => user.extension_attributes.remove(&n),
        };
    }
    if let Some(loc) = patch.location {
        // The new usage location reaches licence assignment only after replication.
        if delay.is_zero() {
            user.usage_location = loc;
        } else {
            user.pending_usage_location = Some((loc, Instant::now() + delay));
        }
    }
    let pending = user.pending_usage_location.is_some();
    let new_upn = str_field(body, "userPrincipalName")?.map(str::to_owned);
    if let Some(upn) = &new_upn {
        user.upn = upn.clone();
    }
    if pending {
        t.pending_locations.insert(id.to_owned());
    }
    if let Some(upn) = new_upn {
        t.upn_index.remove(&old_upn.to_lowercase());
        t.upn_index.insert(upn.to_lowercase(), id.to_owned());
    }
    Ok(())
}

pub async fn delete(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Response> {
    require(&p, WRITE)?;
    let id = visible_user_id(&sim, &key)?;
    let mut t = sim.tenant();
    sim.roles
        .lock()
        .unwrap()
        .check_user_write(&sim, &t, &p, &id, UserWrite::Properties)?;
    let mut user = t.users.remove(&id).unwrap();
    t.upn_index.remove(&user.upn.to_lowercase());
    // A deleted user frees its seats and leaves its groups.
    for sku in crate::model::Tenant::effective_skus(&user) {
        *t.consumed.entry(sku).or_default() -= 1;
    }
    user.states.clear();
    for g in t.groups.values_mut() {
        g.members.remove(&id);
    }
    user.deleted = Some((now_string(), Instant::now()));
    // Deletion ends barrier coverage: applications cover the users in the directory when
    // processing begins, and a deleted user is not in it. A restored user is covered again
    // only once a later application completes with it in a segment under a policy, so
    // restoring an enabled user before that enables it outside an applied barrier.
    t.barriers.covered_since.remove(&id);
    if let Some(applied) = t.barriers.applied.as_mut() {
        applied.user_segments.remove(&id);
    }
    t.deleted_users.insert(id, user);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn deleted_json(u: &User) -> Map<String, Value> {
    let mut j = u.to_json();
    j.insert("@odata.type".into(), json!("#microsoft.graph.user"));
    j
}

pub async fn list_deleted(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(&p, READ)?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    check_filterable(&query, FILTERABLE, "User")?;
    let items = query.apply(sim.tenant().deleted_users.values().map(deleted_json), None);
    let path = "/directory/deletedItems/microsoft.graph.user";
    Ok(axum::Json(page(
        items,
        &query,
        &base_url(),
        path,
        "users",
        sim.page_size(query.top),
    ))
    .into_response())
}

pub async fn get_deleted(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response> {
    require(&p, READ)?;
    let t = sim.tenant();
    let u = t
        .deleted_users
        .get(&id)
        .ok_or_else(|| GraphError::not_found(&id))?;
    Ok(axum::Json(Value::Object(deleted_json(u))).into_response())
}

pub async fn restore(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response> {
    require(&p, WRITE)?;
    let mut t = sim.tenant();
    let upn = t
        .deleted_users
        .get(&id)
        .ok_or_else(|| GraphError::not_found(&id))?
        .upn
        .clone();
    if t.upn_index.contains_key(&upn.to_lowercase()) {
        let mut e = GraphError::bad_request(
            "A conflicting object with one or more of the specified property values is present in the directory.",
        );
        e.details
            .push(json!({"code": "ObjectConflict", "target": "userPrincipalName"}));
        return Err(e);
    }
    let mut user = t.deleted_users.remove(&id).unwrap();
    user.deleted = None;
    // An enabled account that comes back is enabled again, counted like creation enabled or a
    // PATCH false -> true. Deletion ended its coverage (see `delete`), so the check only
    // matters if that ever changes.
    if user.account_enabled {
        user.enabled_at = Some(jiff::Timestamp::now());
        if !t.barriers.covered_since.contains_key(&id) {
            user.enabled_uncovered += 1;
        }
    }
    let out = user.to_json();
    t.insert_user(user);
    // Direct licences come back when seats allow.
    t.recompute_licenses(&id);
    let mut out = out;
    out.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#directoryObjects/$entity", base_url())),
    );
    out.insert("@odata.type".into(), json!("#microsoft.graph.user"));
    Ok((StatusCode::OK, axum::Json(Value::Object(out))).into_response())
}

pub async fn purge(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response> {
    require(&p, WRITE)?;
    if sim.tenant().deleted_users.remove(&id).is_none() {
        return Err(GraphError::not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /users/{id}/revokeSignInSessions`: the user's refresh tokens stop working (their
/// sign-ins must be done again); access tokens already issued run until they expire.
pub async fn revoke_sign_in_sessions(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Response> {
    require(
        &p,
        &[
            "User.RevokeSessions.All",
            "User.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
    )?;
    let id = visible_user_id(&sim, &key)?;
    let mut t = sim.tenant();
    sim.roles
        .lock()
        .unwrap()
        .check_user_write(&sim, &t, &p, &id, UserWrite::Properties)?;
    t.users.get_mut(&id).unwrap().tokens_valid_from = Some(jiff::Timestamp::now());
    let body = serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true,
    });
    Ok(axum::Json(body).into_response())
}
