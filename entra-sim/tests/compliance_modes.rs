//! Conformance tests for information-barrier modes (see
//! entra-sim/docs/wire-protocol.md#information-barrier-modes-and-limits): the tenant mode from
//! the seed, `Get-`/`Set-PolicyConfig` and their rules, the admin route that sets the mode
//! directly, the segment limits, allow-only policies and at most 10 segments per user in
//! multi-segment mode, one segment per user otherwise, users in no segment, the mirror rule,
//! and how shared segments and several policies per user are evaluated in multi-segment mode.

mod common;

use common::compliance::{Ib, fast_seed, ib_with};
use entra_sim::compliance::state::Mode;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONFIG_FAILED: &str = "IBConfigUpdateFailureException";
const ALLOW_ONLY: &str = "BlockPolicyNotSupportedInMultiSegmentModeException";
const PARAMETER: &str = "ParameterBindingException";

/// A simulator on the fast IB clock whose tenant starts in `mode`, with an optional
/// simulator-only segment limit and `extra` filler users.
async fn tenant_in(mode: &str, limit: Option<usize>, extra: usize) -> Ib {
    let mut seed = fast_seed(extra);
    seed.information_barrier_mode = Mode::parse(mode).expect("a mode name");
    seed.information_barrier_segment_limit = limit;
    ib_with(seed).await
}

/// The tenant's mode as `Get-PolicyConfig` reports it.
async fn mode_of(ib: &Ib) -> String {
    let config = ib.one("Get-PolicyConfig", json!({})).await;
    config["InformationBarrierMode"].as_str().unwrap().to_owned()
}

fn switch(to: &str) -> Value {
    json!({"InformationBarrierMode": to})
}

