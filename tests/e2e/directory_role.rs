//! Least privilege inside the tenant: the operator sets passwords under *User Administrator*
//! scoped to the administrative unit that holds only its accounts (the default seed's grant).
//! A rotation works; the same grant refuses a password update on anyone outside the unit; and
//! without the role a rotation shows `DirectoryRoleMissing`, naming the role, while the old
//! password keeps working.

use crate::env::Env;
use crate::fixtures::{license, vendor};
use std::time::Duration;

const RAL: &str = "remoteassistlicense";
const DOMAIN: &str = "vendors.abc.example";

fn rotate(ns: &str, name: &str, request: &str) {
    crate::cluster::kubectl_ok(
        &[
            "annotate",
            "--overwrite",
            RAL,
            "-n",
            ns,
            name,
            &format!("remoteassist.dev/rotate-credentials={request}"),
        ],
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_rotation_works_under_a_role_scoped_to_the_accounts_unit_and_nowhere_else() {
    let mut env = Env::start("role").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    let name = format!("{}-t1", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]));
    env.apply(license(&ns, &name).vendor(&v));
    env.spawn_operator(&["--rotation-interval", "1s"]);
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    let upn = format!("{name}@{DOMAIN}");
    let secret = format!("{name}-credentials");

    // The grant is scoped: to a unit, and the account is in it by the operator's mark.
    {
        let roles = env.sim.sim.roles.lock().unwrap();
        let operator = roles.assignments.iter().find(|a| a.role == "User Administrator");
        assert!(operator.is_some_and(|a| a.unit.is_some()), "{roles:?}");
    }
    let first = env.secret_password(&ns, &secret).unwrap();
    rotate(&ns, &name, "1");
    env.wait_for("a rotated password", Duration::from_secs(30), async || {
        env.secret_password(&ns, &secret).is_some_and(|p| p != first)
    })
    .await;
    let second = env.secret_password(&ns, &secret).unwrap();
    assert!(
        env.password_works(&upn, &second).await,
        "the new password signs in"
    );

    // The same identity cannot set the password of anyone outside the unit.
    let outsider = format!("{}-outsider@{DOMAIN}", env.id);
    env.seed_user(&outsider, "Outsider-Passw0rd!", &[]).await;
    let id = env.user(&outsider).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = serde_json::json!({"passwordProfile": {"password": "Stolen-Passw0rd!9", "forceChangePasswordNextSignIn": false}});
    let refused = env
        .operator_directory()
        .update_user(&id, &patch)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert!(env.password_works(&outsider, "Outsider-Passw0rd!").await);

    // Without the role, a rotation names it and changes nothing.
    env.sim.sim.roles.lock().unwrap().assignments.clear();
    rotate(&ns, &name, "2");
    env.wait_condition(
        RAL,
        Some(&ns),
        &name,
        "AccountReady",
        "False",
        Some("DirectoryRoleMissing"),
    )
    .await;
    let ral = env.get(RAL, Some(&ns), &name).unwrap();
    let ready = ral["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "AccountReady")
        .map(|c| c["message"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(ready.contains("User Administrator"), "{ready}");
    assert!(ready.contains("administrative unit"), "{ready}");
    assert!(
        env.password_works(&upn, &second).await,
        "the old password still signs in"
    );
    assert_eq!(
        env.secret_password(&ns, &secret).as_deref(),
        Some(second.as_str())
    );
}
