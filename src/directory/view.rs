//! The operator's view of the directory objects it looks at again and again: users (by id and
//! UPN) and group memberships. It is filled by listing (every managed user in a few pages, a
//! group's members in one page) rather than one GET per object, kept for one resync period,
//! and updated by the operator's own writes, so a thousand reconciles at steady state cost a
//! handful of requests.
//!
//! An entry the operator wrote but has not read back is *unconfirmed*: good enough to plan the
//! next write, never enough to decide that an account sits in its barrier segment (the
//! directory may not show the write yet).

use super::{AssignedLicense, DirGroup, DirUser, LicenseState};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A user as the view knows it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub user: DirUser,
    /// Read from Graph, rather than written by the operator since.
    pub confirmed: bool,
}

struct Entry<T> {
    at: Instant,
    value: T,
    confirmed: bool,
}

/// A user as the view keeps it: compact JSON in one allocation, decoded again when asked for.
/// A decoded user is a couple of dozen small strings and vectors (about 2 KB with the
/// allocator's rounding); its JSON without the empty fields is about half that, and the view
/// holds every managed user, so this is most of what the operator holds per account.
pub struct Packed {
    json: Box<str>,
    /// The lower-cased user principal name (for forgetting the user by id).
    upn: String,
    /// Marked as the operator's own (the listing of managed users brings it back).
    managed: bool,
}

impl Packed {
    pub fn new(user: &DirUser) -> Self {
        Packed {
            // Serializing a struct of strings, bools and vectors cannot fail.
            json: serde_json::to_string(user).unwrap_or_default().into_boxed_str(),
            upn: key(&user.user_principal_name),
            managed: user.managed_by().is_some(),
        }
    }

    /// `None` only if the JSON the view wrote cannot be read back: then the view does not know
    /// the user, and the caller reads it from Graph.
    fn unpack(&self) -> Option<DirUser> {
        serde_json::from_str(&self.json).ok()
    }
}

#[derive(Default)]
struct Members {
    ids: BTreeSet<String>,
    /// Added or removed by the operator since the group was listed.
    written: HashSet<String>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, Entry<Packed>>,
    by_upn: HashMap<String, String>,
    /// Keys (id or UPN) that Graph said do not exist.
    missing: HashMap<String, Instant>,
    members: HashMap<String, Entry<Members>>,
    groups: HashMap<String, Entry<Option<DirGroup>>>,
}

pub struct View {
    ttl: Duration,
    state: Mutex<State>,
}

/// The objects the view holds besides managed users.
pub struct Known {
    pub groups: Vec<String>,
    pub member_lists: Vec<String>,
    pub other_users: Vec<String>,
}

/// What a lookup found.
pub enum Lookup<T> {
    Found(T),
    Absent,
    /// Not known, or known for longer than the view keeps things: read it.
    Unknown,
}

fn key(k: &str) -> String {
    k.to_ascii_lowercase()
}

