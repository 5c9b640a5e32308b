//! The event log: one item per distinct event (`EVENT#<timestamp>#<type>#<body hash>`),
//! recording what was decided about it. A retried delivery maps to the same item.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::alerts::message::AlertMessage;
use crate::envelope::Envelope;
use crate::error::RequestError;
use crate::store::items::{self, Receipt, ENTITY_EVENT, UNKNOWN_WORKFLOW};
use crate::store::Item;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord<'a> {
    pub pk: String,
    pub sk: String,
    pub entity: &'static str,
    pub event_type: &'a str,
    pub timestamp: String,
    /// `stored`, `accepted`, `alerted`, `suppressed`, `stale`, `duplicate`.
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference_count: Option<usize>,
    /// The event's `data`, for every type but data changes (whose data has its own items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a Map<String, Value>>,
    /// For an alerted event: exactly what people were sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<&'a AlertMessage>,
    pub received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl<'a> EventRecord<'a> {
    pub fn new(envelope: &'a Envelope, workflow_id: Option<&'a str>, receipt: Receipt) -> Self {
        Self {
            pk: items::workflow_pk(workflow_id.unwrap_or(UNKNOWN_WORKFLOW)),
            sk: items::event_sk(envelope.timestamp, &envelope.event_type, &envelope.body_hash),
            entity: ENTITY_EVENT,
            event_type: &envelope.event_type,
            timestamp: envelope.timestamp.to_key_string(),
            status: "accepted",
            workflow_id,
            change_id: None,
            difference_count: None,
            payload: None,
            alert: None,
            received_at: receipt.received_at.to_key_string(),
            expires_at: receipt.expires_at,
        }
    }

    /// The record of an event whose whole `data` is kept with it.
    pub fn with_payload(
        envelope: &'a Envelope,
        workflow_id: Option<&'a str>,
        receipt: Receipt,
        status: &'a str,
    ) -> Self {
        Self { status, payload: Some(&envelope.data), ..Self::new(envelope, workflow_id, receipt) }
    }

    /// The item, checked against DynamoDB's limits (a payload can be arbitrarily big).
    pub fn to_item(&self) -> Result<Item, RequestError> {
        let item = items::to_item(self)?;
        crate::store::limits::ensure_storable(&item, "data")?;
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Timestamp;
    use aws_sdk_dynamodb::types::AttributeValue as AV;

    #[test]
    fn event_item_carries_payload_and_key() {
        let body = r#"{"eventType":"workflow_finished","timestamp":"2025-01-15T10:30:00+01:00","data":{"id":"wf_1","jobId":"job_9"}}"#;
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let receipt = Receipt::new(Timestamp::parse_rfc3339("2025-01-15T09:30:01Z").unwrap(), 0);
        let item = EventRecord::with_payload(&envelope, Some("wf_1"), receipt, "stored").to_item().unwrap();
        assert_eq!(item["pk"], AV::S("WORKFLOW#wf_1".into()));
        let sk = format!("EVENT#2025-01-15T09:30:00.000Z#workflow_finished#{}", envelope.body_hash);
        assert_eq!(item["sk"], AV::S(sk));
        assert_eq!(item["status"], AV::S("stored".into()));
        assert_eq!(item["timestamp"], AV::S("2025-01-15T09:30:00.000Z".into()));
        let AV::M(payload) = &item["payload"] else { panic!("payload is a map") };
        assert_eq!(payload["jobId"], AV::S("job_9".into()));
    }

    #[test]
    fn events_without_a_workflow_go_to_the_unknown_partition() {
        let body = r#"{"eventType":"workflow_started","timestamp":"2025-01-15T10:30:00Z","data":{}}"#;
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let receipt = Receipt::new(Timestamp::now(), 0);
        let item = EventRecord::with_payload(&envelope, None, receipt, "accepted").to_item().unwrap();
        assert_eq!(item["pk"], AV::S("WORKFLOW#unknown".into()));
        assert!(!item.contains_key("workflowId"));
    }
}
