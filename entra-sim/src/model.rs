//! The tenant's directory state: users, groups, subscribed SKUs, deleted items, and the seat
//! accounting that keeps `consumedUnits` exact.

use crate::seed::{Seed, SeedGroup, SeedSku, SeedUser};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// One licence on a user or group: the SKU and the service plans left disabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assigned {
    pub sku_id: String,
    pub disabled_plans: Vec<String>,
}

/// One entry of a user's `licenseAssignmentStates`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignmentState {
    pub sku_id: String,
    pub assigned_by_group: Option<String>,
    pub disabled_plans: Vec<String>,
    /// `Active` or `Error`.
    pub state: &'static str,
    /// `None` or e.g. `CountViolation`, `ProhibitedInUsageLocationViolation`.
    pub error: &'static str,
    pub last_updated: String,
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    pub mail_nickname: String,
    pub account_enabled: bool,
    /// When `accountEnabled` last became true (creation enabled, a PATCH false -> true, or the
    /// restore of a deleted user that was enabled).
    pub enabled_at: Option<jiff::Timestamp>,
    /// How many times the user was enabled (as for `enabled_at`) while no applied barrier
    /// covered it.
    pub enabled_uncovered: u32,
    pub usage_location: Option<String>,
    /// A usage location written but not yet visible to licence assignment (replication).
    pub pending_usage_location: Option<(Option<String>, Instant)>,
    pub department: Option<String>,
    pub company_name: Option<String>,
    pub employee_type: Option<String>,
    pub extension_attributes: BTreeMap<u8, String>,
    pub password: Option<String>,
    /// Display names of the directory roles the user holds (e.g. "User Administrator").
    pub directory_roles: Vec<String>,
    /// Refresh tokens (delegated sign-ins) issued before this instant are revoked: set by
    /// `revokeSignInSessions` and by a password change (Entra's `signInSessionsValidFromDateTime`).
    pub tokens_valid_from: Option<jiff::Timestamp>,
    pub direct: Vec<Assigned>,
    pub states: Vec<AssignmentState>,
    pub created: String,
    pub deleted: Option<(String, Instant)>,
    /// Before this instant the user is invisible to reads and references (replication delay).
    pub visible_at: Instant,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub mail_nickname: String,
    pub description: Option<String>,
    pub mail_enabled: bool,
    pub security_enabled: bool,
    pub group_types: Vec<String>,
    pub members: BTreeSet<String>,
    pub licenses: Vec<Assigned>,
    pub created: String,
    pub visible_at: Instant,
}

#[derive(Clone, Debug)]
pub struct Sku {
    pub sku_id: String,
    pub part_number: String,
    pub prepaid: i64,
    pub plans: Vec<(String, String)>, // (id, name)
}

/// The directory.
pub struct Tenant {
    pub tenant_id: String,
    pub initial_domain: String,
    pub domains: Vec<String>,
    pub users: BTreeMap<String, User>,
    pub upn_index: HashMap<String, String>,
    pub deleted_users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    pub skus: Vec<Sku>,
    pub consumed: HashMap<String, i64>,
    /// Users with a usage location still replicating, so settling never scans every user.
    pub pending_locations: BTreeSet<String>,
    /// Information barriers (segments, policies, applications, the applied state).
    pub barriers: crate::compliance::state::Barriers,
    /// Service plan names that conflict, from the seed's `mutuallyExclusivePlans`.
    pub exclusive_plans: Vec<[String; 2]>,
    /// `[dependent, required]` plan names, from the seed's `planDependencies`.
    pub plan_dependencies: Vec<[String; 2]>,
    /// Plans that give a mailbox, from the seed's `mailboxPlans`.
    pub mailbox_plans: Vec<String>,
}

impl Sku {
    fn from_seed(s: &SeedSku) -> Sku {
        Sku {
            sku_id: s.sku_id.clone(),
            part_number: s.sku_part_number.clone(),
            prepaid: s.prepaid_units,
            plans: s
                .service_plans
                .iter()
                .map(|p| (p.service_plan_id.clone(), p.service_plan_name.clone()))
                .collect(),
        }
    }
}

impl User {
    /// A seeded user, visible from `now`; the nickname defaults to the UPN's local part.
    pub(crate) fn from_seed(u: &SeedUser, now: Instant) -> User {
        let id = u.id.clone().unwrap_or_else(new_id);
        let nickname = u.mail_nickname.clone().unwrap_or_else(|| {
            u.user_principal_name
                .split('@')
                .next()
                .unwrap_or_default()
                .to_owned()
        });
        User {
            id,
            upn: u.user_principal_name.clone(),
            display_name: u.display_name.clone(),
            mail_nickname: nickname,
            account_enabled: u.account_enabled,
            enabled_at: u.account_enabled.then(jiff::Timestamp::now),
            enabled_uncovered: 0,
            usage_location: u.usage_location.clone(),
            pending_usage_location: None,
            department: u.department.clone(),
            company_name: None,
            employee_type: None,
            extension_attributes: BTreeMap::new(),
            password: u.password.clone(),
            directory_roles: u.directory_roles.clone(),
            tokens_valid_from: None,
            direct: Vec::new(),
            states: Vec::new(),
            created: now_string(),
            deleted: None,
            visible_at: now,
        }
    }
}

