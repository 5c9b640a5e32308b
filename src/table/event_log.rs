//! The event log: one item per distinct event (`EVENT#<timestamp>#<type>#<body hash>`),
//! recording what was decided about it and how it arrived. A retried delivery maps to the
//! same item. A data change has no item of its own here: its change item carries the same
//! key in `eventKey`, and the `eventsByTime` index (`pk`, `eventKey`) lists both in order.

use super::{ensure_storable, keyed, keys, limits, Attr, Item, Receipt, ENTITY_EVENT};
use crate::alerts::message::AlertMessage;
use crate::envelope::Envelope;
use crate::error::Error;
use crate::outcome::EventStatus;

/// How much of a payload too large for its item is kept, as JSON text.
pub const TRUNCATED_PAYLOAD_BYTES: usize = 64 * 1024;

/// One event-log item, before it is built.
#[derive(Debug, Clone)]
pub struct EventRecord<'a> {
    envelope: &'a Envelope<'a>,
    workflow_id: Option<&'a str>,
    receipt: Receipt,
    /// What was decided.
    status: EventStatus,
    /// For a data change: its id (the change item is its record).
    change: Option<&'a str>,
    /// Whether the event's `data` is kept with it (every type but data changes).
    with_payload: bool,
    /// For an alerted event: exactly what people were sent.
    alert: Option<&'a AlertMessage>,
}

impl<'a> EventRecord<'a> {
    /// The record of `envelope`, for its workflow (`None`: account-level).
    pub fn new(
        envelope: &'a Envelope<'a>,
        workflow_id: Option<&'a str>,
        receipt: Receipt,
        status: EventStatus,
    ) -> Self {
        Self { envelope, workflow_id, receipt, status, change: None, with_payload: false, alert: None }
    }

    /// The record of an event whose `data` is kept with it.
    pub fn with_payload(
        envelope: &'a Envelope<'a>,
        workflow_id: Option<&'a str>,
        receipt: Receipt,
        status: EventStatus,
    ) -> Self {
        Self { with_payload: true, ..Self::new(envelope, workflow_id, receipt, status) }
    }

    /// The record of a data change, whose key is made from its id.
    pub fn of_change(mut self, change_id: &'a str) -> Self {
        self.change = Some(change_id);
        self
    }

    /// The record of an alert: exactly what people were sent.
    pub fn with_alert(mut self, alert: Option<&'a AlertMessage>) -> Self {
        self.alert = alert;
        self
    }

    /// The item's partition and sort key. A data change's record is identified by its
    /// workflow and change id (hashing its body, up to 6 MB, would cost more than all the
    /// rest of its parsing); any other event by [`Envelope::identity_hash`].
    pub fn key(&self) -> (String, String) {
        let envelope = self.envelope;
        let hash = match self.change {
            Some(change_id) => {
                let identity = format!("{}\n{change_id}", self.workflow_id.unwrap_or_default());
                crate::envelope::short_hash(identity.as_bytes())
            }
            None => envelope.identity_hash(),
        };
        (keys::event_pk(self.workflow_id), keys::event_sk(envelope.timestamp, &envelope.event_type, &hash))
    }

