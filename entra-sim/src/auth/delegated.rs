//! A signed-in user's tokens: the device-code flow (`POST /{tenant}/oauth2/v2.0/devicecode`, then
//! the `device_code` grant) and the `refresh_token` grant, as the identity platform implements
//! RFC 8628 and RFC 6749 §6 for public clients. The user "signs in" through the admin route
//! `POST /_sim/devicelogin`, which approves or declines a user code as that user.
//!
//! Refresh tokens rotate: every redemption returns a new one, and the old one stays valid (as
//! Entra's do) until the user's sessions are revoked (`revokeSignInSessions`, a password change),
//! the user is disabled or deleted, or it goes unused for the inactivity period.

use super::{Principal, TokenError, bad_request, client, field, known_resource, record};
use crate::model::User;
use crate::state::Sim;
use rand::Rng as _;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Device codes waiting for (or done with) a sign-in, and issued refresh tokens.
#[derive(Default)]
pub struct Grants {
    device_codes: HashMap<String, DeviceCode>,
    refresh_tokens: HashMap<String, RefreshGrant>,
}

struct DeviceCode {
    user_code: String,
    client_id: String,
    resource: String,
    offline: bool,
    expires: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    state: SignIn,
}

#[derive(Clone, PartialEq)]
enum SignIn {
    Pending,
    Approved { user_id: String },
    Declined,
    Redeemed,
}

struct RefreshGrant {
    client_id: String,
    user_id: String,
    /// When the user signed in; every rotated token of the sign-in keeps it.
    signed_in: jiff::Timestamp,
    last_used: Instant,
}

