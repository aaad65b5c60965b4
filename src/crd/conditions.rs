//! Status conditions in the `metav1.Condition` shape, written so that status only changes when
//! the state it reports changes: a condition keeps its `lastTransitionTime` unless its status
//! flips, and an identical update is reported as "no change" so callers can skip the write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types used across the three kinds. `Ready` is always the roll-up of the others.
pub mod types {
    pub const READY: &str = "Ready";
    pub const ACCOUNT_READY: &str = "AccountReady";
    pub const LICENSES_ASSIGNED: &str = "LicensesAssigned";
    pub const BARRIER_ENFORCED: &str = "BarrierEnforced";
    pub const GROUPS_READY: &str = "GroupsReady";
    pub const SEGMENT_READY: &str = "SegmentReady";
    pub const POLICY_APPLIED: &str = "PolicyApplied";
    pub const PLANNED: &str = "Planned";
}

/// The three values of a condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "True" => Status::True,
            "False" => Status::False,
            _ => Status::Unknown,
        }
    }
}

/// What a reconciler wants a condition to say; the time and generation are filled in by
/// [`set_condition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: String,
    pub status: Status,
    /// CamelCase, machine-readable (`Conflict`, `NamespaceNotAllowed`, `Converged`, ...).
    pub reason: String,
    /// One sentence for people. Never contains a secret.
    pub message: String,
}

impl ConditionUpdate {
    /// A condition the operator decided on. `reason` must be listed in
    /// [`REASONS`](super::reasons::REASONS) (with the Argo CD health it stands for): debug builds
    /// panic on one that is not, so a test that makes the operator write it fails.
    pub fn new(type_: &str, status: Status, reason: &str, message: impl Into<String>) -> Self {
        debug_assert!(
            super::reasons::is_registered(reason),
            "{reason:?} is not a registered condition reason: add it to REASONS in src/crd/reasons.rs with its Argo CD health and kinds, and to those kinds' deploy/argocd/.../health.lua tables"
        );
        Self::carried(type_, status, reason, message)
    }

    /// A condition that carries a reason already written (the `Ready` roll-up copies its
    /// aspect's): not checked again, since a stored status may come from another version.
    fn carried(type_: &str, status: Status, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// The conditions builder all three controllers use: one reconcile's writes to one object's
/// conditions, each stamped with the object's generation and the same `now`.
#[derive(Clone, Debug)]
pub struct Conditions {
    generation: Option<i64>,
    now: Time,
}

impl Conditions {
    pub fn new(generation: Option<i64>, now: Time) -> Self {
        Conditions { generation, now }
    }

    /// Sets one condition; returns whether anything changed.
    pub fn set(
        &self,
        list: &mut Vec<Condition>,
        type_: &str,
        status: Status,
        reason: &str,
        message: impl Into<String>,
    ) -> bool {
        self.put(list, ConditionUpdate::new(type_, status, reason, message))
    }

    /// Sets a condition already built (the `Ready` roll-up, or one chosen elsewhere).
    pub fn put(&self, list: &mut Vec<Condition>, update: ConditionUpdate) -> bool {
        set_condition(list, update, self.generation, &self.now)
    }

    /// Sets `Ready`, the roll-up of `aspects`; returns its message.
    pub fn ready(&self, list: &mut Vec<Condition>, aspects: &[&str]) -> String {
        let rollup = ready_rollup(list, aspects);
        let message = rollup.message.clone();
        self.put(list, rollup);
        message
    }
}

/// Sets one condition in `conditions`. Returns `true` when anything changed.
///
/// `lastTransitionTime` moves only when `status` changes; a new reason, message or generation
/// alone updates those fields and keeps the time.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    let status = update.status.as_str().to_owned();
    match conditions.iter_mut().find(|c| c.type_ == update.type_) {
        Some(existing) => {
            let flipped = existing.status != status;
            let changed = flipped
                || existing.reason != update.reason
                || existing.message != update.message
                || existing.observed_generation != observed_generation;
            if flipped {
                existing.last_transition_time = now.clone();
            }
            existing.status = status;
            existing.reason = update.reason;
            existing.message = update.message;
            existing.observed_generation = observed_generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: update.type_,
                status,
                reason: update.reason,
                message: update.message,
                observed_generation,
                last_transition_time: now.clone(),
            });
            true
        }
    }
}

