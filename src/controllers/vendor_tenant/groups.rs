//! A vendor's two groups (pure): which same-named group to bind, the nickname of one to create,
//! and the engineers' membership changes. A `Conflict` when several could be bound, never a guess.

use crate::directory::DirGroup;
use std::collections::BTreeSet;

/// Picks the group among same-named candidates (pure): ours first, then a single unmanaged one.
pub fn choose(
    candidates: Vec<DirGroup>,
    owner_uid: Option<&str>,
    name: &str,
) -> Result<Option<DirGroup>, String> {
    // `None` (the plan command, which knows no uids) takes any operator-made group as its own.
    let is_ours =
        |g: &DirGroup| g.managed_by().is_some() && owner_uid.is_none_or(|uid| g.managed_by() == Some(uid));
    let (ours, others): (Vec<_>, Vec<_>) = candidates.into_iter().partition(is_ours);
    if let Some(g) = ours.into_iter().next() {
        return Ok(Some(g));
    }
    // A group another VendorTenant made is never taken over: two vendors sharing a group would
    // share their accounts' barrier.
    if let Some(g) = others.iter().find(|g| g.managed_by().is_some()) {
        return Err(format!(
            "group {name} ({}) is managed by another VendorTenant (uid {}); choose another display name",
            g.id,
            g.managed_by().unwrap_or_default()
        ));
    }
    match others.len() {
        0 => Ok(None),
        1 => Ok(others.into_iter().next()),
        n => Err(format!(
            "{n} groups are named {name}; rename all but one in Entra (or set its object id in status) so the operator does not guess"
        )),
    }
}

/// A mail nickname from a display name: Graph allows ASCII letters, digits and a few symbols.
pub fn nickname(name: &str) -> String {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    if n.is_empty() { "remoteassist".into() } else { n }
}

/// Membership changes for the engineers' group (pure).
pub fn membership_changes(
    wanted: &BTreeSet<String>,
    current: &BTreeSet<String>,
    exclusive: bool,
) -> (Vec<String>, Vec<String>) {
    let add = wanted.difference(current).cloned().collect();
    let remove = if exclusive {
        current.difference(wanted).cloned().collect()
    } else {
        Vec::new()
    };
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::MANAGED_GROUP_PREFIX;

    fn group(id: &str, description: Option<&str>) -> DirGroup {
        DirGroup {
            id: id.into(),
            display_name: "V1_RemoteAssistUser".into(),
            description: description.map(str::to_owned),
            assigned_licenses: vec![],
        }
    }

    #[test]
    fn several_same_named_groups_are_a_conflict_unless_one_is_ours() {
        let ours = format!("{MANAGED_GROUP_PREFIX}uid-1");
        let me = Some("uid-1");
        assert!(choose(vec![group("a", None), group("b", None)], me, "V1").is_err());
        let picked = choose(vec![group("a", None), group("b", Some(&ours))], me, "V1").unwrap();
        assert_eq!(picked.unwrap().id, "b");
        assert_eq!(choose(vec![group("a", None)], me, "V1").unwrap().unwrap().id, "a");
        assert!(choose(vec![], me, "V1").unwrap().is_none());
        let theirs = format!("{MANAGED_GROUP_PREFIX}uid-2");
        let e = choose(vec![group("c", Some(&theirs))], me, "V1").unwrap_err();
        assert!(e.contains("managed by another VendorTenant"), "{e}");
        assert_eq!(
            choose(vec![group("c", Some(&theirs))], None, "V1")
                .unwrap()
                .unwrap()
                .id,
            "c"
        );
    }

    #[test]
    fn exclusive_membership_removes_only_in_exclusive_mode() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        let (add, remove) = membership_changes(&s(&["a", "b"]), &s(&["b", "c"]), true);
        assert_eq!((add, remove), (vec!["a".to_string()], vec!["c".to_string()]));
        let (_, remove) = membership_changes(&s(&["a"]), &s(&["c"]), false);
        assert!(remove.is_empty());
    }

    #[test]
    fn nicknames_keep_only_allowed_characters() {
        assert_eq!(nickname("V1_RemoteAssistUser"), "V1_RemoteAssistUser");
        assert_eq!(nickname("Vendor (One) é"), "VendorOne");
        assert_eq!(nickname("ééé"), "remoteassist");
    }
}