/// What the user decided at the verification page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    Approve,
    Decline,
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`
pub async fn device_code_endpoint(
    axum::extract::State(sim): axum::extract::State<std::sync::Arc<Sim>>,
    axum::extract::Path(tenant): axum::extract::Path<String>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match super::check_tenant(&sim, &tenant).and_then(|()| start_device_code(&sim, &tenant, &form)) {
        Ok(body) => (axum::http::StatusCode::OK, axum::Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn start_device_code(sim: &Sim, tenant: &str, form: &HashMap<String, String>) -> Result<Value, TokenError> {
    let app = client::find_app(sim, tenant, field(form, "client_id"))?;
    let (resource, offline) = delegated_scope(tenant, field(form, "scope"))?;
    let user_code = random_code(9, b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789");
    let device_code = random_code(
        64,
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    );
    let (lifetime, interval) = (
        sim.seed.device_code_lifetime_seconds,
        sim.seed.device_code_interval_seconds,
    );
    let uri = "https://microsoft.com/devicelogin";
    sim.grants.lock().unwrap().device_codes.insert(
        device_code.clone(),
        DeviceCode {
            user_code: user_code.clone(),
            client_id: app.seed.client_id.clone(),
            resource: resource.to_owned(),
            offline,
            expires: Instant::now() + Duration::from_secs(lifetime),
            interval: Duration::from_secs(interval),
            last_poll: None,
            state: SignIn::Pending,
        },
    );
    Ok(json!({
        "user_code": user_code, "device_code": device_code, "verification_uri": uri,
        "expires_in": lifetime, "interval": interval,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    }))
}

/// The resource of a delegated request's scope (`<resource>/.default` or `<resource>/<scope>`,
/// with `openid`, `profile` and `offline_access` beside it), and whether a refresh token was
/// asked for (`offline_access`).
fn delegated_scope<'a>(tenant: &str, scope: &'a str) -> Result<(&'a str, bool), TokenError> {
    const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];
    let mut resources = scope
        .split_whitespace()
        .filter(|s| !OIDC.contains(s))
        .map(|s| s.rsplit_once('/').map_or(s, |(r, _)| r));
    let (Some(resource), None) = (resources.next(), resources.next()) else {
        return Err(bad_request(
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid: name one resource."
            ),
        ));
    };
    let offline = scope.split_whitespace().any(|s| s == "offline_access");
    Ok((known_resource(tenant, resource)?, offline))
}

fn random_code(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// The admin route's sign-in: the user with `upn` approves or declines `user_code`. Fails with
/// a reason when no pending code has that user code or the user cannot sign in.
pub fn decide(sim: &Sim, user_code: &str, upn: &str, decision: Decision) -> Result<(), String> {
    let user_id = {
        let t = sim.tenant();
        let user = t
            .users
            .values()
            .find(|u| u.deleted.is_none() && u.upn.eq_ignore_ascii_case(upn))
            .ok_or_else(|| format!("no user {upn}"))?;
        if !user.account_enabled {
            return Err(format!("{upn} is disabled and cannot sign in"));
        }
        user.id.clone()
    };
    let mut grants = sim.grants.lock().unwrap();
    let code = grants
        .device_codes
        .values_mut()
        .find(|c| c.user_code.eq_ignore_ascii_case(user_code) && c.state == SignIn::Pending)
        .ok_or_else(|| format!("no pending sign-in has the code {user_code}"))?;
    if code.expires <= Instant::now() {
        return Err(format!("the code {user_code} has expired"));
    }
    code.state = match decision {
        Decision::Approve => SignIn::Approved { user_id },
        Decision::Decline => SignIn::Declined,
    };
    Ok(())
}

/// The `urn:ietf:params:oauth:grant-type:device_code` grant.
pub(super) fn redeem_device_code(
    sim: &Sim,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<Value, TokenError> {
    let app = client::find_app(sim, tenant, field(form, "client_id"))?;
    require_public_client(app)?;
    let (user_id, resource, offline) = poll(sim, field(form, "device_code"), &app.seed.client_id)?;
    let signed_in = jiff::Timestamp::now();
    let user = signed_in_user(sim, &user_id, None)?;
    Ok(issue_delegated(
        sim,
        &app.seed.client_id,
        &user,
        &resource,
        offline.then_some(signed_in),
    ))
}

/// One poll of a device code: the approved user, or why not yet (or never).
fn poll(sim: &Sim, device_code: &str, client_id: &str) -> Result<(String, String, bool), TokenError> {
    let mut grants = sim.grants.lock().unwrap();
    let Some(code) = grants
        .device_codes
        .get_mut(device_code)
        .filter(|c| c.client_id.eq_ignore_ascii_case(client_id))
    else {
        return Err(bad_request(
            "bad_verification_code",
            70018,
            "The provided value for the input parameter 'device_code' is not valid.",
        ));
    };
    let now = Instant::now();
    if code.expires <= now {
        return Err(bad_request(
            "expired_token",
            70019,
            "Verification code expired. The user did not sign in in time: request a new code.",
        ));
    }
    let too_soon = code.last_poll.is_some_and(|at| now < at + code.interval);
    code.last_poll = Some(now);
    if too_soon && code.state == SignIn::Pending {
        return Err(bad_request(
            "slow_down",
            70016,
            "The client is polling faster than the interval the device-code answer gave. Poll more slowly.",
        ));
    }
    match code.state.clone() {
        SignIn::Pending => Err(bad_request(
            "authorization_pending",
            70016,
            "The provided request has not yet been authorized by the user. The user must input their code.",
        )),
        SignIn::Declined => Err(bad_request(
            "authorization_declined",
            70000,
            "The user declined the sign-in request.",
        )),
        SignIn::Redeemed => Err(bad_request(
            "invalid_grant",
            54005,
            "The device code was already redeemed.",
        )),
        SignIn::Approved { user_id } => {
            code.state = SignIn::Redeemed;
            Ok((user_id, code.resource.clone(), code.offline))
        }
    }
}

/// The `refresh_token` grant: a new access token for the scope's resource and a new refresh
/// token of the same sign-in.
pub(super) fn redeem_refresh_token(
    sim: &Sim,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<Value, TokenError> {
    let app = client::find_app(sim, tenant, field(form, "client_id"))?;
    require_public_client(app)?;
    let (resource, _) = delegated_scope(tenant, field(form, "scope"))?;
    let (user_id, signed_in) = use_refresh_token(sim, field(form, "refresh_token"), &app.seed.client_id)?;
    let user = signed_in_user(sim, &user_id, Some(signed_in))?;
    Ok(issue_delegated(
        sim,
        &app.seed.client_id,
        &user,
        resource,
        Some(signed_in),
    ))
}

/// The sign-in a refresh token belongs to, after the checks that need only the token.
fn use_refresh_token(
    sim: &Sim,
    token: &str,
    client_id: &str,
) -> Result<(String, jiff::Timestamp), TokenError> {
    let inactivity = Duration::from_secs(sim.seed.refresh_token_inactivity_seconds);
    let mut grants = sim.grants.lock().unwrap();
    let Some(grant) = grants.refresh_tokens.get_mut(token) else {
        return Err(bad_request(
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid.",
        ));
    };
    if !grant.client_id.eq_ignore_ascii_case(client_id) {
        return Err(bad_request(
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed: the refresh token was issued to a different client.",
        ));
    }
    let idle = grant.last_used.elapsed();
    if idle > inactivity {
        return Err(bad_request(
            "invalid_grant",
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {}s.",
                grant.signed_in,
                idle.as_secs()
            ),
        ));
    }
    grant.last_used = Instant::now();
    Ok((grant.user_id.clone(), grant.signed_in))
}

/// The user a grant is for, who must still be able to sign in; `signed_in` is the sign-in a
/// refresh token carries, which a later revocation ends.
fn signed_in_user(sim: &Sim, user_id: &str, signed_in: Option<jiff::Timestamp>) -> Result<User, TokenError> {
    let t = sim.tenant();
    let Some(user) = t.users.get(user_id).filter(|u| u.deleted.is_none()) else {
        return Err(bad_request(
            "invalid_grant",
            50034,
            "The user account does not exist in the directory.",
        ));
    };
    if !user.account_enabled {
        return Err(bad_request(
            "invalid_grant",
            50057,
            "The user account is disabled.",
        ));
    }
    if let (Some(at), Some(from)) = (signed_in, user.tokens_valid_from)
        && at < from
    {
        return Err(bad_request(
            "invalid_grant",
            50173,
            format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{at}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{from}'."
            ),
        ));
    }
    Ok(user.clone())
}

fn require_public_client(app: &client::App) -> Result<(), TokenError> {
    if app.seed.allow_public_client {
        return Ok(());
    }
    Err(super::token_error(
        axum::http::StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ))
}

/// The delegated scopes a resource's token carries: what an administrator's sign-in to the
/// compliance endpoint (or Graph) consents to.
fn delegated_scopes(resource: &str) -> BTreeSet<String> {
    let scope = if resource == super::COMPLIANCE_RESOURCE {
        "Exchange.Manage"
    } else {
        "User.Read"
    };
    BTreeSet::from([scope.to_owned()])
}

/// An access token for `user` (and a refresh token of the sign-in at `signed_in`, if any).
fn issue_delegated(
    sim: &Sim,
    client_id: &str,
    user: &User,
    resource: &str,
    signed_in: Option<jiff::Timestamp>,
) -> Value {
    let scopes = delegated_scopes(resource);
    let scp = scopes.iter().cloned().collect::<Vec<_>>().join(" ");
    let wids: Vec<&str> = user
        .directory_roles
        .iter()
        .filter_map(|r| crate::roles::role_template_id(r))
        .collect();
    let claims = json!({
        "appid": client_id, "oid": user.id, "idtyp": "user", "scp": scp, "upn": user.upn,
        "name": user.display_name, "wids": wids,
    });
    let principal = Principal {
        app_id: client_id.to_owned(),
        resource: resource.to_owned(),
        roles: BTreeSet::new(),
        user: Some(user.id.clone()),
        scopes,
    };
    let lifetime = sim.seed.token_lifetime_seconds;
    let access = record(sim, principal, claims);
    let mut answer = json!({
        "token_type": "Bearer", "scope": format!("{resource}/{scp}"), "expires_in": lifetime,
        "ext_expires_in": lifetime, "access_token": access,
    });
    if let Some(at) = signed_in {
        let refresh = random_code(
            96,
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
        );
        sim.grants.lock().unwrap().refresh_tokens.insert(
            refresh.clone(),
            RefreshGrant {
                client_id: client_id.to_owned(),
                user_id: user.id.clone(),
                signed_in: at,
                last_used: Instant::now(),
            },
        );
        answer["refresh_token"] = refresh.into();
    }
    answer
}
