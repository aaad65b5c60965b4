//! End to end: both information-barrier modes. The same vendors (one engineer each, and one
//! engineer who serves both), a host segment naming the host's support staff, and one account
//! per vendor, in a single-segment and a multi-segment tenant. The preview `plan` prints before
//! anything is applied must equal, pair by pair, what the simulated tenant allows once the
//! operator's policies are applied; the vendors never reach each other, and the engineers keep
//! their colleagues.

use crate::env::{Env, operator_app, tenant};
use crate::fixtures::{Manifests, license, segment, upn, vendor};
use crate::repo::repo_root;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;

const RAL: &str = "remoteassistlicense";
const VT: &str = "vendortenant";
const BS: &str = "barriersegment";
const ALICE: &str = "alice.engineer@abc.example";
const BOB: &str = "bob.engineer@abc.example";
/// Support staff who serves no vendor: the engineers' colleague.
const CAROL: &str = "carol.engineer@abc.example";
/// In no segment (Finance).
const DAVE: &str = "dave.finance@abc.example";

async fn reachable(env: &Env, from: &str, to: &str) -> bool {
    let url = format!("/barriers/reachable?from={from}&to={to}");
    let answer = env.admin(reqwest::Method::GET, &url, None).await;
    answer["allowed"]
        .as_bool()
        .unwrap_or_else(|| panic!("reachable {from} {to}: {answer}"))
}

/// `plan -o json` for the manifests, against the test's tenant and without the cluster.
fn plan(env: &Env, manifests: impl Manifests, file: &str) -> Value {
    let path = repo_root().join(format!("target/e2e/{}-{file}.yaml", env.id));
    // One JSON document per line, as YAML documents.
    let docs: String = manifests
        .labelled(&env.id)
        .lines()
        .map(|l| format!("---\n{l}\n"))
        .collect();
    std::fs::write(&path, docs).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_remote-assist-operator"))
        .args(["plan", "--no-cluster", "-o", "json", "-f", path.to_str().unwrap()])
        .args(["--graph-url", &env.sim.url(), "--authority-host", &env.sim.url()])
        .args(["--compliance-url", &env.sim.url()])
        .args(["--tenant-id", tenant(), "--client-id", operator_app()])
        .arg("--client-secret-file")
        .arg(repo_root().join(format!("target/e2e/{}.secret", env.id)))
        .output()
        .expect("the binary runs");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan -o json: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

struct Scenario {
    v1: String,
    v2: String,
    ns: String,
    erin: String,
}

impl Scenario {
    fn manifests(&self, env: &Env, host: bool) -> Vec<Value> {
        let mut all = vec![
            vendor(&self.v1)
                .namespaces(&[&self.ns])
                .engineers(&[ALICE, &self.erin])
                .build(),
            vendor(&self.v2)
                .namespaces(&[&self.ns])
                .engineers(&[BOB, &self.erin])
                .build(),
            license(&self.ns, &format!("{}-a1", env.id))
                .vendor(&self.v1)
                .build(),
            license(&self.ns, &format!("{}-b1", env.id))
                .vendor(&self.v2)
                .build(),
        ];
        if host {
            all.push(
                segment(&format!("{}-host", env.id))
                    .host_staff("Department", "Support")
                    .build(),
            );
        }
        all
    }

    /// A user of each class of the preview, by its label.
    fn representatives(&self, env: &Env) -> BTreeMap<String, String> {
        [
            (format!("{} accounts", self.v1), upn(&format!("{}-a1", env.id))),
            (format!("{} engineers", self.v1), ALICE.to_owned()),
            (format!("{} accounts", self.v2), upn(&format!("{}-b1", env.id))),
            (format!("{} engineers", self.v2), BOB.to_owned()),
            (
                format!("engineers of {} + {}", self.v1, self.v2),
                self.erin.clone(),
            ),
            ("host staff".to_owned(), CAROL.to_owned()),
            ("unsegmented users".to_owned(), DAVE.to_owned()),
        ]
        .into()
    }
}

async fn start(mode: &str) -> (Env, Scenario) {
    let env = Env::start(&format!("mode-{}", &mode[..5].to_lowercase())).await;
    env.admin(
        reqwest::Method::PUT,
        "/barriers/mode",
        Some(json!({"mode": mode})),
    )
    .await;
    let erin = format!("erin.{}@abc.example", env.id);
    env.seed_user(&erin, "Seed-Passw0rd!", &[]).await;
    let s = Scenario {
        v1: format!("{}-v1", env.id),
        v2: format!("{}-v2", env.id),
        ns: env.namespace("a"),
        erin,
    };
    (env, s)
}

/// Runs the scenario in `mode`; returns the preview `plan` printed before anything was applied.
async fn converge(env: &mut Env, s: &Scenario) -> Value {
    let without_host = plan(env, s.manifests(env, false), "no-host");
    let notes = without_host["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "{} engineers cannot reach unsegmented users: they are cut off from their colleagues",
            s.v1
        )),
        "without a host segment the preview says the engineers are cut off: {notes}"
    );
    let preview = plan(env, s.manifests(env, true), "host");
    assert!(preview["reachability"].is_object(), "{preview:#}");
    env.apply(s.manifests(env, true));
    env.start_operator();
    for n in ["a1", "b1"] {
        env.wait_condition(
            RAL,
            Some(&s.ns),
            &format!("{}-{n}", env.id),
            "Ready",
            "True",
            None,
        )
        .await;
    }
    env.wait_condition(BS, None, &format!("{}-host", env.id), "Ready", "True", None)
        .await;
    preview
}

