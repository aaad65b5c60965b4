//! `/users` and `/directory/deletedItems`: create, read, list, update, soft delete, restore,
//! purge.

use crate::auth::{Principal, require};
use crate::model::{USER_DEFAULT_PROPERTIES, User, new_id, now_string};
use crate::odata::{GraphError, Query, page, project};
use crate::request::{base_url, json_body};
use crate::state::Sim;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

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

const UPN_LOCAL: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.-_!#^~";

fn valid_upn_shape(upn: &str) -> bool {
    let Some((local, domain)) = upn.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && local.chars().all(|c| UPN_LOCAL.contains(c))
        && !domain.is_empty()
        && !domain.contains('@')
}

fn valid_nickname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii() && !"@()\\[]\";:<>, ".contains(c) && !c.is_control())
}

/// Entra's default password policy: 8 to 256 characters and three of the four character classes.
fn complex_enough(password: &str) -> bool {
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    (8..=256).contains(&password.chars().count()) && classes.iter().filter(|c| **c).count() >= 3
}

const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

fn valid_country(c: &str) -> bool {
    c.len() == 2 && COUNTRIES.split(' ').any(|x| x == c)
}

/// `employeeType`: free text of at most 64 characters.
fn employee_type(body: &Value) -> Result<Option<String>> {
    match str_field(body, "employeeType")? {
        Some(v) if v.chars().count() > 64 => Err(GraphError::invalid_value("employeeType", "User")),
        v => Ok(v.map(str::to_owned)),
    }
}

fn str_field<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphError::invalid_value(name, "User")),
    }
}

fn check_domain(sim: &Sim, upn: &str) -> Result<()> {
    let domain = upn.rsplit('@').next().unwrap_or_default();
    if !sim
        .tenant()
        .domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(domain))
    {
        return Err(GraphError::bad_request(
            "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.",
        ));
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
    for required in [
        "accountEnabled",
        "displayName",
        "mailNickname",
        "userPrincipalName",
        "passwordProfile",
    ] {
        if body.get(required).is_none_or(Value::is_null) {
            return Err(GraphError::bad_request(format!(
                "Property '{required}' is required when creating the object."
            )));
        }
    }
    let account_enabled = body["accountEnabled"]
        .as_bool()
        .ok_or_else(|| GraphError::invalid_value("accountEnabled", "User"))?;
    let display_name = str_field(&body, "displayName")?.unwrap_or_default().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 256 {
        return Err(GraphError::invalid_value("displayName", "User"));
    }
    let nickname = str_field(&body, "mailNickname")?.unwrap_or_default().to_owned();
    if !valid_nickname(&nickname) {
        return Err(GraphError::invalid_value("mailNickname", "User"));
    }
    let upn = str_field(&body, "userPrincipalName")?
        .unwrap_or_default()
        .to_owned();
    if !valid_upn_shape(&upn) {
        return Err(GraphError::invalid_value("userPrincipalName", "User"));
    }
    check_domain(&sim, &upn)?;
    let password = body["passwordProfile"]["password"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !complex_enough(&password) {
        return Err(GraphError::bad_request(
            "The specified password does not comply with password complexity requirements. Please provide a different password.",
        ));
    }
    let usage_location = str_field(&body, "usageLocation")?.map(str::to_owned);
    if usage_location.as_deref().is_some_and(|c| !valid_country(c)) {
        return Err(GraphError::invalid_value("usageLocation", "User"));
    }
    let extension_attributes = parse_extension_attributes(&body)?;
    let delay = sim.replication_delay();
    let mut t = sim.tenant();
    if t.upn_index.contains_key(&upn.to_lowercase()) {
        return Err(GraphError::conflict("userPrincipalName"));
    }
    let user = User {
        id: new_id(),
        upn,
        display_name,
        mail_nickname: nickname,
        account_enabled,
        enabled_at: account_enabled.then(jiff::Timestamp::now),
        enabled_uncovered: u32::from(account_enabled),
        usage_location,
        pending_usage_location: None,
        department: str_field(&body, "department")?.map(str::to_owned),
        company_name: str_field(&body, "companyName")?.map(str::to_owned),
        employee_type: employee_type(&body)?,
        extension_attributes: extension_attributes
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        password: Some(password),
        directory_roles: Vec::new(),
        direct: Vec::new(),
        states: Vec::new(),
        created: now_string(),
        deleted: None,
        visible_at: Instant::now() + delay,
    };
    let mut out = user.to_json();
    out.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#users/$entity", base_url())),
    );
    t.insert_user(user);
    Ok((StatusCode::CREATED, axum::Json(Value::Object(out))).into_response())
}

