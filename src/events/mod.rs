//! Kadoa's event types, one module each, all with the same life cycle:
//! `parse` (envelope → typed event, 400 on bad input; pure), `plan` (what to write and
//! publish; pure), and `apply` (the I/O: `ChangePlan::apply`, `crate::alerts`, or the event
//! log in `crate::app`).

pub mod data_change;
pub mod event_log;
pub mod workflow_health;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::envelope::Envelope;
use crate::error::RequestError;

pub use data_change::DataChange;
pub use workflow_health::{HealthEvent, HealthEventKind};

pub const DATA_CHANGE: &str = "workflow_data_change";
pub const FINISHED: &str = "workflow_finished";
pub const FAILED: &str = "workflow_failed";
pub const RECOVERED: &str = "workflow_recovered";
pub const VALIDATION_ANOMALY_CHANGE: &str = "workflow_validation_anomaly_change";

/// A delivery, understood.
#[derive(Debug)]
pub enum KadoaEvent {
    DataChange(DataChange),
    /// `workflow_failed` or `workflow_recovered`: these alert.
    Health(HealthEvent),
    /// `workflow_finished` and `workflow_validation_anomaly_change`: logged.
    Logged {
        workflow_id: String,
    },
    /// Any type this version does not know: accepted and logged, never rejected.
    Unknown {
        workflow_id: Option<String>,
    },
}

impl KadoaEvent {
    pub fn parse(envelope: &Envelope) -> Result<Self, RequestError> {
        let data = &envelope.data;
        Ok(match envelope.event_type.as_str() {
            DATA_CHANGE => Self::DataChange(DataChange::parse(envelope)?),
            FAILED => Self::Health(HealthEvent::parse(HealthEventKind::Failed, data)?),
            RECOVERED => Self::Health(HealthEvent::parse(HealthEventKind::Recovered, data)?),
            FINISHED => {
                // Kadoa names the workflow of a finished run in `data.id`.
                let workflow_id = optional_id(data, "id")?.or(optional_id(data, "workflowId")?);
                let workflow_id =
                    workflow_id.ok_or_else(|| RequestError::bad_request("data.id (the workflow id) is required"))?;
                Self::Logged { workflow_id }
            }
            VALIDATION_ANOMALY_CHANGE => Self::Logged { workflow_id: required_id(data, "workflowId")? },
            _ => Self::Unknown { workflow_id: optional_id(data, "workflowId").ok().flatten() },
        })
    }

    pub fn workflow_id(&self) -> Option<&str> {
        match self {
            Self::DataChange(change) => Some(&change.workflow_id),
            Self::Health(event) => Some(&event.workflow_id),
            Self::Logged { workflow_id } => Some(workflow_id),
            Self::Unknown { workflow_id } => workflow_id.as_deref(),
        }
    }
}

/// Ids become part of DynamoDB keys (sort keys hold at most 1024 bytes), so they are
/// bounded well below that.
pub const MAX_ID_BYTES: usize = 256;

pub fn required_id(data: &Map<String, Value>, field: &str) -> Result<String, RequestError> {
    optional_id(data, field)?.ok_or_else(|| RequestError::bad_request(format!("data.{field} is required")))
}

pub fn optional_id(data: &Map<String, Value>, field: &str) -> Result<Option<String>, RequestError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => check_id(&format!("data.{field}"), id).map(Some),
        Some(_) => Err(RequestError::bad_request(format!("data.{field} must be a string"))),
    }
}

pub fn check_id(path: &str, id: &str) -> Result<String, RequestError> {
    let id = id.trim();
    if id.is_empty() {
        return Err(RequestError::bad_request(format!("{path} must not be empty")));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(RequestError::bad_request(format!("{path} is longer than {MAX_ID_BYTES} bytes")));
    }
    Ok(id.to_owned())
}

/// Deserializes `data` into a typed event; errors name the field as a path under `data`.
pub fn deserialize_data<'de, T: Deserialize<'de>>(data: &'de Map<String, Value>) -> Result<T, RequestError> {
    serde_path_to_error::deserialize(data).map_err(|error| {
        let path = error.path().to_string();
        let prefix = if path == "." { "data".to_owned() } else { format!("data.{path}") };
        let message = error.inner().to_string();
        match message.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
            Some(field) => RequestError::bad_request(format!("{prefix}.{field} is required")),
            None => RequestError::bad_request(format!("{prefix}: {message}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(event_type: &str, data: Value) -> Envelope {
        let body = json!({"eventType": event_type, "timestamp": "2025-01-15T10:30:00Z", "data": data}).to_string();
        Envelope::parse(body.as_bytes(), None).unwrap()
    }

    fn parse_error(event_type: &str, data: Value) -> String {
        KadoaEvent::parse(&envelope(event_type, data)).unwrap_err().detail().to_owned()
    }

    #[test]
    fn finished_names_its_workflow_in_id_or_workflow_id() {
        let event = KadoaEvent::parse(&envelope(FINISHED, json!({"id": "wf_1", "jobId": "j"}))).unwrap();
        assert_eq!(event.workflow_id(), Some("wf_1"));
        let event = KadoaEvent::parse(&envelope(FINISHED, json!({"workflowId": "wf_2"}))).unwrap();
        assert_eq!(event.workflow_id(), Some("wf_2"));
        assert_eq!(parse_error(FINISHED, json!({"jobId": "j"})), "data.id (the workflow id) is required");
    }

    #[test]
    fn anomaly_change_requires_its_workflow() {
        let event = KadoaEvent::parse(&envelope(VALIDATION_ANOMALY_CHANGE, json!({"workflowId": "wf_3"}))).unwrap();
        assert_eq!(event.workflow_id(), Some("wf_3"));
        assert_eq!(parse_error(VALIDATION_ANOMALY_CHANGE, json!({})), "data.workflowId is required");
    }

    #[test]
    fn unknown_types_are_accepted_with_or_without_a_workflow() {
        let event = KadoaEvent::parse(&envelope("workflow_started", json!({"workflowId": "wf_4"}))).unwrap();
        assert!(matches!(event, KadoaEvent::Unknown { workflow_id: Some(ref id) } if id == "wf_4"));
        let event = KadoaEvent::parse(&envelope("workflow_started", json!({"workflowId": 7}))).unwrap();
        assert!(matches!(event, KadoaEvent::Unknown { workflow_id: None }));
    }

    #[test]
    fn ids_are_checked() {
        assert_eq!(parse_error(FAILED, json!({"workflowId": ""})), "data.workflowId must not be empty");
        assert_eq!(
            parse_error(FAILED, json!({"workflowId": 12})),
            "data.workflowId: invalid type: integer `12`, expected a string"
        );
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(parse_error(FAILED, json!({"workflowId": long})), "data.workflowId is longer than 256 bytes");
    }
}
