//! End to end: deletion policies, adoption of a pre-existing user, suspension, credential
//! rotation, and seat exhaustion with recovery.

use crate::cluster::kubectl_ok;
use crate::env::Env;
use crate::fixtures::{license, upn, vendor};
use serde_json::{Value, json};
use std::time::Duration;

const RAL: &str = "remoteassistlicense";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn each_deletion_policy_does_what_it_says() {
    let mut env = Env::start("del").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
    let [del, dis, orph] =
        ["Delete", "Disable", "Orphan"].map(|p| format!("{}-{}", env.id, p.to_lowercase()));
    for (name, policy) in [(&del, "Delete"), (&dis, "Disable"), (&orph, "Orphan")] {
        env.apply(license(&ns, name).vendor(&v).deletion_policy(policy));
    }
    env.start_operator();
    for name in [&del, &dis, &orph] {
        env.wait_condition(RAL, Some(&ns), name, "Ready", "True", None)
            .await;
    }
    let group_id = env.get("vendortenant", None, &v).unwrap()["status"]["accountsGroupId"].clone();
    for name in [&del, &dis, &orph] {
        kubectl_ok(&["delete", RAL, "-n", &ns, name, "--timeout=60s"], None);
    }
    // Delete: gone, restorable.
    assert!(env.user(&upn(&del)).await.is_none());
    let state = env.state().await;
    assert!(
        state["deletedUsers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["userPrincipalName"] == upn(&del))
    );
    // Disable: kept, blocked, no licences, out of the group, Secret gone.
    let u = env.user(&upn(&dis)).await.expect("disabled user kept");
    assert_eq!(u["accountEnabled"], false);
    assert_eq!(u["assignedLicenses"].as_array().unwrap().len(), 0);
    assert!(!u["groups"].as_array().unwrap().contains(&group_id));
    assert!(
        env.get("secret", Some(&ns), &format!("{dis}-credentials"))
            .is_none()
    );
    // Orphan: untouched and usable, no longer marked, Secret kept without an owner.
    let u = env.user(&upn(&orph)).await.expect("orphaned user kept");
    assert_eq!(u["accountEnabled"], true);
    assert_eq!(u["assignedLicenses"].as_array().unwrap().len(), 3);
    assert!(u["employeeType"].is_null(), "no longer marked as managed");
    let secret = env
        .get("secret", Some(&ns), &format!("{orph}-credentials"))
        .expect("Secret kept");
    assert!(secret["metadata"]["ownerReferences"].is_null());
    let password = env.secret_password(&ns, &format!("{orph}-credentials")).unwrap();
    assert!(env.password_works(&upn(&orph), &password).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_pre_existing_user_is_refused_or_adopted_and_never_deleted() {
    let mut env = Env::start("adopt").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
    let existing = format!("{}-existing", env.id);
    let portal = env.portal();
    let made = portal
        .create_user(&json!({
            "accountEnabled": true, "displayName": "Made by hand", "mailNickname": existing,
            "userPrincipalName": upn(&existing), "passwordProfile": {"password": "Hand-Made-Passw0rd!"},
        }))
        .await
        .unwrap();
    // CreateOnly (the default): a Conflict, and the user is not touched.
    let strict = format!("{}-strict", env.id);
    env.apply(license(&ns, &strict).vendor(&v).upn(&upn(&existing)));
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &strict, "AccountReady", "False", Some("Conflict"))
        .await;
    let u = env.user(&upn(&existing)).await.unwrap();
    assert_eq!(u["displayName"], "Made by hand");
    assert!(
        u["groups"].as_array().unwrap().is_empty() && u["assignedLicenses"].as_array().unwrap().is_empty()
    );
    assert!(
        env.get("secret", Some(&ns), &format!("{strict}-credentials"))
            .is_none(),
        "nothing written for a refused licence"
    );
    kubectl_ok(&["delete", RAL, "-n", &ns, &strict, "--timeout=60s"], None);
    assert!(
        env.user(&upn(&existing)).await.is_some(),
        "a refused licence deletes nothing"
    );

    // AdoptOrCreate: adopted once the platform team allows it on the vendor, managed (group,
    // licences, the operator's mark), its password left alone.
    let adopt = adopted_once_allowed(&env, &ns, &v, &existing, &made.id).await;
    let adopted = env.user(&upn(&existing)).await.unwrap();
    assert_eq!(adopted["displayName"], "Made by hand");
    managed_like_any_account(&env, &v, &adopted).await;
    let uid = env.get(RAL, Some(&ns), &adopt).unwrap()["metadata"]["uid"].clone();
    assert_eq!(
        adopted["employeeType"],
        format!("remoteassist.dev/adopted:{}", uid.as_str().unwrap())
    );
    // Deleting the licence (policy Delete) orphans an adopted user, and takes the mark off.
    kubectl_ok(&["delete", RAL, "-n", &ns, &adopt, "--timeout=60s"], None);
    let left = env.user(&upn(&existing)).await;
    assert!(left.is_some(), "an adopted user is never deleted");
    assert!(
        left.unwrap()["employeeType"].is_null(),
        "its employeeType is put back"
    );
}

/// Adopted once the vendor allows it, its password left alone. Returns the adopting licence.
async fn adopted_once_allowed(env: &Env, ns: &str, v: &str, existing: &str, made: &str) -> String {
    env.apply(
        vendor(v)
            .namespaces(&[ns])
            .barriers_not_required()
            .adoption_allowed(),
    );
    let adopt = format!("{}-adopt", env.id);
    env.apply(
        license(ns, &adopt)
            .vendor(v)
            .upn(&upn(existing))
            .adoption("AdoptOrCreate"),
    );
    env.wait_condition(RAL, Some(ns), &adopt, "Ready", "True", None)
        .await;
    let status = env.get(RAL, Some(ns), &adopt).unwrap()["status"].clone();
    assert_eq!(status["createdByOperator"], false);
    assert_eq!(status["userId"].as_str().unwrap(), made);
    assert!(env.password_works(&upn(existing), "Hand-Made-Passw0rd!").await);
    adopt
}

/// Managed like any account: in the vendor's accounts group, with the vendor's licences.
async fn managed_like_any_account(env: &Env, v: &str, adopted: &Value) {
    let group = env.get("vendortenant", None, v).unwrap()["status"]["accountsGroupId"].clone();
    assert!(group.is_string(), "the vendor has its accounts group");
    assert_eq!(
        adopted["groups"],
        json!([group]),
        "in the accounts group, and only there"
    );
    let mut skus: Vec<String> = adopted["assignedLicenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["skuId"].as_str().unwrap().to_owned())
        .collect();
    skus.sort();
    let state = env.state().await;
    let mut offered: Vec<String> = state["skus"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            [
                "MICROSOFT_REMOTE_ASSIST",
                "Microsoft_Teams_Enterprise_New",
                "SPE_E5",
            ]
            .contains(&s["skuPartNumber"].as_str().unwrap())
        })
        .map(|s| s["skuId"].as_str().unwrap().to_owned())
        .collect();
    offered.sort();
    assert_eq!(skus, offered, "the vendor's three licences");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn suspension_releases_licenses_and_rotation_changes_the_password() {
    let mut env = Env::start("susp").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
    let name = format!("{}-t", env.id);
    env.apply(license(&ns, &name).vendor(&v));
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    let secret = format!("{name}-credentials");
    let first = env.secret_password(&ns, &secret).unwrap();

    env.apply(license(&ns, &name).vendor(&v).suspended(true));
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "False", Some("Suspended"))
        .await;
    env.wait_for("licences released", Duration::from_secs(30), async || {
        env.user(&upn(&name)).await.is_some_and(|u| {
            u["accountEnabled"] == false && u["assignedLicenses"].as_array().unwrap().is_empty()
        })
    })
    .await;
    env.apply(license(&ns, &name).vendor(&v).suspended(false));
    env.wait_condition(RAL, Some(&ns), &name, "Ready", "True", None)
        .await;
    let u = env.user(&upn(&name)).await.unwrap();
    assert_eq!(
        (
            u["accountEnabled"].clone(),
            u["assignedLicenses"].as_array().unwrap().len()
        ),
        (json!(true), 3)
    );

    kubectl_ok(
        &[
            "annotate",
            RAL,
            "-n",
            &ns,
            &name,
            "remoteassist.dev/rotate-credentials=2026-11-27",
        ],
        None,
    );
    env.wait_for("a new password", Duration::from_secs(30), async || {
        env.secret_password(&ns, &secret).is_some_and(|p| p != first)
    })
    .await;
    let second = env.secret_password(&ns, &secret).unwrap();
    assert!(env.password_works(&upn(&name), &second).await);
    assert!(!env.password_works(&upn(&name), &first).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn seat_exhaustion_is_reported_and_recovers_when_seats_appear() {
    let mut env = Env::start("seats").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(vendor(&v).namespaces(&[&ns]).barriers_not_required());
    // Two Remote Assist seats left in the whole tenant; three accounts want one each.
    remote_assist_seats(&env, 2).await;
    let names: Vec<String> = (1..=3).map(|i| format!("{}-t{i}", env.id)).collect();
    for n in &names {
        env.apply(license(&ns, n).vendor(&v));
    }
    env.start_operator();
    env.wait_for(
        "two Ready, one without seats",
        Duration::from_secs(60),
        async || {
            let conds: Vec<_> = names
                .iter()
                .map(|n| env.condition(RAL, Some(&ns), n, "LicensesAssigned"))
                .collect();
            conds
                .iter()
                .filter(|c| c.as_ref().is_some_and(|c| c.0 == "True"))
                .count()
                == 2
                && conds.iter().any(|c| c.as_ref().is_some_and(|c| c.1 == "NoSeats"))
        },
    )
    .await;
    let short = names
        .iter()
        .find(|n| env.condition(RAL, Some(&ns), n, "LicensesAssigned").unwrap().1 == "NoSeats")
        .unwrap();
    // Its add to the group may still be written behind (JoiningGroup) for a moment.
    env.wait_condition(RAL, Some(&ns), short, "Ready", "False", Some("NoSeats"))
        .await;
    assert_eq!(
        env.user(&upn(short)).await.unwrap()["accountEnabled"],
        false,
        "not enabled without its licences"
    );
    env.wait_condition(
        "vendortenant",
        None,
        &v,
        "LicensesAssigned",
        "False",
        Some("InsufficientSeats"),
    )
    .await;
    env.wait_for(
        "the vendor's pre-flight: 0 free, 1 needed",
        Duration::from_secs(30),
        async || {
            let vt = env.get("vendortenant", None, &v).unwrap();
            vt["status"]["seats"].as_array().unwrap().iter().any(|s| {
                s["skuPartNumber"] == "MICROSOFT_REMOTE_ASSIST" && s["free"] == 0 && s["needed"] == 1
            })
        },
    )
    .await;

    remote_assist_seats(&env, 3).await;
    env.wait_condition(RAL, Some(&ns), short, "Ready", "True", None)
        .await;
    env.wait_condition("vendortenant", None, &v, "LicensesAssigned", "True", None)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn group_licence_seat_exhaustion_names_count_violation_on_the_account_and_recovers() {
    let mut env = Env::start("groupseats").await;
    let ns = env.namespace("a");
    let v = format!("{}-v", env.id);
    env.apply(
        vendor(&v)
            .namespaces(&[&ns])
            .barriers_not_required()
            .license_mode("Group"),
    );
    remote_assist_seats(&env, 2).await;
    let names: Vec<String> = (1..=3).map(|i| format!("{}-g{i}", env.id)).collect();
    for n in &names {
        env.apply(license(&ns, n).vendor(&v));
    }
    env.start_operator();
    let failed = |n: &String| {
        env.condition(RAL, Some(&ns), n, "LicensesAssigned")
            .is_some_and(|c| c.1 == "GroupLicenseError")
    };
    env.wait_for(
        "one account names its group licence error",
        Duration::from_secs(90),
        async || names.iter().any(failed),
    )
    .await;
    let short = names.iter().find(|n| failed(n)).unwrap().clone();
    let ral = env.get(RAL, Some(&ns), &short).unwrap();
    let message = ral["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "LicensesAssigned")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("CountViolation") && message.contains("MICROSOFT_REMOTE_ASSIST"),
        "{message}"
    );
    assert_eq!(
        env.condition(RAL, Some(&ns), &short, "Ready").unwrap(),
        ("False".into(), "GroupLicenseError".into())
    );
    assert_eq!(env.user(&upn(&short)).await.unwrap()["accountEnabled"], false);

    // Seats bought: Entra leaves the account in error; the operator asks for a reprocess.
    remote_assist_seats(&env, 3).await;
    env.wait_condition(RAL, Some(&ns), &short, "Ready", "True", None)
        .await;
    assert!(
        env.events(&ns, &short)
            .iter()
            .any(|e| e.contains("LicensesReprocessed")),
        "{:?}",
        env.events(&ns, &short)
    );
}

/// Sets how many Remote Assist seats the tenant has bought.
async fn remote_assist_seats(env: &Env, prepaid: i64) {
    env.admin(
        reqwest::Method::PUT,
        "/skus/MICROSOFT_REMOTE_ASSIST",
        Some(json!({"prepaidUnits": prepaid})),
    )
    .await;
}
