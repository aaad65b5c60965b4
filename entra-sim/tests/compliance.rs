//! Conformance tests for the Security & Compliance InvokeCommand endpoint (see
//! entra-sim/docs/wire-protocol.md#compliance-invokecommand-endpoint,
//! #information-barrier-segments and #information-barrier-policies): the regional redirect,
//! app-only auth, the error shape, and the segment and policy rules. The application lifecycle
//! is in `compliance_application.rs`.

mod common;

use common::compliance::{error_text, ib, ib_with, input};
use common::{auditor_id, auditor_secret, tenant};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn the_global_host_redirects_to_the_region() {
    let ib = ib().await;
    let url = ib.env.url();
    let body = input("Get-OrganizationSegment", json!({}));
    let global = format!("{url}/adminapi/beta/{}/InvokeCommand", tenant());
    let a = ib.post(&global, Some(&ib.token), body.clone()).await;
    assert_eq!(a.status, StatusCode::FOUND);
    assert_eq!(a.headers["location"], ib.regional().as_str());
    assert_eq!(a.body, Value::Null);
    // A verified domain names the tenant too; an unknown tenant has no organization container.
    let by_domain = format!("{url}/adminapi/beta/abcsim.onmicrosoft.com/InvokeCommand");
    let a = ib.post(&by_domain, Some(&ib.token), body.clone()).await;
    assert_eq!(a.status, StatusCode::FOUND);
    let unknown = format!("{url}/adminapi/beta/00000000-0000-0000-0000-000000000001/InvokeCommand");
    let a = ib.post(&unknown, Some(&ib.token), body.clone()).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        a.error_message()
            .contains("Could not find the organization container")
    );
    // The wrong region is redirected; the right one answers.
    let wrong = format!("{url}/nam11b/adminapi/beta/{}/InvokeCommand", tenant());
    let a = ib.post(&wrong, Some(&ib.token), body.clone()).await;
    assert_eq!(a.status, StatusCode::FOUND);
    assert_eq!(a.headers["location"], ib.regional().as_str());
    let a = ib.post(&ib.regional(), Some(&ib.token), body).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["value"], json!([]));
    assert!(
        a.body["@odata.context"]
            .as_str()
            .unwrap()
            .contains("/eur03b/adminapi/beta/")
    );
    // The region comes from the seed.
    let other = ib_with(common::seed_with(|s| s.compliance_region = Some("zaf01b".into()))).await;
    let a = other
        .post(
            &format!("{}/adminapi/beta/{}/InvokeCommand", other.env.url(), tenant()),
            None,
            json!({}),
        )
        .await;
    assert!(
        a.headers["location"]
            .to_str()
            .unwrap()
            .contains("/zaf01b/adminapi/beta/")
    );
}

#[tokio::test]
async fn only_compliance_tokens_with_manage_as_app_are_accepted() {
    let ib = ib().await;
    let body = input("Get-OrganizationSegment", json!({}));
    for token in [
        Some(ib.env.token.as_str()),
        None,
        Some("eyJ0eXAiOiJKV1QifQ.e30.forged"),
    ] {
        let a = ib.post(&ib.regional(), token, body.clone()).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.body);
        assert!(error_text(&a, "Unauthorized").starts_with("Access denied"));
    }
    let auditor = ib.env.compliance_token_for(auditor_id(), auditor_secret()).await;
    let a = ib.post(&ib.regional(), Some(&auditor), body).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.body);
    assert!(error_text(&a, "Unauthorized").contains("Exchange.ManageAsApp"));
    // Requests the endpoint cannot run.
    ib.fails("Get-Mailbox", json!({}), "CommandNotFoundException")
        .await;
    let a = ib.post(&ib.regional(), Some(&ib.token), json!({"x": 1})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Injected server errors reach this endpoint too.
    ib.env.set_misbehaviour(json!({"errorRate": 1.0})).await;
    let a = ib.call("Get-OrganizationSegment", json!({})).await;
    assert!(a.status.is_server_error(), "{:?}", a.status);
    error_text(&a, "TransientException");
}

