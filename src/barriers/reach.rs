//! Who can reach whom under a set of Active policies (pure), for the reachability preview of
//! `plan`, the applied view of `audit` and the BarrierSegment status.
//!
//! The rules, with the most restrictive reading wherever Microsoft's documentation is silent
//! (the simulated tenant takes the same one):
//! - users who share any segment are compatible ("If users share assignment to the same
//!   segment, they are compatible", learn.microsoft.com/purview/information-barriers-multi-segment);
//! - otherwise both directions must pass, and a direction passes only if *every* policy of
//!   the sender's segments permits the receiver: an allow policy lists one of the receiver's
//!   segments, a block policy lists none of them. A user in no segment is on no allow list;
//! - in multi-segment mode, an allow policy whose other listed segments cannot reach each other
//!   counts as listing only its own segment (the "conduit" reading, reported for IB v2 and
//!   unconfirmed). The generated multi-segment design uses self-only policies, so it holds
//!   under either reading.

use super::IbMode;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// An Active policy: the segments an allow list names, or a block list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub segments: BTreeSet<String>,
}

/// Active policies by the (lower-cased) name of the segment they are assigned to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policies(BTreeMap<String, Rule>);

impl Policies {
    pub fn insert(&mut self, segment: &str, allow: bool, listed: impl IntoIterator<Item = String>) {
        let segments = listed.into_iter().map(|s| s.to_lowercase()).collect();
        self.0.insert(segment.to_lowercase(), Rule { allow, segments });
    }

    fn get(&self, segment: &str) -> Option<&Rule> {
        self.0.get(&segment.to_lowercase())
    }

    /// Whether `a`'s policy lets it reach `b` (a segment without a policy reaches everyone).
    fn names(&self, a: &str, b: &str) -> bool {
        self.get(a)
            .is_none_or(|r| r.segments.contains(&b.to_lowercase()) == r.allow)
    }

    /// The policy as evaluated in `mode` (the conduit reading in multi-segment mode).
    fn effective(&self, segment: &str, mode: IbMode) -> Option<Rule> {
        let rule = self.get(segment)?.clone();
        if !mode.multi() || !rule.allow {
            return Some(rule);
        }
        let own = segment.to_lowercase();
        let others: Vec<&String> = rule.segments.iter().filter(|s| **s != own).collect();
        let conduit = others.iter().enumerate().any(|(i, a)| {
            others[i + 1..]
                .iter()
                .any(|b| !(self.names(a, b) && self.names(b, a)))
        });
        Some(if conduit {
            Rule {
                allow: true,
                segments: BTreeSet::from([own]),
            }
        } else {
            rule
        })
    }

    fn permits(&self, from: &BTreeSet<String>, to: &BTreeSet<String>, mode: IbMode) -> bool {
        from.iter().all(|s| match self.effective(s, mode) {
            None => true,
            Some(rule) => {
                let listed = to.iter().any(|t| rule.segments.contains(&t.to_lowercase()));
                listed == rule.allow
            }
        })
    }

    /// Whether users in segments `a` and users in segments `b` can reach each other.
    pub fn reachable(&self, a: &BTreeSet<String>, b: &BTreeSet<String>, mode: IbMode) -> bool {
        let lower = |s: &BTreeSet<String>| s.iter().map(|x| x.to_lowercase()).collect::<BTreeSet<_>>();
        if !lower(a).is_disjoint(&lower(b)) {
            return true;
        }
        self.permits(a, b, mode) && self.permits(b, a, mode)
    }
}

/// A kind of user, by the segments its users are in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Class {
    pub label: String,
    pub segments: BTreeSet<String>,
}

/// Who can reach whom, class by class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    pub mode: IbMode,
    pub classes: Vec<Class>,
    /// `reach[i][j]`: whether users of class `i` can reach users of class `j`.
    pub reach: Vec<Vec<bool>>,
}

impl Matrix {
    pub fn new(mode: IbMode, classes: Vec<Class>, policies: &Policies) -> Matrix {
        let reach = classes
            .iter()
            .map(|a| {
                classes
                    .iter()
                    .map(|b| policies.reachable(&a.segments, &b.segments, mode))
                    .collect()
            })
            .collect();
        Matrix { mode, classes, reach }
    }

    /// Whether the class labelled `a` can reach the class labelled `b`.
    pub fn can(&self, a: &str, b: &str) -> Option<bool> {
        let i = self.classes.iter().position(|c| c.label == a)?;
        let j = self.classes.iter().position(|c| c.label == b)?;
        Some(self.reach[i][j])
    }

    /// The matrix as text: one row per class, `✓` reachable, `·` not, with a numbered legend.
    pub fn render(&self) -> String {
        let mut out = format!("reachability ({} mode; ✓ can reach, · cannot)\n", self.mode);
        for (i, c) in self.classes.iter().enumerate() {
            let segments = if c.segments.is_empty() {
                "no segment".to_owned()
            } else {
                c.segments.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            out.push_str(&format!("  [{}] {} ({segments})\n", i + 1, c.label));
        }
        out.push_str("      ");
        for i in 0..self.classes.len() {
            out.push_str(&format!("{:>3}", i + 1));
        }
        out.push('\n');
        for (i, row) in self.reach.iter().enumerate() {
            out.push_str(&format!("  [{:>2}]", i + 1));
            for cell in row {
                out.push_str(if *cell { "  ✓" } else { "  ·" });
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
#[path = "reach_tests.rs"]
mod tests;
