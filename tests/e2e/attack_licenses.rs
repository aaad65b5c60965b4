//! The attack table, licence rows: what someone with create rights in an allowed vendor
//! namespace would try against the operator's privileged Graph identity. Each row is the
//! manifest (or tenant state) an attacker makes, and afterwards: the refusal reason, the tenant
//! unchanged (write counters and a diff of the victim), the victim's password still the same,
//! and no account enabled that should not be.

use crate::cluster::kubectl_ok;
use crate::env::Env;
use crate::fixtures::{license, upn, vendor};
use serde_json::Value;
use std::time::Duration;

const RAL: &str = "remoteassistlicense";

/// The parts of a user an attacker would want changed.
fn fingerprint(u: &Value) -> Value {
    serde_json::json!({
        "accountEnabled": u["accountEnabled"], "employeeType": u["employeeType"],
        "ext15": u["onPremisesExtensionAttributes"]["extensionAttribute15"],
        "licences": u["assignedLicenses"], "usageLocation": u["usageLocation"],
    })
}

/// The operator has settled when the tenant sees no write for this long ([`Env::quiet_for`]:
/// a time, not resync rounds, so a pending policy application is seen too).
const QUIET: Duration = Duration::from_secs(3);
/// How long the tenant may take to settle.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

const CAROL: &str = "carol.engineer@abc.example";
const HELPDESK: &str = "it-helpdesk@abc.example";
const ROTATE: (&str, &str) = ("remoteassist.dev/rotate-credentials", "now");

