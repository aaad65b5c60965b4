//! `remote-assist-operator login --compliance`: an administrator signs in once with the OAuth
//! device-code flow (RFC 8628, as the identity platform implements it), and the refresh token
//! goes into the Secret the operator redeems it from. No token is ever printed.

use crate::compliance::sign_in::{REFRESH_TOKEN_KEY, REFRESHED_AT, SIGNED_IN_USER, SecretRef};
use crate::graph::Secret;
use anyhow::{Context as _, bail};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Where to sign in, and for what.
#[derive(Clone, Debug)]
pub struct DeviceLogin {
    /// e.g. `https://login.microsoftonline.com/`
    pub authority: String,
    pub tenant_id: String,
    /// An app registration that allows public client flows.
    pub client_id: String,
    /// The resource the token is for (the compliance endpoint's).
    pub resource: String,
}

/// What a completed sign-in gives.
pub struct SignedIn {
    pub refresh_token: Secret,
    /// The signed-in user's name, from the access token's claims.
    pub user: Option<String>,
}

impl DeviceLogin {
    fn url(&self, what: &str) -> String {
        format!(
            "{}/{}/oauth2/v2.0/{what}",
            self.authority.trim_end_matches('/'),
            self.tenant_id
        )
    }

    fn scope(&self) -> String {
        format!("{}/.default offline_access", self.resource.trim_end_matches('/'))
    }

    /// Runs the flow: asks for a code, shows `prompt` the instructions, polls until the user
    /// signed in (or declined, or the code expired).
    pub async fn sign_in(&self, http: &reqwest::Client, prompt: impl Fn(&str)) -> anyhow::Result<SignedIn> {
        let form = [("client_id", self.client_id.clone()), ("scope", self.scope())];
        let (status, code) = post(http, &self.url("devicecode"), &form).await?;
        if status != 200 {
            bail!("the device-code request was refused: {}", describe(&code));
        }
        let device_code = code["device_code"]
            .as_str()
            .context("no device_code in the answer")?;
        prompt(
            code["message"]
                .as_str()
                .unwrap_or("sign in at https://microsoft.com/devicelogin"),
        );
        let mut interval = Duration::from_secs(code["interval"].as_u64().unwrap_or(5));
        let deadline = Instant::now() + Duration::from_secs(code["expires_in"].as_u64().unwrap_or(900));
        let form = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
            ),
            ("client_id", self.client_id.clone()),
            ("device_code", device_code.to_owned()),
        ];
        loop {
            tokio::time::sleep(interval).await;
            let (status, answer) = post(http, &self.url("token"), &form).await?;
            if status == 200 {
                return signed_in(&answer);
            }
            match answer["error"].as_str().unwrap_or_default() {
                "authorization_pending" if Instant::now() < deadline => {}
                // RFC 8628 §3.5: poll 5 s more slowly from now on.
                "slow_down" => interval += Duration::from_secs(5),
                "authorization_pending" | "expired_token" => {
                    bail!("the code expired before the sign-in finished: run the command again")
                }
                "authorization_declined" => bail!("the sign-in was declined"),
                _ => bail!("the sign-in failed: {}", describe(&answer)),
            }
        }
    }
}

fn signed_in(answer: &Value) -> anyhow::Result<SignedIn> {
    let Some(refresh) = answer["refresh_token"].as_str() else {
        bail!("the token endpoint gave no refresh token (was offline_access granted?)");
    };
    let user = answer["access_token"]
        .as_str()
        .and_then(crate::doctor::claims::Claims::read)
        .and_then(|c| c.user);
    Ok(SignedIn {
        refresh_token: Secret::new(refresh),
        user,
    })
}

/// The endpoint's error in its own words: the error, then the first line of the description
/// (which carries the AADSTS code and never a secret).
fn describe(answer: &Value) -> String {
    format!(
        "{}: {}",
        answer["error"].as_str().unwrap_or("unknown_error"),
        answer["error_description"]
            .as_str()
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
    )
}

async fn post(http: &reqwest::Client, url: &str, form: &[(&str, String)]) -> anyhow::Result<(u16, Value)> {
    let response = http
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the token endpoint: {}", e.without_url()))?;
    let status = response.status().as_u16();
    let body = response
        .json::<Value>()
        .await
        .map_err(|e| anyhow::anyhow!("the token endpoint's answer is not JSON: {}", e.without_url()))?;
    Ok((status, body))
}

/// Creates or updates the Secret with the refresh token (server-side apply, so a re-run after a
/// revocation replaces the old grant).
pub async fn store(kube: kube::Client, at: &SecretRef, signed_in: &SignedIn) -> anyhow::Result<()> {
    let secrets: Api<KubeSecret> = Api::namespaced(kube, &at.namespace);
    let mut annotations = serde_json::json!({REFRESHED_AT: k8s_openapi::jiff::Timestamp::now().to_string()});
    if let Some(user) = &signed_in.user {
        annotations[SIGNED_IN_USER] = user.clone().into();
    }
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": at.name, "namespace": at.namespace, "annotations": annotations,
            "labels": {"app.kubernetes.io/managed-by": "remote-assist-operator"},
        },
        "type": "Opaque",
        "data": {REFRESH_TOKEN_KEY: base64::engine::general_purpose::STANDARD.encode(signed_in.refresh_token.expose())},
    });
    secrets
        .patch(
            &at.name,
            &PatchParams::apply("remote-assist-operator-login").force(),
            &Patch::Apply(&secret),
        )
        .await
        .with_context(|| format!("writing the Secret {at}"))?;
    Ok(())
}
