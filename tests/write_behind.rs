//! Adds to a group written behind, against the simulated tenant over HTTP: adds that wait
//! together go in `members@odata.bind` PATCHes of 20, a PATCH Graph refuses for one reference
//! falls back to single adds so each owner hears about its own account, a failure reaches its
//! owner's next ask once, and without a sender an add is sent on the spot.

use entra_sim::Seed;
use entra_sim::seed::{SeedGroup, SeedUser};
use remote_assist_operator::directory::Directory;
use remote_assist_operator::directory::write_behind::Joined;
use remote_assist_operator::graph::{Budget, BudgetConfig};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

#[path = "common/graph_sim.rs"]
mod graph_sim;
use graph_sim::{client, counters, secret, sim};

/// A tenant with group `G` (holding `already` of the users) and `n` users `wb<i>@abc.example`.
fn seed(n: usize, already: &[usize]) -> Seed {
    let mut seed = Seed::default_seed();
    let upn = |i: usize| format!("wb{i}@abc.example");
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"userPrincipalName": upn(i), "displayName": format!("WB {i}")}))
        .collect();
    let members: Vec<String> = already.iter().map(|&i| upn(i)).collect();
    let group = json!([{"displayName": "G", "members": members}]);
    seed.users
        .extend(serde_json::from_value::<Vec<SeedUser>>(json!(users)).expect("users"));
    seed.groups
        .extend(serde_json::from_value::<Vec<SeedGroup>>(group).expect("group"));
    seed
}

struct Tenant {
    sim: entra_sim::RunningSim,
    dir: Arc<Directory>,
    group: String,
    users: Vec<String>,
}

async fn tenant(n: usize, already: &[usize]) -> Tenant {
    let sim = sim(seed(n, already)).await;
    let budget = Budget::new(BudgetConfig::default());
    let dir = Arc::new(Directory::new(client(&sim, secret(), budget), Duration::ZERO));
    let group = dir.groups_named("G").await.unwrap().remove(0).id;
    let mut users = Vec::new();
    for i in 0..n {
        users.push(dir.user(&format!("wb{i}@abc.example")).await.unwrap().unwrap().id);
    }
    reset(&sim).await;
    Tenant {
        sim,
        dir,
        group,
        users,
    }
}

async fn reset(sim: &entra_sim::RunningSim) {
    reqwest::Client::new()
        .post(format!("{}/_sim/counters/reset", sim.url()))
        .send()
        .await
        .unwrap();
}

/// Answers by route and status, e.g. `("PATCH /v1.0/groups/{id}", "204")`.
async fn answered(sim: &entra_sim::RunningSim, route: &str, status: &str) -> u64 {
    counters(sim).await["byRoute"][route][status]
        .as_u64()
        .unwrap_or(0)
}

/// Starts the sender; the owners of answered adds come on the returned channel.
fn start_sender(dir: &Arc<Directory>) -> futures::channel::mpsc::UnboundedReceiver<String> {
    let answers = dir.subscribe_joins();
    let sender = dir.clone();
    tokio::spawn(async move { sender.send_joins_behind().await });
    answers
}

/// Waits for `n` answers and returns their owners.
async fn answers(rx: &mut futures::channel::mpsc::UnboundedReceiver<String>, n: usize) -> BTreeSet<String> {
    use futures::StreamExt;
    let mut owners = BTreeSet::new();
    while owners.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), rx.next()).await;
        owners.insert(next.expect("an answer within 10 s").expect("the sender runs"));
    }
    owners
}

async fn members(t: &Tenant) -> BTreeSet<String> {
    t.dir.members(&t.group).await.unwrap()
}

#[tokio::test]
async fn twenty_five_adds_cost_two_patches_and_every_owner_hears() {
    let t = tenant(25, &[]).await;
    let mut rx = start_sender(&t.dir);
    for (i, user) in t.users.iter().enumerate() {
        let joined = t.dir.join(&t.group, user, &format!("ns/l{i}"), true).await;
        assert!(matches!(joined, Joined::Queued), "{joined:?}");
    }
    let owners = answers(&mut rx, 25).await;
    assert_eq!(owners, (0..25).map(|i| format!("ns/l{i}")).collect());
    assert_eq!(members(&t).await, t.users.iter().cloned().collect());
    assert!(
        t.users.iter().all(|u| t.dir.take_joined(&t.group, u)),
        "each add was sent"
    );
    assert!(!t.dir.take_joined(&t.group, &t.users[0]), "and is told once");
    assert_eq!(
        answered(&t.sim, "PATCH /v1.0/groups/{id}", "204").await,
        2,
        "20 + 5"
    );
    assert_eq!(
        answered(&t.sim, "POST /v1.0/groups/{id}/members/$ref", "204").await,
        0
    );
}

#[tokio::test]
async fn a_patch_refused_for_a_member_already_sends_the_others_together_again() {
    let t = tenant(5, &[0]).await;
    let mut rx = start_sender(&t.dir);
    for (i, user) in t.users.iter().enumerate() {
        t.dir.join(&t.group, user, &format!("ns/l{i}"), true).await;
    }
    assert_eq!(answers(&mut rx, 5).await.len(), 5);
    assert_eq!(members(&t).await.len(), 5);
    assert_eq!(answered(&t.sim, "PATCH /v1.0/groups/{id}", "400").await, 1);
    assert_eq!(
        answered(&t.sim, "PATCH /v1.0/groups/{id}", "204").await,
        1,
        "two reads tell the member from the others, which go together again"
    );
    assert_eq!(
        answered(&t.sim, "POST /v1.0/groups/{id}/members/$ref", "204").await,
        0
    );
    for (i, user) in t.users.iter().enumerate() {
        let joined = t.dir.join(&t.group, user, &format!("ns/l{i}"), true).await;
        assert!(matches!(joined, Joined::Added), "no failure to tell: {joined:?}");
    }
}

