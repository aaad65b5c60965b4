//! `remote-assist-operator doctor`: the tenant prerequisites the operator depends on, each
//! checked through the same APIs the operator uses and reported as pass, fail or unknown with
//! the fix and where the docs explain it. The same checks run when the operator starts; their
//! report is in `/readyz`'s body and, when one fails, in a Warning Event.

mod checks;
pub(crate) mod claims;
mod startup;

pub use checks::examine;
pub use startup::{PREREQUISITE_FAILED, check_at_start_up};

use serde::Serialize;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// The check could not be made (usually a read permission only `doctor` needs).
    Unknown,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One prerequisite and what was found.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Stable id, e.g. `ib-processor-consent`.
    pub id: &'static str,
    /// What is checked, in a few words.
    pub title: &'static str,
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// What to do about it (empty on a pass).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
    /// Where the docs explain it.
    pub docs: &'static str,
}

impl Check {
    fn new(id: &'static str, title: &'static str, docs: &'static str) -> Check {
        Check {
            id,
            title,
            outcome: Outcome::Unknown,
            detail: String::new(),
            fix: String::new(),
            docs,
        }
    }

    fn pass(mut self, detail: impl Into<String>) -> Check {
        self.outcome = Outcome::Pass;
        self.detail = detail.into();
        self
    }

    fn fail(mut self, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        self.outcome = Outcome::Fail;
        self.detail = detail.into();
        self.fix = fix.into();
        self
    }

    fn unknown(mut self, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        self.outcome = Outcome::Unknown;
        self.detail = detail.into();
        self.fix = fix.into();
        self
    }
}

/// A prerequisite no API can read: printed for a person to confirm.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualStep {
    pub title: &'static str,
    pub how: &'static str,
    pub docs: &'static str,
}

/// Every check, in order, and the manual steps.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub checks: Vec<Check>,
    pub manual: Vec<ManualStep>,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    /// One line per failed check, for an Event or a log line.
    pub fn failure_summary(&self) -> Option<String> {
        let failed: Vec<String> = self.failed().map(|c| format!("{}: {}", c.id, c.detail)).collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("[{:>7}] {}: {}\n", c.outcome.label(), c.title, c.detail));
            if !c.fix.is_empty() {
                out.push_str(&format!("          fix: {}\n", c.fix));
            }
            if c.outcome != Outcome::Pass {
                out.push_str(&format!("          docs: {}\n", c.docs));
            }
        }
        for m in &self.manual {
            out.push_str(&format!(
                "[ manual] {}: {}\n          docs: {}\n",
                m.title, m.how, m.docs
            ));
        }
        let failed = self.failed().count();
        let unknown = self
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Unknown)
            .count();
        out.push_str(&format!(
            "{} checks: {} passed, {failed} failed, {unknown} unknown; {} manual step(s)\n",
            self.checks.len(),
            self.checks.len() - failed - unknown,
            self.manual.len()
        ));
        out
    }
}

/// Scoped directory search cannot be read through Graph or the compliance endpoint.
pub(crate) fn manual_steps() -> Vec<ManualStep> {
    vec![ManualStep {
        title: "Teams scoped directory search",
        how: "Teams admin center > Teams settings > Search by name: turn on 'Scope directory search using an Exchange address book policy', then wait 24 hours before the first barrier policy is applied",
        docs: "docs/install.md#tenant-prerequisites",
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_each_failure_with_its_fix_and_counts_them() {
        let report = Report {
            checks: vec![
                Check::new("a", "first", "docs/a").pass("fine"),
                Check::new("b", "second", "docs/b").fail("missing", "add it"),
                Check::new("c", "third", "docs/c").unknown("no right", "grant it"),
            ],
            manual: manual_steps(),
        };
        let text = report.render_text();
        assert!(text.contains("[   FAIL] second: missing\n          fix: add it\n          docs: docs/b"));
        assert!(
            text.starts_with("[   pass] first: fine\n[   FAIL]"),
            "a pass has no fix or docs: {text}"
        );
        assert!(text.contains("3 checks: 1 passed, 1 failed, 1 unknown; 1 manual step(s)"));
        assert_eq!(report.failure_summary().as_deref(), Some("b: missing"));
    }
}
