//! Group membership: reads (a group's members, a user's groups) that feed the view, and adds.
//! Accounts' adds are written behind ([`write_behind`](super::write_behind)): adds to one
//! group share a `members@odata.bind` PATCH (up to 20 members: Graph's limit), so a thousand
//! new accounts cost about fifty writes to their group, not a thousand.

use super::write_behind::{Add, BIND_LIMIT, Joined};
use super::{Directory, segment};
use crate::graph::GraphError;
use futures::future::join_all;
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// Reads of a group's members in progress (one listing answers every account that waits).
#[derive(Default)]
pub struct Listing(tokio::sync::Mutex<()>);

/// A directory object read for its id only.
#[derive(serde::Deserialize)]
struct Id {
    id: String,
}

fn ids_of(items: Vec<Id>) -> BTreeSet<String> {
    items.into_iter().map(|o| o.id).collect()
}

/// The answer for an add whose user Graph did not show when asked (a new user replicating).
fn not_shown_yet(user_id: &str) -> GraphError {
    GraphError::Api {
        status: 404,
        code: "Request_ResourceNotFound".into(),
        message: format!(
            "user {user_id} is not shown by the directory yet, so it cannot join the group (a new user replicates within seconds)"
        ),
        request_id: None,
        retry_after: None,
        detail_codes: Vec::new(),
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
            .list_as(&format!("/users/{}/memberOf?$select=id", segment(user_id)))
            .await?;
        Ok(ids_of(items))
    }

    /// Ids of a group's direct members, read from Graph (and kept in the view).
    pub async fn members(&self, group_id: &str) -> Result<BTreeSet<String>, GraphError> {
        let items = self
            .graph
            .list_as(&format!(
                "/groups/{}/members?$select=id&$top=999",
                segment(group_id)
            ))
            .await?;
        let members = ids_of(items);
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
            let _one_listing = self.listing.0.lock().await;
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

    /// Asks for a user to be added to a group on behalf of `owner` (`namespace/name`): queued
    /// and written behind together with other adds to the group when the sender runs (see
    /// [`write_behind`](super::write_behind)), else sent on the spot.
    /// `behind: false` sends it on the spot (a single add, for drift on a working account).
    pub async fn join(&self, group_id: &str, user_id: &str, owner: &str, behind: bool) -> Joined {
        if !behind || !self.joins.running() {
            return match self.add_one_member(group_id, user_id).await {
                Ok(()) => Joined::Added,
                Err(e) => Joined::Failed(e),
            };
        }
        let add = Add {
            user: user_id.to_owned(),
            owner: owner.to_owned(),
        };
        self.joins.enqueue(group_id, add)
    }

    /// Sends the queued adds until dropped (the owner runs it beside the controller whose
    /// reconciles queue them, after [`Directory::subscribe_joins`]).
    pub async fn send_joins_behind(&self) {
        let _running = self.joins.start();
        loop {
            let writes_waiting = self.graph.budget().writes_saturated();
            let (due, next) = self.joins.take_due(writes_waiting);
            join_all(due.iter().map(|(group, adds)| self.send_adds(group, adds))).await;
            self.joins.idle(next.unwrap_or(Duration::from_secs(3600))).await;
        }
    }

    /// Says the owner's account is on its way to the group (see [`super::write_behind::JoinQueue::expect`]).
    pub fn expect_join(&self, group_id: &str, owner: &str) {
        self.joins.expect(group_id, owner);
    }

    /// Whether a queued add of this user to this group was sent since the last ask (once).
    pub fn take_joined(&self, group_id: &str, user_id: &str) -> bool {
        self.joins.take_joined(group_id, user_id)
    }

    /// Subscribes to the owners of answered adds (see [`Directory::send_joins_behind`]).
    pub fn subscribe_joins(&self) -> futures::channel::mpsc::UnboundedReceiver<String> {
        self.joins.subscribe()
    }

    /// One group's due adds, in PATCHes of up to 20.
    async fn send_adds(&self, group_id: &str, adds: &[Add]) {
        for chunk in adds.chunks(BIND_LIMIT) {
            let ids: Vec<String> = chunk.iter().map(|a| a.user.clone()).collect();
            let together = match ids.len() {
                1 => Err(None),
                _ => self.bind_members(group_id, &ids).await.map_err(Some),
            };
            match together {
                Ok(()) => chunk
                    .iter()
                    .for_each(|a| self.joins.answered(group_id, a, Ok(()))),
                Err(Some(e)) if !bind_refused(&e) => chunk
                    .iter()
                    .for_each(|a| self.joins.answered(group_id, a, Err(e.clone()))),
                Err(Some(_)) => self.send_refused(group_id, chunk).await,
                Err(None) => self.send_each(group_id, chunk).await,
            }
        }
    }

    /// A PATCH Graph refused for one of its references, a member already or a user it does not
    /// show yet (a new user replicating). Two reads tell which, instead of a write per add:
    /// members are answered as done, users not shown yet as not found (their owners look again
    /// after the directory's delay), and the rest go together again.
    async fn send_refused(&self, group_id: &str, chunk: &[Add]) {
        let Ok((done, rest, shown)) = self.sort_refused(group_id, chunk).await else {
            return self.send_each(group_id, chunk).await;
        };
        done.iter().for_each(|a| self.joins.answered(group_id, a, Ok(())));
        let (ready, unseen): (Vec<Add>, Vec<Add>) = rest
            .into_iter()
            .cloned()
            .partition(|a| shown.iter().any(|s| s.eq_ignore_ascii_case(&a.user)));
        for a in &unseen {
            self.joins.answered(group_id, a, Err(not_shown_yet(&a.user)));
        }
        let ids: Vec<String> = ready.iter().map(|a| a.user.clone()).collect();
        match ids.len() {
            0 => {}
            1 => self.send_each(group_id, &ready).await,
            _ => match self.bind_members(group_id, &ids).await {
                Ok(()) => ready
                    .iter()
                    .for_each(|a| self.joins.answered(group_id, a, Ok(()))),
                Err(_) => self.send_each(group_id, &ready).await,
            },
        }
    }

    /// The refused adds split into members already and the rest, with the ids Graph shows.
    async fn sort_refused<'a>(
        &self,
        group_id: &str,
        chunk: &'a [Add],
    ) -> Result<(Vec<&'a Add>, Vec<&'a Add>, BTreeSet<String>), GraphError> {
        let members = self.members(group_id).await?;
        let (done, rest): (Vec<&Add>, Vec<&Add>) = chunk
            .iter()
            .partition(|a| members.iter().any(|m| m.eq_ignore_ascii_case(&a.user)));
        let ids: Vec<String> = rest.iter().map(|a| a.user.clone()).collect();
        let shown = self.visible_users(&ids).await?;
        Ok((done, rest, shown))
    }

    /// Each add on its own, so each owner hears about its own account.
    async fn send_each(&self, group_id: &str, adds: &[Add]) {
        for a in adds {
            let result = self.add_one_member(group_id, &a.user).await;
            self.joins.answered(group_id, a, result);
        }
    }

    /// Which of these user ids Graph shows now (reads of up to 15 ids each).
    async fn visible_users(&self, ids: &[String]) -> Result<BTreeSet<String>, GraphError> {
        let mut shown = BTreeSet::new();
        for chunk in ids.chunks(super::IN_LIMIT) {
            let query =
                crate::graph::client::encode_query(&[("$filter", &super::id_in(chunk)), ("$select", "id")]);
            shown.extend(ids_of(self.graph.list_as(&format!("/users?{query}")).await?));
        }
        Ok(shown)
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