impl View {
    pub fn new(ttl: Duration) -> Self {
        View {
            ttl,
            state: Mutex::new(State::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }

    /// Whether something read at `at` is still within what the view keeps.
    pub fn fresh_at(&self, at: Instant) -> bool {
        self.fresh(at)
    }

    pub fn user(&self, k: &str) -> Lookup<Seen> {
        if !self.enabled() {
            return Lookup::Unknown;
        }
        let s = self.state.lock().unwrap();
        let k = key(k);
        let id = s.by_upn.get(&k).unwrap_or(&k);
        if let Some(e) = s.users.get(id).filter(|e| self.fresh(e.at))
            && let Some(user) = e.value.unpack()
        {
            return Lookup::Found(Seen {
                user,
                confirmed: e.confirmed,
            });
        }
        match s.missing.get(&k) {
            Some(at) if self.fresh(*at) => Lookup::Absent,
            _ => Lookup::Unknown,
        }
    }

    /// A user as read from Graph (`None`: Graph says there is no such user).
    pub fn read_user(&self, k: &str, user: Option<&DirUser>) {
        let mut s = self.state.lock().unwrap();
        match user {
            Some(u) => put(&mut s, u, Instant::now(), true),
            None => {
                s.missing.insert(key(k), Instant::now());
            }
        }
    }

    /// Every managed user, as listed from Graph by a listing that started at `started`. Entries
    /// written while the listing ran are newer than it and kept; managed users it no longer
    /// shows are forgotten, so the next look reads them one by one.
    pub fn listed_users(&self, users: Vec<(String, Packed)>, started: Instant) {
        let mut s = self.state.lock().unwrap();
        let listed: HashSet<String> = users.iter().map(|(id, _)| key(id)).collect();
        s.users
            .retain(|id, e| listed.contains(id) || e.at > started || !e.value.managed);
        for (id, u) in users {
            let newer = s.users.get(&key(&id)).is_some_and(|e| e.at > started);
            if !newer {
                s.missing.remove(&u.upn);
                put_packed(&mut s, &id, u, started, true);
            }
        }
    }

    /// The operator wrote this user (created, patched): what it wrote is what it expects.
    pub fn wrote_user(&self, id: &str, change: impl FnOnce(&mut DirUser)) {
        let mut s = self.state.lock().unwrap();
        if let Some(e) = s.users.get_mut(&key(id)) {
            match e.value.unpack() {
                Some(mut user) => {
                    change(&mut user);
                    e.value = Packed::new(&user);
                    e.at = Instant::now();
                    e.confirmed = false;
                }
                None => {
                    let upn = e.value.upn.clone();
                    s.users.remove(&key(id));
                    s.by_upn.remove(&upn);
                }
            }
        }
    }

    pub fn created_user(&self, user: DirUser) {
        let mut s = self.state.lock().unwrap();
        s.missing.remove(&key(&user.user_principal_name));
        s.missing.remove(&key(&user.id));
        put(&mut s, &user, Instant::now(), false);
    }

    /// Forget a user (deleted, restored): the next look reads it.
    pub fn forget_user(&self, id: &str) {
        let mut s = self.state.lock().unwrap();
        if let Some(e) = s.users.remove(&key(id)) {
            s.by_upn.remove(&e.value.upn);
        }
        s.missing.remove(&key(id));
    }

    /// Whether a user is a direct member of a group, and whether that was read from Graph.
    pub fn member(&self, group: &str, user: &str) -> Lookup<(bool, bool)> {
        if !self.enabled() {
            return Lookup::Unknown;
        }
        let s = self.state.lock().unwrap();
        match s.members.get(&key(group)).filter(|e| self.fresh(e.at)) {
            Some(e) => {
                let u = key(user);
                Lookup::Found((e.value.ids.contains(&u), !e.value.written.contains(&u)))
            }
            None => Lookup::Unknown,
        }
    }

    pub fn members(&self, group: &str) -> Option<BTreeSet<String>> {
        if !self.enabled() {
            return None;
        }
        let s = self.state.lock().unwrap();
        s.members
            .get(&key(group))
            .filter(|e| self.fresh(e.at))
            .map(|e| e.value.ids.clone())
    }

    pub fn listed_members(&self, group: &str, ids: &BTreeSet<String>) {
        let mut s = self.state.lock().unwrap();
        s.members.insert(
            key(group),
            Entry {
                at: Instant::now(),
                value: Members {
                    ids: ids.iter().map(|i| key(i)).collect(),
                    written: HashSet::new(),
                },
                confirmed: true,
            },
        );
    }

    /// The operator added or removed this member: what it wrote is what it expects.
    pub fn wrote_membership(&self, group: &str, user: &str, member: bool) {
        self.set_membership(group, user, member, true);
    }

    /// A membership read from Graph for one user (its `memberOf`).
    pub fn read_membership(&self, group: &str, user: &str, member: bool) {
        self.set_membership(group, user, member, false);
    }

    /// Sets one membership in a group's known member list (if the group's members are known);
    /// `written` records whether the operator wrote it rather than read it.
    fn set_membership(&self, group: &str, user: &str, member: bool, written: bool) {
        let mut s = self.state.lock().unwrap();
        if let Some(e) = s.members.get_mut(&key(group)) {
            let u = key(user);
            if member {
                e.value.ids.insert(u.clone());
            } else {
                e.value.ids.remove(&u);
            }
            if written {
                e.value.written.insert(u);
            } else {
                e.value.written.remove(&u);
            }
        }
    }

    /// What a refresh reads again: groups, member lists and users that are not the
    /// operator's own (those come with the listing of managed users).
    pub fn known(&self) -> Known {
        let s = self.state.lock().unwrap();
        Known {
            groups: s
                .groups
                .iter()
                .filter(|(_, e)| e.value.is_some())
                .map(|(id, _)| id.clone())
                .collect(),
            member_lists: s.members.keys().cloned().collect(),
            other_users: s
                .users
                .iter()
                .filter(|(_, e)| !e.value.managed)
                .map(|(id, _)| id.clone())
                .collect(),
        }
    }

    pub fn group(&self, id: &str) -> Lookup<DirGroup> {
        if !self.enabled() {
            return Lookup::Unknown;
        }
        let s = self.state.lock().unwrap();
        match s.groups.get(&key(id)).filter(|e| self.fresh(e.at)) {
            Some(Entry { value: Some(g), .. }) => Lookup::Found(g.clone()),
            Some(_) => Lookup::Absent,
            None => Lookup::Unknown,
        }
    }

    /// A group as read from Graph, or as just created (`None`: no such group).
    pub fn read_group(&self, id: &str, group: Option<&DirGroup>) {
        self.state.lock().unwrap().groups.insert(
            key(id),
            Entry {
                at: Instant::now(),
                value: group.cloned(),
                confirmed: true,
            },
        );
    }

    /// Forget a group (its licences changed, or it was deleted): the next look reads it.
    pub fn forget_group(&self, id: &str) {
        let mut s = self.state.lock().unwrap();
        s.groups.remove(&key(id));
        s.members.remove(&key(id));
    }
}

fn put(s: &mut State, user: &DirUser, at: Instant, confirmed: bool) {
    put_packed(s, &user.id, Packed::new(user), at, confirmed);
}

fn put_packed(s: &mut State, id: &str, user: Packed, at: Instant, confirmed: bool) {
    let id = key(id);
    s.by_upn.insert(user.upn.clone(), id.clone());
    s.users.insert(
        id,
        Entry {
            at,
            value: user,
            confirmed,
        },
    );
}

/// Applies a PATCH body to a user as Graph would (the properties the operator writes).
pub fn apply_patch(user: &mut DirUser, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        return;
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    for (name, v) in fields {
        match name.as_str() {
            "accountEnabled" => user.account_enabled = v.as_bool(),
            "displayName" => user.display_name = text(v),
            "usageLocation" => user.usage_location = text(v),
            "employeeType" => user.employee_type = text(v),
            "department" => user.department = text(v),
            "companyName" => user.company_name = text(v),
            "onPremisesExtensionAttributes" => {
                let attributes = &mut user.on_premises_extension_attributes;
                for (attr, value) in v.as_object().into_iter().flatten() {
                    match text(value) {
                        Some(t) => attributes.insert(attr.clone(), Some(t)),
                        None => attributes.remove(attr),
                    };
                }
            }
            _ => {}
        }
    }
}

/// Applies an `assignLicense` to a user's direct licences.
pub fn apply_licenses(user: &mut DirUser, add: &[AssignedLicense], remove: &[String]) {
    user.assigned_licenses
        .retain(|a| !remove.contains(&a.sku_id) && !add.iter().any(|x| x.sku_id == a.sku_id));
    user.assigned_licenses.extend(add.iter().cloned());
    user.license_assignment_states
        .retain(|s| s.assigned_by_group.is_some() || !remove.contains(&s.sku_id));
    for a in add {
        if !user
            .license_assignment_states
            .iter()
            .any(|s| s.sku_id == a.sku_id && s.assigned_by_group.is_none())
        {
            user.license_assignment_states.push(LicenseState {
                sku_id: a.sku_id.clone(),
                assigned_by_group: None,
                ..LicenseState::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: &str, upn: &str) -> DirUser {
        serde_json::from_value(
            json!({"id": id, "userPrincipalName": upn, "employeeType": "remoteassist.dev/x"}),
        )
        .unwrap()
    }

    fn listed(u: DirUser) -> (String, Packed) {
        let packed = Packed::new(&u);
        (u.id, packed)
    }

    #[test]
    fn a_packed_user_reads_back_as_it_was_and_smaller_than_graph_sent_it() {
        let graph = json!({
            "id": "0f6d8f43-3c59-4b8a-9b1e-6a3e2c1d9a01", "userPrincipalName": "t00001@abc.example",
            "displayName": "Technician", "mailNickname": "t00001", "accountEnabled": false,
            "usageLocation": "US", "employeeType": "remoteassist.dev/uid", "department": null,
            "companyName": null,
            "onPremisesExtensionAttributes": {"extensionAttribute1": null, "extensionAttribute7": "V1"},
            "assignedLicenses": [{"skuId": "s1", "disabledPlans": []}, {"skuId": "s2", "disabledPlans": ["p"]}],
            "licenseAssignmentStates": [{"skuId": "s1", "assignedByGroup": null, "state": "Active",
                "error": "None", "lastUpdatedDateTime": "2026-12-07T00:00:00Z"}],
        });
        let u: DirUser = serde_json::from_value(graph.clone()).unwrap();
        let packed = Packed::new(&u);
        assert_eq!(packed.unpack().as_ref(), Some(&u));
        assert!(packed.managed && packed.upn == "t00001@abc.example");
        assert!(packed.json.len() < graph.to_string().len(), "{}", packed.json);
        let v = View::new(Duration::from_secs(60));
        v.read_user("x", Some(&u));
        let Lookup::Found(seen) = v.user("T00001@abc.example") else {
            panic!("found by UPN")
        };
        assert_eq!(seen.user, u);
        v.forget_user(&u.id);
        assert!(matches!(v.user("t00001@abc.example"), Lookup::Unknown));
    }

    #[test]
    fn written_entries_are_unconfirmed_until_read_back() {
        let v = View::new(Duration::from_secs(60));
        assert!(matches!(v.user("a@x"), Lookup::Unknown));
        v.created_user(user("ID1", "A@x"));
        let Lookup::Found(seen) = v.user("a@X") else {
            panic!("found by UPN, any case")
        };
        assert!(!seen.confirmed);
        v.wrote_user("id1", |u| apply_patch(u, &json!({"accountEnabled": true})));
        v.read_user("id1", Some(&user("ID1", "A@x")));
        let Lookup::Found(seen) = v.user("ID1") else {
            panic!()
        };
        assert!(seen.confirmed && seen.user.account_enabled.is_none());
    }

    #[test]
    fn a_listing_keeps_newer_writes_and_drops_vanished_users() {
        let v = View::new(Duration::from_secs(60));
        let started = Instant::now() - Duration::from_secs(1);
        v.read_user("old", Some(&user("old", "old@x")));
        // Written after the listing started: the listing cannot know it.
        v.created_user(user("new", "new@x"));
        // "old" was read after `started` too, so it is kept; list without both.
        v.listed_users(vec![listed(user("other", "other@x"))], started);
        assert!(matches!(v.user("new"), Lookup::Found(_)));
        assert!(matches!(v.user("other@x"), Lookup::Found(_)));
        let later = Instant::now();
        v.listed_users(vec![], later);
        assert!(
            matches!(v.user("other"), Lookup::Unknown),
            "gone from the listing"
        );
    }

    #[test]
    fn nothing_is_kept_without_a_ttl() {
        let v = View::new(Duration::ZERO);
        v.read_user("a", Some(&user("a", "a@x")));
        assert!(matches!(v.user("a"), Lookup::Unknown));
        v.listed_members("g", &BTreeSet::from(["a".to_owned()]));
        assert!(matches!(v.member("g", "a"), Lookup::Unknown));
    }

    #[test]
    fn licenses_and_memberships_follow_writes() {
        let mut u = user("a", "a@x");
        let l = |s: &str| AssignedLicense {
            sku_id: s.into(),
            disabled_plans: vec![],
        };
        apply_licenses(&mut u, &[l("s1"), l("s2")], &[]);
        apply_licenses(&mut u, &[], &["s1".into()]);
        assert_eq!(u.direct_skus(), vec!["s2".to_owned()]);
        let v = View::new(Duration::from_secs(60));
        v.listed_members("G", &BTreeSet::new());
        v.wrote_membership("g", "A", true);
        assert!(matches!(v.member("g", "a"), Lookup::Found((true, false))));
        v.read_membership("g", "a", true);
        assert!(matches!(v.member("g", "a"), Lookup::Found((true, true))));
    }
}
