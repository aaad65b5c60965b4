//! Conformance tests for the journal of writes (`GET /_sim/journal`): Graph writes (each
//! `$batch` item on its own, failed writes with their status) and changing compliance commands
//! appear once each, in order, with a rising `seq`; reads do not appear; the journal agrees
//! with the counters; `POST /_sim/counters/reset` and `POST /_sim/reset` empty it.

mod common;

use common::compliance::{Ib, ib};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn journal(ib: &Ib, query: &str) -> Vec<Value> {
    let j = ib.env.admin(Method::GET, &format!("/journal{query}"), None).await;
    assert_eq!(j["dropped"], 0, "{j}");
    j["entries"].as_array().expect("entries").clone()
}

/// The entries without `seq`, checking that `seq` rises by one from `first`.
fn without_seq(entries: &[Value], first: u64) -> Vec<Value> {
    entries
        .iter()
        .enumerate()
        .map(|(n, e)| {
            assert_eq!(e["seq"], first + n as u64, "seq of entry {n}: {entries:#?}");
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("seq");
            e
        })
        .collect()
}

fn graph(method: &str, path: &str, route: &str, status: u16, batch: bool) -> Value {
    json!({"kind": "graph", "method": method, "path": path, "route": format!("{method} {route}"),
        "status": status, "batch": batch})
}

/// A compliance entry: the cmdlet, its `Identity` (else `Name`), the segment or policy it named
/// (by name) and, for a policy, its assigned segment.
struct Cmd<'a> {
    cmdlet: &'a str,
    identity: Option<&'a str>,
    target: Option<&'a str>,
    assigned: Option<&'a str>,
}

fn compliance(c: Cmd, parameters: Value, status: u16) -> Value {
    json!({"kind": "compliance", "cmdlet": c.cmdlet, "identity": c.identity, "target": c.target,
        "assignedSegment": c.assigned, "parameters": parameters, "status": status})
}

