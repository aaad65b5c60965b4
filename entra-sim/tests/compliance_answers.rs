//! Conformance tests for the `applicationAnswers` misbehaviour setting: through the admin API
//! the endpoint can be told to write policies applications in the other forms the real one may
//! use (`/Date(ms)/` times, offsets) and in broken ones (missing or unreadable times, status
//! and progress). Only application answers change; the admin view keeps the truth.

mod common;

use common::compliance::{Ib, ib};
use jiff::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

async fn start(ib: &Ib) -> Value {
    ib.one(
        "Start-InformationBarrierPoliciesApplication",
        json!({"Force": true}),
    )
    .await
}

async fn status(ib: &Ib, id: &Value) -> Value {
    ib.one(
        "Get-InformationBarrierPoliciesApplicationStatus",
        json!({"Identity": id}),
    )
    .await
}

/// The application's true creation time, from the admin view.
async fn truth(ib: &Ib) -> (Value, Timestamp) {
    let b = ib.barriers().await;
    let a = b["applications"][0].clone();
    let t = a["CreationTime"].as_str().unwrap().parse().unwrap();
    (a, t)
}

#[tokio::test]
async fn the_default_form_is_rfc3339_and_the_setting_is_off() {
    let ib = ib().await;
    let settings = ib.env.admin(Method::GET, "/settings", None).await;
    assert_eq!(
        settings["applicationAnswers"],
        json!({"times": "iso", "status": "normal"})
    );
    let a = start(&ib).await;
    let (_, created) = truth(&ib).await;
    assert_eq!(a["CreationTime"], created.to_string());
    assert!(a["Status"].is_string() && a["PercentProgress"].is_number());
}

#[tokio::test]
async fn times_can_be_written_in_the_dotnet_form_and_with_offsets() {
    let ib = ib().await;
    ib.env
        .set_misbehaviour(json!({"applicationAnswers": {"times": "msDate"}}))
        .await;
    let a = start(&ib).await;
    let (_, created) = truth(&ib).await;
    assert_eq!(a["CreationTime"], format!("/Date({})/", created.as_millisecond()));
    let (_, done) = ib.wait_end(a.clone()).await;
    let end = done["ApplicationEndTime"].as_str().unwrap();
    assert!(end.starts_with("/Date(") && end.ends_with(")/"), "{done}");
    ib.env
        .set_misbehaviour(json!({"applicationAnswers": {"times": "msDateOffset"}}))
        .await;
    let v = status(&ib, &a["Identity"]).await;
    assert_eq!(
        v["CreationTime"],
        format!("/Date({}+0100)/", created.as_millisecond())
    );
    ib.env
        .set_misbehaviour(json!({"applicationAnswers": {"times": "isoOffset"}}))
        .await;
    let v = status(&ib, &a["Identity"]).await;
    let text = v["CreationTime"].as_str().unwrap();
    assert!(text.ends_with("+01:00"), "{text}");
    assert_eq!(text.parse::<Timestamp>().unwrap(), created, "the same instant");
}

#[tokio::test]
async fn times_status_and_progress_can_be_missing_or_unreadable() {
    let ib = ib().await;
    ib.segment("Support", "Department -eq 'Support'").await;
    let a = start(&ib).await;
    let id = a["Identity"].clone();
    ib.env
        .set_misbehaviour(json!({"applicationAnswers": {"times": "missing"}}))
        .await;
    let v = status(&ib, &id).await;
    for f in ["CreationTime", "ApplicationStartTime", "ApplicationEndTime"] {
        assert!(v.get(f).is_none(), "{f} in {v}");
    }
    assert!(v["Status"].is_string(), "status untouched: {v}");
    ib.env
        .set_misbehaviour(json!({"applicationAnswers": {"times": "unparseable", "status": "unparseable"}}))
        .await;
    let v = status(&ib, &id).await;
    assert_eq!(v["CreationTime"], "not a time");
    assert_eq!(v["Status"], "Finished?");
    assert!(!v["PercentProgress"].is_number(), "{v}");
    ib.env
        .set_misbehaviour(json!({"applicationAnswers": {"times": "iso", "status": "missing"}}))
        .await;
    let all = ib
        .ok(
            "Get-InformationBarrierPoliciesApplicationStatus",
            json!({"All": true}),
        )
        .await;
    assert!(
        all.iter()
            .all(|v| v.get("Status").is_none() && v.get("PercentProgress").is_none())
    );
    assert!(all[0]["CreationTime"].is_string());
    // The truth is unchanged, and so are answers that are not about applications.
    let (truth, _) = truth(&ib).await;
    assert!(truth["Status"].is_string() && truth["PercentProgress"].is_number());
    let s = ib.one("Get-OrganizationSegment", json!({})).await;
    assert!(s["WhenCreated"].as_str().unwrap().parse::<Timestamp>().is_ok());
}

#[tokio::test]
async fn an_unknown_form_is_refused_by_the_admin_api() {
    let ib = ib().await;
    let r = reqwest::Client::new()
        .put(format!("{}/_sim/settings", ib.env.url()))
        .json(&json!({"applicationAnswers": {"times": "sometimes"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
}
