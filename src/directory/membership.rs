//! Group membership: reads (a group's members, a user's groups) that feed the view, and adds
//! that travel together. Reconciles adding accounts to the same group at about the same time
//! share one `members@odata.bind` PATCH (up to 20 members: Graph's limit), so a thousand new
//! accounts cost fifty writes to their group, not a thousand.

use super::{Directory, segment};
use crate::graph::GraphError;
use reqwest::Method;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::oneshot;

/// Graph's limit on references in one `members@odata.bind`.
const BIND_LIMIT: usize = 20;
/// How long the first add to a group waits for others to join it: adds are not urgent (the
/// account is enabled only later), and fuller PATCHes spend less of the write budget.
const ADD_LINGER: Duration = Duration::from_millis(250);

type Waiter = (String, oneshot::Sender<Result<(), GraphError>>);

/// Adds waiting to be sent, by group.
#[derive(Default)]
pub struct PendingAdds {
    groups: std::sync::Mutex<HashMap<String, Vec<Waiter>>>,
    /// Held while a group's members are listed into the view.
    listing: tokio::sync::Mutex<()>,
}

fn ids(items: &[serde_json::Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

/// Takes the group's waiting adds when the sending caller goes before taking them itself
/// (cancelled while it lingered); once taken, later adds belong to a later sender.
struct SenderGuard<'a> {
    adds: &'a PendingAdds,
    group: &'a str,
    taken: bool,
}

impl SenderGuard<'_> {
    fn take(&mut self) -> Vec<Waiter> {
        self.taken = true;
        self.adds
            .groups
            .lock()
            .unwrap()
            .remove(self.group)
            .unwrap_or_default()
    }
}

impl Drop for SenderGuard<'_> {
    fn drop(&mut self) {
        if !self.taken {
            drop(self.take());
        }
    }
}

/// A `members@odata.bind` refused for one of its references (a member already, or a user the
/// directory does not show yet).
fn bind_refused(e: &GraphError) -> bool {
    e.status() == Some(400)
}

impl Directory {
    /// Ids of the groups a user is a direct member of.
    pub async fn member_of(&self, user_id: &str) -> Result<BTreeSet<String>, GraphError> {
        let items = self
            .graph
            .list(&format!("/users/{}/memberOf?$select=id", segment(user_id)))
            .await?;
        Ok(ids(&items))
    }

    /// Ids of a group's direct members, read from Graph (and kept in the view).
    pub async fn members(&self, group_id: &str) -> Result<BTreeSet<String>, GraphError> {
        let items = self
            .graph
            .list(&format!(
                "/groups/{}/members?$select=id&$top=999",
                segment(group_id)
            ))
            .await?;
        let members = ids(&items);
        self.view.listed_members(group_id, &members);
        Ok(members)
    }

    /// A group's members from the view when it knows them, else from Graph.
    pub async fn cached_members(&self, group_id: &str) -> Result<BTreeSet<String>, GraphError> {
        match self.view.members(group_id) {
            Some(m) => Ok(m),
            None => self.members(group_id).await,
        }
    }

    /// Whether a user is a direct member of a group, and whether Graph said so (rather than
    /// the operator's own write). `fresh` asks Graph (the user's `memberOf`).
    pub async fn is_member(
        &self,
        group_id: &str,
        user_id: &str,
        fresh: bool,
    ) -> Result<(bool, bool), GraphError> {
        if !fresh && let super::Lookup::Found(known) = self.view.member(group_id, user_id) {
            return Ok(known);
        }
        if !fresh && self.view.enabled() {
            // One listing answers for every account of the group: whoever waited for it uses it.
            let _one_listing = self.adds.listing.lock().await;
            if let super::Lookup::Found(known) = self.view.member(group_id, user_id) {
                return Ok(known);
            }
            let members = self.members(group_id).await?;
            return Ok((members.iter().any(|m| m.eq_ignore_ascii_case(user_id)), true));
        }
        let member = self
            .member_of(user_id)
            .await?
            .iter()
            .any(|g| g.eq_ignore_ascii_case(group_id));
        self.view.read_membership(group_id, user_id, member);
        Ok((member, true))
    }