/// Removes a condition; returns whether it was there.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

/// Looks up a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The `Ready` roll-up of the given aspect conditions, in order of importance: True when every
/// aspect is True; otherwise the first aspect that is not True supplies reason and message.
/// An aspect that has not been reported yet counts as Unknown.
pub fn ready_rollup(conditions: &[Condition], aspects: &[&str]) -> ConditionUpdate {
    for aspect in aspects {
        match find(conditions, aspect) {
            None => {
                return ConditionUpdate::new(
                    types::READY,
                    Status::Unknown,
                    "Pending",
                    format!("{aspect} has not been reported yet"),
                );
            }
            Some(c) if Status::parse(&c.status) != Status::True => {
                let status = if Status::parse(&c.status) == Status::False {
                    Status::False
                } else {
                    Status::Unknown
                };
                return ConditionUpdate::carried(
                    types::READY,
                    status,
                    &c.reason,
                    format!("{aspect}: {}", c.message),
                );
            }
            Some(_) => {}
        }
    }
    ConditionUpdate::new(
        types::READY,
        Status::True,
        "Converged",
        "all conditions are satisfied",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
    }

    fn account(status: Status, reason: &str) -> ConditionUpdate {
        ConditionUpdate::new(types::ACCOUNT_READY, status, reason, "msg")
    }

    #[test]
    fn identical_update_is_no_change() {
        let mut c = Vec::new();
        assert!(set_condition(
            &mut c,
            account(Status::True, "Provisioned"),
            Some(1),
            &at(0)
        ));
        assert!(!set_condition(
            &mut c,
            account(Status::True, "Provisioned"),
            Some(1),
            &at(10)
        ));
        assert_eq!(c[0].last_transition_time, at(0));
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut c = Vec::new();
        set_condition(&mut c, account(Status::False, "Creating"), Some(1), &at(0));
        assert!(set_condition(
            &mut c,
            account(Status::False, "Throttled"),
            Some(2),
            &at(5)
        ));
        assert_eq!(
            c[0].last_transition_time,
            at(0),
            "reason change must keep the time"
        );
        assert_eq!(c[0].observed_generation, Some(2));
        assert!(set_condition(
            &mut c,
            account(Status::True, "Provisioned"),
            Some(2),
            &at(9)
        ));
        assert_eq!(c[0].last_transition_time, at(9));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn rollup_names_first_failing_aspect() {
        let mut c = Vec::new();
        let aspects = [types::ACCOUNT_READY, types::LICENSES_ASSIGNED];
        assert_eq!(ready_rollup(&c, &aspects).status, Status::Unknown);
        set_condition(&mut c, account(Status::True, "Provisioned"), Some(1), &at(0));
        let lic = ConditionUpdate::new(
            types::LICENSES_ASSIGNED,
            Status::False,
            "NoSeats",
            "SPE_E5: 0 free",
        );
        set_condition(&mut c, lic, Some(1), &at(0));
        let ready = ready_rollup(&c, &aspects);
        assert_eq!((ready.status, ready.reason.as_str()), (Status::False, "NoSeats"));
        assert_eq!(ready.message, "LicensesAssigned: SPE_E5: 0 free");
        let lic = ConditionUpdate::new(types::LICENSES_ASSIGNED, Status::True, "Assigned", "ok");
        set_condition(&mut c, lic, Some(1), &at(0));
        assert_eq!(ready_rollup(&c, &aspects).status, Status::True);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "\"NotARegisteredReason\" is not a registered condition reason")]
    fn an_unregistered_reason_panics_in_debug_builds() {
        account(Status::False, "NotARegisteredReason");
    }

    #[test]
    fn rollup_copies_a_stored_reason_without_checking_it() {
        // A status written by another version may hold a reason this one no longer writes.
        let mut c = Vec::new();
        set_condition(&mut c, account(Status::True, "Provisioned"), Some(1), &at(0));
        c[0].status = "False".into();
        c[0].reason = "RetiredReason".into();
        let ready = ready_rollup(&c, &[types::ACCOUNT_READY]);
        assert_eq!(ready.reason, "RetiredReason");
    }
}
