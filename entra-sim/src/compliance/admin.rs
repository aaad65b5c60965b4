//! Admin views of information barriers (under `/_sim`, unauthenticated): the whole state, the
//! reachability of two users under the applied state, a per-user timeline, and the tenant's IB
//! mode (set here without Set-PolicyConfig's rules, for test setup).

use super::state::{self, Applied, Mode};
use crate::state::Sim;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn applied_json(a: &Applied) -> Value {
    json!({
        "applicationId": a.application_id,
        "completedAt": a.completed_at.to_string(),
        "policies": a.policies.iter().map(state::Policy::to_json).collect::<Vec<_>>(),
        "userSegments": a.user_segments,
        "mode": a.mode.as_str(),
    })
}

/// `GET /_sim/barriers`
pub async fn barriers(State(sim): State<Arc<Sim>>) -> Response {
    let now = jiff::Timestamp::now();
    let t = sim.tenant();
    let b = &t.barriers;
    axum::Json(json!({
        "mode": b.mode.as_str(),
        "segments": b.segments.iter().map(state::Segment::to_json).collect::<Vec<_>>(),
        "policies": b.policies.iter().map(state::Policy::to_json).collect::<Vec<_>>(),
        "applications": b.applications.iter().rev().map(|a| a.to_json(now)).collect::<Vec<_>>(),
        "applied": b.applied.as_ref().map(applied_json),
    }))
    .into_response()
}

/// `GET /_sim/barriers/reachable?from=<upn or id>&to=<upn or id>`
pub async fn reachable(State(sim): State<Arc<Sim>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let t = sim.tenant();
    let mut ends = Vec::new();
    for key in ["from", "to"] {
        let Some(value) = q.get(key) else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": format!("missing query parameter '{key}'")})),
            )
                .into_response();
        };
        match t.user_id(value) {
            Some(id) => ends.push((id.clone(), t.users[&id].upn.clone())),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": format!("no user '{value}'")})),
                )
                    .into_response();
            }
        }
    }
    let (a, b) = (&ends[0], &ends[1]);
    let (allowed, reason) = state::reachable(
        t.barriers.applied.as_ref(),
        (a.0.as_str(), a.1.as_str()),
        (b.0.as_str(), b.1.as_str()),
    );
    axum::Json(json!({"allowed": allowed, "reason": reason})).into_response()
}

/// `GET /_sim/barriers/timeline`: per UPN, when the account was last enabled and since when
/// completed applications have kept it under an applied policy.
pub async fn timeline(State(sim): State<Arc<Sim>>) -> Response {
    let t = sim.tenant();
    let mut out = Map::new();
    for u in t.users.values() {
        out.insert(
            u.upn.clone(),
            json!({
                "enabledAt": u.enabled_at.map(|e| e.to_string()),
                "barrierSince": t.barriers.covered_since.get(&u.id).map(|s| s.to_string()),
                "enabledOutsideBarrier": u.enabled_uncovered,
            }),
        );
    }
    axum::Json(Value::Object(out)).into_response()
}

/// `GET /_sim/barriers/mode` → `{"mode":"SingleSegment"}`.
pub async fn get_mode(State(sim): State<Arc<Sim>>) -> Response {
    let mode = sim.tenant().barriers.mode;
    axum::Json(json!({"mode": mode.as_str()})).into_response()
}

/// `PUT /_sim/barriers/mode` with `{"mode":"Legacy"|"SingleSegment"|"MultiSegment"}`: sets the
/// mode directly (any of the three, either way: no irreversibility, no check of policies);
/// answers `{"mode":...}`, or 400 for anything else.
pub async fn put_mode(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let mode = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["mode"].as_str().and_then(Mode::parse));
    let Some(mode) = mode else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "expected {\"mode\": \"Legacy\" | \"SingleSegment\" | \"MultiSegment\"}"}),
            ),
        )
            .into_response();
    };
    sim.tenant().barriers.mode = mode;
    axum::Json(json!({"mode": mode.as_str()})).into_response()
}