fn parse_extension_attributes(body: &Value) -> Result<BTreeMap<u8, Option<String>>> {
    let mut out = BTreeMap::new();
    let Some(ext) = body.get("onPremisesExtensionAttributes") else {
        return Ok(out);
    };
    let Some(map) = ext.as_object() else {
        return Err(GraphError::invalid_value("onPremisesExtensionAttributes", "User"));
    };
    for (k, v) in map {
        let n: u8 = k
            .strip_prefix("extensionAttribute")
            .and_then(|n| n.parse().ok())
            .filter(|n| (1..=15).contains(n))
            .ok_or_else(|| GraphError::bad_request(format!("Invalid property '{k}'.")))?;
        match v {
            Value::Null => out.insert(n, None),
            Value::String(s) if s.chars().count() <= 1024 => out.insert(n, Some(s.clone())),
            _ => return Err(GraphError::invalid_value(k, "User")),
        };
    }
    Ok(out)
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
    if let Some(upn) = str_field(&body, "userPrincipalName")? {
        if !valid_upn_shape(upn) {
            return Err(GraphError::invalid_value("userPrincipalName", "User"));
        }
        check_domain(&sim, upn)?;
    }
    if let Some(pw) = body.get("passwordProfile")
        && !complex_enough(pw["password"].as_str().unwrap_or_default())
    {
        return Err(GraphError::bad_request(
            "The specified password does not comply with password complexity requirements. Please provide a different password.",
        ));
    }
    if let Some(v) = str_field(&body, "mailNickname")?
        && !valid_nickname(v)
    {
        return Err(GraphError::invalid_value("mailNickname", "User"));
    }
    let location = match body.get("usageLocation") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(c)) if valid_country(c) => Some(Some(c.clone())),
        Some(_) => return Err(GraphError::invalid_value("usageLocation", "User")),
    };
    if body.get("accountEnabled").is_some_and(|v| !v.is_boolean()) {
        return Err(GraphError::invalid_value("accountEnabled", "User"));
    }
    let ext = parse_extension_attributes(&body)?;
    let employee = employee_type(&body)?;
    let delay = sim.replication_delay();
    let mut t = sim.tenant();
    if let Some(upn) = str_field(&body, "userPrincipalName")?
        && t.upn_index
            .get(&upn.to_lowercase())
            .is_some_and(|other| *other != id)
    {
        return Err(GraphError::conflict("userPrincipalName"));
    }
    let old_upn = t.users[&id].upn.clone();
    let covered = t.barriers.covered_since.contains_key(&id);
    let user = t.users.get_mut(&id).unwrap();
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
    if let Some(v) = str_field(&body, "displayName")? {
        user.display_name = v.to_owned();
    }
    if let Some(v) = str_field(&body, "mailNickname")? {
        user.mail_nickname = v.to_owned();
    }
    if let Some(v) = str_field(&body, "department")? {
        user.department = Some(v.to_owned());
    }
    if let Some(v) = str_field(&body, "companyName")? {
        user.company_name = Some(v.to_owned());
    }
    if body.get("employeeType").is_some() {
        user.employee_type = employee;
    }
    if let Some(pw) = body.get("passwordProfile").and_then(|p| p["password"].as_str()) {
        user.password = Some(pw.to_owned());
    }
    for (n, v) in ext {
        match v {
            Some(v) => user.extension_attributes.insert(n, v),
            None => user.extension_attributes.remove(&n),
        };
    }
    if let Some(loc) = location {
        // The new usage location reaches licence assignment only after replication.
        if delay.is_zero() {
            user.usage_location = loc;
        } else {
            user.pending_usage_location = Some((loc, Instant::now() + delay));
        }
    }
    let pending = user.pending_usage_location.is_some();
    let new_upn = str_field(&body, "userPrincipalName")?.map(str::to_owned);
    if let Some(upn) = &new_upn {
        user.upn = upn.clone();
    }
    if pending {
        t.pending_locations.insert(id.clone());
    }
    if let Some(upn) = new_upn {
        t.upn_index.remove(&old_upn.to_lowercase());
        t.upn_index.insert(upn.to_lowercase(), id.clone());
    }
    t.recompute_licenses(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete(
    State(sim): State<Arc<Sim>>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<Response> {
    require(&p, WRITE)?;
    let id = visible_user_id(&sim, &key)?;
    let mut t = sim.tenant();
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
