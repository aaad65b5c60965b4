//! What an access token says about its holder. The claims are read without checking the
//! signature: the token came straight from the token endpoint over TLS, and the operator only
//! reports what it was granted, it never decides access by it.

use base64::Engine;
use serde_json::Value;
use std::collections::BTreeSet;

/// The claims the checks read.
#[derive(Debug, Default, PartialEq)]
pub struct Claims {
    /// Application permissions (app-only tokens).
    pub roles: BTreeSet<String>,
    /// Delegated scopes (tokens of a signed-in user).
    pub scopes: BTreeSet<String>,
    /// The signed-in user, for delegated tokens.
    pub user: Option<String>,
}

impl Claims {
    /// `None` when the token is not a JWT (some resources issue opaque tokens).
    pub fn read(token: &str) -> Option<Claims> {
        let payload = token.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        let roles = v["roles"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let scopes = v["scp"]
            .as_str()
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let user = ["upn", "preferred_username", "unique_name"]
            .iter()
            .find_map(|k| v[*k].as_str().map(str::to_owned));
        Some(Claims { roles, scopes, user })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &Value) -> String {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            b.encode(br#"{"alg":"RS256"}"#),
            b.encode(payload.to_string())
        )
    }

    #[test]
    fn roles_scopes_and_user_are_read_and_opaque_tokens_are_none() {
        let c = Claims::read(&jwt(
            &serde_json::json!({"roles": ["User.ReadWrite.All", "Organization.Read.All"]}),
        ))
        .unwrap();
        assert!(c.roles.contains("User.ReadWrite.All") && c.roles.len() == 2);
        let d = Claims::read(&jwt(
            &serde_json::json!({"scp": "Exchange.Manage offline_access", "upn": "ib.admin@abc.example"}),
        ))
        .unwrap();
        assert!(d.scopes.contains("Exchange.Manage") && d.roles.is_empty());
        assert_eq!(d.user.as_deref(), Some("ib.admin@abc.example"));
        assert_eq!(Claims::read("opaque-token"), None);
    }
}
