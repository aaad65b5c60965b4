//! The directory as the reconcilers see it: typed users, groups and SKUs read from Graph, and
//! the few writes the operator makes. Every request goes through [`GraphClient`], so budget,
//! retries and typed errors apply uniformly. Values that end up in a URL or `$filter` are
//! escaped here and nowhere else.

mod membership;
pub mod view;
pub mod write_behind;

use crate::graph::{GraphClient, GraphError, odata_string};
use futures::future::join_all;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use view::{Lookup, Seen, View, apply_licenses, apply_patch};

/// `employeeType` value prefix that marks a user as created by this operator; the owning
/// RemoteAssistLicense's uid follows, so a crash between creating a user and recording it can
/// never turn the operator's own user into a "conflict" or an unmanaged user into "ours".
pub const MANAGED_USER_PREFIX: &str = "remoteassist.dev/";
/// What follows [`MANAGED_USER_PREFIX`] on a user the operator adopted rather than created:
/// `remoteassist.dev/adopted:<uid>`. Another licence sees the mark and gets a `Conflict`, and
/// the deletion policy can tell an adopted user (never deleted or disabled on release) from a
/// created one even when status is lost.
pub const ADOPTED_MARK: &str = "adopted:";
/// Group description prefix that marks a group as created by this operator (uid follows).
pub const MANAGED_GROUP_PREFIX: &str = "Managed by remote-assist-operator; owner uid ";

fn managed_users_path() -> String {
    let filter = format!("startswith(employeeType,{})", odata_string(MANAGED_USER_PREFIX));
    let query = crate::graph::client::encode_query(&[
        ("$filter", &filter),
        ("$select", USER_SELECT),
        ("$top", "999"),
    ]);
    format!("/users?{query}")
}

/// Values Graph takes in one `$filter=... in (...)`.
const IN_LIMIT: usize = 15;

/// `id in ('a','b',...)` for a `$filter` (at most [`IN_LIMIT`] ids).
fn id_in(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| odata_string(id)).collect();
    format!("id in ({})", quoted.join(","))
}
const USER_SELECT: &str = "id,userPrincipalName,displayName,mailNickname,accountEnabled,usageLocation,employeeType,onPremisesExtensionAttributes,department,companyName,assignedLicenses,licenseAssignmentStates";
const GROUP_SELECT: &str = "id,displayName,description,assignedLicenses,securityEnabled";

// Serialize: the directory view keeps users as compact JSON (see `view::Packed`); what is
// left out when empty is what `Deserialize` defaults.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct AssignedLicense {
    pub sku_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_plans: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DirUser {
    pub id: String,
    pub user_principal_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// The extension attributes that hold a value (Graph sends all fifteen, mostly null; a
    /// thousand users' nulls cost megabytes in the view).
    #[serde(
        default,
        deserialize_with = "attributes_set",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub on_premises_extension_attributes: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assigned_licenses: Vec<AssignedLicense>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub license_assignment_states: Vec<LicenseState>,
}

fn attributes_set<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    let mut all: BTreeMap<String, Option<String>> = Option::deserialize(d)?.unwrap_or_default();
    all.retain(|_, v| v.is_some());
    Ok(all)
}

/// The domain part of a user principal name, lower-cased ("" when there is none).
pub fn upn_domain(upn: &str) -> String {
    upn.rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

/// One entry of `licenseAssignmentStates`: tells direct assignments from inherited ones.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LicenseState {
    pub sku_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_by_group: Option<String>,
    /// `Active`, `ActiveWithError`, `Disabled` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `None`, or why group licensing failed: `CountViolation`, `MutuallyExclusiveViolation`,
    /// `DependencyViolation`, `ProhibitedInUsageLocationViolation`, `UniquenessViolation`,
    /// `Others` (https://learn.microsoft.com/graph/api/resources/licenseassignmentstate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time: Option<String>,
}

impl LicenseState {
    /// The error group licensing recorded, if this inherited assignment failed.
    pub fn group_error(&self) -> Option<&str> {
        let failed = matches!(self.state.as_deref(), Some("Error" | "ActiveWithError"));
        let error = self.error.as_deref().filter(|e| *e != "None");
        if self.assigned_by_group.is_some() && failed {
            Some(error.unwrap_or("Others"))
        } else {
            None
        }
    }
}

