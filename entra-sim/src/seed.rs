//! The seed file: what the tenant holds when the simulator starts or is reset.

use serde::{Deserialize, Serialize};

/// The default seed: the host company ABC with its support engineers, the licences of the
/// Remote Assist scenario, and one app registration for the operator.
pub const DEFAULT_SEED: &str = include_str!("../seeds/default.yaml");

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    pub tenant_id: String,
    /// The `<name>.onmicrosoft.com` domain every tenant has.
    pub initial_domain: String,
    #[serde(default)]
    pub verified_domains: Vec<String>,
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_seconds: u64,
    #[serde(default)]
    pub skus: Vec<SeedSku>,
    #[serde(default)]
    pub apps: Vec<SeedApp>,
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub groups: Vec<SeedGroup>,
    /// Misbehaviour at start; all off when absent.
    #[serde(default)]
    pub misbehaviour: crate::misbehave::Settings,
    /// The Security & Compliance region the global InvokeCommand route redirects to
    /// (default `eur03b`).
    #[serde(default)]
    pub compliance_region: Option<String>,
    /// The tenant's information-barrier mode: `Legacy`, `SingleSegment` (default) or
    /// `MultiSegment`.
    #[serde(default)]
    pub information_barrier_mode: crate::compliance::state::Mode,
    /// Simulator-only, for tests: a segment limit lower than the mode's (250 legacy, 5,000
    /// otherwise).
    #[serde(default)]
    pub information_barrier_segment_limit: Option<usize>,
    /// Pairs of service plan names that cannot be enabled on one user together (group
    /// licensing records `MutuallyExclusiveViolation`); none by default.
    #[serde(default)]
    pub mutually_exclusive_plans: Vec<[String; 2]>,
    /// `[dependent, required]` service plan names: an inherited licence that enables the
    /// first while nothing the user holds enables the second is a `DependencyViolation`; none
    /// by default.
    #[serde(default)]
    pub plan_dependencies: Vec<[String; 2]>,
    /// Service plans that give the user a mailbox, whose address comes from its mailNickname:
    /// an inherited licence enabling one while another user has the same mailNickname is a
    /// `UniquenessViolation` (a proxy address already in use); none by default.
    #[serde(default)]
    pub mailbox_plans: Vec<String>,
    /// Service principals of other publishers' apps in the tenant, e.g. the Information Barrier
    /// Processor once an administrator consented to it.
    #[serde(default)]
    pub service_principals: Vec<SeedServicePrincipal>,
    /// Administrative units, each with assigned members or a dynamic rule.
    #[serde(default)]
    pub administrative_units: Vec<SeedAdministrativeUnit>,
    /// Whether the compliance endpoint accepts app-only tokens (default true). When false it
    /// answers them 401 and only a delegated token of a Compliance Administrator (or Global
    /// Administrator) works: the case Microsoft's app-only page leaves open for Purview cmdlets.
    #[serde(default = "yes")]
    pub compliance_app_only: bool,
    /// The device-code grant's `expires_in` (Entra: 900).
    #[serde(default = "default_device_code_lifetime")]
    pub device_code_lifetime_seconds: u64,
    /// The device-code grant's polling `interval` (Entra: 5).
    #[serde(default = "default_device_code_interval")]
    pub device_code_interval_seconds: u64,
    /// A refresh token unused this long stops working (Entra: 90 days).
    #[serde(default = "default_refresh_inactivity")]
    pub refresh_token_inactivity_seconds: u64,
}

fn default_device_code_lifetime() -> u64 {
    900
}

fn default_device_code_interval() -> u64 {
    5
}

