//! Directory roles of app service principals, administrative units, and the checks Entra makes
//! before an app changes a user: a password update needs a directory role that may reset the
//! user's password, held tenant-wide or over an administrative unit that holds the user; a member
//! of a restricted-management unit can be changed only by a principal whose role is scoped to
//! that unit, whatever its Graph permissions.

use crate::auth::Principal;
use crate::model::{Tenant, User};
use crate::odata::GraphError;
use crate::seed::{Seed, SeedAdministrativeUnit};
use crate::state::Sim;
use axum::http::StatusCode;
use std::collections::BTreeSet;

/// Built-in roles the simulator knows, with their template ids (the same in every tenant).
pub const ROLE_TEMPLATES: &[(&str, &str)] = &[
    ("Global Administrator", "62e90394-69f5-4237-9190-012177145e10"),
    (
        "Privileged Authentication Administrator",
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    ),
    ("User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1"),
    ("Helpdesk Administrator", "729827e3-9c14-49f7-bb1b-9608f156bbb8"),
    ("Password Administrator", "966707d0-3269-4727-9be2-8c3a10f19b9d"),
    ("License Administrator", "4d6ac14f-3453-41d0-bef9-a3e0c569773a"),
    ("Compliance Administrator", "17315797-102d-40b4-93e0-432062caca18"),
];

/// The template id of a built-in role, by display name.
pub fn role_template_id(name: &str) -> Option<&'static str> {
    ROLE_TEMPLATES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, id)| *id)
}

/// Roles that may reset the password of a user who holds no directory role.
const RESETS_NON_ADMINS: &[&str] = &[
    "Global Administrator",
    "Privileged Authentication Administrator",
    "User Administrator",
    "Helpdesk Administrator",
    "Password Administrator",
];
/// Roles that may reset the password of any user, administrators included.
const RESETS_ADMINS: &[&str] = &["Global Administrator", "Privileged Authentication Administrator"];
/// Roles that may change a user's other properties (over a restricted-management unit).
const MANAGES_USERS: &[&str] = &["Global Administrator", "User Administrator"];
/// Roles that may assign licences (over a restricted-management unit).
const ASSIGNS_LICENSES: &[&str] = &[
    "Global Administrator",
    "User Administrator",
    "License Administrator",
];

/// What a request changes on a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserWrite {
    /// Properties other than the password, deletion and restore.
    Properties,
    Password,
    Licenses,
}

/// One role assignment of an app's service principal.
#[derive(Clone, Debug)]
pub struct RoleAssignment {
    pub id: String,
    pub principal_id: String,
    pub role: String,
    /// The administrative unit's id; `None` is the whole tenant (`/`).
    pub unit: Option<String>,
}

impl RoleAssignment {
    pub fn directory_scope_id(&self) -> String {
        match &self.unit {
            Some(u) => format!("/administrativeUnits/{u}"),
            None => "/".into(),
        }
    }
}

/// An administrative unit, with its dynamic rule parsed.
#[derive(Clone, Debug)]
pub struct AdminUnit {
    pub id: String,
    pub display_name: String,
    pub restricted: bool,
    pub membership_rule: Option<String>,
    rule: Option<Rule>,
    /// Assigned members, by lower-case user principal name.
    assigned: BTreeSet<String>,
}

impl AdminUnit {
    /// Whether the user is a member: assigned, or matched by the dynamic rule. The rule is
    /// evaluated on every check (Entra processes dynamic membership asynchronously).
    pub fn contains(&self, user: &User) -> bool {
        match &self.rule {
            Some(rule) => rule.matches(user),
            None => self.assigned.contains(&user.upn.to_lowercase()),
        }
    }
}

/// A one-clause dynamic membership rule: `(user.<property> -eq|-ne|-startsWith|-contains "v")`.
#[derive(Clone, Debug)]
struct Rule {
    property: String,
    op: String,
    value: String,
}

impl Rule {
    fn parse(text: &str) -> anyhow::Result<Rule> {
        let inner = text.trim().trim_start_matches('(').trim_end_matches(')').trim();
        let mut parts = inner.splitn(3, ' ');
        let (Some(lhs), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("membership rule {text:?}: expected (user.<property> -<op> \"value\")");
        };
        let property = lhs
            .strip_prefix("user.")
            .ok_or_else(|| anyhow::anyhow!("membership rule {text:?}: only user properties"))?;
        let op = op.to_ascii_lowercase();
        if !["-eq", "-ne", "-startswith", "-contains"].contains(&op.as_str()) {
            anyhow::bail!("membership rule {text:?}: unsupported operator {op}");
        }
        let value = value.trim().trim_matches('"').to_owned();
        Ok(Rule {
            property: property.to_owned(),
            op,
            value,
        })
    }

    fn matches(&self, user: &User) -> bool {
        let json = user.to_json();
        let actual = match self.property.strip_prefix("extensionAttribute") {
            Some(_) => json["onPremisesExtensionAttributes"][self.property.as_str()].as_str(),
            None => json.get(&self.property).and_then(|v| v.as_str()),
        }
        .map(str::to_lowercase);
        let want = self.value.to_lowercase();
        match (self.op.as_str(), actual) {
            ("-eq", Some(a)) => a == want,
            ("-ne", a) => a.as_deref() != Some(want.as_str()),
            ("-startswith", Some(a)) => a.starts_with(&want),
            ("-contains", Some(a)) => a.contains(&want),
            _ => false,
        }
    }
}

