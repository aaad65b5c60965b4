//! Secrets never leave their Secret: the whole lifecycle (create, rotate, suspend, delete) with
//! trace-level logs, and then no generated password (every value any credentials Secret ever
//! held, `password-next` included), no client secret and no issued access token may appear in
//! the operator's logs, in Events of any namespace, in any status, or in the metrics: not raw,
//! not base64, not URL-encoded.

use crate::cluster::kubectl_ok;
use crate::env::{Env, operator_secret};
use crate::fixtures::{license, vendor};
use base64::Engine;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const RAL: &str = "remoteassistlicense";

/// Every form a secret could leak in.
fn encodings(secret: &str) -> Vec<(&'static str, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    vec![
        ("raw", secret.to_owned()),
        ("base64", b64.encode(secret)),
        ("base64url", b64url.encode(secret)),
        ("form-encoded", form.clone()),
        ("percent-encoded", form.replace('+', "%20")),
    ]
}

/// `kubectl get secrets --watch` in the test's namespace: every version of every Secret.
fn watch_secrets(ns: &str, out: &std::path::Path) -> Child {
    let file = std::fs::File::create(out).unwrap();
    Command::new("kubectl")
        .args(["get", "secrets", "-n", ns, "--watch", "-o", "json"])
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl runs")
}

/// Every password value (any `password*` key) the watched Secrets ever held.
fn passwords_seen(out: &std::path::Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(out).unwrap();
    let mut seen = BTreeSet::new();
    for obj in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
        let Ok(obj) = obj else { break }; // the last object may be cut off by the kill
        let data = obj["data"].as_object().cloned().unwrap_or_default();
        for (key, value) in data {
            if key.starts_with("password") {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.as_str().unwrap())
                    .unwrap();
                seen.insert(String::from_utf8(bytes).unwrap());
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn no_password_token_or_client_secret_appears_outside_its_secret() {
    let mut env = Env::start("secret").await;
    env.log_filter = "trace";
    let ns = env.namespace("a");
    let watch_file = crate::repo::repo_root().join(format!("target/e2e/{}.secrets.json", env.id));
    let mut watch = watch_secrets(&ns, &watch_file);
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]));
    let names: Vec<String> = (1..=2).map(|i| format!("{}-t{i}", env.id)).collect();
    for n in &names {
        env.apply(license(&ns, n).vendor(&v));
    }
    env.start_operator();
    for n in &names {
        env.wait_condition(RAL, Some(&ns), n, "Ready", "True", None).await;
    }
    rotate_one_and_suspend_the_other(&env, &ns, &v, &names).await;
    let (status, metrics) = env.operator_http("/metrics").await;
    assert_eq!(status, 200, "/metrics answers: {metrics}");
    assert!(
        metrics.contains("remoteassist_reconciles_total"),
        "/metrics has a body: {metrics}"
    );
    let statuses = kubectl_ok(&["get", "remoteassist", "-A", "-o", "yaml"], None);
    kubectl_ok(&["delete", RAL, "-n", &ns, &names[1], "--timeout=60s"], None);
    let events = kubectl_ok(&["get", "events", "-A", "-o", "yaml"], None);
    each_step_is_told_in_an_event(&env, &ns, &names);
    assert!(env.terminate(0));
    let _ = watch.kill();
    let _ = watch.wait();

    let log = env.operator_log();
    assert!(
        log.lines().count() > 200,
        "trace logging was on ({} lines)",
        log.lines().count()
    );
    let secrets = every_secret(&env, &watch_file);
    for (place, text) in [
        ("logs", &log),
        ("Events", &events),
        ("status", &statuses),
        ("metrics", &metrics),
    ] {
        never_in(&secrets, place, text);
    }
}

async fn rotate_one_and_suspend_the_other(env: &Env, ns: &str, v: &str, names: &[String]) {
    let secret_of = |n: &str| format!("{n}-credentials");
    let first = env.secret_password(ns, &secret_of(&names[0])).unwrap();

    // Rotate one: the old, the staged (`password-next`) and the new password stay secret.
    kubectl_ok(
        &[
            "annotate",
            RAL,
            "-n",
            ns,
            &names[0],
            "remoteassist.dev/rotate-credentials=1",
        ],
        None,
    );
    env.wait_for("a rotated password", Duration::from_secs(30), async || {
        env.secret_password(ns, &secret_of(&names[0]))
            .is_some_and(|p| p != first)
    })
    .await;
    env.wait_condition(RAL, Some(ns), &names[0], "Ready", "True", None)
        .await;

    // Suspend the other: sign-in blocked, licences released, the Secret kept.
    env.apply(license(ns, &names[1]).vendor(v).suspended(true));
    env.wait_condition(RAL, Some(ns), &names[1], "Ready", "False", Some("Suspended"))
        .await;
}

fn each_step_is_told_in_an_event(env: &Env, ns: &str, names: &[String]) {
    // Each step of the lifecycle told in an Event (`reason: note` prefixes; a requested
    // rotation is a person's request, never reported as drift, even on a Ready account).
    let expected = [
        (&names[0], "UserCreated: create user"),
        (&names[1], "UserCreated: create user"),
        (&names[0], "PasswordSet: set a new password (rotation requested)"),
        (&names[1], "Disabled: disable sign-in"),
        (&names[1], "LicensesChanged: assign 0 licence(s), remove 3"),
        (&names[1], "CleanedUp: "),
    ];
    for (name, event) in expected {
        assert!(
            env.events(ns, name).iter().any(|e| e.starts_with(event)),
            "no {event:?} Event on {name}: {:?}",
            env.events(ns, name)
        );
    }
}

/// Every secret the run made or used: each password the watched Secrets ever held, each access
/// token issued to the operator, and its client secret; with what each is.
fn every_secret(env: &Env, watch_file: &std::path::Path) -> Vec<(String, &'static str)> {
    let passwords = passwords_seen(watch_file);
    // Two accounts, one rotation: at least three distinct passwords went through the Secrets.
    assert!(passwords.len() >= 3, "passwords seen: {}", passwords.len());
    let tokens: Vec<String> = env.sim.sim.tokens.lock().unwrap().keys().cloned().collect();
    assert!(!tokens.is_empty(), "the operator was issued tokens");
    let mut secrets: Vec<(String, &'static str)> =
        passwords.iter().map(|p| (p.clone(), "a password")).collect();
    secrets.extend(tokens.iter().map(|t| (t.clone(), "an access token")));
    secrets.push((operator_secret().to_owned(), "the client secret"));
    secrets
}

/// No secret appears in `text` (the `place`'s), in any form it could leak in.
fn never_in(secrets: &[(String, &str)], place: &str, text: &str) {
    for (secret, what) in secrets {
        for (form, encoded) in encodings(secret) {
            assert!(
                !text.contains(encoded.as_str()),
                "{what} appears {form} in the {place}"
            );
        }
    }
}