fn default_refresh_inactivity() -> u64 {
    90 * 24 * 3600
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedServicePrincipal {
    pub app_id: String,
    pub display_name: String,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedAdministrativeUnit {
    #[serde(default)]
    pub id: Option<String>,
    pub display_name: String,
    /// Only principals with a role scoped to this unit may change its members.
    #[serde(default)]
    pub is_member_management_restricted: bool,
    /// A dynamic rule, e.g. `(user.employeeType -startsWith "remoteassist.dev/")`; without one
    /// the unit holds `members`.
    #[serde(default)]
    pub membership_rule: Option<String>,
    /// Assigned members by user principal name.
    #[serde(default)]
    pub members: Vec<String>,
}

/// One directory role held by an app's service principal, tenant-wide or over one unit.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedRoleAssignment {
    /// The role's display name, e.g. `User Administrator`.
    pub role: String,
    /// The administrative unit's display name; absent for the whole tenant.
    #[serde(default)]
    pub administrative_unit: Option<String>,
}

/// The object id of an app's service principal: the seed's, else one derived from the client id.
pub fn service_principal_id(app: &SeedApp) -> String {
    app.service_principal_id
        .clone()
        .unwrap_or_else(|| crate::roles::stable_id(&format!("sp/{}", app.client_id)))
}

fn default_token_lifetime() -> u64 {
    3599
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedSku {
    pub sku_part_number: String,
    pub sku_id: String,
    pub prepaid_units: i64,
    #[serde(default)]
    pub service_plans: Vec<SeedServicePlan>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedServicePlan {
    pub service_plan_name: String,
    pub service_plan_id: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedApp {
    pub display_name: String,
    pub client_id: String,
    /// Client secret values (the simulator compares them in constant time).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// PEM certificates whose keys may sign client assertions.
    #[serde(default)]
    pub certificates: Vec<String>,
    #[serde(default)]
    pub federated_credentials: Vec<SeedFederatedCredential>,
    /// Granted application permissions per resource, e.g. `User.ReadWrite.All` for Graph.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// The object id of the app's service principal (derived from the client id when absent).
    #[serde(default)]
    pub service_principal_id: Option<String>,
    /// Directory roles assigned to the app's service principal.
    #[serde(default)]
    pub directory_roles: Vec<SeedRoleAssignment>,
    /// "Allow public client flows": the app may redeem device codes and refresh tokens
    /// without a client credential.
    #[serde(default)]
    pub allow_public_client: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedFederatedCredential {
    pub issuer: String,
    pub subject: String,
    #[serde(default = "default_audiences")]
    pub audiences: Vec<String>,
    /// PEM public keys (or certificates) of the issuer, which the simulator uses in place of
    /// fetching the issuer's OIDC discovery document.
    pub issuer_keys: Vec<String>,
}

fn default_audiences() -> Vec<String> {
    vec!["api://AzureADTokenExchange".into()]
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedUser {
    #[serde(default)]
    pub id: Option<String>,
    pub user_principal_name: String,
    pub display_name: String,
    #[serde(default)]
    pub mail_nickname: Option<String>,
    #[serde(default = "yes")]
    pub account_enabled: bool,
    #[serde(default)]
    pub usage_location: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Directory roles the user holds, by display name (e.g. `User Administrator`).
    #[serde(default)]
    pub directory_roles: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedGroup {
    #[serde(default)]
    pub id: Option<String>,
    pub display_name: String,
    #[serde(default)]
    pub mail_nickname: Option<String>,
    /// Members by user principal name.
    #[serde(default)]
    pub members: Vec<String>,
}

impl Seed {
    /// The region of the Security & Compliance endpoint.
    pub fn region(&self) -> &str {
        self.compliance_region.as_deref().unwrap_or("eur03b")
    }

    pub fn parse(yaml: &str) -> anyhow::Result<Seed> {
        Ok(serde_saphyr::from_str(yaml)?)
    }

    pub fn default_seed() -> Seed {
        Seed::parse(DEFAULT_SEED).expect("the embedded seed parses")
    }
}

/// The ids a client needs to reach the default seed's tenant, read from the seed itself so that
/// tests, benches and scripts (`scripts/sim-ids.sh`) never write them down a second time.
#[derive(Clone, Debug)]
pub struct DefaultIds {
    pub tenant_id: String,
    pub initial_domain: String,
    pub operator_client_id: String,
    pub operator_secret: String,
    pub auditor_client_id: String,
    pub auditor_secret: String,
    /// An administrator (Global Administrator) for changes made by hand in tests.
    pub administrator_client_id: String,
    pub administrator_secret: String,
}

/// [`DefaultIds`] of the embedded default seed.
pub fn default_ids() -> &'static DefaultIds {
    static IDS: std::sync::LazyLock<DefaultIds> = std::sync::LazyLock::new(|| {
        let seed = Seed::default_seed();
        let app = |name: &str| {
            seed.apps
                .iter()
                .find(|a| a.display_name == name)
                .unwrap_or_else(|| panic!("the default seed has the app {name}"))
                .clone()
        };
        let (operator, auditor) = (app("remote-assist-operator"), app("remote-assist-auditor"));
        let administrator = app("tenant-administrator");
        DefaultIds {
            tenant_id: seed.tenant_id.clone(),
            initial_domain: seed.initial_domain.clone(),
            operator_client_id: operator.client_id,
            operator_secret: operator.secrets[0].clone(),
            auditor_client_id: auditor.client_id,
            auditor_secret: auditor.secrets[0].clone(),
            administrator_client_id: administrator.client_id,
            administrator_secret: administrator.secrets[0].clone(),
        }
    });
    &IDS
}

/// The user principal name of [`compliance_administrator`].
pub const COMPLIANCE_ADMIN_UPN: &str = "ib.admin@abc.example";

/// A Compliance Administrator of the default seed's tenant, for tests of the delegated
/// compliance credential (not in the default seed, whose users the other tests count).
pub fn compliance_administrator() -> SeedUser {
    SeedUser {
        id: None,
        user_principal_name: COMPLIANCE_ADMIN_UPN.into(),
        display_name: "IB Admin".into(),
        mail_nickname: None,
        account_enabled: true,
        usage_location: Some("US".into()),
        department: Some("Compliance".into()),
        password: Some("Sim-Admin-Passw0rd!".into()),
        directory_roles: vec!["Compliance Administrator".into()],
    }
}