    /// Adds members, 20 per request through `members@odata.bind` (Graph's limit per PATCH).
    pub async fn add_members(&self, group_id: &str, user_ids: &[String]) -> Result<(), GraphError> {
        for chunk in user_ids.chunks(BIND_LIMIT) {
            match self.bind_members(group_id, chunk).await {
                Err(e) if bind_refused(&e) => {
                    for id in chunk {
                        self.add_one_member(group_id, id).await?;
                    }
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// One `members@odata.bind` PATCH; Graph refuses all of it when any one reference is bad.
    async fn bind_members(&self, group_id: &str, user_ids: &[String]) -> Result<(), GraphError> {
        let base = self.graph.base().to_owned();
        let refs: Vec<String> = user_ids
            .iter()
            .map(|id| format!("{base}/directoryObjects/{}", segment(id)))
            .collect();
        let body = json!({"members@odata.bind": refs});
        self.graph
            .call(
                Method::PATCH,
                &format!("/groups/{}", segment(group_id)),
                Some(&body),
            )
            .await?;
        for id in user_ids {
            self.view.wrote_membership(group_id, id, true);
        }
        Ok(())
    }

    /// Adds one member, together with other adds to the same group made meanwhile; "already a
    /// member" counts as done.
    pub async fn add_member(&self, group_id: &str, user_id: &str) -> Result<(), GraphError> {
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut groups = self.adds.groups.lock().unwrap();
            let waiting = groups.entry(group_id.to_owned()).or_default();
            waiting.push((user_id.to_owned(), reply));
            waiting.len() == 1
        };
        if first {
            // This caller sends for everyone who joins while it lingers. Should it be cancelled
            // meanwhile, the guard lets the others go (they retry), so no add waits forever.
            let mut guard = SenderGuard {
                adds: &self.adds,
                group: group_id,
                taken: false,
            };
            tokio::time::sleep(ADD_LINGER).await;
            let waiting = guard.take();
            let mut waiting = waiting.into_iter().peekable();
            while waiting.peek().is_some() {
                let chunk: Vec<Waiter> = waiting.by_ref().take(BIND_LIMIT).collect();
                let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
                let together = match ids.len() {
                    1 => Err(None),
                    _ => self.bind_members(group_id, &ids).await.map_err(Some),
                };
                match together {
                    Ok(()) => chunk.into_iter().for_each(|(_, reply)| {
                        let _ = reply.send(Ok(()));
                    }),
                    Err(Some(e)) if !bind_refused(&e) => chunk.into_iter().for_each(|(_, reply)| {
                        let _ = reply.send(Err(e.clone()));
                    }),
                    // One of them is a member already, or not visible yet: each on its own, so
                    // each caller hears about its own account.
                    Err(_) => {
                        for (id, reply) in chunk {
                            let _ = reply.send(self.add_one_member(group_id, &id).await);
                        }
                    }
                }
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(GraphError::Transport {
                what: "Microsoft Graph",
                message: "the request adding this member was cancelled".into(),
            })
        })
    }

    async fn add_one_member(&self, group_id: &str, user_id: &str) -> Result<(), GraphError> {
        let body =
            json!({"@odata.id": format!("{}/directoryObjects/{}", self.graph.base(), segment(user_id))});
        match self
            .graph
            .call(
                Method::POST,
                &format!("/groups/{}/members/$ref", segment(group_id)),
                Some(&body),
            )
            .await
        {
            Err(e) if e.status() == Some(400) && e.message_contains("already exist") => {}
            other => other.map(drop)?,
        }
        self.view.wrote_membership(group_id, user_id, true);
        Ok(())
    }

    /// Removes one member; "not a member" counts as done.
    pub async fn remove_member(&self, group_id: &str, user_id: &str) -> Result<(), GraphError> {
        self.delete(&format!(
            "/groups/{}/members/{}/$ref",
            segment(group_id),
            segment(user_id)
        ))
        .await?;
        self.view.wrote_membership(group_id, user_id, false);
        Ok(())
    }
}
