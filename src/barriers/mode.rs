//! The tenant's information-barrier mode, read with `Get-PolicyConfig`
//! (`InformationBarrierMode`) and never changed by the operator: `Set-PolicyConfig
//! -InformationBarrierMode MultiSegment` cannot be undone ("you cannot revert to single segment
//! support", learn.microsoft.com/purview/information-barriers-multi-segment), so switching is
//! an administrator's decision.

use serde::{Deserialize, Serialize};

/// The modes a tenant reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum IbMode {
    /// IB enabled before 2023-02-15 (or a tenant that never created a segment): one segment
    /// per user, at most 250 segments.
    Legacy,
    /// Non-legacy, one segment per user, at most 5,000 segments.
    SingleSegment,
    /// Non-legacy, up to 10 segments per user, allow policies only.
    MultiSegment,
}

/// Segments a user may be in, in multi-segment mode (Set-PolicyConfig, office-docs-powershell).
pub const MULTI_SEGMENTS_PER_USER: usize = 10;

impl IbMode {
    /// The mode named by `InformationBarrierMode`; `None` for a value this operator does not
    /// know (treated as unknown, never guessed).
    pub fn parse(value: &str) -> Option<IbMode> {
        match value.to_ascii_lowercase().as_str() {
            "legacy" => Some(IbMode::Legacy),
            "singlesegment" | "single" => Some(IbMode::SingleSegment),
            "multisegment" | "multiallow" => Some(IbMode::MultiSegment),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IbMode::Legacy => "Legacy",
            IbMode::SingleSegment => "SingleSegment",
            IbMode::MultiSegment => "MultiSegment",
        }
    }

    /// Whether a user can be in several segments, which is what lets one engineer serve
    /// several vendors.
    pub fn multi(self) -> bool {
        self == IbMode::MultiSegment
    }

    /// How many segments a user may be in.
    pub fn segments_per_user(self) -> usize {
        if self.multi() { MULTI_SEGMENTS_PER_USER } else { 1 }
    }

    /// How many segments the tenant may hold.
    pub fn max_segments(self) -> usize {
        if self == IbMode::Legacy { 250 } else { 5000 }
    }

    /// The generated design this mode gets, in a sentence for status and docs.
    pub fn design(self) -> &'static str {
        if self.multi() {
            "one segment per vendor holding its accounts and its engineers, allowed to reach only itself"
        } else {
            "two segments per vendor (its accounts, its engineers), allowed to reach only each other"
        }
    }
}

impl std::fmt::Display for IbMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::IbMode;

    #[test]
    fn modes_parse_without_regard_to_case_and_unknown_values_stay_unknown() {
        assert_eq!(IbMode::parse("MultiSegment"), Some(IbMode::MultiSegment));
        assert_eq!(IbMode::parse("singlesegment"), Some(IbMode::SingleSegment));
        assert_eq!(IbMode::parse("Legacy"), Some(IbMode::Legacy));
        assert_eq!(IbMode::parse("Sideways"), None);
        assert_eq!(IbMode::MultiSegment.segments_per_user(), 10);
        assert_eq!(IbMode::Legacy.max_segments(), 250);
    }
}
