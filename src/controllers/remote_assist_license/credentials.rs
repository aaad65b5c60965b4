//! The credentials Secret: a password from the operating system's random generator, written to
//! the Secret *before* the user is created or the password changed, so no crash can leave an
//! account whose password nobody knows. Passwords live only in [`Secret`] values, which never
//! print.

use super::plan::SecretState;
use crate::context::MANAGER;
use crate::crd::RemoteAssistLicense;
use crate::error::Error;
use crate::graph::Secret;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use rand::TryRngCore;
use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use std::collections::BTreeMap;

/// Annotation on a RemoteAssistLicense that asks for a new password: change its value to rotate.
pub const ROTATE_ANNOTATION: &str = "remoteassist.dev/rotate-credentials";
/// Annotation on the Secret: the rotation request it last carried out.
const ROTATED_FOR: &str = "remoteassist.dev/rotated-for";
pub const PASSWORD_KEY: &str = "password";
/// A new password written before it is set on the user; moved to `password` afterwards.
const NEXT_KEY: &str = "password-next";
const UPN_KEY: &str = "userPrincipalName";

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"!#%+-.:=?@^_~";

/// A 24-character password with every character class Entra asks for, drawn from the OS RNG.
pub fn generate_password() -> Secret {
    let mut rng = OsRng.unwrap_err();
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    let pick = |set: &[u8], rng: &mut dyn rand::RngCore| set[(rng.next_u32() as usize) % set.len()];
    let mut chars: Vec<u8> = vec![
        pick(LOWER, &mut rng),
        pick(UPPER, &mut rng),
        pick(DIGITS, &mut rng),
        pick(SYMBOLS, &mut rng),
    ];
    while chars.len() < 24 {
        chars.push(pick(&all, &mut rng));
    }
    chars.shuffle(&mut rng);
    Secret::new(String::from_utf8(chars).expect("ASCII"))
}

pub struct Credentials {
    api: Api<KubeSecret>,
    name: String,
    owner_uid: String,
}

fn owned_by(secret: &KubeSecret, uid: &str) -> bool {
    secret.owner_references().iter().any(|o| o.uid == uid)
}

fn value(secret: &KubeSecret, key: &str) -> Option<Secret> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone())
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::new)
}

impl Credentials {
    pub fn new(client: kube::Client, ral: &RemoteAssistLicense) -> Self {
        Credentials {
            api: Api::namespaced(client, &ral.namespace().unwrap_or_default()),
            name: ral.credentials_secret_name(),
            owner_uid: ral.uid().unwrap_or_default(),
        }
    }

    pub async fn state(&self) -> Result<SecretState, Error> {
        Ok(match self.api.get_opt(&self.name).await? {
            None => SecretState::Missing,
            Some(s) if !owned_by(&s, &self.owner_uid) => SecretState::Foreign,
            Some(s) if value(&s, PASSWORD_KEY).is_none() && value(&s, NEXT_KEY).is_none() => {
                SecretState::Missing
            }
            Some(s) => SecretState::Ready {
                pending: value(&s, NEXT_KEY).is_some(),
                rotated_for: s.annotations().get(ROTATED_FOR).cloned(),
            },
        })
    }

    /// The password the user has or is about to get.
    pub async fn password(&self) -> Result<Option<Secret>, Error> {
        let s = self.api.get_opt(&self.name).await?;
        Ok(s.filter(|s| owned_by(s, &self.owner_uid))
            .and_then(|s| value(&s, NEXT_KEY).or_else(|| value(&s, PASSWORD_KEY))))
    }

    fn data(pairs: &[(&str, Option<&str>)]) -> serde_json::Value {
        let mut data = serde_json::Map::new();
        for (k, v) in pairs {
            let v = v.map(|v| serde_json::to_value(ByteString(v.as_bytes().to_vec())).expect("bytes"));
            data.insert((*k).into(), v.unwrap_or(serde_json::Value::Null));
        }
        serde_json::Value::Object(data)
    }

    /// Creates the Secret with a fresh password (the user does not exist yet). An existing
    /// Secret of ours is kept as it is: it may already hold the password of a user being created.
    pub async fn create(&self, ral: &RemoteAssistLicense, upn: &str) -> Result<(), Error> {
        let password = generate_password();
        let mut data = BTreeMap::new();
        data.insert(UPN_KEY.to_owned(), ByteString(upn.as_bytes().to_vec()));
        data.insert(
            PASSWORD_KEY.to_owned(),
            ByteString(password.expose().as_bytes().to_vec()),
        );
        let secret = KubeSecret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/managed-by".to_owned(), MANAGER.to_owned()),
                    ("remoteassist.dev/license".to_owned(), ral.name_any()),
                ])),
                owner_references: ral.controller_owner_ref(&()).map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..KubeSecret::default()
        };
        match self
            .api
            .create(
                &PostParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
                &secret,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Step 1 of a rotation: the new password goes to the Secret under `password-next`, unless
    /// one is already pending (an interrupted rotation), which is then reused. Creates the Secret
    /// if it is gone. Returns the password to set on the user.
    pub async fn begin_rotation(&self, ral: &RemoteAssistLicense, upn: &str) -> Result<Secret, Error> {
        let existing = self.api.get_opt(&self.name).await?;
        if let Some(pending) = existing.as_ref().and_then(|s| value(s, NEXT_KEY)) {
            return Ok(pending);
        }
        if existing.is_none() {
            self.create(ral, upn).await?;
        }
        let password = generate_password();
        let patch = serde_json::json!({"data": Self::data(&[(NEXT_KEY, Some(password.expose()))])});
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(password)
    }

    /// Step 2, after the user has the new password: it becomes `password`.
    pub async fn finish_rotation(&self, password: &Secret, token: Option<&str>) -> Result<(), Error> {
        let mut patch = serde_json::json!({
            "data": Self::data(&[(PASSWORD_KEY, Some(password.expose())), (NEXT_KEY, None)]),
        });
        if let Some(t) = token {
            patch["metadata"] = serde_json::json!({"annotations": {ROTATED_FOR: t}});
        }
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Deletes the Secret if it is ours.
    pub async fn delete(&self) -> Result<(), Error> {
        if let Some(s) = self.api.get_opt(&self.name).await?
            && owned_by(&s, &self.owner_uid)
        {
            match self.api.delete(&self.name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Keeps the Secret after its RemoteAssistLicense is gone (orphaned account): drops the
    /// owner reference so garbage collection leaves it alone.
    pub async fn release(&self) -> Result<(), Error> {
        if let Some(s) = self.api.get_opt(&self.name).await?
            && owned_by(&s, &self.owner_uid)
        {
            let patch = serde_json::json!({"metadata": {"ownerReferences": null}});
            self.api
                .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_complex_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a.expose(), b.expose());
        let p = a.expose();
        assert_eq!(p.len(), 24);
        for set in [LOWER, UPPER, DIGITS, SYMBOLS] {
            assert!(p.bytes().any(|c| set.contains(&c)), "{set:?} missing");
        }
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }
}
