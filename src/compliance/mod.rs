//! The Security & Compliance command endpoint (`InvokeCommand`), where information barriers
//! live: no Graph API manages them. The route is the one the ExchangeOnlineManagement module's
//! REST mode uses (not documented by Microsoft, reconstructed from public clients), so it sits
//! behind this small client: a token for the compliance resource, the regional redirect
//! followed once and remembered, bounded retries, and errors parsed from their
//! `ErrorId|ExceptionType|message` shape. The bearer token goes wherever a redirect points, so
//! redirects are followed only within the configured endpoint's hosts (see [`redirect_target`]),
//! and answers are read up to [`MAX_COMPLIANCE_BODY`].

pub mod definitions;
pub mod sign_in;

use crate::graph::error::bytes;
use crate::graph::transport::{BodyError, client_builder, read_capped};
use crate::graph::{GraphError, RetryPolicy, TokenProvider};
use reqwest::Url;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The compliance endpoint's resource (and token scope prefix).
pub const COMPLIANCE_RESOURCE: &str = "https://ps.compliance.protection.outlook.com";

/// The largest answer read. A tenant's segments and policies run to a few thousand objects of
/// about a KiB each; beyond 16 MiB the answer is not one we asked for, and reading it unbounded
/// could exhaust the pod's memory limit.
pub const MAX_COMPLIANCE_BODY: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    /// The command ran and was refused.
    #[error("{cmdlet} refused ({exception}): {message}")]
    Command {
        cmdlet: String,
        status: u16,
        error_id: String,
        exception: String,
        message: String,
    },
    #[error("compliance endpoint authentication: {0}")]
    Auth(#[from] GraphError),
    #[error("could not reach the compliance endpoint: {0}")]
    Transport(String),
    #[error("unexpected answer from the compliance endpoint ({status}): {message}")]
    Unexpected { status: u16, message: String },
    /// A redirect that would carry the token somewhere it does not belong.
    #[error("refused the compliance endpoint's redirect to {location}: {reason}")]
    Redirect { location: String, reason: String },
    #[error("the answer from the compliance endpoint ({cmdlet}) is larger than the {} limit: refused", bytes(*limit))]
    TooLarge { cmdlet: String, limit: usize },
}

impl ComplianceError {
    /// The short exception type name, e.g. `ManagementObjectNotFoundException`.
    pub fn exception_name(&self) -> Option<&str> {
        match self {
            ComplianceError::Command { exception, .. } => exception.rsplit('.').next(),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.exception_name().is_some_and(|e| e.contains("NotFound"))
    }

    /// New or changed definitions are refused while an application runs.
    pub fn is_application_running(&self) -> bool {
        self.exception_name().is_some_and(|e| e.contains("InProgress"))
    }

    fn is_transient(&self) -> bool {
        match self {
            ComplianceError::Transport(_) => true,
            ComplianceError::Unexpected { status, .. } => *status == 429 || *status >= 500,
            ComplianceError::Command { status, .. } => *status == 429 || *status >= 500,
            ComplianceError::Auth(e) => e.is_transient(),
            ComplianceError::Redirect { .. } | ComplianceError::TooLarge { .. } => false,
        }
    }
}

/// Splits `ErrorId|Exception.Type|text` (any part may be missing).
pub fn parse_error_message(message: &str) -> (String, String, String) {
    let mut parts = message.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(ex), Some(text)) => (id.to_owned(), ex.to_owned(), text.to_owned()),
        _ => (String::new(), String::new(), message.to_owned()),
    }
}

/// Where a regional redirect says to go: Microsoft's `<region>.admin.protection.outlook.com`
/// hosts are called through `<region>.ps.compliance.protection.outlook.com`, as public clients
/// do; any other location (the simulated tenant's) is used as it is.
pub fn regional_url(location: &str, tenant_id: &str) -> String {
    let host = location
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':']).next())
        .unwrap_or_default();
    match host.strip_suffix(".admin.protection.outlook.com") {
        Some(region) if !region.is_empty() && !region.contains('.') => {
            format!(
                "https://{region}.ps.compliance.protection.outlook.com/adminapi/beta/{tenant_id}/InvokeCommand"
            )
        }
        _ => location.to_owned(),
    }
}

