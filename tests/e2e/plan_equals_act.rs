//! Plan equals act: `plan` runs on manifests that reach every VendorTenant decision (an
//! `Exclusive` engineers' list with an unknown engineer over a group that has an unlisted
//! member, the engineers' barrier attribute, group licences, generated segments), then the
//! operator converges the same manifests. The writes `plan` announced are the writes the
//! simulated tenant recorded in its journal, no more and no fewer.

use crate::cluster::kubectl_ok;
use crate::env::{Env, operator_app, tenant};
use crate::fixtures::{license, vendor, yaml};
use crate::repo::repo_root;
use remote_assist_operator::directory::{MANAGED_GROUP_PREFIX, MANAGED_USER_PREFIX};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// A write, as both sides name it: (kind, object). Creations have no object id in their path,
/// so both sides name them `*` and the created names are compared on their own.
type Write = (String, String);

fn write(kind: &str, object: &str) -> Write {
    (kind.to_owned(), object.to_owned())
}

/// `plan -o json` for `file`, against the test's simulated tenant.
fn plan_json(env: &Env, file: &std::path::Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_remote-assist-operator"))
        .args(["plan", "-f", file.to_str().unwrap(), "-o", "json"])
        .args(["--graph-url", &env.sim.url(), "--authority-host", &env.sim.url()])
        .args(["--compliance-url", &env.sim.url()])
        .args(["--tenant-id", tenant(), "--client-id", operator_app()])
        .arg("--client-secret-file")
        .arg(repo_root().join(format!("target/e2e/{}.secret", env.id)))
        .output()
        .expect("the binary runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "changes are planned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plan -o json prints JSON")
}

/// The planned writes to the tenant, named as the journal names them. `GenerateSegment` and
/// `WriteCredentials` write to the cluster, not the tenant, and are returned apart.
fn planned_writes(report: &Value, accounts_group: &str) -> (Vec<Write>, Vec<Write>) {
    let (mut tenant, mut cluster) = (Vec::new(), Vec::new());
    for r in report["resources"].as_array().unwrap() {
        for a in r["actions"].as_array().unwrap() {
            let (kind, object) = (a["kind"].as_str().unwrap(), a["object"].as_str().unwrap());
            let w = match kind {
                "GenerateSegment" | "WriteCredentials" => {
                    cluster.push(write(kind, object));
                    continue;
                }
                "CreateGroup" | "CreateUser" => write(kind, "*"),
                "PlaceEngineer" | "Enable" | "Disable" | "UpdateUser" | "RotatePassword" | "Adopt" => {
                    write("PatchUser", object)
                }
                "AssignGroupLicenses" | "AssignLicenses" => write("AssignLicense", object),
                "AddToGroup" => write("AddMembers", accounts_group),
                "CreateSegment" => write("New-OrganizationSegment", object),
                "UpdateSegment" => write("Set-OrganizationSegment", object),
                "CreatePolicy" => write("New-InformationBarrierPolicy", object),
                "UpdatePolicy" => write("Set-InformationBarrierPolicy", object),
                other => write(other, object),
            };
            tenant.push(w);
        }
    }
    (tenant, cluster)
}

/// Names by object id: users by UPN, groups by display name.
fn names(state: &Value) -> BTreeMap<String, String> {
    let users = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["id"].clone(), u["userPrincipalName"].clone()));
    let groups = state["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["id"].clone(), g["displayName"].clone()));
    users
        .chain(groups)
        .map(|(id, name)| (id.as_str().unwrap().to_owned(), name.as_str().unwrap().to_owned()))
        .collect()
}

