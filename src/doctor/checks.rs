//! The checks, each through the API the operator itself uses (or a read-only one next to it).

use super::claims::Claims;
use super::{Check, Report, manual_steps};
use crate::commands::Tenant;
use crate::crd::VendorTenant;
use crate::directory::SkuTable;
use crate::graph::{GraphError, TokenProvider, odata_string};
use std::collections::BTreeSet;

/// The Information Barrier Processor's app id: its service principal exists once an
/// administrator consented to information barriers.
pub const IB_PROCESSOR_APP_ID: &str = "bcf62038-e005-436d-b970-2a472f8c1982";
/// The service plan that makes a licence information-barrier capable.
pub const IB_SERVICE_PLAN: &str = "INFORMATION_BARRIERS";

/// Graph application permissions the controllers need.
const GRAPH_ROLES: &[&str] = &[
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "LicenseAssignment.ReadWrite.All",
    "Organization.Read.All",
];
/// Read-only permissions only `doctor` uses; without them its checks say unknown.
const DOCTOR_ROLES: &[&str] = &[
    "Application.Read.All",
    "RoleManagement.Read.Directory",
    "AdministrativeUnit.Read.All",
];
/// Directory roles that may set a non-administrator's password, by template id.
const PASSWORD_ROLES: &[(&str, &str)] = &[
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    ("729827e3-9c14-49f7-bb1b-9608f156bbb8", "Helpdesk Administrator"),
    ("966707d0-3269-4727-9be2-8c3a10f19b9d", "Password Administrator"),
    (
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "Privileged Authentication Administrator",
    ),
    ("62e90394-69f5-4237-9190-012177145e10", "Global Administrator"),
];

const DOCS_APP: &str = "docs/install.md#1-register-the-operators-app-in-entra-id-the-host-tenant";
const DOCS_COMPLIANCE: &str = "docs/install.md#compliance-credential";
const DOCS_PREREQUISITES: &str = "docs/install.md#tenant-prerequisites";
const DOCS_ROLE: &str = "docs/install.md#directory-role";
const DOCS_LICENSES: &str = "docs/licenses.md";

/// Runs every check against the tenant for these vendors.
pub async fn examine(tenant: &Tenant, vendors: &[VendorTenant]) -> Report {
    let graph_claims = token_claims(&tenant.graph_tokens).await;
    let compliance_claims = token_claims(&tenant.compliance_tokens).await;
    let skus = tenant.directory.skus(true).await;
    let mut checks = vec![
        token_check("graph-token", "a Graph token", &graph_claims),
        token_check("compliance-token", "a compliance token", &compliance_claims),
        graph_roles(&graph_claims),
        compliance_role(&compliance_claims, tenant.delegated_compliance),
        ib_policies(tenant).await,
        ib_mode(tenant).await,
        ib_processor(tenant).await,
        verified_domains(tenant, vendors).await,
        skus_exist(&skus, vendors),
        barrier_plans(&skus, vendors),
    ];
    checks.push(password_role(tenant).await);
    Report {
        checks,
        manual: manual_steps(),
    }
}

type TokenResult = Result<Option<Claims>, GraphError>;

async fn token_claims(tokens: &TokenProvider) -> TokenResult {
    tokens.token().await.map(|t| Claims::read(t.expose()))
}

fn token_check(id: &'static str, title: &'static str, claims: &TokenResult) -> Check {
    let check = Check::new(id, title, DOCS_APP);
    match claims {
        Ok(_) => check.pass("the token endpoint issued one"),
        Err(e) => check.fail(
            format!("no token: {e}"),
            "check the tenant id, the client id and the credential (the token endpoint's words are above)",
        ),
    }
}

fn graph_roles(claims: &TokenResult) -> Check {
    let check = Check::new("graph-permissions", "Graph application permissions", DOCS_APP);
    let claims = match claims {
        Ok(Some(c)) => c,
        Ok(None) => {
            return check.unknown(
                "the Graph token is not a JWT",
                "compare with docs/install.md by hand",
            );
        }
        Err(_) => return check.unknown("no Graph token", "fix the token first"),
    };
    let missing: Vec<&str> = GRAPH_ROLES
        .iter()
        .copied()
        .filter(|r| !claims.roles.contains(*r))
        .collect();
    let optional: Vec<&str> = DOCTOR_ROLES
        .iter()
        .copied()
        .filter(|r| !claims.roles.contains(*r))
        .collect();
    if !missing.is_empty() {
        return check.fail(
            format!("the token lacks {}", missing.join(", ")),
            "add these application permissions to the app and grant admin consent",
        );
    }
    let mut detail = format!("the token holds {}", GRAPH_ROLES.join(", "));
    if !optional.is_empty() {
        detail.push_str(&format!(
            " (not {}: doctor cannot make the checks that read them)",
            optional.join(", ")
        ));
    }
    check.pass(detail)
}