#[tokio::test]
async fn writes_and_changing_commands_are_journalled_in_order() {
    let ib = ib().await;
    assert_eq!(journal(&ib, "").await, Vec::<Value>::new(), "nothing written yet");
    let env = &ib.env;
    let a = env.create_user("journal.a", Some("US")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = env.create_user("journal.b", Some("US")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Reads are not journalled, not even inside a batch.
    assert_eq!(
        env.graph(Method::GET, &format!("/users/{a}"), None).await.status,
        StatusCode::OK
    );
    env.graph(Method::GET, "/users?$select=id", None).await;
    // A PATCH with a query string: the path is journalled without it.
    let a_path = format!("/users/{a}");
    let r = env
        .graph(
            Method::PATCH,
            &format!("{a_path}?$select=id"),
            Some(json!({"department": "Support"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    // A batch of a read and two PATCHes, the second depending on the first (so their order
    // is known): two entries, each marked as a batch item; the $batch POST itself is none.
    let patch = |id: &str, user: &str, depends: &[&str]| {
        json!({"id": id, "method": "PATCH", "url": format!("/users/{user}"), "dependsOn": depends,
            "headers": {"Content-Type": "application/json"}, "body": {"accountEnabled": false}})
    };
    let requests = json!([
        {"id": "read", "method": "GET", "url": format!("/users/{b}")},
        patch("1", &b, &[]),
        patch("2", &a, &["1"]),
    ]);
    let r = env
        .graph(Method::POST, "/$batch", Some(json!({"requests": requests})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(
        r.body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"].as_u64().unwrap() < 300),
        "{:?}",
        r.body
    );
    // Failed writes are journalled with the status they got.
    let missing = "00000000-0000-0000-0000-000000000000";
    let r = env
        .graph(
            Method::PATCH,
            &format!("/users/{missing}"),
            Some(json!({"department": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = env
        .graph(Method::POST, "/users", Some(json!({"displayName": "no"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Compliance: changing commands (whatever their outcome) are journalled, Get- is not.
    // Clients may name objects by their Identity (object id): `target` still gives the name.
    let seg_id = ib.segment("J-Seg", "Department -eq 'Support'").await["Identity"]
        .as_str()
        .unwrap()
        .to_owned();
    let policy_id = ib.allow("J-Policy", "J-Seg", &["J-Seg"], "Active").await["Identity"]
        .as_str()
        .unwrap()
        .to_owned();
    ib.ok("Get-OrganizationSegment", json!({})).await;
    ib.ok("Get-InformationBarrierPolicy", json!({"Identity": "J-Policy"}))
        .await;
    ib.one(
        "Set-InformationBarrierPolicy",
        json!({"Identity": "J-Policy", "State": "Inactive"}),
    )
    .await;
    ib.ok(
        "Remove-InformationBarrierPolicy",
        json!({"Identity": policy_id, "Force": true}),
    )
    .await;
    ib.ok("Remove-OrganizationSegment", json!({"Identity": seg_id}))
        .await;
    ib.fails(
        "Remove-OrganizationSegment",
        json!({"Identity": "J-Seg"}),
        "ManagementObjectNotFoundException",
    )
    .await;
    ib.one("Start-InformationBarrierPoliciesApplication", json!({}))
        .await;
    let r = env.graph(Method::DELETE, &a_path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let entries = journal(&ib, "").await;
    let users = "/v1.0/users";
    let user = "/v1.0/users/{id}";
    let expected = vec![
        graph("POST", users, users, 201, false),
        graph("POST", users, users, 201, false),
        graph("PATCH", &format!("/v1.0{a_path}"), user, 204, false),
        graph("PATCH", &format!("/v1.0/users/{b}"), user, 204, true),
        graph("PATCH", &format!("/v1.0{a_path}"), user, 204, true),
        graph("PATCH", &format!("/v1.0/users/{missing}"), user, 404, false),
        graph("POST", users, users, 400, false),
        compliance(
            Cmd {
                cmdlet: "New-OrganizationSegment",
                identity: Some("J-Seg"),
                target: Some("J-Seg"),
                assigned: None,
            },
            json!({"Name": "J-Seg", "UserGroupFilter": "Department -eq 'Support'"}),
            200,
        ),
        compliance(
            Cmd {
                cmdlet: "New-InformationBarrierPolicy",
                identity: Some("J-Policy"),
                target: Some("J-Policy"),
                assigned: Some("J-Seg"),
            },
            json!({"Name": "J-Policy", "AssignedSegment": "J-Seg", "SegmentsAllowed": ["J-Seg"],
                "State": "Active", "Force": true}),
            200,
        ),
        compliance(
            Cmd {
                cmdlet: "Set-InformationBarrierPolicy",
                identity: Some("J-Policy"),
                target: Some("J-Policy"),
                assigned: Some("J-Seg"),
            },
            json!({"Identity": "J-Policy", "State": "Inactive"}),
            200,
        ),
        compliance(
            Cmd {
                cmdlet: "Remove-InformationBarrierPolicy",
                identity: Some(&policy_id),
                target: Some("J-Policy"),
                assigned: Some("J-Seg"),
            },
            json!({"Identity": policy_id, "Force": true}),
            200,
        ),
        compliance(
            Cmd {
                cmdlet: "Remove-OrganizationSegment",
                identity: Some(&seg_id),
                target: Some("J-Seg"),
                assigned: None,
            },
            json!({"Identity": seg_id}),
            200,
        ),
        // Nothing of that name is left: no target.
        compliance(
            Cmd {
                cmdlet: "Remove-OrganizationSegment",
                identity: Some("J-Seg"),
                target: None,
                assigned: None,
            },
            json!({"Identity": "J-Seg"}),
            400,
        ),
        compliance(
            Cmd {
                cmdlet: "Start-InformationBarrierPoliciesApplication",
                identity: None,
                target: None,
                assigned: None,
            },
            json!({}),
            200,
        ),
        graph("DELETE", &format!("/v1.0{a_path}"), user, 204, false),
    ];
    assert_eq!(without_seq(&entries, 1), expected);

    // The journal and the counters count the same writes.
    let c = env.admin(Method::GET, "/counters", None).await;
    assert!(
        c.get("journal").is_none(),
        "the counters do not carry the journal: {c}"
    );
    let graph_entries = entries.iter().filter(|e| e["kind"] == "graph").count() as u64;
    assert_eq!(c["writes"], graph_entries, "{c}");
    let mut routes: std::collections::BTreeMap<String, u64> = Default::default();
    for e in &entries {
        let route = match e["kind"].as_str().unwrap() {
            "graph" => e["route"].as_str().unwrap().to_owned(),
            _ => format!("InvokeCommand {}", e["cmdlet"].as_str().unwrap()),
        };
        *routes.entry(format!("{route} {}", e["status"])).or_default() += 1;
    }
    for (route_status, n) in routes {
        let (route, status) = route_status.rsplit_once(' ').unwrap();
        assert_eq!(c["byRoute"][route][status], n, "{route} {status}: {c}");
    }

    // `after` lists only what came later.
    let later = journal(&ib, "?after=13").await;
    assert_eq!(without_seq(&later, 14), expected[13..].to_vec());
    assert_eq!(journal(&ib, "?after=15").await, Vec::<Value>::new());
}

#[tokio::test]
async fn resets_empty_the_journal_and_the_sequence_goes_on() {
    let ib = ib().await;
    let env = &ib.env;
    env.create_user("reset.a", None).await;
    assert_eq!(journal(&ib, "").await.len(), 1);
    env.admin(Method::POST, "/counters/reset", None).await;
    assert_eq!(journal(&ib, "").await, Vec::<Value>::new());
    assert_eq!(env.admin(Method::GET, "/counters", None).await["writes"], 0);
    env.create_user("reset.b", None).await;
    let entries = journal(&ib, "").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["seq"], 2, "seq is never reused: {entries:?}");
    // A tenant reset empties it too (tokens go with it, so get a new one for the next write).
    env.admin(Method::POST, "/reset", None).await;
    assert_eq!(journal(&ib, "").await, Vec::<Value>::new());
    let token = env
        .token_for(common::operator_id(), common::operator_secret())
        .await;
    let r = env
        .graph_as(
            &token,
            Method::DELETE,
            "/users/alice.engineer@abc.example",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let entries = journal(&ib, "").await;
    assert_eq!(
        without_seq(&entries, 3),
        [graph(
            "DELETE",
            "/v1.0/users/alice.engineer@abc.example",
            "/v1.0/users/{id}",
            204,
            false
        )]
    );
    // `after` must be a number.
    let r = ib
        .http
        .get(format!("{}/_sim/journal?after=x", env.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
