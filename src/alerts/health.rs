//! A workflow's health (what its `HEALTH` item remembers) and the pure rule that decides,
//! for each failure, recovery or finished run, whether people are told.

use std::time::Duration;

use crate::events::HealthEventKind;
use crate::outcome::EventStatus;
use crate::timestamp::Timestamp;

/// Whether a workflow is working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowState {
    /// Its last health event was a failure.
    Failing,
    /// Its last health event was a recovery or a finished run.
    Healthy,
}

impl WorkflowState {
    /// The `state` attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failing => "failing",
            Self::Healthy => "healthy",
        }
    }

    /// The state an attribute value names, if any.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "failing" => Some(Self::Failing),
            "healthy" => Some(Self::Healthy),
            _ => None,
        }
    }
}

/// What the `HEALTH` item remembers (the fields the decision needs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthRecord {
    /// `None` before the first health event.
    pub state: Option<WorkflowState>,
    /// The newest health event seen for the workflow.
    pub last_event_at: Option<Timestamp>,
    /// Its type.
    pub last_event_type: Option<String>,
    /// When people were last told (event time).
    pub last_alert_at: Option<Timestamp>,
    /// When the current failure began (event time).
    pub failing_since: Option<Timestamp>,
    /// The name people know the workflow by, from its last event that had one.
    pub workflow_name: Option<String>,
}

/// What people are told, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertReason {
    /// The workflow failed (first failure of an incident).
    Failed,
    /// Still failing since this time; re-alerted after the repeat interval.
    StillFailing {
        /// When the incident began.
        since: Timestamp,
    },
    /// The workflow works again (a recovery, or a finished run after a failure).
    Recovered,
}

impl AlertReason {
    /// The event type subscribers filter on: a finished run that ends a failure is
    /// announced as `workflow_recovered`.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Failed | Self::StillFailing { .. } => crate::events::FAILED,
            Self::Recovered => crate::events::RECOVERED,
        }
    }
}

/// What an event means for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Tell people.
    Alert(AlertReason),
    /// Nothing new for people: failing again inside the repeat window, recovered while
    /// already healthy, a finished run of a healthy workflow. The state still moves on.
    Quiet,
    /// Older than the newest event seen for the workflow (an out-of-order retry): changes
    /// nothing, tells nobody.
    Stale,
    /// The newest event again (a retry of what was already decided).
    Duplicate,
}

impl Decision {
    /// What the event log records for an event of `kind` decided this way.
    pub fn status(self, kind: HealthEventKind) -> EventStatus {
        match (self, kind) {
            (Self::Alert(_), _) => EventStatus::Alerted,
            // A finished run is news for nobody: it is simply stored.
            (Self::Quiet, HealthEventKind::Finished) => EventStatus::Stored,
            (Self::Quiet, _) => EventStatus::Suppressed,
            (Self::Stale, _) => EventStatus::Stale,
            (Self::Duplicate, _) => EventStatus::Duplicate,
        }
    }

    /// Whether the health item moves on (alerted or quiet), as opposed to a stale event or
    /// a duplicate, which change nothing.
    pub fn moves_health(self) -> bool {
        matches!(self, Self::Alert(_) | Self::Quiet)
    }
}

/// Whether an event of `kind` is applied after an event of `last_type` dated the same
/// instant. A failure is never silenced by an event of the same instant (Kadoa's own run
/// can report `workflow_finished` and `workflow_failed` at one timestamp): a failure wins
/// the tie over a finished run or a recovery. Nothing else does, so a tie never ends an
/// incident: a recovery or finished run dated the same instant as a failure is stale.
pub fn wins_tie(kind: HealthEventKind, last_type: Option<&str>) -> bool {
    kind == HealthEventKind::Failed && last_type != Some(crate::events::FAILED)
}