/// The journal's successful writes after `mark`, named like [`planned_writes`]. Policy
/// applications are the coordinator's, which `plan` reports as a note, not as a write.
fn performed_writes(journal: &[Value], mark: u64, names: &BTreeMap<String, String>) -> Vec<Write> {
    let name = |id: &str| {
        names
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("unknown object {id}"))
    };
    let mut out = Vec::new();
    for e in journal.iter().filter(|e| e["seq"].as_u64() > Some(mark)) {
        let ok = e["status"].as_u64().is_some_and(|s| s < 300);
        if e["kind"] == "compliance" {
            let cmdlet = e["cmdlet"].as_str().unwrap();
            if !ok || cmdlet.contains("PoliciesApplication") {
                continue;
            }
            let object = e["assignedSegment"]
                .as_str()
                .or(e["target"].as_str())
                .or(e["identity"].as_str());
            out.push(write(cmdlet, object.unwrap_or("?")));
            continue;
        }
        assert!(ok, "every Graph write succeeded: {e}");
        let route = e["route"].as_str().unwrap();
        let parts: Vec<&str> = e["path"]
            .as_str()
            .unwrap()
            .trim_start_matches("/v1.0/")
            .split('/')
            .collect();
        out.push(match (route, parts.as_slice()) {
            ("POST /v1.0/groups", _) => write("CreateGroup", "*"),
            ("POST /v1.0/users", _) => write("CreateUser", "*"),
            (r, ["users", id]) if r.starts_with("PATCH") => write("PatchUser", &name(id)),
            (_, [_, id, "assignLicense"]) => write("AssignLicense", &name(id)),
            (r, ["groups", id]) if r.starts_with("PATCH") => write("AddMembers", &name(id)),
            (r, ["groups", id, "members", "$ref"]) if r.starts_with("POST") => write("AddMembers", &name(id)),
            (r, ["groups", id, "members", _, "$ref"]) if r.starts_with("DELETE") => {
                write("RemoveMember", &name(id))
            }
            _ => write(route, e["path"].as_str().unwrap()),
        });
    }
    out
}

/// Multisets, except that membership additions count once per group: the operator's batcher
/// may fold several additions to one group into one request.
fn normalised(writes: &[Write]) -> BTreeMap<Write, usize> {
    let mut counts = BTreeMap::new();
    for w in writes {
        *counts.entry(w.clone()).or_insert(0) += 1;
    }
    for (w, n) in counts.iter_mut() {
        if w.0 == "AddMembers" {
            *n = 1;
        }
    }
    counts
}

/// The manifests: vendor `v` with every decision, and two accounts.
fn manifests(env: &Env, v: &str, ns: &str) -> Vec<Value> {
    let engineers = [
        "alice.engineer@abc.example",
        "bob.engineer@abc.example",
        "nobody.engineer@abc.example",
    ];
    let vendor = vendor(v)
        .namespaces(&[ns])
        .license_mode("Group")
        .engineers(&engineers)
        .exclusive_engineers();
    let mut docs = vec![vendor.build()];
    for name in ["pa1", "pa2"] {
        let n = format!("{name}-{}", &env.id[env.id.len() - 4..]);
        docs.push(license(ns, &n).vendor(v).build());
    }
    // Labelled as `Env::apply` labels them: the file is what was applied.
    for doc in &mut docs {
        doc["metadata"]["labels"]["e2e"] = serde_json::json!(env.id);
    }
    docs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn plan_announces_exactly_the_writes_the_operator_makes() {
    let mut env = Env::start("plan-act").await;
    let ns = env.namespace("plan-act");
    let v = format!("pa{}", &env.id[env.id.len() - 4..]);
    // An engineers' group that exists already, with a member the list does not name.
    let portal = env.portal();
    let group = portal
        .create_group(&format!("{v}_SupportEngineer"), &format!("{v}se"), "made by hand")
        .await
        .unwrap();
    let dave = portal.user("dave.finance@abc.example").await.unwrap().unwrap();
    portal
        .add_members(&group.id, std::slice::from_ref(&dave.id))
        .await
        .unwrap();

    let docs = manifests(&env, &v, &ns);
    let file = repo_root().join(format!("target/e2e/{}-manifests.yaml", env.id));
    std::fs::write(&file, yaml(&docs)).unwrap();
    let report = plan_json(&env, &file);
    let vendor_plan = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "VendorTenant")
        .unwrap();
    let problems = vendor_plan["problems"].to_string();
    assert!(
        problems.contains("nobody.engineer@abc.example") && problems.contains("EngineerNotFound"),
        "{vendor_plan}"
    );
    let (planned, planned_cluster) = planned_writes(&report, &format!("{v}_RemoteAssistUser"));
    for kind in [
        "CreateGroup",
        "PatchUser",
        "AddMembers",
        "AssignLicense",
        "New-OrganizationSegment",
        "CreateUser",
    ] {
        assert!(
            planned.iter().any(|w| w.0 == kind),
            "the scenario plans a {kind}: {planned:?}"
        );
    }
    assert!(
        !planned.iter().any(|w| w.0 == "RemoveMember"),
        "an unknown engineer stops removals: {planned:?}"
    );
    let mark = env
        .journal()
        .await
        .last()
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or(0);

    env.start_operator();
    env.apply(docs.clone());
    wait_converged(&env, &v, &ns, &docs).await;
    env.settle().await;

    let state = env.state().await;
    let performed = performed_writes(&env.journal().await, mark, &names(&state));
    assert_eq!(
        normalised(&planned),
        normalised(&performed),
        "planned (left) and performed (right) writes"
    );
    created_names_match(&state, &planned_cluster, &report, &v);
    assert!(
        state_has_member(&state, &group.id, &dave.id),
        "the unlisted member stays"
    );
}