/// The directory's role data, built from the seed.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    pub units: Vec<AdminUnit>,
    pub assignments: Vec<RoleAssignment>,
}

impl Roles {
    pub fn from_seed(seed: &Seed) -> anyhow::Result<Roles> {
        let units = seed
            .administrative_units
            .iter()
            .map(unit_from_seed)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut assignments = Vec::new();
        for app in &seed.apps {
            let principal_id = crate::seed::service_principal_id(app);
            for grant in &app.directory_roles {
                if role_template_id(&grant.role).is_none() {
                    anyhow::bail!(
                        "app {}: unknown directory role {:?}",
                        app.display_name,
                        grant.role
                    );
                }
                let unit = match &grant.administrative_unit {
                    Some(name) => Some(
                        units
                            .iter()
                            .find(|u| u.display_name == *name)
                            .ok_or_else(|| anyhow::anyhow!("unknown administrative unit {name:?}"))?
                            .id
                            .clone(),
                    ),
                    None => None,
                };
                assignments.push(RoleAssignment {
                    id: stable_id(&format!("{principal_id}/{}/{unit:?}", grant.role)),
                    principal_id: principal_id.clone(),
                    role: grant.role.clone(),
                    unit,
                });
            }
        }
        Ok(Roles { units, assignments })
    }

    /// Refuses an app's change to a user unless Entra would allow it.
    pub fn check_user_write(
        &self,
        sim: &Sim,
        t: &Tenant,
        p: &Principal,
        user_id: &str,
        what: UserWrite,
    ) -> Result<(), GraphError> {
        let Some(user) = t.users.get(user_id) else {
            return Ok(());
        };
        let principal = principal_id(sim, p);
        let held: Vec<&RoleAssignment> = self
            .assignments
            .iter()
            .filter(|a| Some(&a.principal_id) == principal.as_ref())
            .collect();
        let units: Vec<&AdminUnit> = self.units.iter().filter(|u| u.contains(user)).collect();
        let covers = |a: &RoleAssignment| a.unit.as_ref().is_none_or(|id| units.iter().any(|u| u.id == *id));
        let restricted: Vec<&&AdminUnit> = units.iter().filter(|u| u.restricted).collect();
        if !restricted.is_empty() {
            let roles = match what {
                UserWrite::Properties => MANAGES_USERS,
                UserWrite::Licenses => ASSIGNS_LICENSES,
                UserWrite::Password => RESETS_NON_ADMINS,
            };
            let scoped = held.iter().any(|a| {
                roles.contains(&a.role.as_str())
                    && a.unit
                        .as_ref()
                        .is_some_and(|id| restricted.iter().any(|u| u.id == *id))
            });
            if !scoped {
                return Err(restricted_unit_error());
            }
        }
        if what == UserWrite::Password {
            let roles = if user.directory_roles.is_empty() {
                RESETS_NON_ADMINS
            } else {
                RESETS_ADMINS
            };
            if !held.iter().any(|a| roles.contains(&a.role.as_str()) && covers(a)) {
                return Err(GraphError::denied());
            }
        }
        Ok(())
    }
}

fn unit_from_seed(u: &SeedAdministrativeUnit) -> anyhow::Result<AdminUnit> {
    Ok(AdminUnit {
        id: u
            .id
            .clone()
            .unwrap_or_else(|| stable_id(&format!("au/{}", u.display_name))),
        display_name: u.display_name.clone(),
        restricted: u.is_member_management_restricted,
        membership_rule: u.membership_rule.clone(),
        rule: u.membership_rule.as_deref().map(Rule::parse).transpose()?,
        assigned: u.members.iter().map(|m| m.to_lowercase()).collect(),
    })
}

/// The service principal object id of the app a token was issued to.
pub fn principal_id(sim: &Sim, p: &Principal) -> Option<String> {
    sim.apps
        .iter()
        .find(|a| a.seed.client_id.eq_ignore_ascii_case(&p.app_id))
        .map(|a| crate::seed::service_principal_id(&a.seed))
}

/// The error Entra gives for a change to a member of a restricted-management unit by a
/// principal without a role scoped to it.
fn restricted_unit_error() -> GraphError {
    GraphError::new(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Target object is a member of a restricted management administrative unit and can only be modified by administrators scoped to that administrative unit. Check that you are assigned a role that has permission to modify this object.",
    )
}

/// A stable GUID-shaped id derived from a name (FNV-1a), so one seed gives one id in every run.
pub fn stable_id(name: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in name.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    uuid::Uuid::from_u128(h).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(employee_type: Option<&str>) -> User {
        let seed = crate::seed::SeedUser {
            id: Some("u1".into()),
            user_principal_name: "a@abc.example".into(),
            display_name: "A".into(),
            mail_nickname: None,
            account_enabled: true,
            usage_location: None,
            department: None,
            password: None,
            directory_roles: vec![],
        };
        let mut u = User::from_seed(&seed, std::time::Instant::now());
        u.employee_type = employee_type.map(str::to_owned);
        u
    }

    #[test]
    fn a_dynamic_rule_matches_the_operators_mark_only() {
        let rule = Rule::parse(r#"(user.employeeType -startsWith "remoteassist.dev/")"#).unwrap();
        assert!(rule.matches(&user(Some("remoteassist.dev/uid-1"))));
        assert!(!rule.matches(&user(Some("contractor"))));
        assert!(!rule.matches(&user(None)));
        assert!(Rule::parse("(user.employeeType -like \"x\")").is_err());
        assert!(Rule::parse("(device.x -eq \"y\")").is_err());
    }
}