/// Where a redirect from `current` to `location` leads, if the token may go there. The
/// configured endpoint decides: when it is https, only https hosts of its family (itself or its
/// subdomains, e.g. `eur03b.ps.compliance.protection.outlook.com` for
/// `ps.compliance.protection.outlook.com`); when it is http (the simulated tenant), only the
/// same scheme, host and port.
pub fn redirect_target(
    configured: &str,
    current: &str,
    location: &str,
    tenant_id: &str,
) -> Result<String, ComplianceError> {
    let refuse = |reason: String| ComplianceError::Redirect {
        location: location.to_owned(),
        reason,
    };
    let configured = Url::parse(configured).map_err(|e| refuse(format!("the configured URL: {e}")))?;
    let joined = Url::parse(current)
        .and_then(|c| c.join(location))
        .map_err(|e| refuse(format!("not a URL: {e}")))?;
    let target = Url::parse(&regional_url(joined.as_str(), tenant_id))
        .map_err(|e| refuse(format!("not a URL: {e}")))?;
    let (home, host) = (
        configured.host_str().unwrap_or_default(),
        target.host_str().unwrap_or_default(),
    );
    if !target.username().is_empty() || target.password().is_some() {
        return Err(refuse("it carries credentials".into()));
    }
    let allowed = match configured.scheme() {
        "https" => {
            target.scheme() == "https"
                && (host == home
                    || configured.domain().is_some()
                        && host.strip_suffix(home).is_some_and(|sub| sub.ends_with('.')))
        }
        _ => {
            target.scheme() == configured.scheme()
                && host == home
                && target.port_or_known_default() == configured.port_or_known_default()
        }
    };
    if !allowed {
        let rule = if configured.scheme() == "https" {
            format!("only https hosts under {home} are followed")
        } else {
            format!("only {} is followed", configured.origin().ascii_serialization())
        };
        return Err(refuse(rule));
    }
    Ok(target.into())
}

pub struct ComplianceClient {
    /// Must not follow redirects itself: a followed 302 turns the POST into a GET.
    http: reqwest::Client,
    /// The configured endpoint, which decides where redirects may go.
    base: String,
    global_url: String,
    tenant_id: String,
    anchor: Option<String>,
    tokens: Arc<TokenProvider>,
    regional: Mutex<Option<String>>,
    policy: RetryPolicy,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The tenant's segments and policies as last read, shared by every segment reconcile.
    pub(crate) definitions: definitions::Definitions,
}

impl ComplianceClient {
    /// `base` is e.g. `https://ps.compliance.protection.outlook.com`; `initial_domain` (the
    /// tenant's `*.onmicrosoft.com` domain) names the anchor mailbox the endpoint expects.
    pub fn new(
        base: &str,
        tenant_id: &str,
        initial_domain: Option<&str>,
        tokens: Arc<TokenProvider>,
        policy: RetryPolicy,
    ) -> reqwest::Result<Self> {
        Self::with_http_settings(base, tenant_id, initial_domain, tokens, policy, |b| b)
    }

    /// [`new`](Self::new), with `settings` adding to the HTTP client's (e.g. a corporate CA
    /// with `add_root_certificate`, or `resolve` to pin a host's address). Redirects stay off
    /// and the policy's timeout applies whatever it sets: redirects are followed here, only
    /// within [`redirect_target`].
    pub fn with_http_settings(
        base: &str,
        tenant_id: &str,
        initial_domain: Option<&str>,
        tokens: Arc<TokenProvider>,
        policy: RetryPolicy,
        settings: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> reqwest::Result<Self> {
        let http = settings(client_builder())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .build()?;
        Ok(ComplianceClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            global_url: format!(
                "{}/adminapi/beta/{tenant_id}/InvokeCommand",
                base.trim_end_matches('/')
            ),
            tenant_id: tenant_id.to_owned(),
            anchor: initial_domain
                .map(|d| format!("UPN:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{d}")),
            tokens,
            regional: Mutex::new(None),
            policy,
            metrics: None,
            definitions: definitions::Definitions::default(),
        })
    }

