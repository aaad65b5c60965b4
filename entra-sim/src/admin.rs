//! The admin API under `/_sim`, never mixed into Graph routes: a dump of the tenant, reset,
//! misbehaviour settings at run time, request counters, the journal of writes, a password
//! check (so tests can prove a generated password works without the simulator ever showing
//! one), and the information-barrier views (`/barriers`, `/barriers/reachable`,
//! `/barriers/timeline`, `/barriers/mode`).

use crate::misbehave::Settings;
use crate::state::Sim;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;

pub fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/state", get(state))
        .route("/reset", post(reset))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset_counters))
        .route("/journal", get(journal))
        .route("/verify-password", post(verify_password))
        .route("/devicelogin", post(device_login))
        .route("/skus/{part}", axum::routing::put(put_seats))
        .route("/barriers", get(crate::compliance::admin::barriers))
        .route("/barriers/reachable", get(crate::compliance::admin::reachable))
        .route("/barriers/timeline", get(crate::compliance::admin::timeline))
        .route(
            "/barriers/mode",
            get(crate::compliance::admin::get_mode).put(crate::compliance::admin::put_mode),
        )
}

/// Buys or cancels seats: `{"prepaidUnits": N}` sets the enabled units of a SKU by part number.
async fn put_seats(
    State(sim): State<Arc<Sim>>,
    axum::extract::Path(part): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let Some(units) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["prepaidUnits"].as_i64())
        .filter(|n| *n >= 0)
    else {
        return (
            StatusCode::BAD_REQUEST,
            "expected {\"prepaidUnits\": <non-negative integer>}",
        )
            .into_response();
    };
    let mut t = sim.tenant();
    match t.skus.iter_mut().find(|s| s.part_number == part) {
        Some(sku) => {
            sku.prepaid = units;
            StatusCode::NO_CONTENT.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn state(State(sim): State<Arc<Sim>>) -> Response {
    let t = sim.tenant();
    let user = |u: &crate::model::User| {
        let mut j = u.to_json();
        j.insert(
            "groups".into(),
            json!(
                t.groups
                    .values()
                    .filter(|g| g.members.contains(&u.id))
                    .map(|g| g.id.clone())
                    .collect::<Vec<_>>()
            ),
        );
        Value::Object(j)
    };
    let body = json!({
        "tenantId": t.tenant_id,
        "domains": t.domains,
        "users": t.users.values().map(user).collect::<Vec<_>>(),
        "deletedUsers": t.deleted_users.values().map(user).collect::<Vec<_>>(),
        "groups": t.groups.values().map(|g| {
            let mut j = g.to_json();
            j.insert("members".into(), json!(g.members.iter().collect::<Vec<_>>()));
            Value::Object(j)
        }).collect::<Vec<_>>(),
        "skus": t.skus.iter().map(|s| json!({
            "skuId": s.sku_id, "skuPartNumber": s.part_number, "prepaidUnits": s.prepaid,
            "consumedUnits": t.consumed.get(&s.sku_id).copied().unwrap_or(0),
        })).collect::<Vec<_>>(),
    });
    axum::Json(body).into_response()
}

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}

async fn get_settings(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.misbehaviour.lock().unwrap().settings.clone()).into_response()
}

