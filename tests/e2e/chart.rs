//! End to end: the Helm chart's Deployment, started as written. For each credentials mode the
//! chart is rendered, its ServiceAccount and RBAC are installed for real, and the operator
//! binary starts with exactly the container's `args` and `env`: the mounted Secret's keys are
//! files at the mount paths under a temporary root, the kubelet's part (the pod name, the
//! ServiceAccount's token) and, for workload identity, the Azure webhook's part (its env and a
//! projected token the API server signs) are played by the test. A renamed flag or environment
//! variable in the chart fails here. The operator must become ready and converge one licence.

use crate::cluster::kubectl_ok;
use crate::env::{Env, free_port, operator_app, operator_secret, tenant};
use crate::fixtures::{license, vendor};
use crate::repo::repo_root;
use base64::Engine;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RAL: &str = "remoteassistlicense";
/// The release's namespace; the chart's Role there grants the Lease.
const NAMESPACE: &str = "remote-assist-operator";
/// Where the Azure Workload Identity webhook mounts the projected token, and its audience.
const AZURE_TOKEN_PATH: &str = "/var/run/secrets/azure/tokens/azure-identity-token";
const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rendered chart as JSON documents (the YAML read by Python's yaml module).
fn helm_template(release: &str, values: &[String], only: &[&str]) -> (String, Vec<Value>) {
    let helm = run(
        repo_root().join("scripts/helm.sh").to_str().unwrap(),
        &["path"],
        None,
    );
    let mut args: Vec<String> = vec![
        "template".into(),
        release.into(),
        repo_root()
            .join("charts/remote-assist-operator")
            .display()
            .to_string(),
        format!("--namespace={NAMESPACE}"),
    ];
    args.extend(values.iter().map(|v| format!("--set={v}")));
    args.extend(only.iter().map(|t| format!("--show-only=templates/{t}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let yaml = run(helm.trim(), &args, None);
    let json = run(
        "python3",
        &[
            "-c",
            "import sys, yaml, json; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ],
        Some(&yaml),
    );
    (yaml, serde_json::from_str(&json).unwrap())
}

/// The payload of a JWT (not verified: the test made it, or the API server did).
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The chart's ServiceAccount and RBAC, installed for the test and removed after it.
struct Installed(String);

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = crate::kubectl::kubectl(&["delete", "--ignore-not-found", "-f", "-"], Some(&self.0));
    }
}

/// A kubeconfig that authenticates as the ServiceAccount with a TokenRequest token.
fn service_account_kubeconfig(dir: &Path, sa: &str) -> PathBuf {
    let token = kubectl_ok(&["create", "token", sa, "-n", NAMESPACE, "--duration=1h"], None);
    let server = kubectl_ok(
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    );
    let ca = kubectl_ok(
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
        None,
    );
    let path = dir.join("kubeconfig");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: {NAMESPACE}}}\ncurrent-context: x\n",
        token.trim()
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// A fresh self-signed certificate and its key, in one PEM (the chart's `certificate.pem`).
fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=remote-assist-operator-test",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
        None,
    );
    let cert = std::fs::read_to_string(cert).unwrap();
    let key = std::fs::read_to_string(key).unwrap();
    (cert.clone(), format!("{cert}{key}"))
}

/// `path` under `root` (a mount path of the container, mapped into the test's directory).
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Each mounted Secret key as a file under `root`, holding `content(key)`.
fn mount_secrets(root: &Path, pod: &Value, content: &dyn Fn(&str) -> String) -> Vec<String> {
    let container = &pod["containers"][0];
    let mut mounts = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        let dir = m["mountPath"].as_str().unwrap();
        for item in volume["secret"]["items"].as_array().unwrap() {
            let file = under(root, &format!("{dir}/{}", item["path"].as_str().unwrap()));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, content(item["key"].as_str().unwrap())).unwrap();
        }
        mounts.push(dir.to_owned());
    }
    mounts
}

/// The container's args with every mount path mapped under `root`.
fn mapped_args(container: &Value, root: &Path, mounts: &[String]) -> Vec<String> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            mounts.iter().fold(a.to_owned(), |a, m| {
                a.replace(m.as_str(), under(root, m).to_str().unwrap())
            })
        })
        .collect()
}

