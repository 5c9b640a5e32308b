//! The envelope every Kadoa webhook shares: `{"eventType", "timestamp", "data"}`.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::RequestError;
use crate::timestamp::Timestamp;

/// A delivery's body, checked for shape but not yet for its event type's fields.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub event_type: String,
    pub timestamp: Timestamp,
    pub data: Map<String, Value>,
    /// First 16 hex digits of the body's SHA-256: tells apart two different bodies that
    /// share an event type and timestamp, while a retried delivery keeps its hash.
    pub body_hash: String,
}

impl Envelope {
    /// `header_event` is the `X-Kadoa-Event` header, when the request had one.
    pub fn parse(body: &[u8], header_event: Option<&str>) -> Result<Self, RequestError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(RequestError::bad_request("body is empty; expected a JSON object"));
        }
        let text = std::str::from_utf8(body).map_err(|_| RequestError::bad_request("body is not UTF-8"))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|e| RequestError::bad_request(format!("body is not valid JSON: {e}")))?;
        let Value::Object(mut envelope) = value else {
            return Err(RequestError::bad_request("body must be a JSON object"));
        };

        let event_type = match envelope.get("eventType") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            None => return Err(RequestError::bad_request("eventType is required")),
            Some(_) => return Err(RequestError::bad_request("eventType must be a non-empty string")),
        };
        if let Some(header) = header_event {
            if header.trim() != event_type {
                return Err(RequestError::bad_request(format!(
                    "X-Kadoa-Event header {:?} does not match eventType {event_type:?}",
                    header.trim()
                )));
            }
        }
        let timestamp = match envelope.get("timestamp") {
            Some(Value::String(s)) => Timestamp::parse_rfc3339(s)
                .ok_or_else(|| RequestError::bad_request(format!("timestamp {s:?} is not an RFC 3339 date-time")))?,
            None => return Err(RequestError::bad_request("timestamp is required")),
            Some(_) => return Err(RequestError::bad_request("timestamp must be an RFC 3339 string")),
        };
        let data = match envelope.remove("data") {
            Some(Value::Object(data)) => data,
            None => return Err(RequestError::bad_request("data is required")),
            Some(_) => return Err(RequestError::bad_request("data must be a JSON object")),
        };

        Ok(Self { event_type, timestamp, data, body_hash: short_hash(body) })
    }
}

fn short_hash(body: &[u8]) -> String {
    Sha256::digest(body)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED: &str =
        r#"{"eventType":"workflow_failed","timestamp":"2025-01-15T10:30:00Z","data":{"workflowId":"wf_123"}}"#;

    fn error_of(body: &str, header: Option<&str>) -> String {
        Envelope::parse(body.as_bytes(), header).unwrap_err().detail().to_owned()
    }

    #[test]
    fn parses_a_documented_envelope() {
        let envelope = Envelope::parse(FAILED.as_bytes(), Some("workflow_failed")).unwrap();
        assert_eq!(envelope.event_type, "workflow_failed");
        assert_eq!(envelope.timestamp.to_key_string(), "2025-01-15T10:30:00.000Z");
        assert_eq!(envelope.data["workflowId"], "wf_123");
        assert_eq!(envelope.body_hash.len(), 16);
    }

    #[test]
    fn same_body_same_hash_different_body_different_hash() {
        let a = Envelope::parse(FAILED.as_bytes(), None).unwrap();
        let b = Envelope::parse(FAILED.as_bytes(), None).unwrap();
        let c = Envelope::parse(FAILED.replace("wf_123", "wf_124").as_bytes(), None).unwrap();
        assert_eq!(a.body_hash, b.body_hash);
        assert_ne!(a.body_hash, c.body_hash);
    }

    #[test]
    fn rejections_name_the_problem() {
        assert_eq!(error_of("", None), "body is empty; expected a JSON object");
        assert!(error_of("{not json", None).starts_with("body is not valid JSON"));
        assert_eq!(error_of("[1,2]", None), "body must be a JSON object");
        assert_eq!(error_of(r#"{"timestamp":"2025-01-15T10:30:00Z","data":{}}"#, None), "eventType is required");
        assert_eq!(error_of(r#"{"eventType":5,"data":{}}"#, None), "eventType must be a non-empty string");
        assert_eq!(error_of(r#"{"eventType":"x","data":{}}"#, None), "timestamp is required");
        assert!(error_of(r#"{"eventType":"x","timestamp":"soon","data":{}}"#, None).contains("not an RFC 3339"));
        assert_eq!(error_of(r#"{"eventType":"x","timestamp":"2025-01-15T10:30:00Z"}"#, None), "data is required");
        assert_eq!(
            error_of(r#"{"eventType":"x","timestamp":"2025-01-15T10:30:00Z","data":[]}"#, None),
            "data must be a JSON object"
        );
    }

    #[test]
    fn non_utf8_body_is_rejected() {
        let error = Envelope::parse(&[0x7b, 0xff, 0xfe, 0x7d], None).unwrap_err();
        assert_eq!(error.detail(), "body is not UTF-8");
    }

    #[test]
    fn header_must_agree_with_event_type() {
        let error = error_of(FAILED, Some("workflow_recovered"));
        assert_eq!(error, r#"X-Kadoa-Event header "workflow_recovered" does not match eventType "workflow_failed""#);
    }
}