/// A pass that looked at the group before the sender's answer asks again after it: the add
/// counts as done, and no second PATCH goes (Graph would refuse it: a member already).
#[tokio::test]
async fn an_add_asked_for_again_after_its_patch_is_not_sent_again() {
    let t = tenant(3, &[]).await;
    let mut rx = start_sender(&t.dir);
    for (i, user) in t.users.iter().enumerate() {
        t.dir.join(&t.group, user, &format!("ns/l{i}"), true).await;
    }
    assert_eq!(answers(&mut rx, 3).await.len(), 3);
    let again = t.dir.join(&t.group, &t.users[1], "ns/l1", true).await;
    assert!(matches!(again, Joined::Added), "{again:?}");
    assert!(
        !t.dir.take_joined(&t.group, &t.users[1]),
        "told once, by the join"
    );
    assert!(
        t.dir.take_joined(&t.group, &t.users[0]),
        "the others still to be told"
    );
    let late = t.dir.join(&t.group, &t.users[2], "ns/l2", true).await;
    assert!(matches!(late, Joined::Added), "{late:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(answered(&t.sim, "PATCH /v1.0/groups/{id}", "204").await, 1);
    assert_eq!(
        answered(&t.sim, "PATCH /v1.0/groups/{id}", "400").await,
        0,
        "nothing sent twice"
    );
    assert_eq!(members(&t).await.len(), 3);
}

#[tokio::test]
async fn a_user_the_directory_does_not_show_yet_is_told_not_found_and_the_others_join() {
    let mut seed = seed(3, &[]);
    // Users created from now on replicate for days: the new one stays unseen.
    seed.misbehaviour.replication_delay_ms = 1_000_000_000;
    let sim = sim(seed).await;
    let dir = Arc::new(Directory::new(
        client(&sim, secret(), Budget::new(BudgetConfig::default())),
        Duration::ZERO,
    ));
    let group = dir.groups_named("G").await.unwrap().remove(0).id;
    let fresh = dir
        .create_user(&json!({
            "accountEnabled": false, "displayName": "New", "mailNickname": "wbnew",
            "userPrincipalName": "wbnew@abc.example",
            "passwordProfile": {"password": "Xq7!long-enough-pass", "forceChangePasswordNextSignIn": false},
        }))
        .await
        .unwrap()
        .id;
    let mut owners = vec![(fresh.clone(), "ns/new".to_owned())];
    for i in 0..3 {
        let id = dir.user(&format!("wb{i}@abc.example")).await.unwrap().unwrap().id;
        owners.push((id, format!("ns/l{i}")));
    }
    reset(&sim).await;
    let mut rx = start_sender(&dir);
    for (id, owner) in &owners {
        dir.join(&group, id, owner, true).await;
    }
    assert_eq!(answers(&mut rx, 4).await.len(), 4);
    match dir.join(&group, &fresh, "ns/new", true).await {
        Joined::Failed(e) => assert!(e.is_not_found() && e.to_string().contains("not shown"), "{e}"),
        other => panic!("the new user's owner hears it is not shown yet: {other:?}"),
    }
    let joined = dir.members(&group).await.unwrap();
    assert_eq!(joined.len(), 3, "the three shown users joined: {joined:?}");
    assert_eq!(answered(&sim, "PATCH /v1.0/groups/{id}", "400").await, 1);
    assert_eq!(answered(&sim, "PATCH /v1.0/groups/{id}", "204").await, 1);
    assert_eq!(
        answered(&sim, "POST /v1.0/groups/{id}/members/$ref", "400").await,
        0,
        "no write per add"
    );
}

#[tokio::test]
async fn a_failed_add_reaches_its_owners_next_ask_once() {
    let t = tenant(1, &[]).await;
    let mut rx = start_sender(&t.dir);
    let nobody = "00000000-0000-4000-8000-00000000dead";
    t.dir.join(&t.group, nobody, "ns/ghost", true).await;
    assert_eq!(answers(&mut rx, 1).await, BTreeSet::from(["ns/ghost".to_owned()]));
    match t.dir.join(&t.group, nobody, "ns/ghost", true).await {
        Joined::Failed(e) => assert!(e.is_not_found(), "{e}"),
        other => panic!("the failure is told: {other:?}"),
    }
    let again = t.dir.join(&t.group, nobody, "ns/ghost", true).await;
    assert!(
        matches!(again, Joined::Queued),
        "told once, then queued again: {again:?}"
    );
}

#[tokio::test]
async fn without_a_sender_an_add_is_sent_on_the_spot() {
    let t = tenant(1, &[]).await;
    let joined = t.dir.join(&t.group, &t.users[0], "ns/l0", true).await;
    assert!(matches!(joined, Joined::Added), "{joined:?}");
    assert_eq!(members(&t).await.len(), 1);
    assert_eq!(
        answered(&t.sim, "POST /v1.0/groups/{id}/members/$ref", "204").await,
        1
    );
}