    /// The item. A payload too large (or too deep) for DynamoDB is kept as the first
    /// [`TRUNCATED_PAYLOAD_BYTES`] of its JSON text, marked `payloadTruncated`: an event is
    /// never refused for the size of what is only logged.
    pub fn to_item(&self) -> Result<Item, Error> {
        let envelope = self.envelope;
        let (pk, sk) = self.key();
        let mut item = keyed(pk, sk.clone(), ENTITY_EVENT);
        item.insert("eventKey".into(), Attr::S(sk));
        item.insert("eventType".into(), Attr::s(&envelope.event_type));
        item.insert("timestamp".into(), Attr::s(envelope.timestamp.to_key_string()));
        item.insert("status".into(), Attr::s(self.status.as_str()));
        item.insert("arrival".into(), Attr::s(self.receipt.arrival.as_str()));
        if let Some(workflow_id) = self.workflow_id {
            item.insert("workflowId".into(), Attr::s(workflow_id));
        }
        if let Some(change_id) = self.change {
            item.insert("changeId".into(), Attr::s(change_id));
        }
        if let Some(alert) = self.alert {
            let sent = [("subject", &alert.subject), ("email", &alert.email), ("sms", &alert.sms)];
            item.insert("alert".into(), Attr::M(sent.map(|(k, v)| (k.to_owned(), Attr::s(v))).into_iter().collect()));
            item.insert(super::timeline::ALERT_SUBJECT.into(), Attr::s(&alert.subject));
        }
        self.receipt.stamp(&mut item);
        super::timeline::stamp(&mut item, crate::timestamp::Timestamp::now());
        if self.with_payload {
            // Too deep for DynamoDB is the same as too large: kept as text.
            if let Ok(payload) = Attr::from_json(envelope.data) {
                item.insert("payload".into(), payload);
            }
            if !item.contains_key("payload") || limits::check(&item).is_err() {
                item.remove("payload");
                item.insert("payloadJson".into(), Attr::s(truncated(envelope.data.get())));
                item.insert("payloadTruncated".into(), Attr::Bool(true));
            }
        }
        ensure_storable(&item, "the event-log item").map_err(|e| Error::internal("event log", e))?;
        Ok(item)
    }
}

fn truncated(text: &str) -> &str {
    let mut end = text.len().min(TRUNCATED_PAYLOAD_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Arrival;
    use crate::timestamp::Timestamp;

    fn receipt() -> Receipt {
        Receipt::new(Timestamp::parse_rfc3339("2025-01-15T09:30:01Z").unwrap(), 0, Arrival::Webhook)
    }

    #[test]
    fn event_item_carries_payload_and_key() {
        let body = r#"{"eventType":"workflow_finished","timestamp":"2025-01-15T10:30:00+01:00","data":{"id":"wf_1","jobId":"job_9"}}"#;
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let item =
            EventRecord::with_payload(&envelope, Some("wf_1"), receipt(), EventStatus::Stored).to_item().unwrap();
        assert_eq!(item["pk"], Attr::s("WORKFLOW#wf_1"));
        let sk = format!("EVENT#2025-01-15T09:30:00.000Z#workflow_finished#{}", envelope.identity_hash());
        assert_eq!(item["sk"], Attr::S(sk));
        assert_eq!(item["status"], Attr::s("stored"));
        assert_eq!(item["arrival"], Attr::s("webhook"));
        assert_eq!(item["timestamp"], Attr::s("2025-01-15T09:30:00.000Z"));
        assert_eq!(item["payload"].get("jobId"), Some(&Attr::s("job_9")));
    }

    #[test]
    fn events_without_a_workflow_go_to_the_account_partition() {
        let body = r#"{"eventType":"credits_low","timestamp":"2025-01-15T10:30:00Z","data":{}}"#;
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let item = EventRecord::with_payload(&envelope, None, receipt(), EventStatus::Stored).to_item().unwrap();
        assert_eq!(item["pk"], Attr::s("ACCOUNT"));
        assert!(!item.contains_key("workflowId"));
    }

    #[test]
    fn an_oversized_payload_is_trimmed_not_refused() {
        let body = serde_json::json!({"eventType": "workflow_failed", "timestamp": "2025-01-15T10:30:00Z",
            "data": {"workflowId": "wf_1", "reason": "é".repeat(300 * 1024)}})
        .to_string();
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let item =
            EventRecord::with_payload(&envelope, Some("wf_1"), receipt(), EventStatus::Alerted).to_item().unwrap();
        assert!(!item.contains_key("payload"));
        assert_eq!(item["payloadTruncated"], Attr::Bool(true));
        let Attr::S(kept) = &item["payloadJson"] else { panic!() };
        assert!(kept.starts_with(r#"{"reason":"éé"#) && kept.len() <= TRUNCATED_PAYLOAD_BYTES, "{}", kept.len());
        assert!(limits::check(&item).is_ok());
    }
}