async fn put_settings(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Settings>(&body) {
        Ok(s) => {
            sim.misbehaviour.lock().unwrap().set(s.clone());
            axum::Json(s).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn counters(State(sim): State<Arc<Sim>>) -> Response {
    // Serialised under the lock rather than cloned: the journal inside can be large.
    axum::Json(&*sim.counters.lock().unwrap()).into_response()
}

/// `POST /_sim/counters/reset`: zeroes the counters and empties the journal.
async fn reset_counters(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.counters.lock().unwrap().reset();
    StatusCode::NO_CONTENT
}

/// `GET /_sim/journal[?after=<seq>]`: every write the tenant answered, oldest first, as
/// `{"entries": [...], "dropped": <n>}`. Only entries whose `seq` is greater than `after` are
/// listed when it is given (poll with the last `seq` seen). `dropped` counts the oldest
/// entries let go to keep at most [`crate::journal::CAPACITY`] (100,000).
///
/// Each entry has `seq` (1, 2, 3, ... in the order the answers were produced; never reused,
/// not even after a reset, which empties the journal) and `kind`, then by kind:
///
/// - `"graph"`: a routed Graph write (POST, PATCH, PUT or DELETE), direct or inside a
///   `$batch`, whatever its outcome, exactly the requests the `writes` counter counts:
///   `{"seq": 7, "kind": "graph", "method": "PATCH", "path": "/v1.0/users/<id>",
///   "route": "PATCH /v1.0/users/{id}", "status": 204, "batch": false}`. `path` is the
///   request path as received, without the query; `route` is the `byRoute` key; `batch` is
///   true for a request inside a `$batch` body, which gets its own entry (the `$batch` POST
///   itself is no write and has none, nor do items that never ran: a failed dependency's 424
///   or a body without Content-Type). Requests to no route (405, unknown segment) are not
///   counted and not journalled.
/// - `"compliance"`: an InvokeCommand cmdlet that changes something (New-, Set-, Remove-,
///   Start-, Stop-), whatever its outcome, once the cmdlet name was read (so not a request
///   refused before that: wrong region, no token, a random 5xx):
///   `{"seq": 8, "kind": "compliance", "cmdlet": "Remove-InformationBarrierPolicy",
///   "identity": "<object id>", "target": "V1_RemoteAssistUser-policy",
///   "assignedSegment": "V1_RemoteAssistUser", "parameters": {"Identity": "<object id>"},
///   "status": 200}`. `cmdlet` is the name as sent; `identity` the `Identity` parameter,
///   else `Name`, else null; `target` the name of the segment or policy the cmdlet names
///   (by name, object id or ExO id), resolved before it ran, null for application cmdlets or
///   when no such object existed; `assignedSegment` the assigned segment's name for policy
///   cmdlets, else null; `parameters` as sent; `status` 200 when the cmdlet succeeded.
///
/// For requests that overlap in time the order between them is that of their answers, not
/// necessarily that of their changes; sequential requests appear in the order they were made.
async fn journal(
    State(sim): State<Arc<Sim>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let after = match q.get("after").map(|a| a.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "after must be a non-negative integer"})),
            )
                .into_response();
        }
    };
    let c = sim.counters.lock().unwrap();
    let entries: Vec<&crate::journal::Entry> = c.journal.after(after).collect();
    axum::Json(json!({"entries": entries, "dropped": c.journal.dropped()})).into_response()
}

async fn verify_password(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let upn = v["userPrincipalName"].as_str().unwrap_or_default();
    let password = v["password"].as_str().unwrap_or_default();
    let t = sim.tenant();
    let valid = t
        .user_id(upn)
        .and_then(|id| t.users.get(&id))
        .and_then(|u| u.password.as_deref())
        .is_some_and(|p| p == password);
    axum::Json(json!({"valid": valid})).into_response()
}

/// `POST /_sim/devicelogin {"userCode", "userPrincipalName", "decision": "approve"|"decline"}`:
/// the user signs in at the verification page and approves (or declines) the code.
async fn device_login(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct SignIn {
        user_code: String,
        user_principal_name: String,
        decision: crate::auth::delegated::Decision,
    }
    let Ok(s) = serde_json::from_slice::<SignIn>(&body) else {
        let why = "expected {userCode, userPrincipalName, decision: approve|decline}";
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": why}))).into_response();
    };
    match crate::auth::delegated::decide(&sim, &s.user_code, &s.user_principal_name, s.decision) {
        Ok(()) => axum::Json(json!({"decided": true})).into_response(),
        Err(why) => (StatusCode::CONFLICT, axum::Json(json!({"error": why}))).into_response(),
    }
}