/// Both accounts Ready, the generated segments Ready, the vendor reporting the unknown engineer.
async fn wait_converged(env: &Env, v: &str, ns: &str, docs: &[Value]) {
    for doc in docs.iter().filter(|d| d["kind"] == "RemoteAssistLicense") {
        let name = doc["metadata"]["name"].as_str().unwrap();
        env.wait_condition("remoteassistlicense", Some(ns), name, "Ready", "True", None)
            .await;
    }
    for s in [format!("{v}-accounts"), format!("{v}-engineers")] {
        env.wait_condition("barriersegment", None, &s, "Ready", "True", None)
            .await;
    }
    env.wait_condition(
        "vendortenant",
        None,
        v,
        "GroupsReady",
        "False",
        Some("EngineerNotFound"),
    )
    .await;
}

/// What was created matches by name: the groups and users `plan` would create, and the
/// BarrierSegments it would generate.
fn created_names_match(state: &Value, planned_cluster: &[Write], report: &Value, v: &str) {
    let planned_objects = |kind: &str| -> BTreeSet<String> {
        report["resources"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["actions"].as_array().unwrap().iter())
            .filter(|a| a["kind"] == kind)
            .map(|a| a["object"].as_str().unwrap().to_owned())
            .collect()
    };
    let managed = |list: &str, field: &str, marked: &str, marker: &str| -> BTreeSet<String> {
        state[list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o[marked].as_str().is_some_and(|d| d.starts_with(marker)))
            .map(|o| o[field].as_str().unwrap().to_owned())
            .collect()
    };
    let made_groups = managed("groups", "displayName", "description", MANAGED_GROUP_PREFIX);
    assert_eq!(planned_objects("CreateGroup"), made_groups, "groups created");
    assert_eq!(
        made_groups,
        BTreeSet::from([format!("{v}_RemoteAssistUser")]),
        "the engineers' group is reused"
    );
    let made_users = managed("users", "userPrincipalName", "employeeType", MANAGED_USER_PREFIX);
    assert_eq!(planned_objects("CreateUser"), made_users, "users created");
    let generated: BTreeSet<String> = planned_cluster
        .iter()
        .filter(|w| w.0 == "GenerateSegment")
        .map(|w| w.1.clone())
        .collect();
    assert_eq!(
        generated,
        BTreeSet::from([format!("{v}-accounts"), format!("{v}-engineers")])
    );
    for s in &generated {
        let owner = kubectl_ok(
            &[
                "get",
                "barriersegment",
                s,
                "-o",
                "jsonpath={.metadata.ownerReferences[0].name}",
            ],
            None,
        );
        assert_eq!(owner.trim(), v, "{s} is generated by the vendor");
    }
}

fn state_has_member(state: &Value, group: &str, user: &str) -> bool {
    state["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == group)
        .is_some_and(|g| {
            g["members"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == user))
        })
}