/// Decides what an event of `kind` at `at` means for a workflow whose health was `previous`.
pub fn decide(previous: &HealthRecord, kind: HealthEventKind, at: Timestamp, repeat_after: Duration) -> Decision {
    if let Some(last) = previous.last_event_at {
        let last_type = previous.last_event_type.as_deref();
        if last == at && last_type == Some(kind.event_type()) {
            return Decision::Duplicate;
        }
        if last > at || (last == at && !wins_tie(kind, last_type)) {
            return Decision::Stale;
        }
    }
    match (kind, previous.state) {
        (HealthEventKind::Failed, Some(WorkflowState::Failing)) => {
            let due = previous
                .last_alert_at
                .is_none_or(|alerted| at.unix_millis() - alerted.unix_millis() >= repeat_after.as_millis() as i64);
            match (due, previous.failing_since.or(previous.last_alert_at)) {
                (false, _) => Decision::Quiet,
                (true, Some(since)) => Decision::Alert(AlertReason::StillFailing { since }),
                (true, None) => Decision::Alert(AlertReason::Failed),
            }
        }
        (HealthEventKind::Failed, _) => Decision::Alert(AlertReason::Failed),
        (HealthEventKind::Recovered, Some(WorkflowState::Healthy)) => Decision::Quiet,
        // A recovery of a failure we saw, or of one from before this receiver existed.
        (HealthEventKind::Recovered, _) => Decision::Alert(AlertReason::Recovered),
        // Kadoa sends no recovery when finished runs are subscribed: this is it.
        (HealthEventKind::Finished, Some(WorkflowState::Failing)) => Decision::Alert(AlertReason::Recovered),
        (HealthEventKind::Finished, _) => Decision::Quiet,
    }
}

