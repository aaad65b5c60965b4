//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas can run and only one
//! reconciles: a replica takes the lease when it is free or expired, renews it well before it
//! expires, and releases it on shutdown so a standby takes over at once. Updates carry the
//! lease's resourceVersion, so two replicas can never both win.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease holds without renewal.
    pub lease: Duration,
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaderConfig,
}

/// Whether `spec` may be taken by `me` at `now`: free, expired, or already mine.
pub fn can_take(spec: &LeaseSpec, me: &str, now: Timestamp) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return true;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => renewed.checked_add(duration).is_ok_and(|expiry| expiry < now),
        None => true,
    }
}

impl Elector {
    pub fn new(client: Client, config: LeaderConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    fn renew_every(&self) -> Duration {
        self.config.lease / 3
    }

    /// One attempt to take or renew the lease. `Ok(true)` when this replica holds it.
    pub async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let me = &self.config.identity;
        let seconds = i32::try_from(self.config.lease.as_secs().max(1)).unwrap_or(15);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if !can_take(&spec, me, now) {
            return Ok(false);
        }
        let mine = spec.holder_identity.as_deref() == Some(me.as_str());
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if mine {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(!mine)),
            ..spec
        });
        // `replace` sends the resourceVersion we read: a concurrent winner makes this a 409.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut announced = false;
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                    return;
                }
                Ok(false) if !announced => {
                    tracing::info!(lease = %self.config.name, "another replica leads; standing by");
                    announced = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the leader lease"),
            }
            tokio::time::sleep(self.renew_every()).await;
        }
    }

    /// Renews the lease until renewal fails for longer than the lease lasts; returns then, as
    /// another replica may already have taken over.
    pub async fn hold(&self) {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_every()).await;
            match self.try_hold().await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("the leader lease was taken by another replica");
                    return;
                }
                Err(e) if last.elapsed() < self.config.lease => {
                    tracing::warn!(error = %e, "cannot renew the leader lease; retrying");
                }
                Err(e) => {
                    tracing::error!(error = %e, "the leader lease expired before it could be renewed");
                    return;
                }
            }
        }
    }

    /// Gives the lease up so a standby takes over without waiting for it to expire.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.config.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            if self
                .api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
                .is_ok()
            {
                tracing::info!(lease = %self.config.name, "released the leader lease");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::now() - SignedDuration::from_secs(renewed_secs_ago),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_expired_or_mine() {
        let now = Timestamp::now();
        assert!(can_take(&spec(None, 0), "a", now));
        assert!(can_take(&spec(Some("a"), 0), "a", now));
        assert!(!can_take(&spec(Some("b"), 5), "a", now));
        assert!(can_take(&spec(Some("b"), 20), "a", now));
    }
}