/// The preview's matrix equals the tenant's reachability, pair by pair.
async fn preview_is_the_tenant(env: &Env, s: &Scenario, preview: &Value) {
    let m = &preview["reachability"];
    let labels: Vec<&str> = m["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    let who = s.representatives(env);
    assert_eq!(labels.len(), who.len(), "the classes are {labels:?}");
    let mut checked = 0;
    for (i, a) in labels.iter().enumerate() {
        for (j, b) in labels.iter().enumerate().filter(|(j, _)| *j != i) {
            let (ua, ub) = (&who[*a], &who[*b]);
            let tenant = reachable(env, ua, ub).await;
            assert_eq!(
                m["reach"][i][j], tenant,
                "{a} ({ua}) → {b} ({ub}): the preview and the tenant disagree"
            );
            checked += 1;
        }
    }
    let allowed = m["reach"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .filter(|c| **c == true)
        .count();
    println!(
        "{} mode: the preview equals the tenant on {checked} pairs ({allowed} cells allowed, diagonal included)",
        m["mode"]
    );
    for (i, label) in labels.iter().enumerate() {
        let row: String = (0..labels.len())
            .map(|j| if m["reach"][i][j] == true { " ✓" } else { " ·" })
            .collect();
        println!("  [{}]{row}  {label} ({})", i + 1, who[*label]);
    }
}

/// What holds in both modes: the vendors never reach each other, accounts reach only their own
/// engineers, and engineers reach their colleague.
async fn vendors_stay_apart(env: &Env, s: &Scenario) {
    let (a1, b1) = (upn(&format!("{}-a1", env.id)), upn(&format!("{}-b1", env.id)));
    assert!(!reachable(env, &a1, &b1).await);
    assert!(!reachable(env, &a1, BOB).await);
    assert!(!reachable(env, &b1, ALICE).await);
    assert!(reachable(env, &a1, ALICE).await);
    assert!(reachable(env, &b1, BOB).await);
    for account in [&a1, &b1] {
        assert!(
            !reachable(env, account, CAROL).await,
            "vendor accounts never reach host staff"
        );
        assert!(!reachable(env, account, DAVE).await);
    }
    assert!(
        reachable(env, ALICE, CAROL).await,
        "with the host segment, engineers keep their colleagues"
    );
    assert!(reachable(env, BOB, CAROL).await);
    assert!(
        reachable(env, ALICE, BOB).await,
        "and the other vendors' engineers"
    );
    let mode = env.get(VT, None, &s.v1).unwrap()["status"]["informationBarrierMode"].clone();
    assert!(mode.is_string(), "the VendorTenant reports the tenant's mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn multi_segment_mode_lets_one_engineer_serve_two_vendors_that_never_meet() {
    let (mut env, s) = start("MultiSegment").await;
    let preview = converge(&mut env, &s).await;
    vendors_stay_apart(&env, &s).await;
    let (a1, b1) = (upn(&format!("{}-a1", env.id)), upn(&format!("{}-b1", env.id)));
    assert!(
        reachable(&env, &s.erin, &a1).await,
        "the shared engineer reaches the first vendor's account"
    );
    assert!(reachable(&env, &s.erin, &b1).await, "and the second's");
    assert!(reachable(&env, &s.erin, CAROL).await);
    let generated = format!("{}-vendor", s.v1);
    env.wait_condition(BS, None, &generated, "Ready", "True", None)
        .await;
    assert!(
        env.get(BS, None, &format!("{}-accounts", s.v1)).is_none(),
        "one segment per vendor"
    );
    preview_is_the_tenant(&env, &s, &preview).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn single_segment_mode_reports_the_shared_engineer_and_keeps_the_others_working() {
    let (mut env, s) = start("SingleSegment").await;
    let preview = converge(&mut env, &s).await;
    vendors_stay_apart(&env, &s).await;
    let (a1, b1) = (upn(&format!("{}-a1", env.id)), upn(&format!("{}-b1", env.id)));
    assert!(
        !reachable(&env, &s.erin, &a1).await,
        "a shared engineer serves neither vendor"
    );
    assert!(!reachable(&env, &s.erin, &b1).await);
    let (status, reason) = env.condition(VT, None, &s.v1, "GroupsReady").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "EngineerShared"));
    let message = env.get(VT, None, &s.v1).unwrap()["status"]["conditions"].to_string();
    assert!(
        message.contains("multi-segment mode"),
        "the message names the fix: {message}"
    );
    preview_is_the_tenant(&env, &s, &preview).await;
}

/// The attacker: a licence's author sets its account's usage location to the value the host
/// segment selects staff by. In multi-segment mode a user in two segments reaches both, so an
/// account in the host segment would reach the host's staff. The host filter leaves out every
/// vendor's accounts, whatever they carry: the account is in its vendor's segment only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn an_account_that_carries_the_host_attribute_never_becomes_host_staff() {
    let mut env = Env::start("mode-atk").await;
    env.admin(
        reqwest::Method::PUT,
        "/barriers/mode",
        Some(json!({"mode": "MultiSegment"})),
    )
    .await;
    let ns = env.namespace("a");
    let v1 = format!("{}-v1", env.id);
    let account = format!("{}-a1", env.id);
    env.apply(vec![
        vendor(&v1).namespaces(&[&ns]).engineers(&[ALICE]).build(),
        // carol's usage location is DE: she is host staff here.
        segment(&format!("{}-host", env.id))
            .host_staff("UsageLocation", "DE")
            .build(),
        license(&ns, &account).vendor(&v1).usage_location("DE").build(),
    ]);
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &account, "Ready", "True", None)
        .await;
    env.wait_condition(BS, None, &format!("{}-host", env.id), "Ready", "True", None)
        .await;
    let account_id = env.user(&upn(&account)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let applied = env.admin(reqwest::Method::GET, "/barriers", None).await["applied"].clone();
    assert_eq!(
        applied["userSegments"][&account_id],
        json!([format!("{v1}-vendor")]),
        "the account is in its vendor's segment only: {applied:#}"
    );
    assert!(
        !reachable(&env, &upn(&account), CAROL).await,
        "the account never reaches host staff"
    );
    assert!(reachable(&env, &upn(&account), ALICE).await);
    assert!(reachable(&env, ALICE, CAROL).await, "its engineer does");
}