#[tokio::test]
async fn segment_rules() {
    let ib = ib().await;
    let group = ib.env.create_group("V1_RemoteAssistUser").await;
    let gid = group["id"].as_str().unwrap();
    let filter = format!("MemberOf -eq '{gid}'");
    let s = ib.segment("V1_RemoteAssistUser", &filter).await;
    assert_eq!(s["Name"], "V1_RemoteAssistUser");
    assert_eq!(s["UserGroupFilter"], filter.as_str());
    for field in ["Identity", "ExoSegmentId", "WhenCreated", "WhenChanged"] {
        assert!(s[field].is_string(), "{field}: {s}");
    }
    let params = json!({"Name": "v1_remoteassistuser", "UserGroupFilter": "Department -eq 'x'"});
    ib.fails(
        "New-OrganizationSegment",
        params,
        "ManagementObjectAlreadyExistsException",
    )
    .await;
    // MemberOf needs the group's object id, not its name.
    let params = json!({"Name": "ByName", "UserGroupFilter": "MemberOf -eq 'V1_RemoteAssistUser'"});
    let text = ib
        .fails(
            "New-OrganizationSegment",
            params,
            "InvalidMemberOfGroupIdException",
        )
        .await;
    assert_eq!(
        text,
        "The group id \"V1_RemoteAssistUser\" is neither a validExternalDirectoryObjectId nor a ProxyAddress."
    );
    for bad in [
        "Department -eq 'unterminated",
        "Department = 'x'",
        "(Department -eq 'x'",
        "Title -eq 'x'",
        "ExtensionAttribute16 -eq 'x'",
    ] {
        let params = json!({"Name": "Bad", "UserGroupFilter": bad});
        ib.fails(
            "New-OrganizationSegment",
            params,
            "InvalidUserGroupFilterException",
        )
        .await;
    }
    let params = json!({"Name": "Quotes", "UserGroupFilter": "(Department -eq 'O''Brien' -or ExtensionAttribute3 -ne 'x') -and Company -eq 'ABC'"});
    ib.one("New-OrganizationSegment", params).await;
    let params = json!({"Name": "x", "UserGroupFilter": "Department -eq 'x'", "Colour": "red"});
    ib.fails("New-OrganizationSegment", params, "ParameterBindingException")
        .await;
    ib.fails(
        "New-OrganizationSegment",
        json!({"UserGroupFilter": "Department -eq 'x'"}),
        "ParameterBindingException",
    )
    .await;
    // Get by name or GUID, all, or a missing one.
    let by_id = ib
        .one("Get-OrganizationSegment", json!({"Identity": s["Identity"]}))
        .await;
    assert_eq!(by_id["Name"], "V1_RemoteAssistUser");
    assert_eq!(ib.ok("Get-OrganizationSegment", json!({})).await.len(), 2);
    let text = ib
        .fails(
            "Get-OrganizationSegment",
            json!({"Identity": "Nope"}),
            "ManagementObjectNotFoundException",
        )
        .await;
    assert!(
        text.starts_with("The operation couldn't be performed because object 'Nope' couldn't be found on '")
    );
    let set = ib
        .one(
            "Set-OrganizationSegment",
            json!({"Identity": "Quotes", "UserGroupFilter": "Department -eq 'Support'"}),
        )
        .await;
    assert_eq!(set["UserGroupFilter"], "Department -eq 'Support'");
    // A segment with a policy cannot be removed; without one it can.
    ib.allow("P1", "V1_RemoteAssistUser", &["V1_RemoteAssistUser"], "Inactive")
        .await;
    let id = json!({"Identity": "V1_RemoteAssistUser"});
    ib.fails(
        "Remove-OrganizationSegment",
        id.clone(),
        "OrganizationSegmentInUseException",
    )
    .await;
    assert!(
        ib.ok("Remove-InformationBarrierPolicy", json!({"Identity": "P1"}))
            .await
            .is_empty()
    );
    assert!(ib.ok("Remove-OrganizationSegment", id).await.is_empty());
}

