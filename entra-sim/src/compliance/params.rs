//! Cmdlet parameters as PowerShell binds them: names without regard to case, and the binding
//! errors it reports for a value of the wrong kind.

use super::{CmdletError, Kind, error};
use serde_json::{Map, Value};

/// The parameters of one call, looked up without regard to case as PowerShell binds them.
pub struct Params(pub(super) Map<String, Value>);

impl Params {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    /// Refuses any parameter not in `allowed` (`Confirm` is accepted everywhere).
    pub fn only(&self, allowed: &[&str]) -> Result<(), CmdletError> {
        match self.0.keys().find(|k| {
            !k.eq_ignore_ascii_case("Confirm") && !allowed.iter().any(|a| a.eq_ignore_ascii_case(k))
        }) {
            Some(k) => Err(error(
                Kind::Parameter,
                format!("A parameter cannot be found that matches parameter name '{k}'."),
            )),
            None => Ok(()),
        }
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, CmdletError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(error(
                Kind::Parameter,
                format!(
                    "Cannot bind parameter '{name}'. Cannot convert value \"{other}\" to type \"System.String\"."
                ),
            )),
        }
    }

    pub fn required(&self, name: &str) -> Result<String, CmdletError> {
        match self.string(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(error(
                Kind::Parameter,
                format!("Cannot bind argument to parameter '{name}' because it is an empty string."),
            )),
            None => Err(error(
                Kind::Parameter,
                format!(
                    "Cannot process command because of one or more missing mandatory parameters: {name}."
                ),
            )),
        }
    }

    /// A multi-valued parameter: an array of strings (a lone string counts as one value).
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, CmdletError> {
        let bad = || {
            error(
                Kind::Parameter,
                format!("Cannot bind parameter '{name}'. Specify an array of strings."),
            )
        };
        let values: Vec<String> = match self.get(name) {
            None => return Ok(None),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad()),
        };
        if values.is_empty() || values.iter().any(|v| v.trim().is_empty()) {
            return Err(error(
                Kind::Parameter,
                format!(
                    "Cannot validate argument on parameter '{name}'. The argument is null, empty, or an element of the argument collection contains a null value."
                ),
            ));
        }
        Ok(Some(values))
    }

    /// A switch or boolean parameter.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, CmdletError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(error(
                Kind::Parameter,
                format!(
                    "Cannot convert value \"{other}\" to type \"System.Management.Automation.SwitchParameter\". Boolean parameters accept only Boolean values."
                ),
            )),
        }
    }
}
