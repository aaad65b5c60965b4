//! The journal: an ordered record of every write the tenant answered, Graph and compliance
//! alike, for tests that check the order of changes (e.g. that a policy was removed before
//! the segment it was assigned to). It lives inside [`crate::state::Counters`] and is written
//! at the very point where the `writes` counter and `byRoute` are, under the same lock, so the
//! two cannot disagree. Served by `GET /_sim/journal` (see [`crate::admin`]).

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::VecDeque;

/// At most this many entries are kept; older ones are dropped first (and counted).
pub const CAPACITY: usize = 100_000;

/// Cmdlet verbs that change something; other cmdlets (Get-) are not journalled.
const CHANGING_VERBS: &[&str] = &["new-", "set-", "remove-", "start-", "stop-"];

/// Whether a cmdlet (by name as sent) changes the tenant's information barriers.
pub fn changes(cmdlet: &str) -> bool {
    let lower = cmdlet.to_ascii_lowercase();
    CHANGING_VERBS.iter().any(|v| lower.starts_with(v))
}

/// One accepted write.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Entry {
    /// 1, 2, 3, ... in the order the answers were produced; never reused, not even after a
    /// reset (which empties the journal but keeps counting).
    pub seq: u64,
    #[serde(flatten)]
    pub what: What,
}

/// What was written: a Graph request or a compliance command.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum What {
    Graph {
        /// `POST`, `PATCH`, `PUT` or `DELETE`.
        method: String,
        /// The request path as received, without the query (e.g. `/v1.0/users/{id}` filled in).
        path: String,
        /// The matched route, as `byRoute` counts it (e.g. `PATCH /v1.0/users/{id}`).
        route: String,
        /// The status answered.
        status: u16,
        /// Whether it was a request inside a `$batch` body.
        batch: bool,
    },
    Compliance {
        /// The cmdlet name as the client sent it (e.g. `Remove-OrganizationSegment`).
        cmdlet: String,
        /// The `Identity` parameter, else the `Name` parameter, if either is a string.
        identity: Option<String>,
        /// The name of the segment or policy the cmdlet names (however it was named: name,
        /// object id or ExO id), resolved before it ran; null for application cmdlets and
        /// when no such object existed.
        target: Option<String>,
        /// For policy cmdlets, the name of the policy's assigned segment.
        #[serde(rename = "assignedSegment")]
        assigned_segment: Option<String>,
        /// Every parameter as sent.
        parameters: Map<String, Value>,
        /// The status answered (200 on success, 400 for a cmdlet error, ...).
        status: u16,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Journal {
    last_seq: u64,
    entries: VecDeque<Entry>,
    dropped: u64,
}

impl Journal {
    pub fn record(&mut self, what: What) {
        self.last_seq += 1;
        if self.entries.len() >= CAPACITY {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(Entry {
            seq: self.last_seq,
            what,
        });
    }

    /// Empties the journal; the sequence goes on where it was.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.dropped = 0;
    }

    /// Entries with `seq` greater than `after`, oldest first.
    pub fn after(&self, after: u64) -> impl Iterator<Item = &Entry> {
        // `seq` increases along the deque, so the first kept entry past `after` is found by
        // its distance from the front.
        let first = self.entries.front().map_or(0, |e| e.seq);
        let skip = after.saturating_add(1).saturating_sub(first) as usize;
        self.entries.iter().skip(skip)
    }

    /// Entries dropped from the front for lack of room since the journal was last emptied.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(status: u16) -> What {
        What::Graph {
            method: "PATCH".into(),
            path: "/v1.0/users/x".into(),
            route: "PATCH /v1.0/users/{id}".into(),
            status,
            batch: false,
        }
    }

    #[test]
    fn the_journal_is_bounded_and_keeps_the_newest() {
        let mut j = Journal::default();
        for _ in 0..CAPACITY + 5 {
            j.record(graph(204));
        }
        assert_eq!(j.len(), CAPACITY);
        assert_eq!(j.dropped(), 5);
        assert_eq!(j.after(0).next().unwrap().seq, 6);
        assert_eq!(j.after(0).last().unwrap().seq, CAPACITY as u64 + 5);
    }

    #[test]
    fn after_skips_what_was_seen_and_clear_keeps_the_sequence() {
        let mut j = Journal::default();
        for status in [204, 400, 204] {
            j.record(graph(status));
        }
        let seqs = |j: &Journal, after| j.after(after).map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&j, 0), [1, 2, 3]);
        assert_eq!(seqs(&j, 2), [3]);
        assert_eq!(seqs(&j, 3), Vec::<u64>::new());
        assert_eq!(seqs(&j, u64::MAX), Vec::<u64>::new());
        j.clear();
        assert!(j.is_empty());
        j.record(graph(204));
        assert_eq!(seqs(&j, 0), [4]);
        assert_eq!(seqs(&j, 3), [4]);
    }

    #[test]
    fn entries_serialise_flat_with_their_kind() {
        let mut j = Journal::default();
        j.record(graph(204));
        let v = serde_json::to_value(j.after(0).next().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"seq": 1, "kind": "graph", "method": "PATCH", "path": "/v1.0/users/x",
                "route": "PATCH /v1.0/users/{id}", "status": 204, "batch": false})
        );
        assert!(changes("Remove-OrganizationSegment") && changes("set-informationbarrierpolicy"));
        assert!(!changes("Get-OrganizationSegment"));
    }
}