#[tokio::test]
async fn policy_rules() {
    let ib = ib().await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("Finance", "Department -eq 'Finance'").await;
    let new = |params: Value| ib.call("New-InformationBarrierPolicy", params);
    // An allow policy must list its own segment; a block policy must not.
    for params in [
        json!({"Name": "S", "AssignedSegment": "Support", "SegmentsAllowed": ["Finance"]}),
        json!({"Name": "S", "AssignedSegment": "Support", "SegmentsBlocked": ["Support", "Finance"]}),
    ] {
        let text = error_text(&new(params).await, "SegmentCannotCommunicateWithItselfException");
        assert!(text.ends_with(
            "will not be able to communicate with itself. Please correct the SegmentsAllowed or SegmentsBlocked parameter."
        ));
    }
    let both = json!({"Name": "S", "AssignedSegment": "Support", "SegmentsAllowed": ["Support"], "SegmentsBlocked": ["Finance"]});
    error_text(&new(both).await, "ParameterBindingException");
    let long = json!({"Name": "x".repeat(65), "AssignedSegment": "Support", "SegmentsAllowed": ["Support"]});
    error_text(&new(long).await, "ParameterBindingException");
    let missing = json!({"Name": "S", "AssignedSegment": "Support", "SegmentsAllowed": ["Support", "Nope"]});
    error_text(&new(missing).await, "ManagementObjectNotFoundException");
    // State defaults to Inactive.
    let p = ib
        .allow("Support-policy", "Support", &["Support", "Finance"], "Inactive")
        .await;
    let created = ib
        .one(
            "New-InformationBarrierPolicy",
            json!({"Name": "Finance-policy", "AssignedSegment": "Finance", "SegmentsBlocked": ["Support"]}),
        )
        .await;
    assert_eq!(created["State"], "Inactive");
    assert_eq!(created["SegmentsBlocked"], json!(["Support"]));
    assert_eq!(created["SegmentsAllowed"], json!([]));
    assert_eq!(p["SegmentsAllowed"], json!(["Support", "Finance"]));
    for field in ["Identity", "ExOPolicyId", "WhenChanged"] {
        assert!(p[field].is_string(), "{field}: {p}");
    }
    // One policy per segment; unique names.
    let second = json!({"Name": "Support-2", "AssignedSegment": "Support", "SegmentsAllowed": ["Support"]});
    error_text(&new(second).await, "SegmentAlreadyHasPolicyException");
    let dup = json!({"Name": "support-POLICY", "AssignedSegment": "Finance", "SegmentsAllowed": ["Finance"]});
    error_text(&new(dup).await, "ManagementObjectAlreadyExistsException");
    // The type is fixed.
    let set = |params: Value| ib.call("Set-InformationBarrierPolicy", params);
    let flip = json!({"Identity": "Support-policy", "SegmentsBlocked": ["Finance"]});
    error_text(
        &set(flip).await,
        "InformationBarrierPolicyTypeCannotBeChangedException",
    );
    let no_self = json!({"Identity": p["Identity"], "SegmentsAllowed": ["Finance"]});
    error_text(&set(no_self).await, "SegmentCannotCommunicateWithItselfException");
    // Removal requires Inactive.
    let active = ib
        .one(
            "Set-InformationBarrierPolicy",
            json!({"Identity": "Support-policy", "State": "Active", "Comment": "on", "Force": true}),
        )
        .await;
    assert_eq!(
        (active["State"].as_str(), active["Comment"].as_str()),
        (Some("Active"), Some("on"))
    );
    let remove = json!({"Identity": "Support-policy"});
    let a = ib.call("Remove-InformationBarrierPolicy", remove.clone()).await;
    error_text(&a, "CannotRemoveActiveInformationBarrierPolicyException");
    ib.one(
        "Set-InformationBarrierPolicy",
        json!({"Identity": "Support-policy", "State": "Inactive"}),
    )
    .await;
    assert!(ib.ok("Remove-InformationBarrierPolicy", remove).await.is_empty());
    assert_eq!(ib.ok("Get-InformationBarrierPolicy", json!({})).await.len(), 1);
}
