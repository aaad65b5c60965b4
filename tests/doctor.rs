//! `remote-assist-operator doctor` against the simulated tenant: every check passes on the
//! default seed, and a seed with one prerequisite missing fails exactly the check that names
//! it, with its fix. The binary's exit status follows (0 all pass, 1 any failure).

use entra_sim::Seed;
use remote_assist_operator::commands::{Manifests, Tenant};
use remote_assist_operator::config::RunArgs;
use remote_assist_operator::doctor::{Outcome, Report, examine};
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<PathBuf> {
    vec![repo().join("deploy/examples")]
}

fn secret_file(tag: &str) -> PathBuf {
    let dir = repo().join("target/doctor");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}-{:04x}.secret", rand::random::<u16>()));
    std::fs::write(&path, &entra_sim::seed::default_ids().operator_secret).unwrap();
    path
}

/// The `run`/`doctor` flags that reach this simulated tenant.
fn flags(sim: &entra_sim::RunningSim, secret: &std::path::Path) -> Vec<String> {
    let ids = entra_sim::seed::default_ids();
    let url = sim.url();
    [
        "--graph-url",
        &url,
        "--authority-host",
        &url,
        "--compliance-url",
        &url,
        "--tenant-id",
        &ids.tenant_id,
        "--client-id",
        &ids.operator_client_id,
        "--tenant-initial-domain",
        &ids.initial_domain,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(["--client-secret-file".to_owned(), secret.display().to_string()])
    .collect()
}

async fn report_for(seed: Seed) -> Report {
    let sim = entra_sim::start(seed, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let secret = secret_file("lib");
    let mut argv = vec!["doctor".to_owned()];
    argv.extend(flags(&sim, &secret));
    #[derive(clap::Parser)]
    struct Args {
        #[command(flatten)]
        run: RunArgs,
    }
    let args = <Args as clap::Parser>::parse_from(argv);
    let config = args.run.into_config().unwrap();
    let tenant = Tenant::connect(&config, None).unwrap().read_mode().await;
    let vendors = Manifests::load(&examples()).unwrap().vendors;
    examine(&tenant, &vendors).await
}

fn seed_with(edit: impl FnOnce(&mut Seed)) -> Seed {
    let mut seed = Seed::default_seed();
    edit(&mut seed);
    seed
}

fn operator(seed: &mut Seed) -> &mut entra_sim::seed::SeedApp {
    seed.apps
        .iter_mut()
        .find(|a| a.display_name == "remote-assist-operator")
        .unwrap()
}

/// Exactly the checks in `failing` fail, each naming `needle` in what it found or its fix.
fn assert_fails(report: &Report, failing: &[&str], needle: &str) {
    let failed: Vec<&str> = report.failed().map(|c| c.id).collect();
    assert_eq!(failed, failing, "{}", report.render_text());
    for c in report.failed() {
        assert!(
            format!("{} {}", c.detail, c.fix).contains(needle),
            "{} does not name {needle}: {} / {}",
            c.id,
            c.detail,
            c.fix
        );
        assert!(!c.fix.is_empty() && c.docs.starts_with("docs/"), "{c:?}");
    }
}

#[tokio::test]
async fn every_check_passes_on_the_default_tenant() {
    let report = report_for(Seed::default_seed()).await;
    let not_passed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.outcome != Outcome::Pass)
        .map(|c| (c.id, c.outcome, c.detail.clone()))
        .collect();
    assert!(not_passed.is_empty(), "{}", report.render_text());
    assert_eq!(report.checks.len(), 11);
    assert!(
        report
            .render_text()
            .contains("[ manual] Teams scoped directory search")
    );
}

#[tokio::test]
async fn a_graph_permission_missing_is_named() {
    let seed = seed_with(|s| {
        operator(s)
            .permissions
            .retain(|p| p != "LicenseAssignment.ReadWrite.All")
    });
    assert_fails(
        &report_for(seed).await,
        &["graph-permissions"],
        "LicenseAssignment.ReadWrite.All",
    );
}

#[tokio::test]
async fn the_compliance_permission_missing_fails_the_identity_the_read_and_the_mode() {
    let seed = seed_with(|s| operator(s).permissions.retain(|p| p != "Exchange.ManageAsApp"));
    assert_fails(
        &report_for(seed).await,
        &["compliance-permission", "ib-policy-read", "ib-mode"],
        "compliance",
    );
}

#[tokio::test]
async fn missing_admin_consent_is_named_with_the_consent_url() {
    let seed = seed_with(|s| s.service_principals.clear());
    assert_fails(
        &report_for(seed).await,
        &["ib-processor-consent"],
        "adminconsent?client_id=bcf62038-e005-436d-b970-2a472f8c1982",
    );
}

#[tokio::test]
async fn an_unverified_vendor_domain_is_named() {
    let seed = seed_with(|s| s.verified_domains.retain(|d| d != "vendors.abc.example"));
    assert_fails(
        &report_for(seed).await,
        &["vendor-domains"],
        "vendors.abc.example",
    );
}

#[tokio::test]
async fn a_sku_the_vendors_name_that_the_tenant_lacks_is_named() {
    let seed = seed_with(|s| s.skus.retain(|k| k.sku_part_number != "MICROSOFT_REMOTE_ASSIST"));
    assert_fails(&report_for(seed).await, &["skus"], "MICROSOFT_REMOTE_ASSIST");
}

#[tokio::test]
async fn a_licence_set_without_the_barrier_service_plan_is_found_by_the_plan_not_the_name() {
    // The SKUs keep their names; only the service plan goes.
    let seed = seed_with(|s| {
        for sku in &mut s.skus {
            sku.service_plans
                .retain(|p| p.service_plan_name != "INFORMATION_BARRIERS");
        }
    });
    assert_fails(
        &report_for(seed).await,
        &["ib-capable-licence"],
        "INFORMATION_BARRIERS",
    );
}

#[tokio::test]
async fn no_directory_role_for_passwords_is_named() {
    let seed = seed_with(|s| operator(s).directory_roles.clear());
    assert_fails(&report_for(seed).await, &["password-role"], "User Administrator");
}

#[tokio::test]
async fn a_tenant_wide_role_passes_and_says_to_scope_it() {
    let seed = seed_with(|s| {
        operator(s).directory_roles[0].administrative_unit = None;
    });
    let report = report_for(seed).await;
    let role = report.checks.iter().find(|c| c.id == "password-role").unwrap();
    assert_eq!(role.outcome, Outcome::Pass);
    assert!(role.detail.contains("tenant-wide"), "{}", role.detail);
}

#[tokio::test]
async fn without_the_doctor_only_reads_the_checks_are_unknown_never_failed() {
    let seed = seed_with(|s| {
        operator(s).permissions.retain(|p| {
            ![
                "Application.Read.All",
                "RoleManagement.Read.Directory",
                "AdministrativeUnit.Read.All",
            ]
            .contains(&p.as_str())
        })
    });
    let report = report_for(seed).await;
    assert_eq!(report.failed().count(), 0, "{}", report.render_text());
    for id in ["ib-processor-consent", "password-role"] {
        let c = report.checks.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.outcome, Outcome::Unknown, "{c:?}");
        assert!(c.fix.contains("Application.Read.All"), "{c:?}");
    }
}

#[tokio::test]
async fn the_binary_exits_0_when_all_pass_and_1_naming_a_failure() {
    for (seed, code) in [
        (Seed::default_seed(), 0),
        (seed_with(|s| s.service_principals.clear()), 1),
    ] {
        let sim = entra_sim::start(seed, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let secret = secret_file("bin");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_remote-assist-operator"));
        cmd.arg("doctor")
            .args(flags(&sim, &secret))
            .arg("-f")
            .args(examples());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if code == 1 {
            assert!(
                text.contains("[   FAIL] admin consent for the Information Barrier Processor"),
                "{text}"
            );
        }
    }
}