async fn starts_as_written(mode: &str) {
    let dir_name = format!("chart-{}", mode.to_lowercase());
    let work = repo_root().join(format!("target/e2e/{dir_name}-{:04x}", rand::random::<u16>()));
    std::fs::create_dir_all(&work).unwrap();
    let (cert_pem, cert_and_key) = certificate(&work);
    let release = format!("rao-{}", mode.to_lowercase());
    // Workload identity: the API server's own ServiceAccount tokens are the federated tokens.
    let sa = format!("{release}-remote-assist-operator");
    let federated = (mode == "workloadIdentity").then(sa_key_pem);
    let mut env = Env::start_seeded(&dir_name, |seed| {
        let app = seed
            .apps
            .iter_mut()
            .find(|a| a.client_id == operator_app())
            .unwrap();
        app.certificates.push(cert_pem.clone());
        if let Some(key) = &federated {
            app.federated_credentials
                .push(entra_sim::seed::SeedFederatedCredential {
                    issuer: service_account_issuer(),
                    subject: format!("system:serviceaccount:{NAMESPACE}:{sa}"),
                    audiences: vec![AZURE_AUDIENCE.into()],
                    issuer_keys: vec![key.clone()],
                });
        }
    })
    .await;
    let port = free_port();
    let sim = env.sim.url();
    let values: Vec<String> = [
        format!("azure.tenantId={}", tenant()),
        format!("azure.clientId={}", operator_app()),
        format!("azure.graphUrl={sim}"),
        format!("azure.authorityHost={sim}"),
        format!("azure.complianceUrl={sim}"),
        "azure.tenantInitialDomain=abcsim.onmicrosoft.com".into(),
        format!("credentials.mode={mode}"),
        "operator.resyncPeriod=2s".into(),
        format!("operator.watchSelector=e2e={}", env.id),
        format!("metrics.port={port}"),
    ]
    .into();
    let (rbac_yaml, rbac) = helm_template(
        &release,
        &values,
        &[
            "serviceaccount.yaml",
            "clusterrole.yaml",
            "clusterrolebinding.yaml",
            "role.yaml",
            "rolebinding.yaml",
        ],
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&rbac_yaml));
    let _installed = Installed(rbac_yaml);
    let (_, deployment) = helm_template(&release, &values, &["deployment.yaml"]);
    let pod = &deployment[0]["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"], sa,
        "the Deployment runs as the chart's ServiceAccount"
    );
    let account = rbac.iter().find(|d| d["kind"] == "ServiceAccount").unwrap();

    let root = work.join("root");
    let secret = |key: &str| match key {
        "clientSecret" => operator_secret().to_owned(),
        "certificate.pem" => cert_and_key.clone(),
        other => panic!("the chart mounts an unknown Secret key {other}"),
    };
    let mounts = mount_secrets(&root, pod, &secret);
    let container = &pod["containers"][0];
    let mut command = Command::new(env!("CARGO_BIN_EXE_remote-assist-operator"));
    command.args(mapped_args(container, &root, &mounts)).env_clear();
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => v.clone(),
            // The kubelet's part: the downward API.
            (_, Value::String(f)) if f == "metadata.name" => format!("{release}-0"),
            other => panic!("env {name}: a source the test cannot play: {other:?}"),
        };
        command.env(name, value);
    }
    // The kubelet's part: the ServiceAccount's credentials (a kubeconfig here, since the
    // in-cluster paths cannot be moved under the root).
    command.env("KUBECONFIG", service_account_kubeconfig(&work, &sa));
    if mode == "workloadIdentity" {
        webhook(&mut command, &root, account, &sa, &sim);
    }
    env.spawn_command(command, port);

    env.wait_for("/readyz", Duration::from_secs(60), async || {
        env.operator_http("/readyz").await.0 == 200
    })
    .await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
    let name = format!("{}-t", env.id);
    env.apply(license(&ns, &name).vendor(&v));
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    println!("chart as written, credentials.mode={mode}: ready, one licence converged");
}

/// The Azure Workload Identity webhook's part: its env, from the ServiceAccount's annotations,
/// and the projected token (audience api://AzureADTokenExchange) at its mount path.
fn webhook(command: &mut Command, root: &Path, account: &Value, sa: &str, authority: &str) {
    let annotations = &account["metadata"]["annotations"];
    let token = kubectl_ok(
        &[
            "create",
            "token",
            sa,
            "-n",
            NAMESPACE,
            "--audience",
            AZURE_AUDIENCE,
            "--duration=1h",
        ],
        None,
    );
    let file = under(root, AZURE_TOKEN_PATH);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, token.trim()).unwrap();
    command
        .env(
            "AZURE_CLIENT_ID",
            annotations["azure.workload.identity/client-id"].as_str().unwrap(),
        )
        .env(
            "AZURE_TENANT_ID",
            annotations["azure.workload.identity/tenant-id"].as_str().unwrap(),
        )
        .env("AZURE_FEDERATED_TOKEN_FILE", &file)
        .env("AZURE_AUTHORITY_HOST", authority);
}

/// The issuer of the API server's ServiceAccount tokens, read from one of them (of the
/// ServiceAccount scripts/operator-kubeconfig.sh installs).
fn service_account_issuer() -> String {
    let token = kubectl_ok(
        &[
            "create",
            "token",
            "remote-assist-operator",
            "-n",
            NAMESPACE,
            "--duration=10m",
        ],
        None,
    );
    jwt_claims(token.trim())["iss"].as_str().unwrap().to_owned()
}

/// The public key the API server signs ServiceAccount tokens with (next to its kubeconfig).
fn sa_key_pem() -> String {
    let kubeconfig = PathBuf::from(std::env::var("KUBECONFIG").expect("KUBECONFIG"));
    let key = kubeconfig.parent().unwrap().join("certs/sa.key");
    run("openssl", &["rsa", "-in", key.to_str().unwrap(), "-pubout"], None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn the_chart_starts_as_written_with_a_client_secret() {
    starts_as_written("clientSecret").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn the_chart_starts_as_written_with_a_certificate() {
    starts_as_written("certificate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn the_chart_starts_as_written_with_workload_identity() {
    starts_as_written("workloadIdentity").await;
}