fn compliance_role(claims: &TokenResult, delegated: bool) -> Check {
    let check = Check::new(
        "compliance-permission",
        "the compliance identity",
        DOCS_COMPLIANCE,
    );
    match claims {
        Ok(Some(c)) if delegated => match &c.user {
            Some(user) => check.pass(format!("a delegated token of {user}")),
            None => check.pass("a delegated token"),
        },
        Ok(Some(c)) if c.roles.contains("Exchange.ManageAsApp") => {
            check.pass("the token holds Exchange.ManageAsApp")
        }
        Ok(Some(_)) => check.fail(
            "the compliance token lacks Exchange.ManageAsApp",
            "add the application permission Exchange.ManageAsApp (Office 365 Exchange Online) and grant admin consent, or use a delegated credential: remote-assist-operator login --compliance",
        ),
        Ok(None) => check.unknown("the compliance token is not a JWT", "compare with docs/install.md by hand"),
        Err(_) => check.unknown("no compliance token", "fix the token first"),
    }
}

async fn ib_policies(tenant: &Tenant) -> Check {
    let check = Check::new("ib-policy-read", "Get-InformationBarrierPolicy", DOCS_COMPLIANCE);
    match tenant
        .compliance
        .invoke("Get-InformationBarrierPolicy", serde_json::json!({}))
        .await
    {
        Ok(policies) => check.pass(format!("the compliance identity read {} policies", policies.len())),
        Err(e) => check.fail(
            format!("the endpoint refused it: {e}"),
            "give the compliance identity the Compliance Administrator role (app-only: on the app's service principal), or, if the endpoint refuses app-only tokens, use a delegated credential: remote-assist-operator login --compliance",
        ),
    }
}

async fn ib_mode(tenant: &Tenant) -> Check {
    let check = Check::new("ib-mode", "the information-barrier mode", "docs/barriers.md");
    match (&tenant.mode, &tenant.mode_unread) {
        (Some(mode), _) => check.pass(format!("{mode} (Get-PolicyConfig)")),
        (None, Some(why)) => check.fail(
            format!("Get-PolicyConfig could not be read: {why}"),
            "fix the compliance identity above; the operator leaves barriers alone until it knows the mode",
        ),
        (None, None) => check.unknown("not read", "run doctor again"),
    }
}

/// A Graph read that `doctor` alone needs: 403 makes the check unknown, never a failure.
fn unreadable(check: Check, e: &GraphError, permission: &str) -> Check {
    if e.status() == Some(403) {
        check.unknown(
            format!("cannot read it without {permission}"),
            format!("grant the app {permission} (read only) to let doctor check this, or check it in the Entra admin center"),
        )
    } else {
        check.unknown(format!("cannot read it: {e}"), "run doctor again")
    }
}

async fn ib_processor(tenant: &Tenant) -> Check {
    let check = Check::new(
        "ib-processor-consent",
        "admin consent for the Information Barrier Processor",
        DOCS_PREREQUISITES,
    );
    let path = format!(
        "/servicePrincipals?$filter=appId eq {}&$select=id,appId,displayName",
        odata_string(IB_PROCESSOR_APP_ID)
    );
    match tenant.directory.graph.list(&path).await {
        Ok(found) if !found.is_empty() => check.pass(format!(
            "its service principal ({IB_PROCESSOR_APP_ID}) exists in the tenant"
        )),
        Ok(_) => check.fail(
            format!("no service principal with appId {IB_PROCESSOR_APP_ID}: information barriers were never consented to"),
            format!("a Global Administrator opens https://login.microsoftonline.com/common/adminconsent?client_id={IB_PROCESSOR_APP_ID} and accepts"),
        ),
        Err(e) => unreadable(check, &e, "Application.Read.All"),
    }
}

async fn verified_domains(tenant: &Tenant, vendors: &[VendorTenant]) -> Check {
    let check = Check::new(
        "vendor-domains",
        "vendor domains are verified",
        DOCS_PREREQUISITES,
    );
    let verified: BTreeSet<String> = match tenant.directory.graph.list("/organization").await {
        Ok(orgs) => orgs
            .iter()
            .flat_map(|o| o["verifiedDomains"].as_array().cloned().unwrap_or_default())
            .filter_map(|d| d["name"].as_str().map(str::to_lowercase))
            .collect(),
        Err(e) => return unreadable(check, &e, "Organization.Read.All"),
    };
    let unverified: Vec<String> = vendors
        .iter()
        .filter(|v| !verified.contains(&v.spec.domain.to_lowercase()))
        .map(|v| format!("{} ({})", v.spec.domain, vendor_name(v)))
        .collect();
    if vendors.is_empty() {
        return check.pass("no VendorTenants to check");
    }
    if unverified.is_empty() {
        check.pass(format!("{} vendor(s), every domain verified", vendors.len()))
    } else {
        check.fail(
            format!("not a verified domain of the tenant: {}", unverified.join(", ")),
            "add and verify the domain in the Entra admin center (Domain names), or use a verified one in spec.domain",
        )
    }
}

fn vendor_name(v: &VendorTenant) -> &str {
    v.metadata.name.as_deref().unwrap_or("?")
}

