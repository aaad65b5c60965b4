//! Conformance tests for information-barrier policies applications (see
//! entra-sim/docs/wire-protocol.md#policies-application): the lifecycle on a scaled clock,
//! Stop, validation when processing begins (asymmetric allow lists, a user in two segments),
//! only Active policies applied, and reachability and the per-user timeline from the applied
//! state.

mod common;

use common::compliance::{Ib, fast_seed, ib, ib_with};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Two vendors, each with a service-account segment and a support-engineer segment (by group),
/// allowed to each other in both directions; carol and dave stay in no segment.
async fn two_vendors(ib: &Ib) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for (n, engineer) in [(1, "alice.engineer@abc.example"), (2, "bob.engineer@abc.example")] {
        let svc = ib.env.create_user(&format!("v{n}.svc"), Some("US")).await;
        let user = |g: &str| format!("V{n}_{g}");
        let (ra, se) = (user("RemoteAssistUser"), user("SupportEngineer"));
        let ra_group = ib.env.create_group(&ra).await;
        let se_group = ib.env.create_group(&se).await;
        let engineer_id = ib
            .env
            .graph(Method::GET, &format!("/users/{engineer}"), None)
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        ib.env
            .add_member(ra_group["id"].as_str().unwrap(), svc["id"].as_str().unwrap())
            .await;
        ib.env
            .add_member(se_group["id"].as_str().unwrap(), &engineer_id)
            .await;
        for (seg, group) in [(&ra, &ra_group), (&se, &se_group)] {
            ib.segment(seg, &format!("MemberOf -eq '{}'", group["id"].as_str().unwrap()))
                .await;
        }
        ib.allow(&format!("{ra}-policy"), &ra, &[&ra, &se], "Active")
            .await;
        ib.allow(&format!("{se}-policy"), &se, &[&se, &ra], "Active")
            .await;
        ids.push((svc["id"].as_str().unwrap().to_owned(), engineer.to_owned()));
    }
    ids
}

