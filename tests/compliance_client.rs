//! The operator's compliance client against the simulated tenant over HTTP: the regional
//! redirect, typed `ErrorId|Type|message` errors, the token audience and role, and the
//! information-barrier cmdlets it uses.

use entra_sim::Seed;
use entra_sim::seed::DEFAULT_SEED;
use remote_assist_operator::compliance::{COMPLIANCE_RESOURCE, ComplianceClient, ComplianceError};
use remote_assist_operator::graph::{AppIdentity, Credential, RetryPolicy, Secret, TokenProvider};
use std::sync::Arc;

fn tenant() -> &'static str {
    &entra_sim::seed::default_ids().tenant_id
}

async fn sim() -> entra_sim::RunningSim {
    entra_sim::start(Seed::parse(DEFAULT_SEED).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn client(sim: &entra_sim::RunningSim, client_id: &str, secret: &str, resource: &str) -> ComplianceClient {
    let identity = AppIdentity {
        authority: sim.url(),
        tenant_id: tenant().into(),
        client_id: client_id.into(),
        credential: Credential::ClientSecret {
            secret: Secret::new(secret),
        },
    };
    let tokens = Arc::new(TokenProvider::new(reqwest::Client::new(), identity, resource));
    ComplianceClient::new(
        &sim.url(),
        tenant(),
        Some("abcsim.onmicrosoft.com"),
        tokens,
        RetryPolicy::default(),
    )
    .unwrap()
}

fn operator(sim: &entra_sim::RunningSim) -> ComplianceClient {
    client(
        sim,
        entra_sim::seed::default_ids().operator_client_id.as_str(),
        entra_sim::seed::default_ids().operator_secret.as_str(),
        COMPLIANCE_RESOURCE,
    )
}

#[tokio::test]
async fn segments_and_policies_round_trip_through_the_regional_endpoint() {
    let sim = sim().await;
    let c = operator(&sim);
    let s = c
        .new_segment("Support", "Department -eq 'Support'")
        .await
        .unwrap();
    assert_eq!(s.name, "Support");
    c.new_segment("Finance", "Department -eq 'Finance'")
        .await
        .unwrap();
    let p = c
        .new_policy(
            "Support",
            "Support",
            true,
            &["Support".into(), "Finance".into()],
            "Active",
        )
        .await
        .unwrap();
    assert_eq!(p.state, "Active");
    assert_eq!(c.segments().await.unwrap().len(), 2);
    let policies = c.policies().await.unwrap();
    assert_eq!(policies[0].assigned_segment, "Support");
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].identity, p.identity);
    assert_eq!(policies[0].state, "Active", "read back as created");
    c.set_policy_state(&p.identity, "Inactive").await.unwrap();
    let read = c.policies().await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].state, "Inactive", "the new state is read back");
    c.remove_policy(&p.identity).await.unwrap();
    assert!(c.policies().await.unwrap().is_empty(), "the policy is gone");
    c.remove_segment(&s.identity).await.unwrap();
    let left: Vec<String> = c.segments().await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(left, ["Finance"], "only the removed segment is gone");
}

#[tokio::test]
async fn refusals_are_typed_with_the_exception_and_text() {
    let sim = sim().await;
    let c = operator(&sim);
    c.new_segment("Support", "Department -eq 'Support'")
        .await
        .unwrap();
    c.new_segment("Finance", "Department -eq 'Finance'")
        .await
        .unwrap();
    let e = c
        .new_policy("Support", "Support", true, &["Nobody".into()], "Active")
        .await
        .unwrap_err();
    assert!(matches!(e, ComplianceError::Command { .. }), "{e:?}");
    let e = c
        .new_policy("Support", "Support", true, &["Finance".into()], "Active")
        .await
        .unwrap_err();
    assert_eq!(
        e.exception_name(),
        Some("SegmentCannotCommunicateWithItselfException"),
        "{e}"
    );
    assert!(e.to_string().contains("communicate with itself"), "{e}");
    let e = c.remove_segment("no-such-segment").await;
    assert!(e.is_ok(), "removing what is gone counts as done: {e:?}");
    let e = c
        .application("00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test]
async fn a_token_for_the_wrong_audience_or_without_the_role_is_refused() {
    let sim = sim().await;
    let graph_token = client(
        &sim,
        entra_sim::seed::default_ids().operator_client_id.as_str(),
        entra_sim::seed::default_ids().operator_secret.as_str(),
        "https://graph.microsoft.com",
    );
    let e = graph_token.segments().await.unwrap_err();
    assert!(matches!(e, ComplianceError::Command { status: 401, .. }), "{e:?}");
    let auditor = client(
        &sim,
        entra_sim::seed::default_ids().auditor_client_id.as_str(),
        entra_sim::seed::default_ids().auditor_secret.as_str(),
        COMPLIANCE_RESOURCE,
    );
    let e = auditor.segments().await.unwrap_err();
    assert!(matches!(e, ComplianceError::Command { status: 401, .. }), "{e:?}");
}

#[tokio::test]
async fn an_application_runs_once_at_a_time() {
    let sim = sim().await;
    let c = operator(&sim);
    let first = c.start_application().await.unwrap();
    assert!(first.is_running(), "{first:?}");
    let e = c.start_application().await.unwrap_err();
    assert!(e.is_application_running(), "{e}");
    let e = c.new_segment("Late", "Department -eq 'Late'").await.unwrap_err();
    assert!(
        e.is_application_running(),
        "definitions are refused while it runs: {e}"
    );
    let all = c.applications().await.unwrap();
    assert_eq!(all[0].identity, first.identity);
}