    /// Why a delegated credential cannot be used, if it cannot.
    pub fn credential_problem(&self) -> Option<String> {
        self.tokens.credential_problem()
    }

    /// Counts every command by cmdlet and status.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs one cmdlet and returns the objects it answered with.
    pub async fn invoke(&self, cmdlet: &str, parameters: Value) -> Result<Vec<Value>, ComplianceError> {
        if !cmdlet.starts_with("Get-") {
            // Anything that changes the tenant makes the shared listing stale.
            self.definitions.forget();
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(cmdlet, &parameters).await {
                Err(e) if e.is_transient() && attempt < self.policy.max_attempts => {
                    let wait = self.policy.backoff(attempt);
                    tracing::debug!(cmdlet, attempt, ?wait, error = %e, "retrying compliance command");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn attempt(&self, cmdlet: &str, parameters: &Value) -> Result<Vec<Value>, ComplianceError> {
        let body = json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}});
        let mut url = self
            .regional
            .lock()
            .await
            .clone()
            .unwrap_or_else(|| self.global_url.clone());
        // At most one redirect per call: the global host names the tenant's region.
        for _ in 0..2 {
            let response = self.send(&url, cmdlet, &body).await?;
            let status = response.status().as_u16();
            if let Some(m) = &self.metrics {
                m.compliance_request(cmdlet, status);
            }
            if (300..400).contains(&status) {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| ComplianceError::Unexpected {
                        status,
                        message: "redirect without Location".into(),
                    })?;
                url = redirect_target(&self.base, &url, location, &self.tenant_id)?;
                *self.regional.lock().await = Some(url.clone());
                continue;
            }
            if status == 401 {
                self.tokens.invalidate().await;
            }
            let text = read_capped(response, MAX_COMPLIANCE_BODY)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge => ComplianceError::TooLarge {
                        cmdlet: cmdlet.to_owned(),
                        limit: MAX_COMPLIANCE_BODY,
                    },
                    BodyError::Read(e) => ComplianceError::Transport(e.without_url().to_string()),
                })?;
            return answer(cmdlet, status, &String::from_utf8_lossy(&text));
        }
        Err(ComplianceError::Unexpected {
            status: 302,
            message: "redirected more than once".into(),
        })
    }

    /// One POST of the command, with a fresh token and the headers the endpoint expects.
    async fn send(
        &self,
        url: &str,
        cmdlet: &str,
        body: &Value,
    ) -> Result<reqwest::Response, ComplianceError> {
        let token = self.tokens.token().await?;
        let mut request = self
            .http
            .post(url)
            .bearer_auth(token.expose())
            .header("X-ResponseFormat", "json")
            .header("X-CmdletName", cmdlet)
            .header("X-ClientApplication", "ExoManagementModule")
            .timeout(self.policy.timeout)
            .json(body);
        if let Some(a) = &self.anchor {
            request = request.header("X-AnchorMailbox", a);
        }
        request
            .send()
            .await
            .map_err(|e| ComplianceError::Transport(e.without_url().to_string()))
    }
}

/// The objects of a success, or the typed refusal.
fn answer(cmdlet: &str, status: u16, text: &str) -> Result<Vec<Value>, ComplianceError> {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if status >= 400 {
        let message = value["error"]["message"].as_str().unwrap_or(text);
        let (error_id, exception, message) = parse_error_message(message);
        if exception.is_empty() && status != 400 {
            return Err(ComplianceError::Unexpected { status, message });
        }
        return Err(ComplianceError::Command {
            cmdlet: cmdlet.to_owned(),
            status,
            error_id,
            exception,
            message,
        });
    }
    Ok(value["value"].as_array().cloned().unwrap_or_default())
}

