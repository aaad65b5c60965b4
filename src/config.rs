//! The `run` command's configuration: flags, each with an environment variable, and secrets
//! read from files (mounted Secrets) rather than from the command line. One [`Config`] value is
//! handed to everything; nothing reads the environment after this.

use crate::compliance::sign_in::SecretRef;
use crate::graph::{AppIdentity, BudgetConfig, Credential, GRAPH_RESOURCE, Secret};
use anyhow::{Context as _, bail};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Microsoft Graph root; the simulated tenant's URL in tests and demos.
    #[arg(long, env = "GRAPH_URL", default_value = GRAPH_RESOURCE)]
    pub graph_url: String,

    /// The token endpoint's host (Entra ID's authority).
    #[arg(
        long,
        env = "AZURE_AUTHORITY_HOST",
        default_value = "https://login.microsoftonline.com/"
    )]
    pub authority_host: String,

    /// The host company's Entra tenant id.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub tenant_id: Option<String>,

    /// The operator's app registration (client) id.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub client_id: Option<String>,

    /// A file holding the app's client secret.
    #[arg(long, env = "AZURE_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,

    /// A PEM file holding the app's certificate and its private key (signed client assertion).
    #[arg(long, env = "AZURE_CLIENT_CERTIFICATE_PATH")]
    pub client_certificate_path: Option<PathBuf>,

    /// Workload identity federation: the projected service-account token file.
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub federated_token_file: Option<PathBuf>,

    /// The Security & Compliance endpoint that holds information barriers.
    #[arg(long, env = "COMPLIANCE_URL", default_value = crate::compliance::COMPLIANCE_RESOURCE)]
    pub compliance_url: String,

    /// How the compliance endpoint is reached: `app-only` (the app's own token, with
    /// `Exchange.ManageAsApp`) or `delegated` (a signed-in administrator's grant, from
    /// `remote-assist-operator login --compliance`, kept in the Secret below).
    #[arg(long, env = "COMPLIANCE_AUTH", default_value = "app-only", value_parser = ["app-only", "delegated"])]
    pub compliance_auth: String,

    /// `delegated`: the Secret (`<namespace>/<name>`) holding the refresh token.
    #[arg(long, env = "COMPLIANCE_REFRESH_TOKEN_SECRET")]
    pub compliance_refresh_token_secret: Option<SecretRef>,

    /// `delegated`: the app registration the administrator signed in to (it must allow public
    /// client flows). Default: `--client-id`.
    #[arg(long, env = "COMPLIANCE_CLIENT_ID")]
    pub compliance_client_id: Option<String>,

    /// The tenant's initial `*.onmicrosoft.com` domain (names the compliance anchor mailbox).
    #[arg(long, env = "TENANT_INITIAL_DOMAIN")]
    pub tenant_initial_domain: Option<String>,

    /// How long barrier changes are collected before one policy application is started.
    #[arg(long, env = "BARRIER_DEBOUNCE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub barrier_debounce: Duration,

    /// How often a running policy application's progress is read.
    #[arg(long, env = "BARRIER_POLL_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub barrier_poll_interval: Duration,

    /// How often every object is re-read from the tenant to detect drift.
    #[arg(long, env = "RESYNC_PERIOD", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync_period: Duration,

    /// The shortest time between two passwords set on one account (a rotation request, or a
    /// reset after its Secret was deleted): later requests wait, so a licence's author cannot
    /// make the operator rewrite passwords in a loop.
    #[arg(long, env = "ROTATION_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub rotation_interval: Duration,

    /// Objects of one kind reconciled at the same time.
    #[arg(long, env = "CONCURRENCY", default_value_t = 64)]
    pub concurrency: u16,

    /// Only manage objects with these labels (`key=value,...`): run several operators side by
    /// side, one per shard or test.
    #[arg(long, env = "WATCH_SELECTOR")]
    pub watch_selector: Option<String>,

    /// Graph resource units per 10 s for the whole tenant (keep below Graph's limit).
    #[arg(long, env = "GRAPH_RESOURCE_UNITS_PER_10S", default_value_t = BudgetConfig::default().resource_units_per_10s)]
    pub graph_resource_units_per_10s: f64,

    /// Graph writes per 150 s for the whole tenant (keep below Graph's limit).
    #[arg(long, env = "GRAPH_WRITES_PER_150S", default_value_t = BudgetConfig::default().writes_per_150s)]
    pub graph_writes_per_150s: f64,

    /// Send Graph requests made at about the same time together as one `$batch` (up to 20).
    #[arg(long, env = "GRAPH_BATCHING", default_value_t = true, action = clap::ArgAction::Set)]
    pub graph_batching: bool,

    /// Hold every Graph request to the shared budget above, and pause everyone after a 429.
    /// `false` is for comparison only: each request then retries on its own.
    #[arg(long, env = "GRAPH_SHARED_BUDGET", default_value_t = true, action = clap::ArgAction::Set)]
    pub graph_shared_budget: bool,

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,

    /// Run with leader election on a Lease in this namespace (several replicas; one reconciles).
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// The Lease's name.
    #[arg(long, env = "LEADER_ELECTION_NAME", default_value = "remote-assist-operator")]
    pub leader_election_name: String,

    /// How long the lease holds without renewal; a standby takes over after it lapses.
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub leader_election_lease_duration: Duration,

    /// Identity in Events and field managers (`<controller>/<instance>`).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
}