impl Group {
    /// A seeded security group, visible from `now`; members not in `upn_index` are left out.
    fn from_seed(g: &SeedGroup, upn_index: &HashMap<String, String>, now: Instant) -> Group {
        let id = g.id.clone().unwrap_or_else(new_id);
        let members = g
            .members
            .iter()
            .filter_map(|upn| upn_index.get(&upn.to_lowercase()).cloned())
            .collect();
        Group {
            id,
            display_name: g.display_name.clone(),
            mail_nickname: g
                .mail_nickname
                .clone()
                .unwrap_or_else(|| g.display_name.replace(' ', "")),
            description: None,
            mail_enabled: false,
            security_enabled: true,
            group_types: Vec::new(),
            members,
            licenses: Vec::new(),
            created: now_string(),
            visible_at: now,
        }
    }
}

pub fn now_string() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Tenant {
    pub fn from_seed(seed: &Seed) -> Tenant {
        let now = Instant::now();
        let mut t = Tenant {
            tenant_id: seed.tenant_id.clone(),
            initial_domain: seed.initial_domain.clone(),
            domains: std::iter::once(seed.initial_domain.clone())
                .chain(seed.verified_domains.iter().cloned())
                .collect(),
            users: BTreeMap::new(),
            upn_index: HashMap::new(),
            deleted_users: BTreeMap::new(),
            groups: BTreeMap::new(),
            skus: seed.skus.iter().map(Sku::from_seed).collect(),
            consumed: HashMap::new(),
            pending_locations: BTreeSet::new(),
            exclusive_plans: seed.mutually_exclusive_plans.clone(),
            plan_dependencies: seed.plan_dependencies.clone(),
            mailbox_plans: seed.mailbox_plans.clone(),
            barriers: crate::compliance::state::Barriers {
                mode: seed.information_barrier_mode,
                segment_limit_override: seed.information_barrier_segment_limit,
                ..Default::default()
            },
        };
        for u in &seed.users {
            t.insert_user(User::from_seed(u, now));
        }
        // After the users: members are named by UPN.
        for g in &seed.groups {
            let group = Group::from_seed(g, &t.upn_index, now);
            t.groups.insert(group.id.clone(), group);
        }
        t
    }

    pub fn insert_user(&mut self, user: User) {
        self.upn_index.insert(user.upn.to_lowercase(), user.id.clone());
        self.users.insert(user.id.clone(), user);
    }

    /// Resolves a user by object id or user principal name, ignoring replication visibility.
    pub fn user_id(&self, key: &str) -> Option<String> {
        if self.users.contains_key(key) {
            return Some(key.to_owned());
        }
        self.upn_index.get(&key.to_lowercase()).cloned()
    }

    pub fn sku(&self, sku_id: &str) -> Option<&Sku> {
        self.skus.iter().find(|s| s.sku_id.eq_ignore_ascii_case(sku_id))
    }

    /// The SKUs a user holds from any source (direct or group), each counted once.
    pub fn effective_skus(user: &User) -> BTreeSet<String> {
        user.states
            .iter()
            .filter(|s| s.state == "Active")
            .map(|s| s.sku_id.clone())
            .collect()
    }

    /// The service plan names a licence enables (the SKU's plans less its disabled ones).
    fn enabled_plans(&self, a: &Assigned) -> Vec<&str> {
        self.sku(&a.sku_id).map_or_else(Vec::new, |s| {
            s.plans
                .iter()
                .filter(|(id, _)| !a.disabled_plans.iter().any(|d| d.eq_ignore_ascii_case(id)))
                .map(|(_, name)| name.as_str())
                .collect()
        })
    }

    /// Whether an inherited licence enables a plan that conflicts with one a licence already
    /// held enables: group licensing records `MutuallyExclusiveViolation` and never resolves
    /// it itself ("Conflicting service plans",
    /// https://learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems).
    fn conflicts(&self, a: &Assigned, held: &[Assigned]) -> bool {
        let mine = self.enabled_plans(a);
        held.iter().filter(|h| h.sku_id != a.sku_id).any(|h| {
            let theirs = self.enabled_plans(h);
            self.exclusive_plans.iter().any(|[x, y]| {
                (mine.contains(&x.as_str()) && theirs.contains(&y.as_str()))
                    || (mine.contains(&y.as_str()) && theirs.contains(&x.as_str()))
            })
        })
    }

    /// Whether an inherited licence enables a plan whose required plan neither it nor a
    /// licence already held enables ("Service plan dependency", same page).
    fn misses_dependency(&self, a: &Assigned, held: &[Assigned]) -> bool {
        let mine = self.enabled_plans(a);
        self.plan_dependencies.iter().any(|[dependent, required]| {
            mine.contains(&dependent.as_str())
                && !mine.contains(&required.as_str())
                && !held
                    .iter()
                    .any(|h| self.enabled_plans(h).contains(&required.as_str()))
        })
    }

    /// Whether an inherited licence would give `user` a mailbox whose address another user's
    /// mailNickname already takes ("Duplicate proxy addresses", same page).
    fn address_taken(&self, user_id: &str, a: &Assigned) -> bool {
        let mine = self.enabled_plans(a);
        if !self.mailbox_plans.iter().any(|p| mine.contains(&p.as_str())) {
            return false;
        }
        let Some(nickname) = self.users.get(user_id).map(|u| &u.mail_nickname) else {
            return false;
        };
        self.users
            .values()
            .any(|o| o.id != user_id && o.deleted.is_none() && o.mail_nickname.eq_ignore_ascii_case(nickname))
    }

    /// Free seats of a SKU.
    pub fn free(&self, sku_id: &str) -> i64 {
        let prepaid = self.sku(sku_id).map(|s| s.prepaid).unwrap_or(0);
        prepaid - self.consumed.get(sku_id).copied().unwrap_or(0)
    }

    /// Recomputes a user's licence states from its direct licences and its groups' licences,
    /// keeping `consumed` exact. A state that cannot get a seat or lacks a usage location is
    /// recorded with its error, as group-based licensing reports it.
    pub fn recompute_licenses(&mut self, user_id: &str) {
        self.process_licenses(user_id, false);
    }

    /// Processes a user's licences again, inherited ones in error included
    /// (`reprocessLicenseAssignment`); each group state is stamped with the time.
    pub fn reprocess_licenses(&mut self, user_id: &str) {
        self.process_licenses(user_id, true);
        if let Some(u) = self.users.get_mut(user_id) {
            let now = now_string();
            for s in u.states.iter_mut().filter(|s| s.assigned_by_group.is_some()) {
                s.last_updated = now.clone();
            }
        }
    }

    /// An inherited licence in error stays in error until the user is reprocessed or the group's
    /// licence on it changes: group licensing records the error and does not retry by itself
    /// (https://learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems,
    /// "Force group license processing to resolve errors"; freed seats alone do not fix it).
    fn process_licenses(&mut self, user_id: &str, reprocess: bool) {
        let Some(user) = self.users.get(user_id) else {
            return;
        };
        let before = Tenant::effective_skus(user);
        let mut wanted: Vec<(Assigned, Option<String>)> =
            user.direct.iter().cloned().map(|a| (a, None)).collect();
        for g in self.groups.values() {
            if g.members.contains(user_id) {
                for a in &g.licenses {
                    wanted.push((a.clone(), Some(g.id.clone())));
                }
            }
        }
        let has_location = user.usage_location.is_some();
        let old_states = user.states.clone();
        let mut holding: BTreeSet<String> = BTreeSet::new();
        let mut held: Vec<Assigned> = Vec::new();
        let mut states = Vec::new();
        for (a, by_group) in wanted {
            let previous = old_states
                .iter()
                .find(|s| s.sku_id == a.sku_id && s.assigned_by_group == by_group);
            let already = before.contains(&a.sku_id) || holding.contains(&a.sku_id);
            let stuck = previous.filter(|p| {
                !reprocess
                    && p.assigned_by_group.is_some()
                    && p.state == "Error"
                    && p.disabled_plans == a.disabled_plans
            });
            let (state, error) = if let Some(p) = stuck {
                ("Error", p.error)
            } else if !has_location {
                ("Error", "ProhibitedInUsageLocationViolation")
            } else if by_group.is_some() && self.conflicts(&a, &held) {
                ("Error", "MutuallyExclusiveViolation")
            } else if by_group.is_some() && self.misses_dependency(&a, &held) {
                ("Error", "DependencyViolation")
            } else if by_group.is_some() && self.address_taken(user_id, &a) {
                ("Error", "UniquenessViolation")
            } else if already || self.free(&a.sku_id) > 0 {
                // Each SKU takes at most one seat per user, so `free` needs no adjustment for
                // seats taken earlier in this loop.
                ("Active", "None")
            } else {
                ("Error", "CountViolation")
            };
            if state == "Active" {
                holding.insert(a.sku_id.clone());
                held.push(a.clone());
            }
            let unchanged = previous.is_some_and(|p| {
                p.state == state && p.error == error && p.disabled_plans == a.disabled_plans
            });
            states.push(AssignmentState {
                sku_id: a.sku_id,
                assigned_by_group: by_group,
                disabled_plans: a.disabled_plans,
                state,
                error,
                last_updated: if unchanged {
                    previous.unwrap().last_updated.clone()
                } else {
                    now_string()
                },
            });
        }
        for sku in before.difference(&holding) {
            *self.consumed.entry(sku.clone()).or_default() -= 1;
        }
        for sku in holding.difference(&before) {
            *self.consumed.entry(sku.clone()).or_default() += 1;
        }
        self.users.get_mut(user_id).unwrap().states = states;
    }

    /// Recomputes every member of every group with licences (group-based licensing's
    /// asynchronous processing), and users who lost a group licence.
    pub fn process_group_licensing(&mut self) {
        let mut affected: BTreeSet<String> = BTreeSet::new();
        for g in self.groups.values() {
            if !g.licenses.is_empty() {
                affected.extend(g.members.iter().cloned());
            }
        }
        for (id, u) in &self.users {
            if u.states.iter().any(|s| s.assigned_by_group.is_some()) {
                affected.insert(id.clone());
            }
        }
        for id in affected {
            self.recompute_licenses(&id);
        }
    }

    /// Applies pending usage locations whose replication delay has passed.
    pub fn settle_replication(&mut self, now: Instant) {
        if self.pending_locations.is_empty() {
            return;
        }
        for id in std::mem::take(&mut self.pending_locations) {
            let Some(u) = self.users.get_mut(&id) else {
                continue;
            };
            match u.pending_usage_location.take() {
                Some((loc, at)) if at <= now => u.usage_location = loc,
                Some(still) => {
                    u.pending_usage_location = Some(still);
                    self.pending_locations.insert(id);
                }
                None => {}
            }
        }
    }

    /// Purges soft-deleted users past the retention period.
    pub fn purge_expired(&mut self, retention: Duration, now: Instant) {
        self.deleted_users.retain(|_, u| {
            u.deleted
                .as_ref()
                .is_some_and(|(_, at)| now.duration_since(*at) < retention)
        });
    }
}