impl DirUser {
    /// The licences inherited from `group` that group licensing failed to assign.
    pub fn group_license_failures(&self, group: &str) -> impl Iterator<Item = &LicenseState> {
        self.license_assignment_states
            .iter()
            .filter(move |s| s.assigned_by_group.as_deref() == Some(group) && s.group_error().is_some())
    }

    /// SKU ids assigned to the user directly (not inherited from a group).
    pub fn direct_skus(&self) -> Vec<String> {
        if self.license_assignment_states.is_empty() {
            return self.assigned_licenses.iter().map(|a| a.sku_id.clone()).collect();
        }
        let mut v: Vec<String> = self
            .license_assignment_states
            .iter()
            .filter(|s| s.assigned_by_group.is_none())
            .map(|s| s.sku_id.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The uid of the RemoteAssistLicense that created or adopted this user, if any did.
    pub fn managed_by(&self) -> Option<&str> {
        let rest = self.employee_type.as_deref()?.strip_prefix(MANAGED_USER_PREFIX)?;
        Some(rest.strip_prefix(ADOPTED_MARK).unwrap_or(rest))
    }

    /// Whether the operator's mark on this user says it was adopted, not created.
    pub fn marked_adopted(&self) -> bool {
        self.employee_type
            .as_deref()
            .and_then(|t| t.strip_prefix(MANAGED_USER_PREFIX))
            .is_some_and(|rest| rest.starts_with(ADOPTED_MARK))
    }

    /// The domain part of the user principal name, lower-cased.
    pub fn upn_domain(&self) -> String {
        upn_domain(&self.user_principal_name)
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DirGroup {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub assigned_licenses: Vec<AssignedLicense>,
}

impl DirGroup {
    /// The uid of the VendorTenant that created this group, if the operator did.
    pub fn managed_by(&self) -> Option<&str> {
        self.description.as_deref()?.strip_prefix(MANAGED_GROUP_PREFIX)
    }
}

/// One subscribed SKU with its seats and service plans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sku {
    pub sku_id: String,
    pub part_number: String,
    pub enabled: i64,
    pub consumed: i64,
    /// service plan name → id
    pub plans: BTreeMap<String, String>,
}

impl Sku {
    pub fn free(&self) -> i64 {
        (self.enabled - self.consumed).max(0)
    }
}

/// The tenant's SKUs by part number.
pub type SkuTable = BTreeMap<String, Sku>;

/// Free seats by SKU id.
pub fn free_seats(skus: &SkuTable) -> BTreeMap<String, i64> {
    skus.values().map(|s| (s.sku_id.clone(), s.free())).collect()
}

fn decode<T: for<'de> Deserialize<'de>>(v: Value, what: &str) -> Result<T, GraphError> {
    serde_json::from_value(v).map_err(|e| GraphError::Decode(format!("{what}: {e}")))
}

/// A path segment: UPNs may hold `'`, `#` and other characters that must not reach a URL raw.
fn segment(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Typed directory operations, a short-lived cache of `subscribedSkus` (every licence reconcile
/// needs it and it changes rarely), and the [`View`] of users and memberships.
pub struct Directory {
    pub graph: GraphClient,
    skus: Mutex<Option<(Instant, SkuTable)>>,
    sku_ttl: Duration,
    pub view: View,
    /// When every managed user was last listed into the view; held while listing, so one
    /// listing serves everyone who asks meanwhile.
    listed: Mutex<Option<Instant>>,
    listing: membership::Listing,
    joins: write_behind::JoinQueue,
}

impl Directory {
    /// Without a view: every read goes to Graph (commands, tests).
    pub fn new(graph: GraphClient, sku_ttl: Duration) -> Self {
        Directory {
            graph,
            skus: Mutex::new(None),
            sku_ttl,
            view: View::new(Duration::ZERO),
            listed: Mutex::new(None),
            listing: membership::Listing::default(),
            joins: write_behind::JoinQueue::default(),
        }
    }

    /// Keeps what was read (or written) for `ttl` (the resync period).
    pub fn with_view(mut self, ttl: Duration) -> Self {
        self.view = View::new(ttl);
        self
    }

    /// Reads again, all at once, what the view holds once it is older than the view keeps
    /// things: every managed user (listed), and each group, group's members and other user it
    /// was asked about. Sent together, these reads travel in a few `$batch`es, so a resync of
    /// every object costs a handful of requests. One refresh serves everyone who asks meanwhile.
    pub async fn refresh(&self) -> Result<(), GraphError> {
        if !self.view.enabled() {
            return Ok(());
        }
        let mut listed = self.listed.lock().await;
        if listed.is_some_and(|at| self.view.fresh_at(at)) {
            return Ok(());
        }
        let started = Instant::now();
        let known = self.view.known();
        let groups = join_all(known.groups.chunks(IN_LIMIT).map(|ids| self.groups_by_id(ids)));
        let members = join_all(known.member_lists.iter().map(|g| self.members(g)));
        let others = join_all(known.other_users.iter().map(|u| self.user(u)));
        let (users, groups, members, others, skus) = tokio::join!(
            self.managed_users_packed(),
            groups,
            members,
            others,
            self.skus(true)
        );
        // One object that cannot be read is read again when it is asked for; the listing of
        // managed users is what the refresh is for.
        for failed in [
            groups.into_iter().filter_map(Result::err).next(),
            members.into_iter().filter_map(Result::err).next(),
            others.into_iter().filter_map(Result::err).next(),
            skus.err(),
        ]
        .into_iter()
        .flatten()
        {
            tracing::debug!(error = %failed, "a directory object could not be refreshed");
        }
        self.view.listed_users(users?, started);
        *listed = Some(started);
        Ok(())
    }

    /// A user from the view when it knows it, else from Graph.
    pub async fn cached_user(&self, key: &str) -> Result<Option<Seen>, GraphError> {
        match self.view.user(key) {
            Lookup::Found(seen) => Ok(Some(seen)),
            Lookup::Absent => Ok(None),
            Lookup::Unknown => Ok(self.user(key).await?.map(|user| Seen {
                user,
                confirmed: true,
            })),
        }
    }

    /// The SKU table, from cache when fresh. `fresh` forces a read (seat pre-flight).
    pub async fn skus(&self, fresh: bool) -> Result<SkuTable, GraphError> {
        let mut cache = self.skus.lock().await;
        if !fresh
            && let Some((at, table)) = cache.as_ref()
            && at.elapsed() < self.sku_ttl
        {
            return Ok(table.clone());
        }
        let mut table = SkuTable::new();
        for s in self.graph.list("/subscribedSkus").await? {
            let plans = s["servicePlans"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| {
                            Some((
                                p["servicePlanName"].as_str()?.to_owned(),
                                p["servicePlanId"].as_str()?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let (Some(sku_id), Some(part)) = (s["skuId"].as_str(), s["skuPartNumber"].as_str()) else {
                continue;
            };
            table.insert(
                part.to_owned(),
                Sku {
                    sku_id: sku_id.to_owned(),
                    part_number: part.to_owned(),
                    enabled: s["prepaidUnits"]["enabled"].as_i64().unwrap_or(0),
                    consumed: s["consumedUnits"].as_i64().unwrap_or(0),
                    plans,
                },
            );
        }
        if let Some(m) = self.graph.metrics() {
            for sku in table.values() {
                m.seats(&sku.part_number, sku.free());
            }
        }
        *cache = Some((Instant::now(), table.clone()));
        Ok(table)
    }

    /// Forgets the cached SKU table (after a seat error, so the next read is current).
    pub async fn forget_skus(&self) {
        *self.skus.lock().await = None;
    }

    /// A user by object id or UPN; `None` when it does not exist (or is not yet visible).
    pub async fn user(&self, key: &str) -> Result<Option<DirUser>, GraphError> {
        match self
            .graph
            .get_as::<DirUser>(&format!("/users/{}?$select={USER_SELECT}", segment(key)))
            .await
        {
            Ok(user) => {
                self.view.read_user(key, Some(&user));
                Ok(Some(user))
            }
            Err(e) if e.is_not_found() => {
                self.view.read_user(key, None);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every user the operator marked as its own.
    pub async fn managed_users(&self) -> Result<Vec<DirUser>, GraphError> {
        self.graph.list_as(&managed_users_path()).await
    }

    /// [`Self::managed_users`] as the view keeps them (by id), packed page by page.
    async fn managed_users_packed(&self) -> Result<Vec<(String, view::Packed)>, GraphError> {
        let pack = |u: DirUser| {
            let packed = view::Packed::new(&u);
            (u.id, packed)
        };
        self.graph.list_map(&managed_users_path(), pack).await
    }

    /// The directory roles a user holds, directly or through a role-assignable group (its
    /// `transitiveMemberOf` cast to `directoryRole`). Before adopting a user the operator reads
    /// this: an administrator is never adopted. Roles scoped to an administrative unit and
    /// PIM-eligible (not activated) roles are not listed by this read.
    pub async fn directory_roles(&self, user_id: &str) -> Result<Vec<String>, GraphError> {
        let items = self
            .graph
            .list(&format!(
                "/users/{}/transitiveMemberOf/microsoft.graph.directoryRole?$select=id,displayName",
                segment(user_id)
            ))
            .await?;
        Ok(items
            .iter()
            .map(|v| {
                v["displayName"]
                    .as_str()
                    .or(v["id"].as_str())
                    .unwrap_or("a directory role")
                    .to_owned()
            })
            .collect())
    }

    /// A soft-deleted user by object id, if it is still in deleted items.
    pub async fn deleted_user(&self, id: &str) -> Result<Option<DirUser>, GraphError> {
        match self
            .graph
            .get(&format!("/directory/deletedItems/{}", segment(id)))
            .await
        {
            Ok(v) => Ok(Some(decode(v, "deleted user")?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn restore_user(&self, id: &str) -> Result<(), GraphError> {
        self.view.forget_user(id);
        self.graph
            .call(
                Method::POST,
                &format!("/directory/deletedItems/{}/restore", segment(id)),
                None,
            )
            .await
            .map(drop)
    }

    pub async fn create_user(&self, body: &Value) -> Result<DirUser, GraphError> {
        let answer = self.graph.call(Method::POST, "/users", Some(body)).await?;
        // Graph answers with a few default properties only: what was asked for fills the rest.
        let mut known = body.clone();
        if let Some(fields) = answer.body.value().as_object() {
            for (k, v) in fields.iter().filter(|(_, v)| !v.is_null()) {
                known[k] = v.clone();
            }
        }
        let user: DirUser = decode(known, "created user")?;
        self.view.created_user(user.clone());
        Ok(user)
    }

    pub async fn update_user(&self, id: &str, patch: &Value) -> Result<(), GraphError> {
        self.graph
            .call(Method::PATCH, &format!("/users/{}", segment(id)), Some(patch))
            .await?;
        self.view.wrote_user(id, |u| apply_patch(u, patch));
        Ok(())
    }

    pub async fn delete_user(&self, id: &str) -> Result<(), GraphError> {
        if self.delete(&format!("/users/{}", segment(id))).await? {
            self.view.forget_user(id);
        }
        Ok(())
    }

    /// A DELETE where "already gone" counts as done; `true` when this request deleted it.
    async fn delete(&self, path: &str) -> Result<bool, GraphError> {
        match self.graph.call(Method::DELETE, path, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds and removes licences on a user in one call.
    pub async fn assign_user_licenses(
        &self,
        id: &str,
        add: &[AssignedLicense],
        remove: &[String],
    ) -> Result<(), GraphError> {
        self.assign("users", id, add, remove).await?;
        self.view.wrote_user(id, |u| apply_licenses(u, add, remove));
        Ok(())
    }

    /// Asks group licensing to process the user again (after the cause of a licence error is
    /// gone): https://learn.microsoft.com/graph/api/user-reprocesslicenseassignment. The view
    /// forgets the user, whose licence states Graph recomputes.
    pub async fn reprocess_licenses(&self, id: &str) -> Result<(), GraphError> {
        let path = format!("/users/{}/reprocessLicenseAssignment", segment(id));
        let result = self.graph.call(Method::POST, &path, None).await.map(drop);
        self.view.forget_user(id);
        result
    }

    pub async fn assign_group_licenses(
        &self,
        id: &str,
        add: &[AssignedLicense],
        remove: &[String],
    ) -> Result<(), GraphError> {
        self.assign("groups", id, add, remove).await?;
        self.view.forget_group(id);
        Ok(())
    }

    async fn assign(
        &self,
        kind: &str,
        id: &str,
        add: &[AssignedLicense],
        remove: &[String],
    ) -> Result<(), GraphError> {
        let add: Vec<Value> = add
            .iter()
            .map(|a| json!({"skuId": a.sku_id, "disabledPlans": a.disabled_plans}))
            .collect();
        let body = json!({"addLicenses": add, "removeLicenses": remove});
        self.graph
            .call(
                Method::POST,
                &format!("/{kind}/{}/assignLicense", segment(id)),
                Some(&body),
            )
            .await
            .map(drop)
    }

    pub async fn group(&self, id: &str) -> Result<Option<DirGroup>, GraphError> {
        let group = match self
            .graph
            .get_as::<DirGroup>(&format!("/groups/{}?$select={GROUP_SELECT}", segment(id)))
            .await
        {
            Ok(group) => Some(group),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        self.view.read_group(id, group.as_ref());
        Ok(group)
    }

    /// Groups by object id, in one request (at most [`IN_LIMIT`] ids); each id Graph does not
    /// show is read on its own, so a group is never taken for gone on a listing's word alone.
    pub async fn groups_by_id(&self, ids: &[String]) -> Result<(), GraphError> {
        let query =
            crate::graph::client::encode_query(&[("$filter", &id_in(ids)), ("$select", GROUP_SELECT)]);
        let listed: Vec<DirGroup> = self.graph.list_as(&format!("/groups?{query}")).await?;
        for g in &listed {
            self.view.read_group(&g.id, Some(g));
        }
        let unlisted = ids
            .iter()
            .filter(|id| !listed.iter().any(|g| g.id.eq_ignore_ascii_case(id)));
        for failed in join_all(unlisted.map(|id| self.group(id))).await {
            failed?;
        }
        Ok(())
    }

    /// A group from the view when it knows it, else from Graph.
    pub async fn cached_group(&self, id: &str) -> Result<Option<DirGroup>, GraphError> {
        match self.view.group(id) {
            Lookup::Found(g) => Ok(Some(g)),
            Lookup::Absent => Ok(None),
            Lookup::Unknown => self.group(id).await,
        }
    }

    /// Every group with exactly this display name (more than one is possible in Entra).
    pub async fn groups_named(&self, name: &str) -> Result<Vec<DirGroup>, GraphError> {
        let filter = format!("displayName eq {}", odata_string(name));
        let query = crate::graph::client::encode_query(&[("$filter", &filter), ("$select", GROUP_SELECT)]);
        let items = self.graph.list(&format!("/groups?{query}")).await?;
        items.into_iter().map(|v| decode(v, "group")).collect()
    }

    pub async fn create_group(
        &self,
        name: &str,
        nickname: &str,
        description: &str,
    ) -> Result<DirGroup, GraphError> {
        let body = json!({
            "displayName": name,
            "mailNickname": nickname,
            "description": description,
            "mailEnabled": false,
            "securityEnabled": true,
        });
        let answer = self.graph.call(Method::POST, "/groups", Some(&body)).await?;
        let group: DirGroup = decode(answer.body.value(), "created group")?;
        self.view.read_group(&group.id, Some(&group));
        Ok(group)
    }

    pub async fn delete_group(&self, id: &str) -> Result<(), GraphError> {
        if self.delete(&format!("/groups/{}", segment(id))).await? {
            self.view.forget_group(id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("o'brien@x.example"), "o%27brien%40x.example");
        assert_eq!(segment("a b#c/d"), "a%20b%23c%2Fd");
    }

    #[test]
    fn only_extension_attributes_that_hold_a_value_are_kept() {
        let u: DirUser = serde_json::from_value(json!({
            "id": "1", "userPrincipalName": "a@b.c",
            "onPremisesExtensionAttributes": {"extensionAttribute1": null, "extensionAttribute7": "V1"},
        }))
        .unwrap();
        let kept: Vec<&String> = u.on_premises_extension_attributes.keys().collect();
        assert_eq!(kept, ["extensionAttribute7"]);
        let none: DirUser = serde_json::from_value(
            json!({"id": "1", "userPrincipalName": "a@b.c", "onPremisesExtensionAttributes": null}),
        )
        .unwrap();
        assert!(none.on_premises_extension_attributes.is_empty());
    }

    #[test]
    fn managed_markers_are_recognised() {
        let mut u: DirUser = serde_json::from_value(
            json!({"id": "1", "userPrincipalName": "a@b.c", "employeeType": "remoteassist.dev/uid-1"}),
        )
        .unwrap();
        assert_eq!(u.managed_by(), Some("uid-1"));
        u.employee_type = Some("Contractor".into());
        assert_eq!(u.managed_by(), None);
    }
}