fn skus_exist(skus: &Result<SkuTable, GraphError>, vendors: &[VendorTenant]) -> Check {
    let check = Check::new(
        "skus",
        "the SKUs the vendors name, with free seats",
        DOCS_LICENSES,
    );
    let table = match skus {
        Ok(t) => t,
        Err(e) => return unreadable(check, e, "Organization.Read.All"),
    };
    let named: BTreeSet<&str> = vendors
        .iter()
        .flat_map(|v| v.spec.licenses.iter().map(|l| l.sku_part_number.as_str()))
        .collect();
    let missing: Vec<&str> = named
        .iter()
        .copied()
        .filter(|p| !table.contains_key(*p))
        .collect();
    let seats: Vec<String> = named
        .iter()
        .filter_map(|p| table.get(*p).map(|s| format!("{p}: {} free", s.free())))
        .collect();
    if !missing.is_empty() {
        return check.fail(
            format!("not subscribed in the tenant: {}", missing.join(", ")),
            "fix the part number in the VendorTenant (docs/licenses.md has the table), or buy the SKU",
        );
    }
    if named.is_empty() {
        return check.pass("no VendorTenant names a SKU");
    }
    check.pass(seats.join(", "))
}

fn barrier_plans(skus: &Result<SkuTable, GraphError>, vendors: &[VendorTenant]) -> Check {
    let check = Check::new(
        "ib-capable-licence",
        "an INFORMATION_BARRIERS service plan for vendors that require barriers",
        DOCS_LICENSES,
    );
    let Ok(table) = skus else {
        return check.unknown("the SKUs could not be read", "see the SKU check");
    };
    let lacking: Vec<&str> = vendors
        .iter()
        .filter(|v| v.spec.barriers.as_ref().and_then(|b| b.required).unwrap_or(true))
        .filter(|v| {
            !v.spec.licenses.iter().any(|l| {
                table.get(&l.sku_part_number).is_some_and(|s| {
                    s.plans.contains_key(IB_SERVICE_PLAN)
                        && !l.disabled_plans.iter().any(|p| p == IB_SERVICE_PLAN)
                })
            })
        })
        .map(vendor_name)
        .collect();
    if lacking.is_empty() {
        check.pass("every vendor that requires barriers gets a licence with it")
    } else {
        check.fail(
            format!("no licence with {IB_SERVICE_PLAN} enabled for: {}", lacking.join(", ")),
            "add an information-barrier-capable SKU (e.g. SPE_E5, ENTERPRISEPREMIUM or INFORMATION_PROTECTION_COMPLIANCE) to spec.licenses",
        )
    }
}

async fn password_role(tenant: &Tenant) -> Check {
    let check = Check::new(
        "password-role",
        "a directory role to set the accounts' passwords",
        DOCS_ROLE,
    );
    let graph = &tenant.directory.graph;
    let path = format!(
        "/servicePrincipals?$filter=appId eq {}&$select=id",
        odata_string(&tenant.client_id)
    );
    let principal = match graph.list(&path).await {
        Ok(found) => found.first().and_then(|p| p["id"].as_str().map(str::to_owned)),
        Err(e) => return unreadable(check, &e, "Application.Read.All"),
    };
    let Some(principal) = principal else {
        return check.unknown("the app's service principal was not found", "check --client-id");
    };
    let path = format!(
        "/roleManagement/directory/roleAssignments?$filter=principalId eq {}",
        odata_string(&principal)
    );
    let assignments = match graph.list(&path).await {
        Ok(a) => a,
        Err(e) => return unreadable(check, &e, "RoleManagement.Read.Directory"),
    };
    let mut held = Vec::new();
    for a in &assignments {
        let role = a["roleDefinitionId"].as_str().unwrap_or_default();
        if let Some((_, name)) = PASSWORD_ROLES.iter().find(|(id, _)| *id == role) {
            held.push(format!(
                "{name} {}",
                scope_words(tenant, a["directoryScopeId"].as_str()).await
            ));
        }
    }
    if held.is_empty() {
        return check.fail(
            "the app holds no directory role that may set passwords: rotations and resets get 403 Authorization_RequestDenied",
            "assign the app User Administrator, scoped to an administrative unit that holds only the vendor accounts (docs/install.md#directory-role)",
        );
    }
    check.pass(held.join("; "))
}

/// A role assignment's scope in words: the tenant, or the unit with how it is kept.
async fn scope_words(tenant: &Tenant, scope: Option<&str>) -> String {
    let Some(unit) = scope.and_then(|s| s.strip_prefix("/administrativeUnits/")) else {
        return "tenant-wide (it may reset any non-administrator's password: scope it to an administrative unit)".into();
    };
    let path = format!("/directory/administrativeUnits/{unit}");
    match tenant.directory.graph.get(&path).await {
        Ok(u) => format!(
            "over administrative unit '{}' ({}{})",
            u["displayName"].as_str().unwrap_or(unit),
            u["membershipRule"]
                .as_str()
                .map_or("assigned members".to_owned(), |r| format!("dynamic: {r}")),
            if u["isMemberManagementRestricted"] == true {
                ", restricted management"
            } else {
                ""
            }
        ),
        Err(_) => format!("over administrative unit {unit}"),
    }
}