#[tokio::test]
async fn an_application_runs_its_course_and_applies_the_barriers() {
    let ib = ib_with(fast_seed(3000)).await;
    two_vendors(&ib).await;
    let (v1, v2) = ("v1.svc@vendors.abc.example", "v2.svc@vendors.abc.example");
    let (alice, bob, dave) = (
        "alice.engineer@abc.example",
        "bob.engineer@abc.example",
        "dave.finance@abc.example",
    );
    let (allowed, reason) = ib.reach(v1, v2).await;
    assert!(allowed, "{reason}");
    let started = ib
        .one(
            "Start-InformationBarrierPoliciesApplication",
            json!({"Force": true}),
        )
        .await;
    assert_eq!(started["Status"], "NotStarted");
    assert_eq!(started["ApplicationStartTime"], Value::Null);
    assert!(started["CreationTime"].is_string());
    // While it runs, segments, policies and applications cannot change.
    let running = "InformationBarrierPoliciesApplicationInProgressException";
    ib.fails(
        "New-OrganizationSegment",
        json!({"Name": "X", "UserGroupFilter": "Department -eq 'x'"}),
        running,
    )
    .await;
    ib.fails(
        "Set-InformationBarrierPolicy",
        json!({"Identity": "V1_RemoteAssistUser-policy", "State": "Inactive"}),
        running,
    )
    .await;
    ib.fails(
        "Remove-OrganizationSegment",
        json!({"Identity": "V1_SupportEngineer"}),
        running,
    )
    .await;
    ib.fails("Start-InformationBarrierPoliciesApplication", json!({}), running)
        .await;
    let id = started["Identity"].as_str().unwrap().to_owned();
    let mut seen = vec!["NotStarted".to_owned()];
    let deadline = Instant::now() + Duration::from_secs(5);
    let done = loop {
        let a = ib
            .one("Get-InformationBarrierPoliciesApplicationStatus", json!({}))
            .await;
        assert_eq!(a["Identity"], id.as_str());
        let status = a["Status"].as_str().unwrap().to_owned();
        if status == "InProgress" && seen.last() != Some(&status) {
            assert!(a["ApplicationStartTime"].is_string());
            assert!(a["PercentProgress"].as_u64().unwrap() < 100);
            let text = ib
                .fails(
                    "Set-OrganizationSegment",
                    json!({"Identity": "V1_SupportEngineer"}),
                    running,
                )
                .await;
            assert!(text.contains("InProgress"), "{text}");
        }
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "Completed" {
            break a;
        }
        assert!(Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(seen, ["NotStarted", "InProgress", "Completed"]);
    assert_eq!(done["PercentProgress"], 100);
    assert_eq!(done["TotalRecipients"], 3006);
    assert_eq!(done["ProcessedRecipients"], 3006);
    assert_eq!(done["FailedRecipients"], 0);
    assert_eq!(done["FailureCategory"], "None");
    assert_eq!(done["FailureMessage"], Value::Null);
    let start: jiff::Timestamp = done["ApplicationStartTime"].as_str().unwrap().parse().unwrap();
    let end: jiff::Timestamp = done["ApplicationEndTime"].as_str().unwrap().parse().unwrap();
    assert!(end > start);
    // Vendor accounts reach their own engineers only.
    for (a, b, expected) in [
        (v1, alice, true),
        (alice, v1, true),
        (v2, bob, true),
        (v1, v2, false),
        (v1, bob, false),
        (alice, bob, false),
        (v1, dave, false),
        (dave, alice, false),
        (dave, "carol.engineer@abc.example", true),
    ] {
        let (allowed, reason) = ib.reach(a, b).await;
        assert_eq!(allowed, expected, "{a} -> {b}: {reason}");
    }
    let b = ib.barriers().await;
    assert_eq!(b["applied"]["applicationId"], id.as_str());
    assert_eq!(b["applied"]["policies"].as_array().unwrap().len(), 4);
    assert_eq!(b["applications"][0]["Status"], "Completed");
    // Reset clears IB state with the tenant.
    ib.env.admin(Method::POST, "/reset", None).await;
    let b = ib.barriers().await;
    assert_eq!(
        (b["applied"].clone(), b["segments"].clone()),
        (Value::Null, json!([]))
    );
}

#[tokio::test]
async fn a_stop_ends_processing_without_applying() {
    let ib = ib_with(fast_seed(3000)).await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.allow("Support-policy", "Support", &["Support"], "Active")
        .await;
    let started = ib
        .one("Start-InformationBarrierPoliciesApplication", json!({}))
        .await;
    let id = json!({"Identity": started["Identity"]});
    let stopping = ib
        .one("Stop-InformationBarrierPoliciesApplication", id.clone())
        .await;
    assert_eq!(stopping["Status"], "NotStarted");
    let (_, done) = ib.wait_end(stopping).await;
    assert_eq!(done["Status"], "Stopped");
    assert!(done["ProcessedRecipients"].as_u64().unwrap() < done["TotalRecipients"].as_u64().unwrap());
    assert_eq!(ib.barriers().await["applied"], Value::Null);
    ib.fails(
        "Stop-InformationBarrierPoliciesApplication",
        id,
        "InformationBarrierPoliciesApplicationNotRunningException",
    )
    .await;
}

#[tokio::test]
async fn asymmetric_allow_lists_fail_the_application() {
    let ib = ib().await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("Finance", "Department -eq 'Finance'").await;
    ib.allow("Support-policy", "Support", &["Support", "Finance"], "Active")
        .await;
    ib.allow("Finance-policy", "Finance", &["Finance"], "Active")
        .await;
    let (seen, failed) = ib.apply().await;
    assert_eq!(seen.last().unwrap(), "Failed");
    assert_eq!(failed["FailureCategory"], "AsymmetricPolicies");
    let message = failed["FailureMessage"].as_str().unwrap();
    assert!(
        message.contains("'Support'") && message.contains("'Finance'"),
        "{message}"
    );
    assert_eq!(ib.barriers().await["applied"], Value::Null);
    // Fixing the pair lets the next application complete.
    ib.one(
        "Set-InformationBarrierPolicy",
        json!({"Identity": "Finance-policy", "SegmentsAllowed": ["Finance", "Support"]}),
    )
    .await;
    let (_, done) = ib.apply().await;
    assert_eq!(done["Status"], "Completed");
    let (allowed, reason) = ib
        .reach("alice.engineer@abc.example", "dave.finance@abc.example")
        .await;
    assert!(allowed, "{reason}");
}

#[tokio::test]
async fn a_user_in_two_segments_fails_the_application() {
    let ib = ib().await;
    let all = ib
        .env
        .graph(
            Method::GET,
            "/groups?$filter=displayName eq 'ABC_AllSupport'",
            None,
        )
        .await;
    let gid = all.body["value"][0]["id"].as_str().unwrap().to_owned();
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("AllSupport", &format!("MemberOf -eq '{gid}'")).await;
    let (_, failed) = ib.apply().await;
    assert_eq!(failed["Status"], "Failed");
    assert_eq!(failed["FailureCategory"], "UserInMultipleSegments");
    assert_eq!(failed["FailedRecipients"], 3);
    let message = failed["FailureMessage"].as_str().unwrap();
    assert!(
        message.contains("'Support'") && message.contains("'AllSupport'"),
        "{message}"
    );
    assert!(message.contains(".engineer@abc.example"), "{message}");
}

#[tokio::test]
async fn only_active_policies_are_applied_and_only_by_an_application() {
    let ib = ib().await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("Finance", "Department -eq 'Finance'").await;
    ib.allow("Support-policy", "Support", &["Support"], "Inactive")
        .await;
    ib.one(
        "New-InformationBarrierPolicy",
        json!({"Name": "Finance-policy", "AssignedSegment": "Finance", "SegmentsBlocked": ["Support"]}),
    )
    .await;
    let (alice, dave) = ("alice.engineer@abc.example", "dave.finance@abc.example");
    let (_, done) = ib.apply().await;
    assert_eq!(done["Status"], "Completed");
    assert_eq!(ib.barriers().await["applied"]["policies"], json!([]));
    assert!(ib.reach(alice, dave).await.0);
    // Activating a policy changes nothing until the next application completes.
    ib.one(
        "Set-InformationBarrierPolicy",
        json!({"Identity": "Finance-policy", "State": "Active"}),
    )
    .await;
    assert!(ib.reach(alice, dave).await.0);
    ib.apply().await;
    let (allowed, reason) = ib.reach(dave, alice).await;
    assert!(
        !allowed && reason.contains("blocks segment 'Support'"),
        "{reason}"
    );
    // A block policy leaves users in no segment reachable; the same segment always is.
    let outsider = ib.env.create_user("outsider", None).await;
    assert!(ib.reach(dave, outsider["id"].as_str().unwrap()).await.0);
    assert!(ib.reach(alice, "bob.engineer@abc.example").await.0);
}

#[tokio::test]
async fn the_timeline_shows_enabling_and_barrier_coverage() {
    let ib = ib().await;
    let x = ib.env.create_user("x.svc", Some("US")).await;
    let mut body = json!({
        "accountEnabled": false, "displayName": "Y", "mailNickname": "y.svc",
        "userPrincipalName": "y.svc@vendors.abc.example",
        "passwordProfile": {"password": common::GOOD_PASSWORD},
    });
    let y = ib
        .env
        .graph(Method::POST, "/users", Some(body.clone()))
        .await
        .body;
    let ts = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let t = ib.timeline().await;
    let (xu, yu) = ("x.svc@vendors.abc.example", "y.svc@vendors.abc.example");
    assert_eq!(t[yu]["enabledAt"], Value::Null);
    assert_eq!(t[xu]["barrierSince"], Value::Null);
    let ext = |v: &str| json!({"onPremisesExtensionAttributes": {"extensionAttribute1": v}});
    ib.patch_user(&y, json!({"accountEnabled": true})).await;
    ib.patch_user(&x, ext("V1")).await;
    let t = ib.timeline().await;
    assert!(ts(&t[yu]["enabledAt"]) > ts(&t[xu]["enabledAt"]));
    ib.segment("V1", "ExtensionAttribute1 -eq 'V1'").await;
    ib.allow("V1-policy", "V1", &["V1"], "Active").await;
    let (_, first) = ib.apply().await;
    let t = ib.timeline().await;
    assert_eq!(t[xu]["barrierSince"], first["ApplicationEndTime"]);
    assert_eq!(
        ib.barriers().await["applied"]["completedAt"],
        first["ApplicationEndTime"]
    );
    assert_eq!(t[yu]["barrierSince"], Value::Null);
    // Later attribute changes count from the next completed application on.
    ib.patch_user(&y, ext("V1")).await;
    assert_eq!(ib.timeline().await[yu]["barrierSince"], Value::Null);
    let (_, second) = ib.apply().await;
    let t = ib.timeline().await;
    assert_eq!(t[xu]["barrierSince"], first["ApplicationEndTime"]);
    assert_eq!(t[yu]["barrierSince"], second["ApplicationEndTime"]);
    // An application that no longer covers them resets the coverage.
    ib.one(
        "Set-InformationBarrierPolicy",
        json!({"Identity": "V1-policy", "State": "Inactive"}),
    )
    .await;
    let (_, third) = ib.apply().await;
    let t = ib.timeline().await;
    assert_eq!(
        (&t[xu]["barrierSince"], &t[yu]["barrierSince"]),
        (&Value::Null, &Value::Null)
    );
    // Status: the latest by default, one by Identity, or all newest first.
    let all = ib
        .ok(
            "Get-InformationBarrierPoliciesApplicationStatus",
            json!({"All": true}),
        )
        .await;
    let ids: Vec<&Value> = all.iter().map(|a| &a["Identity"]).collect();
    assert_eq!(ids, [&third["Identity"], &second["Identity"], &first["Identity"]]);
    let latest = ib
        .one("Get-InformationBarrierPoliciesApplicationStatus", json!({}))
        .await;
    assert_eq!(latest["Identity"], third["Identity"]);
    let one = json!({"Identity": first["Identity"]});
    let got = ib
        .one("Get-InformationBarrierPoliciesApplicationStatus", one)
        .await;
    assert_eq!(got["ApplicationEndTime"], first["ApplicationEndTime"]);
    body["userPrincipalName"] = json!("z.svc@vendors.abc.example");
    body["accountEnabled"] = json!(true);
    ib.env.graph(Method::POST, "/users", Some(body)).await;
    assert!(ib.timeline().await["z.svc@vendors.abc.example"]["enabledAt"].is_string());
}
