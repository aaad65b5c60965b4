//! Plan and audit. `plan` lists what the operator would change and never writes (the simulated
//! tenant's write counters prove it); in-cluster plan mode holds a licence's changes until the
//! annotation goes; `audit` finds a tenant broken behind the operator's back.

use crate::clock::until_ok;
use crate::cluster::kubectl_ok;
use crate::env::{Env, operator_app, tenant};
use crate::fixtures::{DOMAIN, license, upn, vendor, yaml};
use crate::repo::repo_root;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const RAL: &str = "remoteassistlicense";
fn auditor_app() -> &'static str {
    &entra_sim::seed::default_ids().auditor_client_id
}

/// Runs `plan` or `audit` against the simulated tenant; returns exit code and stdout.
fn command(env: &Env, args: &[&str], app: &str, secret: &str) -> (i32, String) {
    let secret_file = repo_root().join(format!("target/e2e/{}-{app}.secret", env.id));
    std::fs::write(&secret_file, secret).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_remote-assist-operator"))
        .args(args)
        .args([
            "--graph-url",
            &env.sim.url(),
            "--authority-host",
            &env.sim.url(),
            "--compliance-url",
            &env.sim.url(),
        ])
        .args(["--tenant-id", tenant(), "--client-id", app])
        .arg("--client-secret-file")
        .arg(&secret_file)
        .envs(std::env::var_os("KUBECONFIG").map(|k| ("KUBECONFIG", k)))
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_lists_the_changes_for_the_examples_and_never_writes() {
    let env = Env::start_without_cluster("plan").await;
    let examples = repo_root().join("deploy/examples");
    let (code, text) = command(
        &env,
        &["plan", "-f", examples.to_str().unwrap()],
        auditor_app(),
        entra_sim::seed::default_ids().auditor_secret.as_str(),
    );
    assert_eq!(code, 2, "changes planned:\n{text}");
    for line in [
        "VendorTenant v1",
        "+ create security group V1_RemoteAssistUser",
        "+ add 2 engineer(s) to V1_SupportEngineer",
        "+ assign 2 licence(s) to group v2_RemoteAssistUser",
        "RemoteAssistLicense vendor-v1/v1-tech-01",
        "+ create user v1-tech-01@vendors.abc.example",
        "nothing was changed",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let (code, json_text) = command(
        &env,
        &["plan", "-f", examples.to_str().unwrap(), "-o", "json"],
        operator_app(),
        entra_sim::seed::default_ids().operator_secret.as_str(),
    );
    assert_eq!(code, 2);
    let report: Value = serde_json::from_str(&json_text).unwrap();
    let segment = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "v1-accounts")
        .unwrap()
        .clone();
    let first = &segment["actions"][0];
    assert_eq!(first["kind"], "CreateSegment", "{segment}");
    assert_eq!(first["object"], "v1-accounts", "{segment}");
    assert!(
        first["description"]
            .as_str()
            .unwrap()
            .starts_with("create segment v1-accounts"),
        "{segment}"
    );
    assert_eq!(
        env.tenant_writes().await,
        0,
        "plan never writes: {}",
        env.counters().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn plan_mode_holds_changes_until_the_annotation_goes_and_plan_agrees_after() {
    let mut env = Env::start("pmode").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    let vendor_manifest = vendor(&v).namespaces(&[&ns]).barriers_not_required().build();
    env.apply(&vendor_manifest);
    let name = format!("{}-t", env.id);
    let license = license(&ns, &name).vendor(&v);
    env.apply(license.clone().annotation("remoteassist.dev/mode", "Plan"));
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &name, "Planned", "True", Some("Planned"))
        .await;
    let status = env.get(RAL, Some(&ns), &name).unwrap()["status"].clone();
    let actions: Vec<&str> = status["plannedActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "write the credentials Secret",
            &format!("create user {}", upn(&name))
        ]
    );
    assert!(env.user(&upn(&name)).await.is_none(), "plan mode changes nothing");
    assert!(
        env.get("secret", Some(&ns), &format!("{name}-credentials"))
            .is_none()
    );

    kubectl_ok(
        &["annotate", RAL, "-n", &ns, &name, "remoteassist.dev/mode-"],
        None,
    );
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    assert!(
        env.condition(RAL, Some(&ns), &name, "Planned").is_none(),
        "the Planned condition goes with the mode"
    );
    env.wait_condition(
        "barriersegment",
        None,
        &format!("{v}-accounts"),
        "Ready",
        "True",
        None,
    )
    .await;

    // The `plan` command agrees: nothing left to do for these manifests (labelled as
    // `env.apply` labels them, so they are the manifests that were applied).
    let file = repo_root().join(format!("target/e2e/{}-manifests.yaml", env.id));
    let mut applied = [vendor_manifest, license.build()];
    for doc in &mut applied {
        doc["metadata"]["labels"]["e2e"] = serde_json::json!(env.id);
    }
    std::fs::write(&file, yaml(&applied)).unwrap();
    let (code, text) = command(
        &env,
        &["plan", "-f", file.to_str().unwrap()],
        operator_app(),
        entra_sim::seed::default_ids().operator_secret.as_str(),
    );
    assert_eq!(code, 0, "no changes after convergence:\n{text}");
    assert!(text.contains("0 change(s) planned"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn audit_finds_a_tenant_broken_behind_the_operators_back() {
    let mut env = Env::start("audit").await;
    let ns = env.namespace("a");
    let (v1, v2) = (format!("{}-v1", env.id), format!("{}-v2", env.id));
    for (v, engineer) in [(&v1, "alice"), (&v2, "bob")] {
        let engineer = format!("{engineer}.engineer@abc.example");
        env.apply(vendor(v).namespaces(&[&ns]).engineers(&[&engineer]));
    }
    let (a, b) = (format!("{}-a", env.id), format!("{}-b", env.id));
    env.apply(license(&ns, &a).vendor(&v1));
    env.apply(license(&ns, &b).vendor(&v2));
    env.start_operator();
    for n in [&a, &b] {
        env.wait_condition(RAL, Some(&ns), n, "Ready", "True", None).await;
    }
    let (code, text) = command(
        &env,
        &["audit"],
        operator_app(),
        entra_sim::seed::default_ids().operator_secret.as_str(),
    );
    assert_eq!(code, 0, "a converged tenant is clean:\n{text}");
    assert!(text.contains(&upn(&a)) && text.contains("applied"), "{text}");
    env.kill_operator();

    // Broken by hand: an account in the other vendor's group, a policy opened to the other
    // vendor's engineers (both directions) and applied, a licence left on an account whose
    // RemoteAssistLicense is gone.
    let v2_group = in_the_other_vendors_group(&env, &a, &v2).await;
    policies_opened_to_the_other_vendor(&env, &v1, &v2).await;
    let leak = a_license_left_behind(&env).await;
    let breaks = Breaks {
        account: upn(&a),
        v1,
        v2,
        v2_group,
        leak,
    };
    audit_finds_each_break(&env, &breaks).await;
}

/// What was broken by hand, as the audit must name it.
struct Breaks {
    /// v1's account, also in v2's accounts group.
    account: String,
    v1: String,
    v2: String,
    v2_group: String,
    /// The account left with a licence.
    leak: String,
}

/// v1's account joins v2's accounts group; returns the group's id.
async fn in_the_other_vendors_group(env: &Env, a: &str, v2: &str) -> String {
    let portal = env.portal();
    let v2_group = env.get("vendortenant", None, v2).unwrap()["status"]["accountsGroupId"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_id = env.user(&upn(a)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    portal
        .add_members(&v2_group, std::slice::from_ref(&a_id))
        .await
        .unwrap();
    v2_group
}

/// v1's accounts and v2's engineers allow each other, and that is applied.
async fn policies_opened_to_the_other_vendor(env: &Env, v1: &str, v2: &str) {
    let compliance = env.compliance();
    // A policy application the operator started just before it stopped refuses edits until
    // it ends.
    env.wait_for(
        "no policy application running",
        Duration::from_secs(30),
        async || {
            compliance
                .applications()
                .await
                .is_ok_and(|apps| apps.iter().all(|a| !a.is_running()))
        },
    )
    .await;
    let policies = compliance.policies().await.unwrap();
    let policy = |seg: &str| {
        policies
            .iter()
            .find(|p| p.assigned_segment == seg)
            .unwrap()
            .identity
            .clone()
    };
    let (v1_accounts, v2_engineers) = (format!("{v1}-accounts"), format!("{v2}-engineers"));
    let both = |x: &str, y: &str, z: &str| vec![x.to_owned(), y.to_owned(), z.to_owned()];
    compliance
        .set_policy(
            &policy(&v1_accounts),
            true,
            &both(&v1_accounts, &format!("{v1}-engineers"), &v2_engineers),
            "Active",
        )
        .await
        .unwrap();
    compliance
        .set_policy(
            &policy(&v2_engineers),
            true,
            &both(&v2_engineers, &format!("{v2}-accounts"), &v1_accounts),
            "Active",
        )
        .await
        .unwrap();
    let app = compliance.start_application().await.unwrap();
    env.wait_for(
        "the hand-made application completes",
        Duration::from_secs(30),
        async || {
            compliance
                .application(&app.identity)
                .await
                .is_ok_and(|a| a.status == "Completed")
        },
    )
    .await;
}

/// A licence left on an account whose RemoteAssistLicense is gone; returns its nickname.
async fn a_license_left_behind(env: &Env) -> String {
    let portal = env.portal();
    let leak = format!("{}-leak", env.id);
    let user = portal
        .create_user(&json!({
            "accountEnabled": false, "displayName": "Leftover", "mailNickname": leak, "usageLocation": "US",
            "userPrincipalName": format!("{leak}@{DOMAIN}"), "passwordProfile": {"password": "Left-Over-Passw0rd!"},
            "employeeType": "remoteassist.dev/00000000-0000-4000-8000-000000000000",
        }))
        .await
        .unwrap();
    let skus = portal.skus(true).await.unwrap();
    let ra = remote_assist_operator::directory::AssignedLicense {
        sku_id: skus["MICROSOFT_REMOTE_ASSIST"].sku_id.clone(),
        disabled_plans: vec![],
    };
    env.wait_for(
        "the leftover user to replicate",
        Duration::from_secs(10),
        async || {
            portal
                .assign_user_licenses(&user.id, std::slice::from_ref(&ra), &[])
                .await
                .is_ok()
        },
    )
    .await;

    leak
}

async fn audit_finds_each_break(env: &Env, breaks: &Breaks) {
    let Breaks {
        account,
        v1,
        v2,
        v2_group,
        leak,
    } = breaks;
    let (v1_accounts, v2_engineers) = (format!("{v1}-accounts"), format!("{v2}-engineers"));
    let needles = [
        format!(
            "[CrossVendorPath] segment {v1_accounts} (vendor {v1}) and segment {v2_engineers} (vendor {v2}) can reach each other"
        ),
        format!(
            "[WrongVendorGroup] {} (vendor {v1}) is a member of vendor {v2}'s group {v2_group}",
            account
        ),
        format!("[CostLeak] {leak}@{DOMAIN} holds 1 licence(s) (MICROSOFT_REMOTE_ASSIST)"),
        // The same path, person by person: v1's account reaches v2's engineer.
        format!("[CrossVendorPath] {} (an account of vendor {v1}, in ", account),
        format!("can reach bob.engineer@abc.example (an engineer of {v2}, in "),
    ];
    // The tenant settles (replication, the application's end) before every finding shows.
    let (code, text) = until_ok(Duration::from_secs(20), async || {
        let (code, text) = command(
            env,
            &["audit"],
            operator_app(),
            entra_sim::seed::default_ids().operator_secret.as_str(),
        );
        let missing: Vec<&String> = needles.iter().filter(|n| !text.contains(n.as_str())).collect();
        if missing.is_empty() {
            return Ok((code, text));
        }
        Err(format!("missing {missing:?} in\n{text}"))
    })
    .await;
    assert_eq!(code, 1, "findings give a non-zero exit:\n{text}");
    let (_, json_text) = command(
        env,
        &["audit", "-o", "json"],
        operator_app(),
        entra_sim::seed::default_ids().operator_secret.as_str(),
    );
    let report: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(report["findings"].as_array().unwrap().len(), 4, "{json_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn audit_finds_a_member_of_path_between_two_vendors() {
    let mut env = Env::start("audit-mo").await;
    let ns = env.namespace("a");
    let (v1, v2) = (format!("{}-v1", env.id), format!("{}-v2", env.id));
    for (v, engineer) in [(&v1, "alice"), (&v2, "bob")] {
        let engineer = format!("{engineer}.engineer@abc.example");
        env.apply(
            vendor(v)
                .namespaces(&[&ns])
                .membership_attribute("MemberOf")
                .engineers(&[&engineer]),
        );
    }
    let (a, b) = (format!("{}-a", env.id), format!("{}-b", env.id));
    env.apply(license(&ns, &a).vendor(&v1));
    env.apply(license(&ns, &b).vendor(&v2));
    env.start_operator();
    for n in [&a, &b] {
        env.wait_condition(RAL, Some(&ns), n, "Ready", "True", None).await;
    }
    let (code, text) = command(
        &env,
        &["audit"],
        operator_app(),
        entra_sim::seed::default_ids().operator_secret.as_str(),
    );
    assert_eq!(code, 0, "MemberOf segments, converged, are clean:\n{text}");
    env.kill_operator();
    // By hand: v2's account also joins v1's accounts group, so the MemberOf segments put it
    // in both vendors' accounts segments.
    let v1_group = env.get("vendortenant", None, &v1).unwrap()["status"]["accountsGroupId"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_id = env.user(&upn(&b)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.portal()
        .add_members(&v1_group, std::slice::from_ref(&b_id))
        .await
        .unwrap();
    let (code, text) = command(
        &env,
        &["audit"],
        operator_app(),
        entra_sim::seed::default_ids().operator_secret.as_str(),
    );
    assert_eq!(code, 1, "{text}");
    let path = format!("[CrossVendorPath] {} (an account of vendor {v1}", upn(&a));
    assert!(
        text.lines()
            .any(|l| l.contains(&path)
                && l.contains(&format!("can reach {} (an account of vendor {v2}", upn(&b)))),
        "{text}"
    );
    println!("row: a MemberOf-based path between two vendors: audit reports it");
}
