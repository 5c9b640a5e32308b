//! Kadoa's event types, parsed (pure): an [`Envelope`] becomes a typed [`KadoaEvent`], or a
//! 400 naming the field. What each event does is decided in [`crate::receiver`].
//!
//! Adding an event type that is only logged means adding it to [`NOTICES`] below.

pub mod data_change;
pub mod workflow_health;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::envelope::Envelope;
use crate::error::Error;

pub use data_change::{DataChange, Difference, Field};
pub use workflow_health::{HealthEvent, HealthEventKind};

/// `workflow_data_change`
pub const DATA_CHANGE: &str = "workflow_data_change";
/// `workflow_finished`
pub const FINISHED: &str = "workflow_finished";
/// `workflow_failed`
pub const FAILED: &str = "workflow_failed";
/// `workflow_recovered`
pub const RECOVERED: &str = "workflow_recovered";

/// Whether a notice must name its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowRule {
    /// `data.workflowId` is required (400 without it).
    Required,
    /// `data.workflowId` when Kadoa sends one; otherwise the event is account-level.
    Optional,
}

/// The event types, besides data changes and health events, that this version knows:
/// each is logged, and alerts when `ALERT_EVENT_TYPES` lists it.
pub const NOTICES: &[(&str, WorkflowRule)] = &[
    ("workflow_validation_anomaly_change", WorkflowRule::Required),
    ("workflow_health_degraded", WorkflowRule::Optional),
    ("workflow_started", WorkflowRule::Optional),
    ("workflow_sample_finished", WorkflowRule::Optional),
    ("workflow_export_completed", WorkflowRule::Optional),
    ("credits_low", WorkflowRule::Optional),
    ("free_trial_ending", WorkflowRule::Optional),
    ("service_degradation", WorkflowRule::Optional),
    ("system_maintenance", WorkflowRule::Optional),
];

/// Every event type this version knows, by name (the metrics' `EventType` values).
pub const KNOWN_TYPES: &[&str] = &[
    DATA_CHANGE,
    FINISHED,
    FAILED,
    RECOVERED,
    "workflow_validation_anomaly_change",
    "workflow_health_degraded",
    "workflow_started",
    "workflow_sample_finished",
    "workflow_export_completed",
    "credits_low",
    "free_trial_ending",
    "service_degradation",
    "system_maintenance",
];

/// A delivery, understood.
#[derive(Debug)]
pub enum KadoaEvent<'a> {
    /// `workflow_data_change`: stored as a change and its differences.
    DataChange(DataChange<'a>),
    /// `workflow_failed`, `workflow_recovered`, `workflow_finished`: they move the
    /// workflow's health, and may alert.
    Health(HealthEvent),
    /// Every other event: logged, and alerted when configured.
    Notice(Notice),
}

/// An event that is logged (and alerted once, when its type is configured to alert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The workflow it concerns; `None` for account-level events.
    pub workflow_id: Option<String>,
    /// Whether this version knows the event type (unknown types answer `accepted`).
    pub known: bool,
}

impl<'a> KadoaEvent<'a> {
    /// Parses `envelope.data` as its event type requires.
    pub fn parse(envelope: &Envelope<'a>) -> Result<Self, Error> {
        let data = envelope.data;
        Ok(match envelope.event_type.as_str() {
            DATA_CHANGE => Self::DataChange(DataChange::parse(envelope)?),
            FAILED => Self::Health(HealthEvent::parse(HealthEventKind::Failed, data)?),
            RECOVERED => Self::Health(HealthEvent::parse(HealthEventKind::Recovered, data)?),
            FINISHED => Self::Health(HealthEvent::parse(HealthEventKind::Finished, data)?),
            other => match NOTICES.iter().find(|(name, _)| *name == other) {
                Some((_, WorkflowRule::Required)) => {
                    let ids: Ids = deserialize_data(data)?;
                    let workflow_id = ids.workflow_id.ok_or_else(|| Error::invalid("data.workflowId is required"))?;
                    Self::Notice(Notice { workflow_id: Some(check_id("data.workflowId", &workflow_id)?), known: true })
                }
                Some((_, WorkflowRule::Optional)) => {
                    let ids: Ids = deserialize_data(data)?;
                    let workflow_id = ids.workflow_id.map(|id| check_id("data.workflowId", &id)).transpose()?;
                    Self::Notice(Notice { workflow_id, known: true })
                }
                // A type this version does not know is never refused: a malformed
                // workflow id just makes it account-level.
                None => {
                    let workflow_id = deserialize_data::<Ids>(data)
                        .ok()
                        .and_then(|ids| ids.workflow_id)
                        .and_then(|id| check_id("data.workflowId", &id).ok());
                    Self::Notice(Notice { workflow_id, known: false })
                }
            },
        })
    }

