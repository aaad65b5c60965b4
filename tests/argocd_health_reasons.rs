//! The Argo CD health checks classify every condition reason the operator can write, the way
//! the operator means it.
//!
//! Each `deploy/argocd/resource_customizations/remoteassist.dev/<Kind>/health.lua` classifies a
//! `Ready` condition that is not True by its reason, through table literals: `TERMINAL`
//! (Degraded), `PROGRESSING` and `SUSPENDED`. A reason in none of them falls through to
//! Progressing, which hides a refusal that needs a person. This test reads those tables and
//! compares them with the registry in `src/crd/reasons.rs`: every reason a kind can carry that is
//! not Healthy must be in the table of its class, and every table entry must be such a reason.

use remote_assist_operator::crd::reasons::{self, Health, Kind};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The tables a health script may have, and the class each stands for.
const TABLES: [(&str, Health); 3] = [
    ("TERMINAL", Health::Degraded),
    ("PROGRESSING", Health::Progressing),
    ("SUSPENDED", Health::Suspended),
];

fn script(kind: Kind) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/argocd/resource_customizations/remoteassist.dev")
        .join(kind.as_str())
        .join("health.lua");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// Lua source without `--` comments (the scripts have no `--` inside strings in their tables).
fn without_comments(lua: &str) -> String {
    lua.lines()
        .map(|l| l.find("--").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The keys of `local NAME = { Key = true, ["Key"] = true, ... }`, or `None` if the script has
/// no such table. Anything else in the table is an error: the test must understand all of it.
fn table(lua: &str, name: &str) -> Option<Result<Vec<String>, String>> {
    let lua = without_comments(lua);
    let head = format!("local {name} = {{");
    let start = lua.find(&head)? + head.len();
    let Some(len) = lua[start..].find('}') else {
        return Some(Err(format!("table {name} is not closed")));
    };
    let mut keys = Vec::new();
    for entry in lua[start..start + len].split([',', ';']) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Some(Err(format!("table {name}: cannot read entry {entry:?}")));
        };
        let key = key.trim();
        let key = key
            .strip_prefix("[\"")
            .and_then(|k| k.strip_suffix("\"]"))
            .unwrap_or(key);
        if value.trim() != "true" || key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Some(Err(format!(
                "table {name}: entry {entry:?} is not `Reason = true`"
            )));
        }
        keys.push(key.to_owned());
    }
    Some(Ok(keys))
}

/// Each reason the script classifies, with its class; problems with the tables themselves.
fn classified(lua: &str) -> (BTreeMap<String, Vec<Health>>, Vec<String>) {
    let mut classes: BTreeMap<String, Vec<Health>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, health) in TABLES {
        match table(lua, name) {
            None => {}
            Some(Err(e)) => problems.push(e),
            Some(Ok(keys)) => {
                for key in keys {
                    classes.entry(key).or_default().push(health);
                }
            }
        }
    }
    (classes, problems)
}

fn table_of(health: Health) -> &'static str {
    TABLES
        .iter()
        .find(|(_, h)| *h == health)
        .map_or("no table (True conditions are Healthy)", |(n, _)| n)
}

#[test]
fn health_scripts_classify_every_reason_like_the_operator() {
    let mut problems = Vec::new();
    for kind in Kind::ALL {
        let (path, lua) = script(kind);
        let file = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(&path)
            .display()
            .to_string();
        let (classes, table_problems) = classified(&lua);
        problems.extend(table_problems.into_iter().map(|p| format!("{file}: {p}")));
        for reason in reasons::carried_by(kind) {
            let lua_class = classes.get(reason.name).map(Vec::as_slice).unwrap_or_default();
            match (reason.health, lua_class) {
                (Health::Healthy, []) => {}
                (want, [got]) if *got == want => {}
                (want, []) => problems.push(format!(
                    "{file}: {} is {} in src/crd/reasons.rs ({}) but in no table, so it falls through to Progressing; add it to {}",
                    reason.name,
                    want.as_str(),
                    reason.meaning,
                    table_of(want)
                )),
                (want, got) => problems.push(format!(
                    "{file}: {} is {} in src/crd/reasons.rs but the script has it as {:?}; it belongs in {}",
                    reason.name,
                    want.as_str(),
                    got.iter().map(|h| table_of(*h)).collect::<Vec<_>>(),
                    table_of(want)
                )),
            }
        }
        for name in classes.keys() {
            match reasons::find(name) {
                None => problems.push(format!(
                    "{file}: {name} is in a table but is not a registered reason (misspelt, or no longer written)"
                )),
                Some(r) if !r.kinds.contains(&kind) => problems.push(format!(
                    "{file}: {name} is in a table but src/crd/reasons.rs says a {} never carries it",
                    kind.as_str()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the Argo CD health checks and src/crd/reasons.rs disagree (after fixing a health.lua, run scripts/lua-health.sh --write-cm):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn table_parser_reads_the_script_layout() {
    let lua = r#"
        -- a comment with Fake = true
        local TERMINAL = {
          -- refused
          Conflict = true, ["NoSeats"] = true; -- trailing
        }
        local PROGRESSING = { Pending = true }
    "#;
    let (classes, problems) = classified(lua);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(classes["Conflict"], [Health::Degraded]);
    assert_eq!(classes["NoSeats"], [Health::Degraded]);
    assert_eq!(classes["Pending"], [Health::Progressing]);
    assert_eq!(classes.len(), 3);
    assert!(
        table("local TERMINAL = { Conflict = 1 }", "TERMINAL")
            .unwrap()
            .is_err()
    );
    assert!(table("local OTHER = {}", "TERMINAL").is_none());
}
