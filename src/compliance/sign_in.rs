//! The delegated compliance credential: an administrator signs in once with the device-code
//! flow (`remote-assist-operator login --compliance`), the refresh token goes into a Secret, and
//! the operator redeems it for compliance tokens, keeping the new refresh token each answer
//! brings. A refused or missing grant is reported with the command that fixes it.

use crate::config::{ComplianceAuth, Config};
use crate::graph::credentials::RefreshTokenStore;
use crate::graph::{AppIdentity, Credential, Secret, TokenProvider};
use base64::Engine as _;
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use std::sync::{Arc, Mutex};

/// The Secret key holding the refresh token.
pub const REFRESH_TOKEN_KEY: &str = "refresh_token";
/// Annotation: who signed in.
pub const SIGNED_IN_USER: &str = "remoteassist.dev/signed-in-user";
/// Annotation: when the Secret last received a refresh token.
pub const REFRESHED_AT: &str = "remoteassist.dev/refreshed-at";

/// `namespace/name` of the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl std::str::FromStr for SecretRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok(SecretRef {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(format!("{s:?}: expected <namespace>/<name>")),
        }
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl SecretRef {
    /// The command an administrator runs to sign in (again).
    pub fn login_command(&self) -> String {
        format!("remote-assist-operator login --compliance --secret {self}")
    }
}

/// The compliance endpoint's token source as the configuration asks: the app's own identity,
/// or the signed-in administrator's grant kept in a Secret (read through `kube`).
pub fn token_provider(
    http: reqwest::Client,
    config: &Config,
    kube: Option<kube::Client>,
) -> anyhow::Result<TokenProvider> {
    let identity = match &config.compliance_auth {
        ComplianceAuth::AppOnly => config.identity.clone(),
        ComplianceAuth::Delegated { secret, client_id } => {
            let kube = kube.ok_or_else(|| {
                anyhow::anyhow!("the delegated compliance credential is kept in the Secret {secret}: no cluster to read it from")
            })?;
            AppIdentity {
                authority: config.identity.authority.clone(),
                tenant_id: config.identity.tenant_id.clone(),
                client_id: client_id.clone(),
                credential: Credential::Delegated {
                    store: Arc::new(SecretStore::new(kube, secret.clone())),
                },
            }
        }
    };
    Ok(TokenProvider::new(http, identity, super::COMPLIANCE_RESOURCE))
}

/// The refresh token in a Kubernetes Secret.
pub struct SecretStore {
    secrets: Api<KubeSecret>,
    at: SecretRef,
    problem: Mutex<Option<String>>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretStore({})", self.at)
    }
}

impl SecretStore {
    pub fn new(kube: kube::Client, at: SecretRef) -> SecretStore {
        SecretStore {
            secrets: Api::namespaced(kube, &at.namespace),
            at,
            problem: Mutex::new(None),
        }
    }

    fn with_fix(&self, why: &str) -> String {
        format!(
            "the delegated compliance credential cannot be used: {why}; an administrator with the Compliance Administrator role runs `{}`",
            self.at.login_command()
        )
    }

    async fn read(&self) -> Result<Secret, String> {
        let secret = match self.secrets.get_opt(&self.at.name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(self.with_fix(&format!("the Secret {} does not exist", self.at))),
            Err(e) => return Err(format!("cannot read the Secret {}: {e}", self.at)),
        };
        let token = secret
            .data
            .as_ref()
            .and_then(|d| d.get(REFRESH_TOKEN_KEY))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|t| !t.trim().is_empty());
        token
            .map(|t| Secret::new(t.trim()))
            .ok_or_else(|| self.with_fix(&format!("the Secret {} holds no {REFRESH_TOKEN_KEY}", self.at)))
    }

    async fn write(&self, token: Secret) -> Result<(), String> {
        let patch = serde_json::json!({
            "metadata": {"annotations": {REFRESHED_AT: k8s_openapi::jiff::Timestamp::now().to_string()}},
            "data": {REFRESH_TOKEN_KEY: base64::engine::general_purpose::STANDARD.encode(token.expose())},
        });
        self.secrets
            .patch(&self.at.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot update the Secret {}: {e}", self.at))
    }
}

impl RefreshTokenStore for SecretStore {
    fn load(&self) -> BoxFuture<'_, Result<Secret, String>> {
        self.read().boxed()
    }

    fn save(&self, token: Secret) -> BoxFuture<'_, Result<(), String>> {
        self.write(token).boxed()
    }

    fn report(&self, problem: Option<String>) {
        let problem = problem.map(|p| {
            if p.contains("remote-assist-operator login") {
                p
            } else {
                self.with_fix(&p)
            }
        });
        *self
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
    }

    fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_reference_is_namespace_slash_name() {
        let r: SecretRef = "ops/compliance-login".parse().unwrap();
        assert_eq!(r.to_string(), "ops/compliance-login");
        assert_eq!(
            r.login_command(),
            "remote-assist-operator login --compliance --secret ops/compliance-login"
        );
        for bad in ["ops", "/x", "ops/", "a/b/c"] {
            assert!(bad.parse::<SecretRef>().is_err(), "{bad}");
        }
    }
}
