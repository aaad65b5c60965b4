//! `/groups`: security groups, membership by `members/$ref` and `members@odata.bind`, and
//! `/users/{id}/memberOf`.

use crate::auth::{Principal, require};
use crate::model::{Group, new_id, now_string};
use crate::odata::{GraphError, Query, page, project};
use crate::request::{base_url, json_body};
use crate::state::Sim;
use crate::users::{check_filterable, visible_user_id};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

const READ: &[&str] = &[
    "Group.Read.All",
    "Group.ReadWrite.All",
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const CREATE: &[&str] = &["Group.Create", "Group.ReadWrite.All", "Directory.ReadWrite.All"];
const WRITE: &[&str] = &["Group.ReadWrite.All", "Directory.ReadWrite.All"];
const MEMBERS_WRITE: &[&str] = &[
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const FILTERABLE: &[&str] = &[
    "id",
    "displayName",
    "mailNickname",
    "securityEnabled",
    "mailEnabled",
    "assignedLicenses",
];
const MAX_BIND: usize = 20;

type Result<T> = std::result::Result<T, GraphError>;

fn visible_group_id(sim: &Sim, id: &str) -> Result<String> {
    let t = sim.tenant();
    match t.groups.get(id) {
        Some(g) if g.visible_at <= Instant::now() => Ok(id.to_owned()),
        _ => Err(GraphError::not_found(id)),
    }
}

/// The object id at the end of a `directoryObjects/{id}` (or `users/{id}`) reference URL.
fn reference_id(url: &str) -> Result<String> {
    let id = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let id = id
        .trim_start_matches("directoryObjects(")
        .trim_end_matches(')')
        .trim_matches('\'');
    uuid::Uuid::parse_str(id)
        .map(|_| id.to_owned())
        .map_err(|_| GraphError::bad_request(format!("Invalid object identifier '{id}'.")))
}

/// The users named by a body's `members@odata.bind` (at most 20), resolved all or nothing.
fn bound_members(sim: &Sim, body: &Value) -> Result<Vec<String>> {
    let binds = body
        .get("members@odata.bind")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if binds.len() > MAX_BIND {
        return Err(GraphError::bad_request(format!(
            "The request exceeds the maximum of {MAX_BIND} members that can be added in one request."
        )));
    }
    resolve_members(sim, binds)
}

/// Resolves references for a membership write, all or nothing: each must be a visible user
/// (404 otherwise, or "Not a valid reference update" while it replicates).
fn resolve_members(sim: &Sim, urls: &[Value]) -> Result<Vec<String>> {
    let t = sim.tenant();
    let now = Instant::now();
    urls.iter()
        .map(|u| {
            let id = reference_id(u.as_str().unwrap_or_default())?;
            match t.users.get(&id) {
                Some(user) if user.visible_at <= now => Ok(id),
                Some(_) => Err(GraphError::bad_request("Not a valid reference update.")),
                None => Err(GraphError::not_found(&id)),
            }
        })
        .collect()
}

fn added_exists() -> GraphError {
    GraphError::bad_request(
        "One or more added object references already exist for the following modified properties: 'members'.",
    )
}

pub async fn create(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> Result<Response> {
    require(&p, CREATE)?;
    let body = json_body(&body)?;
    let display_name = body["displayName"]
        .as_str()
        .filter(|s| !s.is_empty() && s.chars().count() <= 256);
    let Some(display_name) = display_name.map(str::to_owned) else {
        return Err(GraphError::invalid_value("displayName", "Group"));
    };
    let Some(nickname) = body["mailNickname"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .map(str::to_owned)
    else {
        return Err(GraphError::invalid_value("mailNickname", "Group"));
    };
    let mail_enabled = body["mailEnabled"]
        .as_bool()
        .ok_or_else(|| GraphError::invalid_value("mailEnabled", "Group"))?;
    let security_enabled = body["securityEnabled"]
        .as_bool()
        .ok_or_else(|| GraphError::invalid_value("securityEnabled", "Group"))?;
    let group_types: Vec<String> = body["groupTypes"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let unified = group_types.iter().any(|t| t == "Unified");
    if mail_enabled && !unified {
        return Err(GraphError::bad_request(
            "Cannot Create a mail-enabled security groups and or distribution list.",
        ));
    }
    let members = bound_members(&sim, &body)?;
    let delay = sim.replication_delay();
    let mut t = sim.tenant();
    if unified
        && t.groups
            .values()
            .any(|g| g.mail_nickname.eq_ignore_ascii_case(&nickname))
    {
        return Err(GraphError::conflict("mailNickname"));
    }
    let group = Group {
        id: new_id(),
        display_name,
        mail_nickname: nickname,
        description: body["description"].as_str().map(str::to_owned),
        mail_enabled,
        security_enabled,
        group_types,
        members: members.into_iter().collect(),
        licenses: Vec::new(),
        created: now_string(),
        visible_at: Instant::now() + delay,
    };
    let mut out = group.to_json();
    out.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#groups/$entity", base_url())),
    );
    t.groups.insert(group.id.clone(), group);
    Ok((StatusCode::CREATED, axum::Json(Value::Object(out))).into_response())
}

pub async fn get_one(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(&p, READ)?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    let id = visible_group_id(&sim, &id)?;
    let mut body = project(sim.tenant().groups[&id].to_json(), query.select.as_ref(), None);
    body["@odata.context"] = json!(format!("{}/v1.0/$metadata#groups/$entity", base_url()));
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
    check_filterable(&query, FILTERABLE, "Group")?;
    let now = Instant::now();
    let items = query.apply(
        sim.tenant()
            .groups
            .values()
            .filter(|g| g.visible_at <= now)
            .map(Group::to_json),
        None,
    );
    Ok(axum::Json(page(
        items,
        &query,
        &base_url(),
        "/groups",
        "groups",
        sim.page_size(query.top),
    ))
    .into_response())
}

pub async fn update(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let body = json_body(&body)?;
    let Some(map) = body.as_object() else {
        return Err(GraphError::bad_request("Empty Payload, JSON content expected."));
    };
    let only_members = map.keys().all(|k| k == "members@odata.bind");
    require(&p, if only_members { MEMBERS_WRITE } else { WRITE })?;
    if let Some(k) = map
        .keys()
        .find(|k| !["displayName", "description", "members@odata.bind"].contains(&k.as_str()))
    {
        return Err(GraphError::bad_request(format!(
            "Property '{k}' does not exist on type 'microsoft.graph.group' or is read-only."
        )));
    }
    let id = visible_group_id(&sim, &id)?;
    // All or nothing: every reference is checked before any member is added.
    let members = bound_members(&sim, &body)?;
    let mut t = sim.tenant();
    let group = t.groups.get_mut(&id).unwrap();
    let unique: BTreeSet<&String> = members.iter().collect();
    if unique.len() != members.len() || members.iter().any(|m| group.members.contains(m)) {
        return Err(added_exists());
    }
    if let Some(name) = map.get("displayName").and_then(Value::as_str) {
        group.display_name = name.to_owned();
    }
    if let Some(d) = map.get("description") {
        group.description = d.as_str().map(str::to_owned);
    }
    group.members.extend(members);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response> {
    require(&p, WRITE)?;
    let id = visible_group_id(&sim, &id)?;
    let mut t = sim.tenant();
    // Security groups are deleted permanently; licences they gave go away with them.
    let group = t.groups.remove(&id).unwrap();
    for member in group.members {
        t.recompute_licenses(&member);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn add_member(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    require(&p, MEMBERS_WRITE)?;
    let body = json_body(&body)?;
    let id = visible_group_id(&sim, &id)?;
    let Some(url) = body.get("@odata.id").cloned() else {
        return Err(GraphError::bad_request(
            "Invalid request: '@odata.id' is missing.",
        ));
    };
    let member = resolve_members(&sim, &[url])?.remove(0);
    let mut t = sim.tenant();
    if !t.groups.get_mut(&id).unwrap().members.insert(member) {
        return Err(added_exists());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn remove_member(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path((id, member)): Path<(String, String)>,
) -> Result<Response> {
    require(&p, MEMBERS_WRITE)?;
    let id = visible_group_id(&sim, &id)?;
    let mut t = sim.tenant();
    if !t.groups.get_mut(&id).unwrap().members.remove(&member) {
        return Err(GraphError::not_found(&member));
    }
    t.recompute_licenses(&member);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn members(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(&p, READ)?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    let id = visible_group_id(&sim, &id)?;
    let items: Vec<Value> = {
        let t = sim.tenant();
        t.groups[&id]
            .members
            .iter()
            .filter_map(|m| t.users.get(m))
            .map(|u| {
                let mut j = u.to_json();
                j.insert("@odata.type".into(), json!("#microsoft.graph.user"));
                project(
                    j,
                    query.select.as_ref(),
                    Some(crate::model::USER_DEFAULT_PROPERTIES),
                )
            })
            .collect()
    };
    let path = format!("/groups/{id}/members");
    Ok(axum::Json(page(
        items,
        &query,
        &base_url(),
        &path,
        "directoryObjects",
        sim.page_size(query.top),
    ))
    .into_response())
}

pub async fn member_of(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(
        &p,
        &[
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "GroupMember.Read.All",
        ],
    )?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    let id = visible_user_id(&sim, &key)?;
    let items: Vec<Value> = sim
        .tenant()
        .groups
        .values()
        .filter(|g| g.members.contains(&id))
        .map(|g| {
            let mut j = g.to_json();
            j.insert("@odata.type".into(), json!("#microsoft.graph.group"));
            project(j, query.select.as_ref(), None)
        })
        .collect();
    let path = format!("/users/{key}/memberOf");
    Ok(axum::Json(page(
        items,
        &query,
        &base_url(),
        &path,
        "directoryObjects",
        sim.page_size(query.top),
    ))
    .into_response())
}

/// `/users/{id}/transitiveMemberOf/microsoft.graph.directoryRole`: the directory roles a user
/// holds. Each role's id is derived from its name, as a tenant's activated roles have one id.
pub async fn directory_roles(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    require(
        &p,
        &[
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
            "GroupMember.Read.All",
            "RoleManagement.Read.Directory",
        ],
    )?;
    let query = Query::parse(q.as_deref(), &headers, 999)?;
    let id = visible_user_id(&sim, &key)?;
    let roles = sim.tenant().users[&id].directory_roles.clone();
    let items: Vec<Value> = roles
        .iter()
        .map(|name| {
            let role_id = role_id(name);
            let mut j = serde_json::Map::new();
            j.insert("@odata.type".into(), json!("#microsoft.graph.directoryRole"));
            j.insert("id".into(), json!(role_id.to_string()));
            j.insert("displayName".into(), json!(name));
            j.insert("roleTemplateId".into(), json!(role_id.to_string()));
            project(j, query.select.as_ref(), None)
        })
        .collect();
    let path = format!("/users/{key}/transitiveMemberOf/microsoft.graph.directoryRole");
    Ok(axum::Json(page(
        items,
        &query,
        &base_url(),
        &path,
        "directoryObjects",
        sim.page_size(query.top),
    ))
    .into_response())
}

/// A stable id per role name (FNV-1a over the name, laid out as a GUID).
fn role_id(name: &str) -> uuid::Uuid {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in name.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    uuid::Uuid::from_u128(h)
}
