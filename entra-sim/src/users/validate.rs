//! Graph's checks of a user's properties, shared by create and update; each failure is the
//! 400 Graph gives for it.

use super::Result;
use crate::odata::GraphError;
use crate::state::Sim;
use serde_json::Value;
use std::collections::BTreeMap;

const UPN_LOCAL: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.-_!#^~";

fn valid_upn_shape(upn: &str) -> bool {
    let Some((local, domain)) = upn.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && local.chars().all(|c| UPN_LOCAL.contains(c))
        && !domain.is_empty()
        && !domain.contains('@')
}

fn valid_nickname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii() && !"@()\\[]\";:<>, ".contains(c) && !c.is_control())
}

/// Entra's default password policy: 8 to 256 characters and three of the four character classes.
fn complex_enough(password: &str) -> bool {
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    (8..=256).contains(&password.chars().count()) && classes.iter().filter(|c| **c).count() >= 3
}

const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

fn valid_country(c: &str) -> bool {
    c.len() == 2 && COUNTRIES.split(' ').any(|x| x == c)
}

/// `employeeType`: free text of at most 64 characters.
pub(super) fn employee_type(body: &Value) -> Result<Option<String>> {
    match str_field(body, "employeeType")? {
        Some(v) if v.chars().count() > 64 => Err(GraphError::invalid_value("employeeType", "User")),
        v => Ok(v.map(str::to_owned)),
    }
}

pub(super) fn str_field<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphError::invalid_value(name, "User")),
    }
}

fn check_domain(sim: &Sim, upn: &str) -> Result<()> {
    let domain = upn.rsplit('@').next().unwrap_or_default();
    if !sim
        .tenant()
        .domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(domain))
    {
        return Err(GraphError::bad_request(
            "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.",
        ));
    }
    Ok(())
}

/// A UPN of the right shape on one of the tenant's verified domains.
fn check_upn(sim: &Sim, upn: &str) -> Result<()> {
    if !valid_upn_shape(upn) {
        return Err(GraphError::invalid_value("userPrincipalName", "User"));
    }
    check_domain(sim, upn)
}

fn check_nickname(nickname: &str) -> Result<()> {
    if !valid_nickname(nickname) {
        return Err(GraphError::invalid_value("mailNickname", "User"));
    }
    Ok(())
}

fn check_password(password: &str) -> Result<()> {
    if !complex_enough(password) {
        return Err(GraphError::bad_request(
            "The specified password does not comply with password complexity requirements. Please provide a different password.",
        ));
    }
    Ok(())
}

fn parse_extension_attributes(body: &Value) -> Result<BTreeMap<u8, Option<String>>> {
    let mut out = BTreeMap::new();
    let Some(ext) = body.get("onPremisesExtensionAttributes") else {
        return Ok(out);
    };
    let Some(map) = ext.as_object() else {
        return Err(GraphError::invalid_value("onPremisesExtensionAttributes", "User"));
    };
    for (k, v) in map {
        let n: u8 = k
            .strip_prefix("extensionAttribute")
            .and_then(|n| n.parse().ok())
            .filter(|n| (1..=15).contains(n))
            .ok_or_else(|| GraphError::bad_request(format!("Invalid property '{k}'.")))?;
        match v {
            Value::Null => out.insert(n, None),
            Value::String(s) if s.chars().count() <= 1024 => out.insert(n, Some(s.clone())),
            _ => return Err(GraphError::invalid_value(k, "User")),
        };
    }
    Ok(out)
}

/// The properties of a new user that are checked before the tenant is locked.
pub(super) struct NewUser {
    pub(super) account_enabled: bool,
    pub(super) display_name: String,
    pub(super) nickname: String,
    pub(super) upn: String,
    pub(super) password: String,
    pub(super) usage_location: Option<String>,
    pub(super) extension_attributes: BTreeMap<u8, Option<String>>,
}

/// The checks of `POST /users`, in Graph's order, up to the extension attributes.
pub(super) fn new_user(sim: &Sim, body: &Value) -> Result<NewUser> {
    for required in [
        "accountEnabled",
        "displayName",
        "mailNickname",
        "userPrincipalName",
        "passwordProfile",
    ] {
        if body.get(required).is_none_or(Value::is_null) {
            return Err(GraphError::bad_request(format!(
                "Property '{required}' is required when creating the object."
            )));
        }
    }
    let account_enabled = body["accountEnabled"]
        .as_bool()
        .ok_or_else(|| GraphError::invalid_value("accountEnabled", "User"))?;
    let display_name = str_field(body, "displayName")?.unwrap_or_default().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 256 {
        return Err(GraphError::invalid_value("displayName", "User"));
    }
    let nickname = str_field(body, "mailNickname")?.unwrap_or_default().to_owned();
    check_nickname(&nickname)?;
    let upn = str_field(body, "userPrincipalName")?
        .unwrap_or_default()
        .to_owned();
    check_upn(sim, &upn)?;
    let password = body["passwordProfile"]["password"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    check_password(&password)?;
    let usage_location = str_field(body, "usageLocation")?.map(str::to_owned);
    if usage_location.as_deref().is_some_and(|c| !valid_country(c)) {
        return Err(GraphError::invalid_value("usageLocation", "User"));
    }
    let extension_attributes = parse_extension_attributes(body)?;
    Ok(NewUser {
        account_enabled,
        display_name,
        nickname,
        upn,
        password,
        usage_location,
        extension_attributes,
    })
}

/// What a PATCH changes beyond plain copies of its fields, once checked.
pub(super) struct Patch {
    /// `Some(None)` clears the usage location.
    pub(super) location: Option<Option<String>>,
    pub(super) extension_attributes: BTreeMap<u8, Option<String>>,
    pub(super) employee_type: Option<String>,
}

/// The checks of `PATCH /users/{id}` made before the tenant is locked, in Graph's order.
pub(super) fn patch(sim: &Sim, body: &Value) -> Result<Patch> {
    if let Some(upn) = str_field(body, "userPrincipalName")? {
        check_upn(sim, upn)?;
    }
    if let Some(pw) = body.get("passwordProfile") {
        check_password(pw["password"].as_str().unwrap_or_default())?;
    }
    if let Some(v) = str_field(body, "mailNickname")? {
        check_nickname(v)?;
    }
    let location = match body.get("usageLocation") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(c)) if valid_country(c) => Some(Some(c.clone())),
        Some(_) => return Err(GraphError::invalid_value("usageLocation", "User")),
    };
    if body.get("accountEnabled").is_some_and(|v| !v.is_boolean()) {
        return Err(GraphError::invalid_value("accountEnabled", "User"));
    }
    Ok(Patch {
        location,
        extension_attributes: parse_extension_attributes(body)?,
        employee_type: employee_type(body)?,
    })
}