impl User {
    /// The full JSON representation (every property the simulator knows).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut ext = Map::new();
        for n in 1..=15u8 {
            ext.insert(
                format!("extensionAttribute{n}"),
                self.extension_attributes
                    .get(&n)
                    .map_or(Value::Null, |v| json!(v)),
            );
        }
        let assigned: Vec<Value> = {
            let mut seen = BTreeSet::new();
            self.states
                .iter()
                .filter(|s| s.state == "Active" && seen.insert(s.sku_id.clone()))
                .map(|s| json!({"skuId": s.sku_id, "disabledPlans": s.disabled_plans}))
                .collect()
        };
        let states: Vec<Value> = self
            .states
            .iter()
            .map(|s| {
                json!({"skuId": s.sku_id, "assignedByGroup": s.assigned_by_group, "disabledPlans": s.disabled_plans,
                       "state": s.state, "error": s.error, "lastUpdatedDateTime": s.last_updated})
            })
            .collect();
        let value = json!({
            "id": self.id,
            "userPrincipalName": self.upn,
            "displayName": self.display_name,
            "mailNickname": self.mail_nickname,
            "accountEnabled": self.account_enabled,
            "usageLocation": self.usage_location,
            "department": self.department,
            "companyName": self.company_name,
            "employeeType": self.employee_type,
            "givenName": null, "surname": null, "jobTitle": null, "mail": null, "mobilePhone": null,
            "officeLocation": null, "preferredLanguage": null, "businessPhones": [],
            "createdDateTime": self.created,
            "deletedDateTime": self.deleted.as_ref().map(|(d, _)| d.clone()),
            "onPremisesExtensionAttributes": ext,
            "assignedLicenses": assigned,
            "licenseAssignmentStates": states,
        });
        match value {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }
}

/// Properties Graph returns for a user when no `$select` is given.
pub const USER_DEFAULT_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

impl Group {
    pub fn to_json(&self) -> Map<String, Value> {
        let value = json!({
            "id": self.id,
            "displayName": self.display_name,
            "mailNickname": self.mail_nickname,
            "description": self.description,
            "mailEnabled": self.mail_enabled,
            "securityEnabled": self.security_enabled,
            "groupTypes": self.group_types,
            "createdDateTime": self.created,
            "assignedLicenses": self.licenses.iter().map(|a| json!({"skuId": a.sku_id, "disabledPlans": a.disabled_plans})).collect::<Vec<_>>(),
        });
        match value {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }
}
