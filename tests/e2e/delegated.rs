//! The delegated compliance credential, end to end, on a tenant whose compliance endpoint
//! refuses app-only tokens: `login --compliance` signs an administrator in with the device-code
//! flow and stores the refresh token in a Secret; the operator converges with it and rotates it;
//! a revoked sign-in shows `ComplianceSignInRequired` with the command, and signing in again
//! recovers without a restart.

use crate::cluster::kubectl_ok;
use crate::env::{Env, tenant};
use crate::fixtures::{license, vendor};
use base64::Engine;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const RAL: &str = "remoteassistlicense";
const VT: &str = "vendortenant";

fn refresh_token(ns: &str, name: &str) -> Option<String> {
    let out = crate::kubectl::kubectl(&["get", "secret", "-n", ns, name, "-o", "json"], None);
    if !out.ok {
        return None;
    }
    let v: Value = serde_json::from_str(&out.stdout).ok()?;
    let b64 = v["data"]["refresh_token"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// Runs `login --compliance`, approves the code it prints as the compliance administrator,
/// and returns everything it printed.
async fn login(env: &Env, secret: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_remote-assist-operator"))
        .args(["login", "--compliance", "--secret", secret])
        .args(["--authority-host", &env.sim.url(), "--tenant-id", tenant()])
        .args(["--client-id", &entra_sim::seed::default_ids().operator_client_id])
        .env("KUBECONFIG", std::env::var_os("KUBECONFIG").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("login starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let prompt = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("login prints the instructions");
    let code = prompt
        .split("enter the code ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no code in {prompt:?}"))
        .to_owned();
    let approval = json!({"userCode": code, "decision": "approve",
        "userPrincipalName": entra_sim::seed::COMPLIANCE_ADMIN_UPN});
    env.admin(reqwest::Method::POST, "/devicelogin", Some(approval))
        .await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    let printed = format!(
        "{prompt}\n{}{}",
        rest.join("\n"),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.status.success(), "login failed: {printed}");
    printed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn the_operator_converges_and_recovers_with_a_delegated_compliance_credential() {
    let mut env = Env::start_seeded("deleg", |s| {
        s.users.push(entra_sim::seed::compliance_administrator());
        s.compliance_app_only = false;
        s.device_code_interval_seconds = 1;
        // Short-lived tokens, so the operator renews (and rotates) within the test.
        s.token_lifetime_seconds = 8;
    })
    .await;
    let ns = env.namespace("a");
    let ops = env.namespace("ops");
    let secret_name = "compliance-login";
    let secret = format!("{ops}/{secret_name}");

    let printed = login(&env, &secret).await;
    let first = refresh_token(&ops, secret_name).expect("the Secret holds a refresh token");
    assert!(!printed.contains(&first), "login printed the refresh token");
    assert!(printed.contains("ib.admin@abc.example"), "{printed}");

    let v = format!("{}-v", env.id);
    let name = format!("{}-t1", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]));
    env.apply(license(&ns, &name).vendor(&v));
    env.spawn_operator(&[
        "--compliance-auth",
        "delegated",
        "--compliance-refresh-token-secret",
        &secret,
    ]);
    // Ready means its barrier was applied: through the compliance endpoint, delegated.
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    env.wait_for("a rotated refresh token", Duration::from_secs(30), async || {
        refresh_token(&ops, secret_name).is_some_and(|t| t != first)
    })
    .await;

    // The administrator's sessions are revoked: the vendor says so, with the command.
    let admin = env.user(entra_sim::seed::COMPLIANCE_ADMIN_UPN).await.unwrap();
    let path = format!("/users/{}/revokeSignInSessions", admin["id"].as_str().unwrap());
    env.portal()
        .graph
        .call(reqwest::Method::POST, &path, None)
        .await
        .unwrap();
    env.wait_condition(
        VT,
        None,
        &v,
        "GroupsReady",
        "False",
        Some("ComplianceSignInRequired"),
    )
    .await;
    let vt = env.get(VT, None, &v).unwrap();
    let text = vt["status"]["conditions"].to_string();
    assert!(
        text.contains(&format!("login --compliance --secret {secret}")),
        "{text}"
    );
    assert!(text.contains("AADSTS50173"), "{text}");

    // Signing in again recovers, without a restart.
    login(&env, &secret).await;
    env.wait_condition(VT, None, &v, "GroupsReady", "True", None)
        .await;
    let log = env.operator_log();
    let token = refresh_token(&ops, secret_name).unwrap();
    assert!(
        !log.contains(&token) && !log.contains(&first),
        "a refresh token reached the log"
    );
    let _ = kubectl_ok(&["get", "secret", "-n", &ops, secret_name], None);
}