/// `PUT /_sim/barriers/mode` with `body`: the status and the answer.
async fn put_mode(ib: &Ib, body: Value) -> (StatusCode, Value) {
    let url = format!("{}/_sim/barriers/mode", ib.env.url());
    let r = ib.env.http.put(url).json(&body).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

/// Creates users (nicknames) with no attributes a department filter matches; returns UPNs.
async fn users(ib: &Ib, nicknames: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for n in nicknames {
        let u = ib.env.create_user(n, Some("US")).await;
        out.push(u["userPrincipalName"].as_str().unwrap().to_owned());
    }
    out
}

/// A segment holding exactly the users `upns` (by UserPrincipalName).
async fn segment_of(ib: &Ib, name: &str, upns: &[&String]) {
    let terms: Vec<String> = upns
        .iter()
        .map(|u| format!("UserPrincipalName -eq '{u}'"))
        .collect();
    ib.segment(name, &terms.join(" -or ")).await;
}

/// An Active allow policy `<segment>-policy` for `segment`, listing itself and `others`.
async fn allows(ib: &Ib, segment: &str, others: &[&str]) {
    let mut list = vec![segment];
    list.extend_from_slice(others);
    ib.allow(&format!("{segment}-policy"), segment, &list, "Active")
        .await;
}

fn block_policy(name: &str, assigned: &str, blocked: &[&str], state: &str) -> Value {
    json!({"Name": name, "AssignedSegment": assigned, "SegmentsBlocked": blocked, "State": state})
}

/// Applies and expects `Completed`.
async fn applies(ib: &Ib) -> Value {
    let (seen, done) = ib.apply().await;
    assert_eq!(done["Status"], "Completed", "{seen:?}: {done}");
    done
}

/// Applies and expects `Failed` with `category`; returns the failure message.
async fn fails_with(ib: &Ib, category: &str) -> (String, Value) {
    let (_, done) = ib.apply().await;
    assert_eq!(done["Status"], "Failed", "{done}");
    assert_eq!(done["FailureCategory"], category, "{done}");
    assert_eq!(ib.barriers().await["applied"], Value::Null);
    (done["FailureMessage"].as_str().unwrap().to_owned(), done)
}

/// Asserts reachability both ways between `a` and `b`, with `fragment` in the reason `a -> b`.
async fn reach_is(ib: &Ib, a: &str, b: &str, expected: bool, fragment: &str) {
    let (allowed, reason) = ib.reach(a, b).await;
    assert_eq!(allowed, expected, "{a} -> {b}: {reason}");
    assert!(reason.contains(fragment), "{a} -> {b}: {reason}");
    let (back, reason) = ib.reach(b, a).await;
    assert_eq!(back, expected, "{b} -> {a}: {reason}");
}

const ALICE: &str = "alice.engineer@abc.example";
const DAVE: &str = "dave.finance@abc.example";

#[tokio::test]
async fn a_new_tenant_is_in_single_segment_mode_and_get_policy_config_says_so() {
    let ib = ib_with(fast_seed(0)).await;
    let config = ib.one("Get-PolicyConfig", json!({})).await;
    assert_eq!(config["InformationBarrierMode"], "SingleSegment");
    assert_eq!(config["Name"], "PolicyConfig");
    assert_eq!(config["InformationBarrierPeopleSearchRestriction"], "Enabled");
    assert!(config["Identity"].is_string());
    let text = ib
        .fails("Get-PolicyConfig", json!({"Identity": "x"}), PARAMETER)
        .await;
    assert!(text.contains("parameter name 'Identity'"), "{text}");
    let admin = ib.env.admin(Method::GET, "/barriers/mode", None).await;
    assert_eq!(admin, json!({"mode": "SingleSegment"}));
    assert_eq!(ib.barriers().await["mode"], "SingleSegment");
}

#[tokio::test]
async fn the_seed_sets_the_mode_and_a_lower_segment_limit() {
    let yaml = include_str!("../seeds/default.yaml").to_owned()
        + "informationBarrierMode: Legacy\ninformationBarrierSegmentLimit: 2\n";
    let seed = entra_sim::Seed::parse(&yaml).expect("the seed parses");
    assert_eq!(seed.information_barrier_mode, Mode::Legacy);
    assert_eq!(seed.information_barrier_segment_limit, Some(2));
    let ib = ib_with(seed).await;
    assert_eq!(mode_of(&ib).await, "Legacy");
    assert_eq!(ib.barriers().await["mode"], "Legacy");
    // A reset goes back to the seed's mode.
    put_mode(&ib, json!({"mode": "MultiSegment"})).await;
    ib.env.admin(Method::POST, "/reset", None).await;
    assert_eq!(ib.barriers().await["mode"], "Legacy");
}

#[tokio::test]
async fn the_admin_route_sets_any_mode_without_the_cmdlet_rules() {
    let ib = ib_with(fast_seed(0)).await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("Finance", "Department -eq 'Finance'").await;
    let block = block_policy("Finance-block", "Finance", &["Support"], "Inactive");
    ib.one("New-InformationBarrierPolicy", block).await;
    // Past a block policy, back from MultiSegment, and to Legacy: all accepted.
    for mode in ["MultiSegment", "SingleSegment", "Legacy", "MultiSegment"] {
        let (status, body) = put_mode(&ib, json!({"mode": mode})).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"mode": mode})));
        assert_eq!(mode_of(&ib).await, mode);
    }
    for bad in [json!({"mode": "Multi"}), json!({}), json!("MultiSegment")] {
        let (status, body) = put_mode(&ib, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains("MultiSegment"), "{body}");
    }
    assert_eq!(mode_of(&ib).await, "MultiSegment");
}

#[tokio::test]
async fn legacy_is_not_a_value_set_policy_config_accepts() {
    let ib = ib_with(fast_seed(0)).await;
    for bad in ["Legacy", "legacy", "Multi"] {
        let text = ib.fails("Set-PolicyConfig", switch(bad), PARAMETER).await;
        assert!(
            text.contains(&format!(
                "The argument \"{bad}\" does not belong to the set \"SingleSegment,MultiSegment\""
            )),
            "{text}"
        );
    }
    let text = ib.fails("Set-PolicyConfig", json!({}), PARAMETER).await;
    assert!(
        text.contains("missing mandatory parameters: InformationBarrierMode"),
        "{text}"
    );
    assert_eq!(mode_of(&ib).await, "SingleSegment");
}