/// The workflow's state after an event of `kind` that moved its health.
pub fn next_state(kind: HealthEventKind) -> WorkflowState {
    match kind {
        HealthEventKind::Failed => WorkflowState::Failing,
        HealthEventKind::Recovered | HealthEventKind::Finished => WorkflowState::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthEventKind::{Failed, Finished, Recovered};

    const HOUR: Duration = Duration::from_secs(3600);

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn record(state: WorkflowState, last: &str, last_type: &str, last_alert: Option<&str>) -> HealthRecord {
        HealthRecord {
            state: Some(state),
            last_event_at: Some(ts(last)),
            last_event_type: Some(last_type.to_owned()),
            last_alert_at: last_alert.map(ts),
            failing_since: last_alert.map(ts),
            workflow_name: None,
        }
    }

    #[test]
    fn health_decisions() {
        use AlertReason::{Failed as FailedReason, Recovered as RecoveredReason};
        use WorkflowState::{Failing, Healthy};
        let failed_at_10 = record(Failing, "2025-01-15T10:00:00Z", "workflow_failed", Some("2025-01-15T10:00:00Z"));
        let recovered_at_10 = record(Healthy, "2025-01-15T10:00:00Z", "workflow_recovered", None);
        let finished_at_10 = record(Healthy, "2025-01-15T10:00:00Z", "workflow_finished", None);
        let never = HealthRecord::default();
        let still_failing = Decision::Alert(AlertReason::StillFailing { since: ts("2025-01-15T10:00:00Z") });
        let cases: Vec<(&str, &HealthRecord, HealthEventKind, &str, Decision)> = vec![
            ("first failure ever", &never, Failed, "2025-01-15T10:00:00Z", Decision::Alert(FailedReason)),
            ("failure after recovery", &recovered_at_10, Failed, "2025-01-15T11:00:00Z", Decision::Alert(FailedReason)),
            ("repeat failure inside the window", &failed_at_10, Failed, "2025-01-15T10:59:59Z", Decision::Quiet),
            ("repeat failure after the window", &failed_at_10, Failed, "2025-01-15T11:00:00Z", still_failing),
            (
                "recovery of a failure",
                &failed_at_10,
                Recovered,
                "2025-01-15T10:15:00Z",
                Decision::Alert(RecoveredReason),
            ),
            (
                "recovery never seen failing",
                &never,
                Recovered,
                "2025-01-15T10:15:00Z",
                Decision::Alert(RecoveredReason),
            ),
            ("recovery while healthy", &recovered_at_10, Recovered, "2025-01-15T10:30:00Z", Decision::Quiet),
            ("older failure after a recovery", &recovered_at_10, Failed, "2025-01-15T09:59:00Z", Decision::Stale),
            ("older recovery after a failure", &failed_at_10, Recovered, "2025-01-15T09:00:00Z", Decision::Stale),
            ("same event again", &failed_at_10, Failed, "2025-01-15T10:00:00Z", Decision::Duplicate),
            ("other event at the same instant", &failed_at_10, Recovered, "2025-01-15T10:00:00Z", Decision::Stale),
            (
                "finished run after a failure",
                &failed_at_10,
                Finished,
                "2025-01-15T10:20:00Z",
                Decision::Alert(RecoveredReason),
            ),
            ("finished run of a healthy workflow", &recovered_at_10, Finished, "2025-01-15T10:20:00Z", Decision::Quiet),
            ("finished run never seen failing", &never, Finished, "2025-01-15T10:20:00Z", Decision::Quiet),
            (
                "recovery after a finished run ended it",
                &finished_at_10,
                Recovered,
                "2025-01-15T10:05:00Z",
                Decision::Quiet,
            ),
            ("finished run older than the failure", &failed_at_10, Finished, "2025-01-15T09:50:00Z", Decision::Stale),
        ];
        for (name, previous, kind, at, expected) in cases {
            assert_eq!(decide(previous, kind, ts(at), HOUR), expected, "{name}");
        }
    }

    #[test]
    fn at_the_same_instant_a_failure_wins_and_nothing_ends_an_incident() {
        use WorkflowState::{Failing, Healthy};
        let at = "2025-01-15T10:30:00Z";
        let last = |kind: HealthEventKind| {
            let state = if kind == Failed { Failing } else { Healthy };
            record(state, at, kind.event_type(), (kind == Failed).then_some(at))
        };
        // (the last event, the new one at the same instant) -> what it means
        let cases = [
            (Finished, Failed, Decision::Alert(AlertReason::Failed)),
            (Recovered, Failed, Decision::Alert(AlertReason::Failed)),
            (Failed, Failed, Decision::Duplicate),
            (Failed, Finished, Decision::Stale),
            (Failed, Recovered, Decision::Stale),
            (Finished, Recovered, Decision::Stale),
            (Recovered, Finished, Decision::Stale),
            (Finished, Finished, Decision::Duplicate),
            (Recovered, Recovered, Decision::Duplicate),
        ];
        for (previous, kind, expected) in cases {
            assert_eq!(decide(&last(previous), kind, ts(at), HOUR), expected, "{previous:?} then {kind:?}");
        }
    }

    #[test]
    fn a_zero_window_alerts_every_failure() {
        let failing =
            record(WorkflowState::Failing, "2025-01-15T10:00:00Z", "workflow_failed", Some("2025-01-15T10:00:00Z"));
        let decision = decide(&failing, Failed, ts("2025-01-15T10:00:01Z"), Duration::ZERO);
        assert!(matches!(decision, Decision::Alert(AlertReason::StillFailing { .. })));
    }

    #[test]
    fn states_and_statuses_follow_events() {
        assert_eq!(next_state(Failed), WorkflowState::Failing);
        assert_eq!(next_state(Recovered), WorkflowState::Healthy);
        assert_eq!(next_state(Finished), WorkflowState::Healthy);
        assert_eq!(Decision::Quiet.status(Finished), EventStatus::Stored);
        assert_eq!(Decision::Quiet.status(Failed), EventStatus::Suppressed);
        assert_eq!(AlertReason::Recovered.event_type(), "workflow_recovered");
    }
}