/// Everything the controllers need, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// e.g. `https://graph.microsoft.com/v1.0`
    pub graph_base: String,
    pub compliance_url: String,
    pub compliance_auth: ComplianceAuth,
    pub tenant_initial_domain: Option<String>,
    pub barrier_debounce: Duration,
    pub barrier_poll: Duration,
    pub identity: AppIdentity,
    pub resync: Duration,
    pub rotation_interval: Duration,
    pub concurrency: u16,
    pub watch_selector: Option<String>,
    pub budget: BudgetConfig,
    pub graph_batching: bool,
    pub graph_shared_budget: bool,
    pub instance: Option<String>,
    pub metrics_addr: std::net::SocketAddr,
    pub leader: Option<crate::leader::LeaderConfig>,
}

/// How the compliance endpoint is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComplianceAuth {
    /// The app's own token (client credentials), as for Graph.
    AppOnly,
    /// A signed-in administrator's refresh token in `secret`, issued to `client_id`.
    Delegated { secret: SecretRef, client_id: String },
}

impl RunArgs {
    fn compliance_auth(&self, client_id: &str) -> anyhow::Result<ComplianceAuth> {
        match (
            self.compliance_auth.as_str(),
            &self.compliance_refresh_token_secret,
        ) {
            ("delegated", Some(secret)) => Ok(ComplianceAuth::Delegated {
                secret: secret.clone(),
                client_id: self
                    .compliance_client_id
                    .clone()
                    .unwrap_or_else(|| client_id.to_owned()),
            }),
            ("delegated", None) => bail!(
                "--compliance-auth delegated needs --compliance-refresh-token-secret <namespace>/<name> (COMPLIANCE_REFRESH_TOKEN_SECRET)"
            ),
            _ => Ok(ComplianceAuth::AppOnly),
        }
    }

    pub fn into_config(self) -> anyhow::Result<Config> {
        let compliance_auth = self.compliance_auth(self.client_id.as_deref().unwrap_or_default())?;
        let Some(tenant_id) = self.tenant_id else {
            bail!("--tenant-id (AZURE_TENANT_ID) is required");
        };
        let Some(client_id) = self.client_id else {
            bail!("--client-id (AZURE_CLIENT_ID) is required");
        };
        let read = |p: &PathBuf, what: &str| {
            std::fs::read_to_string(p).with_context(|| format!("reading the {what} file {}", p.display()))
        };
        let credential = match (
            &self.client_secret_file,
            &self.client_certificate_path,
            &self.federated_token_file,
        ) {
            (Some(f), None, None) => Credential::ClientSecret {
                secret: Secret::new(read(f, "client secret")?.trim()),
            },
            (None, Some(f), None) => {
                let pem = read(f, "client certificate")?;
                let certificate_pem = pem_block(&pem, "CERTIFICATE")
                    .with_context(|| format!("{} holds no CERTIFICATE block", f.display()))?;
                let key = pem_block(&pem, "PRIVATE KEY")
                    .or_else(|| pem_block(&pem, "RSA PRIVATE KEY"))
                    .with_context(|| format!("{} holds no private key", f.display()))?;
                Credential::Certificate {
                    private_key_pem: Secret::new(key),
                    certificate_pem,
                }
            }
            (None, None, Some(f)) => Credential::WorkloadIdentity {
                token_file: f.clone(),
            },
            (None, None, None) => bail!(
                "no credential: give one of --client-secret-file, --client-certificate-path or --federated-token-file"
            ),
            _ => bail!(
                "give exactly one of --client-secret-file, --client-certificate-path, --federated-token-file"
            ),
        };
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        Ok(Config {
            graph_base: format!("{}/v1.0", self.graph_url.trim_end_matches('/')),
            compliance_url: self.compliance_url,
            compliance_auth,
            tenant_initial_domain: self.tenant_initial_domain,
            barrier_debounce: self.barrier_debounce,
            barrier_poll: self.barrier_poll_interval,
            identity: AppIdentity {
                authority: self.authority_host,
                tenant_id,
                client_id,
                credential,
            },
            resync: self.resync_period,
            rotation_interval: self.rotation_interval,
            concurrency: self.concurrency,
            watch_selector: self.watch_selector,
            graph_batching: self.graph_batching,
            graph_shared_budget: self.graph_shared_budget,
            budget: BudgetConfig {
                resource_units_per_10s: self.graph_resource_units_per_10s,
                writes_per_150s: self.graph_writes_per_150s,
            },
            leader: self
                .leader_election_namespace
                .map(|namespace| crate::leader::LeaderConfig {
                    namespace,
                    name: self.leader_election_name,
                    identity: self
                        .instance
                        .clone()
                        .unwrap_or_else(|| format!("remote-assist-operator-{}", uuid::Uuid::new_v4())),
                    lease: self.leader_election_lease_duration,
                }),
            instance: self.instance,
            metrics_addr: self.metrics_addr,
        })
    }
}

/// The first PEM block with this label, markers included.
fn pem_block(pem: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)?;
    let stop = pem[start..].find(&end)? + start + end.len();
    Some(pem[start..stop].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_split_from_one_file() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_block(pem, "CERTIFICATE").unwrap(),
            "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----"
        );
        assert!(pem_block(pem, "PRIVATE KEY").unwrap().contains("AAA"));
        assert!(pem_block(pem, "RSA PRIVATE KEY").is_none());
    }
}
