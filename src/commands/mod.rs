//! Commands besides `run`: `plan` (what the operator would change for a set of manifests),
//! `audit` (what the tenant really allows) and `doctor` (the tenant's prerequisites). They only
//! read the tenant.

pub mod audit;
pub mod audit_paths;
pub mod login;
pub mod plan;

use crate::compliance::ComplianceClient;
use crate::config::Config;
use crate::crd::{BarrierSegment, RemoteAssistLicense, VendorTenant};
use crate::directory::Directory;
use crate::graph::{Budget, GRAPH_RESOURCE, GraphClient, RetryPolicy, TokenProvider};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Read access to the tenant: Graph and the compliance endpoint.
pub struct Tenant {
    pub directory: Directory,
    pub compliance: ComplianceClient,
    /// The tenant's IB mode, once [`Tenant::read_mode`] read it.
    pub mode: Option<crate::barriers::IbMode>,
    /// Why the mode is not known, if it was read and could not be.
    pub mode_unread: Option<String>,
    /// The token sources behind the two clients (`doctor` reads what they were granted).
    pub graph_tokens: Arc<TokenProvider>,
    pub compliance_tokens: Arc<TokenProvider>,
    /// The operator app's client id.
    pub client_id: String,
    /// Whether the compliance endpoint is reached with a signed-in user's delegated token.
    pub delegated_compliance: bool,
}

impl Tenant {
    /// `kube` reads a delegated compliance credential's Secret (not needed app-only).
    pub fn connect(config: &Config, kube: Option<kube::Client>) -> anyhow::Result<Tenant> {
        let http = crate::graph::transport::http_client()?;
        let tokens = Arc::new(TokenProvider::new(
            http.clone(),
            config.identity.clone(),
            GRAPH_RESOURCE,
        ));
        let budget = Arc::new(Budget::new(config.budget.clone()));
        let graph = GraphClient::new(
            http.clone(),
            &config.graph_base,
            tokens.clone(),
            budget,
            RetryPolicy::default(),
        );
        let compliance_tokens = Arc::new(crate::compliance::sign_in::token_provider(http, config, kube)?);
        let compliance = ComplianceClient::new(
            &config.compliance_url,
            &config.identity.tenant_id,
            config.tenant_initial_domain.as_deref(),
            compliance_tokens.clone(),
            RetryPolicy {
                max_attempts: 2,
                ..RetryPolicy::default()
            },
        )?;
        Ok(Tenant {
            directory: Directory::new(graph, Duration::from_secs(300)),
            compliance,
            mode: None,
            mode_unread: None,
            graph_tokens: tokens,
            compliance_tokens,
            client_id: config.identity.client_id.clone(),
            delegated_compliance: config.compliance_auth != crate::config::ComplianceAuth::AppOnly,
        })
    }

    /// Reads the tenant's IB mode (`Get-PolicyConfig`), keeping why it could not be read.
    pub async fn read_mode(mut self) -> Tenant {
        match self.compliance.ib_mode().await {
            Ok(Some(mode)) => self.mode = Some(mode),
            Ok(None) => self.mode_unread = Some("Get-PolicyConfig names no mode this operator knows".into()),
            Err(e) => self.mode_unread = Some(e.to_string()),
        }
        self
    }
}

/// The operator's objects found in manifests; other kinds are ignored.
#[derive(Default)]
pub struct Manifests {
    pub vendors: Vec<VendorTenant>,
    pub segments: Vec<BarrierSegment>,
    pub licenses: Vec<RemoteAssistLicense>,
}

fn yaml_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

impl Manifests {
    pub fn load(paths: &[PathBuf]) -> anyhow::Result<Manifests> {
        let mut m = Manifests::default();
        for path in paths {
            for file in yaml_files(path)? {
                let text =
                    std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
                    .with_context(|| format!("parsing {}", file.display()))?;
                for doc in docs.into_iter().filter(|d| d.is_object()) {
                    let at = || {
                        format!(
                            "{} ({})",
                            file.display(),
                            doc["metadata"]["name"].as_str().unwrap_or("?")
                        )
                    };
                    match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
                        (Some("remoteassist.dev/v1alpha1"), Some("VendorTenant")) => m
                            .vendors
                            .push(serde_json::from_value(doc.clone()).with_context(at)?),
                        (Some("remoteassist.dev/v1alpha1"), Some("BarrierSegment")) => m
                            .segments
                            .push(serde_json::from_value(doc.clone()).with_context(at)?),
                        (Some("remoteassist.dev/v1alpha1"), Some("RemoteAssistLicense")) => {
                            let mut ral: RemoteAssistLicense =
                                serde_json::from_value(doc.clone()).with_context(at)?;
                            ral.metadata.namespace.get_or_insert_with(|| "default".into());
                            m.licenses.push(ral)
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(m)
    }
}

/// The VendorTenants `doctor` checks: from manifests when given, else the cluster's.
pub async fn doctor_vendors(
    files: &[PathBuf],
    cluster: Option<kube::Client>,
) -> anyhow::Result<Vec<VendorTenant>> {
    if !files.is_empty() {
        return Ok(Manifests::load(files)?.vendors);
    }
    let Some(client) = cluster else {
        return Ok(Vec::new());
    };
    let list = kube::Api::<VendorTenant>::all(client)
        .list(&Default::default())
        .await
        .context("listing VendorTenants")?;
    Ok(list.items)
}