#[tokio::test]
async fn a_legacy_tenant_cannot_switch_mode() {
    let ib = tenant_in("Legacy", None, 0).await;
    for to in ["SingleSegment", "MultiSegment"] {
        let text = ib.fails("Set-PolicyConfig", switch(to), CONFIG_FAILED).await;
        assert!(
            text.starts_with("Information Barrier config is not updated successfully."),
            "{text}"
        );
        assert!(text.contains(r#""code":"40005""#), "{text}");
        assert!(
            text.contains(
                "Unrecognized mode, source mode and destination mode should be 'Single' or 'MultiAllow'"
            ),
            "{text}"
        );
    }
    assert_eq!(mode_of(&ib).await, "Legacy");
}

#[tokio::test]
async fn multi_segment_mode_cannot_be_reverted_and_a_repeat_is_a_no_op() {
    let ib = ib_with(fast_seed(0)).await;
    let same = ib.one("Set-PolicyConfig", switch("SingleSegment")).await;
    assert_eq!(same["InformationBarrierMode"], "SingleSegment");
    let done = ib.one("Set-PolicyConfig", switch("multisegment")).await;
    assert_eq!(done["InformationBarrierMode"], "MultiSegment");
    assert_eq!(ib.barriers().await["mode"], "MultiSegment");
    let text = ib
        .fails("Set-PolicyConfig", switch("SingleSegment"), CONFIG_FAILED)
        .await;
    assert!(
        text.contains("you cannot revert to single segment support"),
        "{text}"
    );
    let again = ib.one("Set-PolicyConfig", switch("MultiSegment")).await;
    assert_eq!(again["InformationBarrierMode"], "MultiSegment");
}

#[tokio::test]
async fn any_block_policy_holds_back_the_switch_to_multi_segment_mode() {
    let ib = ib_with(fast_seed(0)).await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("Finance", "Department -eq 'Finance'").await;
    let block = block_policy("Finance-block", "Finance", &["Support"], "Inactive");
    ib.one("New-InformationBarrierPolicy", block).await;
    let text = ib
        .fails("Set-PolicyConfig", switch("MultiSegment"), CONFIG_FAILED)
        .await;
    assert!(
        text.contains("'Finance-block' is a SegmentsBlocked policy")
            && text.contains("Remove every block policy"),
        "{text}"
    );
    // Staying in SingleSegment is still a no-op success.
    ib.one("Set-PolicyConfig", switch("SingleSegment")).await;
    assert_eq!(mode_of(&ib).await, "SingleSegment");
    ib.ok(
        "Remove-InformationBarrierPolicy",
        json!({"Identity": "Finance-block"}),
    )
    .await;
    ib.one("Set-PolicyConfig", switch("MultiSegment")).await;
    assert_eq!(mode_of(&ib).await, "MultiSegment");
}

#[tokio::test]
async fn the_mode_cannot_change_while_an_application_runs() {
    let ib = tenant_in("SingleSegment", None, 3000).await;
    let started = ib
        .one("Start-InformationBarrierPoliciesApplication", json!({}))
        .await;
    let running = "InformationBarrierPoliciesApplicationInProgressException";
    for to in ["MultiSegment", "SingleSegment"] {
        let text = ib.fails("Set-PolicyConfig", switch(to), running).await;
        assert!(text.contains("can't be changed until it has finished"), "{text}");
    }
    // Reading the mode is not a change.
    assert_eq!(mode_of(&ib).await, "SingleSegment");
    let (_, done) = ib.wait_end(started).await;
    assert_eq!(done["Status"], "Completed");
    ib.one("Set-PolicyConfig", switch("MultiSegment")).await;
    assert_eq!(mode_of(&ib).await, "MultiSegment");
}

#[tokio::test]
async fn the_segment_limit_refuses_one_segment_more() {
    let ib = tenant_in("MultiSegment", Some(3), 0).await;
    for n in 1..=3 {
        ib.segment(&format!("S{n}"), "Department -eq 'Support'").await;
    }
    let text = ib
        .fails(
            "New-OrganizationSegment",
            json!({"Name": "S4", "UserGroupFilter": "Department -eq 'Support'"}),
            "OrganizationSegmentLimitExceededException",
        )
        .await;
    assert!(
        text.contains("'S4' can't be created: the tenant already has 3 segments, the limit of 3 segments in MultiSegment mode"),
        "{text}"
    );
    ib.ok("Remove-OrganizationSegment", json!({"Identity": "S1"}))
        .await;
    ib.segment("S4", "Department -eq 'Support'").await;
}

#[tokio::test]
async fn a_legacy_tenant_holds_at_most_250_segments() {
    let ib = tenant_in("Legacy", None, 0).await;
    for n in 0..250 {
        ib.segment(&format!("S{n}"), "Department -eq 'Support'").await;
    }
    let extra = json!({"Name": "S250", "UserGroupFilter": "Department -eq 'Support'"});
    let limit = "OrganizationSegmentLimitExceededException";
    let text = ib.fails("New-OrganizationSegment", extra.clone(), limit).await;
    assert!(
        text.contains("the limit of 250 segments in Legacy mode"),
        "{text}"
    );
    // Non-legacy tenants hold 5,000.
    put_mode(&ib, json!({"mode": "SingleSegment"})).await;
    ib.one("New-OrganizationSegment", extra).await;
}

#[tokio::test]
async fn block_policies_are_refused_in_multi_segment_mode() {
    let ib = tenant_in("MultiSegment", None, 0).await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("Finance", "Department -eq 'Finance'").await;
    let block = block_policy("Finance-block", "Finance", &["Support"], "Active");
    let text = ib.fails("New-InformationBarrierPolicy", block, ALLOW_ONLY).await;
    assert!(
        text.contains(
            "SegmentsBlocked can't be used: only allow policies are permitted in multi-segment mode"
        ),
        "{text}"
    );
    allows(&ib, "Finance", &[]).await;
    let edit = json!({"Identity": "Finance-policy", "SegmentsBlocked": ["Support"]});
    let text = ib.fails("Set-InformationBarrierPolicy", edit, ALLOW_ONLY).await;
    assert!(text.contains("Use SegmentsAllowed"), "{text}");
    let policies = ib.ok("Get-InformationBarrierPolicy", json!({})).await;
    assert_eq!(policies.len(), 1, "{policies:?}");
    assert_eq!(policies[0]["SegmentsBlocked"], json!([]));
}

#[tokio::test]
async fn an_active_block_policy_fails_an_application_in_multi_segment_mode() {
    let ib = ib_with(fast_seed(0)).await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("Finance", "Department -eq 'Finance'").await;
    let block = block_policy("Finance-block", "Finance", &["Support"], "Active");
    ib.one("New-InformationBarrierPolicy", block).await;
    put_mode(&ib, json!({"mode": "MultiSegment"})).await;
    let (message, _) = fails_with(&ib, "BlockPolicyInMultiSegmentMode").await;
    assert!(
        message.contains("'Finance-block' of segment 'Finance' is a SegmentsBlocked policy"),
        "{message}"
    );
    // An Inactive block policy is not applied, so it does not fail the application.
    let inactive = json!({"Identity": "Finance-block", "State": "Inactive"});
    ib.one("Set-InformationBarrierPolicy", inactive).await;
    applies(&ib).await;
    assert_eq!(ib.barriers().await["applied"]["mode"], "MultiSegment");
}

#[tokio::test]
async fn a_user_in_more_than_ten_segments_fails_the_application_in_multi_segment_mode() {
    let ib = tenant_in("MultiSegment", None, 0).await;
    for n in 1..=11 {
        ib.segment(&format!("S{n:02}"), "Department -eq 'Support'").await;
    }
    let (message, done) = fails_with(&ib, "UserInTooManySegments").await;
    assert_eq!(done["FailedRecipients"], 3);
    assert!(
        message.contains(".engineer@abc.example' is in 11 segments"),
        "{message}"
    );
    assert!(message.contains("at most 10 segments"), "{message}");
    assert!(
        message.contains("(2 more users are in more than 10 segments.)"),
        "{message}"
    );
    // Ten is fine.
    ib.ok("Remove-OrganizationSegment", json!({"Identity": "S11"}))
        .await;
    applies(&ib).await;
    let applied = ib.barriers().await["applied"].clone();
    let alice_id = ib
        .env
        .graph(Method::GET, &format!("/users/{ALICE}"), None)
        .await
        .body["id"]
        .clone();
    let segments = &applied["userSegments"][alice_id.as_str().unwrap()];
    assert_eq!(segments.as_array().unwrap().len(), 10, "{applied}");
}

#[tokio::test]
async fn a_user_in_two_segments_fails_the_application_in_legacy_and_single_segment_mode() {
    for mode in ["Legacy", "SingleSegment"] {
        let ib = tenant_in(mode, None, 0).await;
        ib.segment("Support", "Department -eq 'Support'").await;
        ib.segment(
            "UsSupport",
            "Department -eq 'Support' -and UsageLocation -eq 'US'",
        )
        .await;
        let (message, done) = fails_with(&ib, "UserInMultipleSegments").await;
        assert_eq!(done["FailedRecipients"], 2, "{mode}");
        assert!(
            message.contains("is in more than one segment: 'Support', 'UsSupport'"),
            "{mode}: {message}"
        );
        // The same segments are fine in multi-segment mode.
        put_mode(&ib, json!({"mode": "MultiSegment"})).await;
        applies(&ib).await;
    }
}

#[tokio::test]
async fn an_allow_policy_user_cannot_reach_a_user_in_no_segment() {
    let ib = tenant_in("MultiSegment", None, 0).await;
    ib.segment("Support", "Department -eq 'Support'").await;
    allows(&ib, "Support", &[]).await;
    applies(&ib).await;
    let fragment = "does not allow users in no segment";
    reach_is(&ib, ALICE, DAVE, false, fragment).await;
    let (_, reason) = ib.reach(DAVE, ALICE).await;
    assert!(reason.contains("they are on no allow list"), "{reason}");
}

#[tokio::test]
async fn two_users_in_no_segment_reach_each_other() {
    let ib = ib_with(fast_seed(0)).await;
    let outsider = users(&ib, &["outsider"]).await;
    ib.segment("Support", "Department -eq 'Support'").await;
    allows(&ib, "Support", &[]).await;
    applies(&ib).await;
    reach_is(&ib, DAVE, &outsider[0], true, "").await;
    reach_is(&ib, ALICE, &outsider[0], false, "no segment").await;
}

#[tokio::test]
async fn an_allow_list_not_mirrored_by_the_listed_segments_allow_policy_fails_the_application() {
    let ib = tenant_in("MultiSegment", None, 0).await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("Finance", "Department -eq 'Finance'").await;
    allows(&ib, "Support", &["Finance"]).await;
    allows(&ib, "Finance", &[]).await;
    let (message, _) = fails_with(&ib, "AsymmetricPolicies").await;
    assert!(message.starts_with("AsymmetricPoliciesException:"), "{message}");
    assert!(
        message.contains(
            "the policy 'Finance-policy' assigned to segment 'Finance' does not allow segment 'Support'"
        ),
        "{message}"
    );
}

/// microsoft-365-docs #1837: "Marketing allows Research; Research has none" fails at
/// application with AsymmetricPoliciesException.
#[tokio::test]
async fn a_one_way_allow_policy_to_a_segment_without_a_policy_fails_the_application() {
    let ib = ib_with(fast_seed(0)).await;
    ib.segment("Support", "Department -eq 'Support'").await;
    ib.segment("Finance", "Department -eq 'Finance'").await;
    allows(&ib, "Support", &["Finance"]).await;
    let (message, _) = fails_with(&ib, "AsymmetricPolicies").await;
    assert!(message.contains("AsymmetricPoliciesException"), "{message}");
    assert!(message.contains("'Finance'"), "{message}");
}

#[tokio::test]
async fn users_sharing_any_segment_are_compatible_in_multi_segment_mode() {
    let ib = tenant_in("MultiSegment", None, 0).await;
    let u = users(&ib, &["u1", "u2", "u3", "u4"]).await;
    // u1 in A and B, u2 in B and C; u3 in A only, u4 in C only. A and C allow themselves only.
    segment_of(&ib, "A", &[&u[0], &u[2]]).await;
    segment_of(&ib, "B", &[&u[0], &u[1]]).await;
    segment_of(&ib, "C", &[&u[1], &u[3]]).await;
    allows(&ib, "A", &[]).await;
    allows(&ib, "C", &[]).await;
    applies(&ib).await;
    let applied = ib.barriers().await["applied"].clone();
    assert_eq!(applied["mode"], "MultiSegment");
    reach_is(&ib, &u[0], &u[1], true, "both are in segment 'B'").await;
    reach_is(&ib, &u[0], &u[2], true, "both are in segment 'A'").await;
    reach_is(&ib, &u[2], &u[3], false, "does not allow segment 'C'").await;
    reach_is(
        &ib,
        &u[2],
        &u[1],
        false,
        "does not allow any of segments 'B', 'C'",
    )
    .await;
}

#[tokio::test]
async fn every_policy_of_every_sender_segment_must_permit_in_multi_segment_mode() {
    let ib = tenant_in("MultiSegment", None, 0).await;
    let u = users(&ib, &["both", "a.only", "x.only", "x.and.z"]).await;
    segment_of(&ib, "A", &[&u[0], &u[1]]).await;
    segment_of(&ib, "B", &[&u[0]]).await;
    segment_of(&ib, "X", &[&u[2], &u[3]]).await;
    segment_of(&ib, "Z", &[&u[3]]).await;
    allows(&ib, "A", &["X"]).await;
    allows(&ib, "B", &[]).await;
    allows(&ib, "X", &["A"]).await;
    applies(&ib).await;
    // A permits X, but B (also the sender's) does not.
    let fragment = "policy 'B-policy' of segment 'B' (both@vendors.abc.example) does not allow segment 'X'";
    reach_is(&ib, &u[0], &u[2], false, fragment).await;
    reach_is(&ib, &u[1], &u[2], true, "").await;
    // A receiver needs to be in one listed segment only; Z has no policy, so it restricts nothing.
    reach_is(&ib, &u[1], &u[3], true, "").await;
}

#[tokio::test]
async fn an_allow_policy_listing_two_segments_that_do_not_allow_each_other_is_a_conduit_in_multi_segment_mode()
 {
    let ib = tenant_in("SingleSegment", None, 0).await;
    let u = users(&ib, &["s.user", "x.user", "y.user"]).await;
    for (name, user) in [("S", &u[0]), ("X", &u[1]), ("Y", &u[2])] {
        segment_of(&ib, name, &[user]).await;
    }
    allows(&ib, "S", &["X", "Y"]).await;
    allows(&ib, "X", &["S"]).await;
    allows(&ib, "Y", &["S"]).await;
    // Single-segment mode has no conduit rule: S reaches both.
    applies(&ib).await;
    reach_is(&ib, &u[0], &u[1], true, "").await;
    put_mode(&ib, json!({"mode": "MultiSegment"})).await;
    applies(&ib).await;
    let fragment = "allows only its own segment in multi-segment mode, because its listed segments 'X' and 'Y' do not allow each other (conduit rule)";
    reach_is(&ib, &u[0], &u[1], false, fragment).await;
    reach_is(&ib, &u[0], &u[2], false, "conduit rule").await;
    reach_is(&ib, &u[1], &u[2], false, "does not allow segment 'Y'").await;
    // Once X and Y allow each other, S is no conduit.
    for (seg, list) in [("X", ["X", "S", "Y"]), ("Y", ["Y", "S", "X"])] {
        let edit = json!({"Identity": format!("{seg}-policy"), "SegmentsAllowed": list});
        ib.one("Set-InformationBarrierPolicy", edit).await;
    }
    applies(&ib).await;
    reach_is(&ib, &u[0], &u[1], true, "").await;
    reach_is(&ib, &u[1], &u[2], true, "").await;
}