/// The attacker's namespace and vendor, its one Ready licence, and the users it aims at.
struct Scene {
    id: String,
    ns: String,
    v: String,
    /// An account in the vendor's domain that exists before the operator.
    legacy: String,
    /// The same, with a directory role.
    admin: String,
    /// The attacker's own licence, Ready.
    owned: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local API server: run with scripts/test.sh"]
async fn a_license_never_reaches_beyond_its_vendor() {
    let mut env = Env::start("atk-ral").await;
    let scene = scene(&mut env).await;
    rows_that_write_nothing(&env, &scene).await;
    let before = adoption(&env, &scene).await;
    beyond_max_accounts(&env, &scene, before).await;
    rotation_storm(&env, &scene).await;
}

async fn scene(env: &mut Env) -> Scene {
    let ns = env.namespace("a");
    let id = env.id.clone();
    let v = format!("{id}-v");
    // Adoption allowed (so the adoption rules are what refuses), passwords of adopted users
    // not managed, at most 4 accounts.
    env.apply(
        vendor(&v)
            .namespaces(&[&ns])
            .barriers_not_required()
            .no_generated_segments()
            .max_accounts(4)
            .adoption_allowed(),
    );
    env.set_password(CAROL, "Carol-Own-Passw0rd!").await;
    let legacy = format!("{id}-legacy@vendors.abc.example");
    env.seed_user(&legacy, "Legacy-Own-Passw0rd!", &[]).await;
    let admin = format!("{id}-vadmin@vendors.abc.example");
    env.seed_user(&admin, "Admin-Own-Passw0rd!", &["User Administrator"])
        .await;
    let owned = format!("{id}-owned");
    env.apply(license(&ns, &owned).vendor(&v));
    env.start_operator();
    env.wait_condition(RAL, Some(&ns), &owned, "Ready", "True", None)
        .await;
    Scene {
        id,
        ns,
        v,
        legacy,
        admin,
        owned,
    }
}

/// Rows that must cause no tenant write at all.
async fn rows_that_write_nothing(env: &Env, scene: &Scene) {
    let Scene { id, ns, v, admin, .. } = scene;
    let victims = [CAROL, HELPDESK, admin.as_str(), scene.legacy.as_str()];
    let mut before_users = Vec::new();
    for v in victims {
        before_users.push(env.user(v).await.map(|u| fingerprint(&u)));
    }
    let before = env.quiet_for(QUIET, SETTLE_WITHIN).await;
    let license = |name: &str| license(ns, &format!("{id}-{name}")).vendor(v);
    let rows = [
        (
            "host-employee takeover (host UPN, AdoptOnly, rotation)",
            license("takeover")
                .upn(CAROL)
                .adoption("AdoptOnly")
                .annotation(ROTATE.0, ROTATE.1),
            "OutsideVendorDomain",
        ),
        (
            "CreateOnly in the host domain",
            license("helpdesk").upn(HELPDESK),
            "OutsideVendorDomain",
        ),
        (
            "adopting a user with a directory role",
            license("admin").upn(admin).adoption("AdoptOnly"),
            "PrivilegedUser",
        ),
        (
            "an override naming a SKU the vendor does not offer",
            license("sku").licenses(&["ENTERPRISEPREMIUM"]),
            "LicenseNotOffered",
        ),
    ];
    for (_, manifest, _) in &rows {
        env.apply(manifest.clone());
    }
    for (what, manifest, reason) in &rows {
        let name = manifest.name();
        env.wait_condition(RAL, Some(ns), name, "AccountReady", "False", Some(reason))
            .await;
        println!("row: {what}: refused with {reason}");
    }
    assert_eq!(
        env.quiet_for(QUIET, SETTLE_WITHIN).await,
        before,
        "a refused licence wrote to the tenant: {}",
        env.counters().await
    );
    for (v, was) in victims.iter().zip(&before_users) {
        assert_eq!(&env.user(v).await.map(|u| fingerprint(&u)), was, "{v} changed");
    }
    assert!(env.user(HELPDESK).await.is_none(), "no host account was created");
    assert!(
        env.password_works(CAROL, "Carol-Own-Passw0rd!").await,
        "the victim's password is unchanged"
    );
    assert!(env.password_works(admin, "Admin-Own-Passw0rd!").await);
    assert!(
        env.get("secret", Some(ns), &format!("{id}-takeover-credentials"))
            .is_none(),
        "no credentials for the victim reach the attacker's namespace"
    );
}

/// Adoption: the first licence adopts (and marks) the user, without touching its password;
/// a second licence for the same user is a Conflict. Returns the tenant's writes before the
/// second one, which must write nothing.
async fn adoption(env: &Env, scene: &Scene) -> u64 {
    let Scene {
        id, ns, v, legacy, ..
    } = scene;
    let first = format!("{id}-adopt1");
    env.apply(
        license(ns, &first)
            .vendor(v)
            .upn(legacy)
            .adoption("AdoptOnly")
            .annotation(ROTATE.0, ROTATE.1),
    );
    env.wait_condition(
        RAL,
        Some(ns),
        &first,
        "AccountReady",
        "False",
        Some("CredentialsNotManaged"),
    )
    .await;
    let marked = env.user(legacy).await.unwrap();
    let uid = env.get(RAL, Some(ns), &first).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(marked["employeeType"], format!("remoteassist.dev/adopted:{uid}"));
    assert!(
        env.password_works(legacy, "Legacy-Own-Passw0rd!").await,
        "an adopted user's password is never set"
    );
    println!("row: rotation of an adopted user's password: refused with CredentialsNotManaged");
    let before = env.quiet_for(QUIET, SETTLE_WITHIN).await;
    let second = format!("{id}-adopt2");
    env.apply(license(ns, &second).vendor(v).upn(legacy).adoption("AdoptOnly"));
    env.wait_condition(RAL, Some(ns), &second, "AccountReady", "False", Some("Conflict"))
        .await;
    println!("row: a second adoption of an adopted user: refused with Conflict");
    before
}

/// Beyond maxAccounts: owned, admin, adopt1 and adopt2 hold the four slots (refused for who
/// their user is, not for what they ask); the three refused for their domain or SKU hold none.
/// So a fifth is over the limit. Neither it nor the second adoption wrote since `before`.
async fn beyond_max_accounts(env: &Env, scene: &Scene, before: u64) {
    let Scene { id, ns, v, .. } = scene;
    let extra = format!("{id}-extra");
    env.apply(license(ns, &extra).vendor(v));
    env.wait_condition(
        RAL,
        Some(ns),
        &extra,
        "AccountReady",
        "False",
        Some("AccountLimitReached"),
    )
    .await;
    assert!(env.user(&upn(&extra)).await.is_none());
    println!("row: a licence beyond maxAccounts: refused with AccountLimitReached");
    assert_eq!(
        env.quiet_for(QUIET, SETTLE_WITHIN).await,
        before,
        "{}",
        env.counters().await
    );
}

/// A rotation storm: one new password, then every further request waits.
async fn rotation_storm(env: &Env, scene: &Scene) {
    let Scene { ns, owned, .. } = scene;
    let secret = format!("{owned}-credentials");
    let old = env.secret_password(ns, &secret).unwrap();
    let storm = |from: u32, to: u32| {
        for i in from..to {
            let value = format!("remoteassist.dev/rotate-credentials=storm-{i}");
            kubectl_ok(&["annotate", "--overwrite", RAL, owned, "-n", ns, &value], None);
        }
    };
    storm(0, 5);
    env.wait_for("one rotation", Duration::from_secs(60), async || {
        env.secret_password(ns, &secret).is_some_and(|p| p != old)
    })
    .await;
    let new = env.secret_password(ns, &secret).unwrap();
    let before = env.quiet_for(QUIET, SETTLE_WITHIN).await;
    storm(5, 10);
    env.wait_condition(
        RAL,
        Some(ns),
        owned,
        "AccountReady",
        "False",
        Some("RotationRateLimited"),
    )
    .await;
    assert_eq!(
        env.quiet_for(QUIET, SETTLE_WITHIN).await,
        before,
        "a rate-limited rotation wrote to the tenant"
    );
    assert_eq!(env.secret_password(ns, &secret).unwrap(), new);
    assert!(env.password_works(&upn(owned), &new).await);
    assert!(!env.password_works(&upn(owned), &old).await);
    println!(
        "row: a rotation-annotation storm of 10 requests: 1 password set, the rest RotationRateLimited with no tenant write"
    );
}
