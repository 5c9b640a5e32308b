//! A workflow's health (the `HEALTH` item) and the pure rule that decides, for each failure
//! or recovery, whether people are told.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::HealthEventKind;
use crate::timestamp::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowState {
    Failing,
    Healthy,
}

impl WorkflowState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failing => "failing",
            Self::Healthy => "healthy",
        }
    }
}

/// What the `HEALTH` item remembers (the fields the decision needs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthRecord {
    pub state: Option<WorkflowState>,
    /// Key-format timestamp of the newest event seen for the workflow.
    pub last_event_at: Option<String>,
    pub last_event_type: Option<String>,
    pub last_alert_at: Option<String>,
    pub failing_since: Option<String>,
}

impl HealthRecord {
    fn last_event(&self) -> Option<Timestamp> {
        self.last_event_at.as_deref().and_then(Timestamp::parse_rfc3339)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Tell people. `still_failing_since` is set for a repeated failure alert.
    Alert { still_failing_since: Option<Timestamp> },
    /// Nothing new for people: failing again inside the repeat window, or recovered while
    /// already healthy. The state still moves on.
    Suppress,
    /// Older than the newest event seen for the workflow (an out-of-order retry): changes
    /// nothing, tells nobody.
    Stale,
    /// The newest event again (a retry of what was already decided).
    Duplicate,
}

impl Decision {
    /// What the event log records.
    pub fn status(self) -> &'static str {
        match self {
            Self::Alert { .. } => "alerted",
            Self::Suppress => "suppressed",
            Self::Stale => "stale",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Decides what an event at `at` means for a workflow whose health was `previous`.
pub fn decide(previous: &HealthRecord, kind: HealthEventKind, at: Timestamp, repeat_after: Duration) -> Decision {
    if let Some(last) = previous.last_event() {
        if last == at && previous.last_event_type.as_deref() == Some(kind.event_type()) {
            return Decision::Duplicate;
        }
        if last >= at {
            return Decision::Stale;
        }
    }
    match (kind, previous.state) {
        (HealthEventKind::Failed, Some(WorkflowState::Failing)) => {
            let last_alert = previous.last_alert_at.as_deref().and_then(Timestamp::parse_rfc3339);
            let due = last_alert
                .is_none_or(|alerted| at.unix_millis() - alerted.unix_millis() >= repeat_after.as_millis() as i64);
            if due {
                let since = previous.failing_since.as_deref().and_then(Timestamp::parse_rfc3339);
                Decision::Alert { still_failing_since: since.or(last_alert) }
            } else {
                Decision::Suppress
            }
        }
        (HealthEventKind::Failed, _) => Decision::Alert { still_failing_since: None },
        (HealthEventKind::Recovered, Some(WorkflowState::Healthy)) => Decision::Suppress,
        // A recovery of a failure we saw, or of one from before this receiver existed.
        (HealthEventKind::Recovered, _) => Decision::Alert { still_failing_since: None },
    }
}

/// The workflow's state after an event that was alerted or suppressed.
pub fn next_state(kind: HealthEventKind) -> WorkflowState {
    match kind {
        HealthEventKind::Failed => WorkflowState::Failing,
        HealthEventKind::Recovered => WorkflowState::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthEventKind::{Failed, Recovered};

    const HOUR: Duration = Duration::from_secs(3600);

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn record(state: Option<WorkflowState>, last: &str, last_type: &str, last_alert: Option<&str>) -> HealthRecord {
        HealthRecord {
            state,
            last_event_at: Some(ts(last).to_key_string()),
            last_event_type: Some(last_type.to_owned()),
            last_alert_at: last_alert.map(|t| ts(t).to_key_string()),
            failing_since: last_alert.map(|t| ts(t).to_key_string()),
        }
    }

    #[test]
    fn health_decisions() {
        let failing = Some(WorkflowState::Failing);
        let healthy = Some(WorkflowState::Healthy);
        let failed_at_10 = record(failing, "2025-01-15T10:00:00Z", "workflow_failed", Some("2025-01-15T10:00:00Z"));
        let recovered_at_10 = record(healthy, "2025-01-15T10:00:00Z", "workflow_recovered", None);
        let cases: Vec<(&str, HealthRecord, HealthEventKind, &str, Decision)> = vec![
            (
                "first failure ever",
                HealthRecord::default(),
                Failed,
                "2025-01-15T10:00:00Z",
                Decision::Alert { still_failing_since: None },
            ),
            (
                "failure after recovery",
                recovered_at_10.clone(),
                Failed,
                "2025-01-15T11:00:00Z",
                Decision::Alert { still_failing_since: None },
            ),
            (
                "repeat failure inside the window",
                failed_at_10.clone(),
                Failed,
                "2025-01-15T10:59:59Z",
                Decision::Suppress,
            ),
            (
                "repeat failure after the window",
                failed_at_10.clone(),
                Failed,
                "2025-01-15T11:00:00Z",
                Decision::Alert { still_failing_since: Some(ts("2025-01-15T10:00:00Z")) },
            ),
            (
                "recovery of a failure",
                failed_at_10.clone(),
                Recovered,
                "2025-01-15T10:15:00Z",
                Decision::Alert { still_failing_since: None },
            ),
            (
                "recovery never seen failing",
                HealthRecord::default(),
                Recovered,
                "2025-01-15T10:15:00Z",
                Decision::Alert { still_failing_since: None },
            ),
            ("recovery while healthy", recovered_at_10.clone(), Recovered, "2025-01-15T10:30:00Z", Decision::Suppress),
            (
                "older failure after a recovery",
                recovered_at_10.clone(),
                Failed,
                "2025-01-15T09:59:00Z",
                Decision::Stale,
            ),
            (
                "older recovery after a failure",
                failed_at_10.clone(),
                Recovered,
                "2025-01-15T09:00:00Z",
                Decision::Stale,
            ),
            ("same event again", failed_at_10.clone(), Failed, "2025-01-15T10:00:00Z", Decision::Duplicate),
            (
                "other event at the same instant",
                failed_at_10.clone(),
                Recovered,
                "2025-01-15T10:00:00Z",
                Decision::Stale,
            ),
        ];
        for (name, previous, kind, at, expected) in cases {
            assert_eq!(decide(&previous, kind, ts(at), HOUR), expected, "{name}");
        }
    }

    #[test]
    fn a_zero_window_alerts_every_failure() {
        let failing = record(
            Some(WorkflowState::Failing),
            "2025-01-15T10:00:00Z",
            "workflow_failed",
            Some("2025-01-15T10:00:00Z"),
        );
        let decision = decide(&failing, Failed, ts("2025-01-15T10:00:01Z"), Duration::ZERO);
        assert!(matches!(decision, Decision::Alert { .. }));
    }

    #[test]
    fn states_follow_events() {
        assert_eq!(next_state(Failed), WorkflowState::Failing);
        assert_eq!(next_state(Recovered), WorkflowState::Healthy);
    }
}
