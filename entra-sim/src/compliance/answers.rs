//! How the endpoint writes policies applications (`Start-`, `Get-...ApplicationStatus`,
//! `Stop-`): the forms the real endpoint may use, and broken ones, so clients can be tested to
//! read the first and fail closed on the second. Set through the misbehaviour setting
//! `applicationAnswers`; the admin views (`/_sim/barriers`) always show the truth.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The time fields of an application.
pub const TIME_FIELDS: [&str; 3] = ["CreationTime", "ApplicationStartTime", "ApplicationEndTime"];

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ApplicationAnswers {
    /// The form of `CreationTime`, `ApplicationStartTime` and `ApplicationEndTime`.
    pub times: TimeForm,
    /// The form of `Status` and `PercentProgress`.
    pub status: StatusForm,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum TimeForm {
    /// RFC 3339 in UTC, e.g. `2023-11-14T22:13:20Z`.
    #[default]
    Iso,
    /// RFC 3339 with a `+01:00` offset (the same instant).
    IsoOffset,
    /// The .NET JSON form, `/Date(1700000000000)/` (milliseconds since 1970 UTC).
    MsDate,
    /// The .NET JSON form with an informational offset, `/Date(1700000000000+0100)/`.
    MsDateOffset,
    /// No time fields at all.
    Missing,
    /// Text that is no time (`not a time`), and a bare number for `ApplicationEndTime`.
    Unparseable,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum StatusForm {
    /// `Status` one of NotStarted, InProgress, Completed, Failed, Stopped; `PercentProgress`
    /// a number.
    #[default]
    Normal,
    /// No `Status` and no `PercentProgress`.
    Missing,
    /// `Status` that is no status (`Finished?`) and `PercentProgress` that is no number.
    Unparseable,
}

impl ApplicationAnswers {
    pub fn is_default(&self) -> bool {
        *self == ApplicationAnswers::default()
    }
}

/// Whether `cmdlet` answers with applications.
pub fn answers_applications(cmdlet: &str) -> bool {
    matches!(
        cmdlet.to_ascii_lowercase().as_str(),
        "start-informationbarrierpoliciesapplication"
            | "get-informationbarrierpoliciesapplicationstatus"
            | "stop-informationbarrierpoliciesapplication"
    )
}

fn time(text: &str, form: TimeForm) -> Option<Value> {
    let t: Timestamp = text.parse().ok()?;
    let ms = t.as_millisecond();
    Some(match form {
        TimeForm::Iso => json!(t.to_string()),
        TimeForm::IsoOffset => {
            let local = t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(1)));
            json!(local.strftime("%Y-%m-%dT%H:%M:%S%.f%:z").to_string())
        }
        TimeForm::MsDate => json!(format!("/Date({ms})/")),
        TimeForm::MsDateOffset => json!(format!("/Date({ms}+0100)/")),
        TimeForm::Missing | TimeForm::Unparseable => return None,
    })
}

/// Rewrites one application object (as [`super::state::Application::to_json`] made it).
pub fn reshape(app: &mut Value, answers: &ApplicationAnswers) {
    let Some(obj) = app.as_object_mut() else {
        return;
    };
    for field in TIME_FIELDS {
        if answers.times == TimeForm::Missing {
            obj.remove(field);
            continue;
        }
        let Some(Value::String(text)) = obj.get(field).cloned() else {
            continue;
        };
        match (answers.times, time(&text, answers.times)) {
            (TimeForm::Unparseable, _) if field == "ApplicationEndTime" => {
                obj.insert(field.into(), json!(1_700_000_000));
            }
            (TimeForm::Unparseable, _) => {
                obj.insert(field.into(), json!("not a time"));
            }
            (_, Some(v)) => {
                obj.insert(field.into(), v);
            }
            (_, None) => {}
        }
    }
    match answers.status {
        StatusForm::Normal => {}
        StatusForm::Missing => {
            obj.remove("Status");
            obj.remove("PercentProgress");
        }
        StatusForm::Unparseable => {
            obj.insert("Status".into(), json!("Finished?"));
            obj.insert("PercentProgress".into(), json!("most of it"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "Identity": "a", "Status": "Completed", "PercentProgress": 100,
            "CreationTime": "2023-11-14T22:13:20Z", "ApplicationStartTime": "2023-11-14T22:43:20Z",
            "ApplicationEndTime": null,
        })
    }

    fn shaped(times: TimeForm, status: StatusForm) -> Value {
        let mut v = sample();
        reshape(&mut v, &ApplicationAnswers { times, status });
        v
    }

    #[test]
    fn times_take_the_requested_form() {
        assert_eq!(shaped(TimeForm::Iso, StatusForm::Normal), sample());
        let v = shaped(TimeForm::MsDate, StatusForm::Normal);
        assert_eq!(v["CreationTime"], "/Date(1700000000000)/");
        assert_eq!(
            v["ApplicationEndTime"],
            Value::Null,
            "an absent time stays absent"
        );
        let v = shaped(TimeForm::MsDateOffset, StatusForm::Normal);
        assert_eq!(v["CreationTime"], "/Date(1700000000000+0100)/");
        let v = shaped(TimeForm::IsoOffset, StatusForm::Normal);
        assert_eq!(v["CreationTime"], "2023-11-14T23:13:20+01:00");
        let v = shaped(TimeForm::Missing, StatusForm::Normal);
        assert!(TIME_FIELDS.iter().all(|f| v.get(f).is_none()), "{v}");
        let v = shaped(TimeForm::Unparseable, StatusForm::Normal);
        assert_eq!(v["CreationTime"], "not a time");
    }

    #[test]
    fn status_takes_the_requested_form() {
        let v = shaped(TimeForm::Iso, StatusForm::Missing);
        assert!(v.get("Status").is_none() && v.get("PercentProgress").is_none());
        let v = shaped(TimeForm::Iso, StatusForm::Unparseable);
        assert_eq!(v["Status"], "Finished?");
        assert!(!v["PercentProgress"].is_number());
    }
}