/// How long between polls of a running application, by default.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_split_into_id_type_and_text() {
        let (id, ex, text) = parse_error_message(
            "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'x' couldn't be found.",
        );
        assert_eq!(id, "Ex6F9304");
        assert!(ex.ends_with("ManagementObjectNotFoundException"));
        assert!(text.starts_with("The operation"));
        let (_, ex, text) = parse_error_message("plain failure");
        assert_eq!((ex.as_str(), text.as_str()), ("", "plain failure"));
    }

    #[test]
    fn regional_redirects_go_to_the_regional_command_host() {
        let t = "3f2b8c1e-7d4a-4e6b-9a1f-5c0d2e8b7a64";
        assert_eq!(
            regional_url(
                &format!("https://eur03b.admin.protection.outlook.com:446/adminapi/beta/{t}/InvokeCommand"),
                t
            ),
            format!("https://eur03b.ps.compliance.protection.outlook.com/adminapi/beta/{t}/InvokeCommand")
        );
        let sim = format!("http://127.0.0.1:9/eur03b/adminapi/beta/{t}/InvokeCommand");
        assert_eq!(regional_url(&sim, t), sim);
    }

    fn follow(configured: &str, location: &str) -> Result<String, ComplianceError> {
        let current = format!("{configured}/adminapi/beta/t/InvokeCommand");
        redirect_target(configured, &current, location, "t")
    }

    #[test]
    fn redirects_stay_on_https_hosts_of_the_configured_family() {
        let global = COMPLIANCE_RESOURCE;
        let regional = "https://eur03b.ps.compliance.protection.outlook.com/adminapi/beta/t/InvokeCommand";
        assert_eq!(follow(global, regional).unwrap(), regional);
        assert_eq!(
            follow(
                global,
                "https://eur03b.admin.protection.outlook.com:446/adminapi/beta/t/InvokeCommand"
            )
            .unwrap(),
            regional,
            "Microsoft's admin host is called through its ps.compliance twin"
        );
        for refused in [
            "https://evil.example/adminapi/beta/t/InvokeCommand",
            "http://eur03b.ps.compliance.protection.outlook.com/adminapi/beta/t/InvokeCommand",
            "https://ps.compliance.protection.outlook.com.evil.example/x",
            "https://evilps.compliance.protection.outlook.com/x",
            "https://ps.compliance.protection.outlook.com@evil.example/x",
            "https://user:pw@eur03b.ps.compliance.protection.outlook.com/x",
        ] {
            let e = follow(global, refused).unwrap_err();
            assert!(
                matches!(&e, ComplianceError::Redirect { location, .. } if location == refused),
                "{refused}: {e:?}"
            );
        }
        let e = follow(global, "https://evil.example/x").unwrap_err().to_string();
        assert!(
            e.contains("evil.example") && e.contains("under ps.compliance.protection.outlook.com"),
            "{e}"
        );
    }

    #[test]
    fn an_http_endpoint_is_followed_only_on_its_own_origin() {
        let sim = "http://127.0.0.1:8443";
        let regional = "http://127.0.0.1:8443/eur03b/adminapi/beta/t/InvokeCommand";
        assert_eq!(follow(sim, regional).unwrap(), regional);
        assert_eq!(
            follow(sim, "/eur03b/adminapi/beta/t/InvokeCommand").unwrap(),
            regional,
            "a relative Location resolves against the request"
        );
        for refused in [
            "http://127.0.0.1:9/eur03b/adminapi/beta/t/InvokeCommand",
            "http://localhost:8443/eur03b/adminapi/beta/t/InvokeCommand",
            "https://eur03b.ps.compliance.protection.outlook.com/adminapi/beta/t/InvokeCommand",
        ] {
            assert!(follow(sim, refused).is_err(), "{refused}");
        }
    }
}