    /// The workflow the event concerns, if any.
    pub fn workflow_id(&self) -> Option<&str> {
        match self {
            Self::DataChange(change) => Some(&change.workflow_id),
            Self::Health(event) => Some(&event.workflow_id),
            Self::Notice(notice) => notice.workflow_id.as_deref(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ids {
    workflow_id: Option<String>,
}

/// Ids become part of DynamoDB keys (sort keys hold at most 1024 bytes), so they are
/// bounded well below that.
pub const MAX_ID_BYTES: usize = 256;

/// A trimmed, non-empty id of at most [`MAX_ID_BYTES`]; `path` names it in the 400.
pub fn check_id(path: &str, id: &str) -> Result<String, Error> {
    let id = id.trim();
    if id.is_empty() {
        return Err(Error::invalid(format!("{path} must not be empty")));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(format!("{path} is longer than {MAX_ID_BYTES} bytes")));
    }
    Ok(id.to_owned())
}

/// For `deserialize_with`: a field sent as `null` reads as its default, as if absent
/// (Kadoa and API Gateway both write `null` for what they do not have).
pub fn null_as_default<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Deserializes `data` into a typed event; errors name the field as a path under `data`.
pub fn deserialize_data<'de, T: Deserialize<'de>>(data: &'de RawValue) -> Result<T, Error> {
    deserialize_at(data, "data")
}

/// Deserializes the JSON value at `at` (a path such as `data.metadata`); errors name the
/// field as a path under `at`.
pub fn deserialize_at<'de, T: Deserialize<'de>>(raw: &'de RawValue, at: &str) -> Result<T, Error> {
    // Tracking the path costs an allocation per key: only a refused event pays for it.
    if let Ok(value) = serde_json::from_str(raw.get()) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let prefix = if path == "." { at.to_owned() } else { format!("{at}.{path}") };
        let message = error.inner().to_string();
        // serde_json appends " at line 1 column 42": a position in `data`, not in the body.
        let message = message.split(" at line ").next().unwrap_or_default();
        match message.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
            Some(field) => Error::invalid(format!("{prefix}.{field} is required")),
            None => Error::invalid(format!("{prefix}: {message}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_are_the_notices_and_the_workflow_events() {
        let notices: Vec<&str> = NOTICES.iter().map(|(name, _)| *name).collect();
        assert_eq!(KNOWN_TYPES[4..], notices[..]);
    }
    use serde_json::{json, Value};

    fn parse(event_type: &str, data: Value) -> Result<Option<String>, String> {
        let body = json!({"eventType": event_type, "timestamp": "2025-01-15T10:30:00Z", "data": data}).to_string();
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        KadoaEvent::parse(&envelope).map(|e| e.workflow_id().map(str::to_owned)).map_err(|e| e.detail().to_owned())
    }

    #[test]
    fn finished_names_its_workflow_in_id_or_workflow_id() {
        assert_eq!(parse(FINISHED, json!({"id": "wf_1", "jobId": "j"})), Ok(Some("wf_1".into())));
        assert_eq!(parse(FINISHED, json!({"workflowId": "wf_2"})), Ok(Some("wf_2".into())));
        assert_eq!(parse(FINISHED, json!({"jobId": "j"})), Err("data.id (the workflow id) is required".into()));
    }

    #[test]
    fn anomaly_change_requires_its_workflow() {
        let anomaly = "workflow_validation_anomaly_change";
        assert_eq!(parse(anomaly, json!({"workflowId": "wf_3"})), Ok(Some("wf_3".into())));
        assert_eq!(parse(anomaly, json!({})), Err("data.workflowId is required".into()));
    }

    #[test]
    fn account_events_need_no_workflow() {
        assert_eq!(parse("credits_low", json!({"remainingCredits": 10})), Ok(None));
        assert_eq!(parse("workflow_started", json!({"workflowId": "wf_4"})), Ok(Some("wf_4".into())));
    }

    #[test]
    fn unknown_types_are_accepted_with_or_without_a_workflow() {
        assert_eq!(parse("workflow_teleported", json!({"workflowId": "wf_4"})), Ok(Some("wf_4".into())));
        assert_eq!(parse("workflow_teleported", json!({"workflowId": 7})), Ok(None));
    }

    #[test]
    fn ids_are_checked() {
        assert_eq!(parse(FAILED, json!({"workflowId": ""})), Err("data.workflowId must not be empty".into()));
        assert_eq!(
            parse(FAILED, json!({"workflowId": 12})),
            Err("data.workflowId: invalid type: integer `12`, expected a string".into())
        );
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(parse(FAILED, json!({"workflowId": long})), Err("data.workflowId is longer than 256 bytes".into()));
    }
}
