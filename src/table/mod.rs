//! What the single table holds, built without any I/O: values ([`attr`]), keys
//! ([`keys`]), DynamoDB's rules ([`limits`]), and the items of a data change ([`change`])
//! and of the event log ([`event_log`]). The writes themselves are in [`crate::store`].

pub mod attr;
pub mod change;
pub mod change_alert;
pub mod event_log;
pub mod keys;
pub mod limits;
pub mod timeline;

pub use attr::{Attr, Item};

use crate::error::Error;
use crate::outcome::Arrival;
use crate::timestamp::Timestamp;

/// `entity` of a change item.
pub const ENTITY_CHANGE: &str = "change";
/// `entity` of a part item: some of the differences of a change too large for one item.
pub const ENTITY_CHANGE_PART: &str = "changePart";
/// `entity` of an event-log item.
pub const ENTITY_EVENT: &str = "event";
/// `entity` of a workflow's health item.
pub const ENTITY_HEALTH: &str = "health";
/// `entity` of an alert rule (`kadoa rules add`).
pub const ENTITY_RULE: &str = "rule";
/// `entity` of the record of a change's rule alert: what was sent, when.
pub const ENTITY_CHANGE_ALERT: &str = "changeAlert";
/// `entity` of a claim on an alert before it is sent.
pub const ENTITY_CLAIM: &str = "claim";

/// Attribute names the product writes on its items: nothing from a payload may take them.
pub const OWNED_ATTRIBUTES: &[&str] = &[
    "pk",
    "sk",
    "entity",
    "workflowId",
    "changeId",
    "createdAt",
    "url",
    "workflowName",
    "tags",
    "differenceCount",
    "addedCount",
    "changedCount",
    "removedCount",
    "receivedAt",
    "expiresAt",
    "arrival",
    "index",
    "type",
    "fields",
    "differences",
    "part",
    "partVersion",
    "partCount",
    // Said by `kadoa` of a change read back without some of its parts.
    "incomplete",
    "eventKey",
    "completedAt",
    "eventType",
    "timestamp",
    "status",
    "payload",
    "payloadJson",
    "payloadTruncated",
    "alert",
    "state",
    "lastEventAt",
    "lastEventType",
    "lastAlertAt",
    "failingSince",
    "updatedAt",
    "claimId",
    "claimExpiresAt",
    // The `timeline` index's keys, and the alert subject it projects.
    "bucket",
    "position",
    "alertSubject",
    // A change that met alert rules when stored: how many matches (src/rules).
    "matched",
];

/// What every item of one delivery shares: when and how it arrived, when it may expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// When the receiver got the delivery (for a replay: when the webhook got it).
    pub received_at: Timestamp,
    /// `received_at` as its key string, written once for every item of the delivery.
    received_key: [u8; 24],
    /// Epoch seconds for DynamoDB TTL, when `RETENTION_DAYS` > 0.
    pub expires_at: Option<i64>,
    /// Webhook or replay.
    pub arrival: Arrival,
}

impl Receipt {
    /// The receipt of a delivery received at `received_at`, kept `retention_days` (0: for ever).
    pub fn new(received_at: Timestamp, retention_days: u32, arrival: Arrival) -> Self {
        let expires_at = match retention_days {
            0 => None,
            // Past year 9999 is the same as never (and the configuration bounds the days).
            days => received_at.plus_days(days).map(Timestamp::unix_seconds),
        };
        Self { received_at, received_key: received_at.key_bytes(), expires_at, arrival }
    }

    /// The attributes every item of the delivery carries.
    fn stamp(&self, item: &mut Item) {
        let received = String::from_utf8_lossy(&self.received_key).into_owned();
        item.insert("receivedAt".into(), Attr::S(received));
        if let Some(expires_at) = self.expires_at {
            item.insert("expiresAt".into(), Attr::n(expires_at));
        }
    }
}

/// Checks `item` against DynamoDB's rules, naming what it holds (`path`, such as
/// `data.differences[3]`) in the 413.
pub fn ensure_storable(item: &Item, path: &str) -> Result<(), Error> {
    limits::check(item).map_err(|exceeded| Error::too_large(format!("{path} {exceeded}")))
}

/// An item with its keys and entity set.
fn keyed(pk: String, sk: String, entity: &'static str) -> Item {
    Item::from([("pk".into(), Attr::S(pk)), ("sk".into(), Attr::S(sk)), ("entity".into(), Attr::s(entity))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_sets_expiry_only_with_retention() {
        let now = Timestamp::parse_rfc3339("2025-01-15T10:30:00Z").unwrap();
        assert_eq!(Receipt::new(now, 0, Arrival::Webhook).expires_at, None);
        assert_eq!(Receipt::new(now, 30, Arrival::Webhook).expires_at, Some(now.unix_seconds() + 30 * 86_400));
        assert_eq!(Receipt::new(now, u32::MAX, Arrival::Webhook).expires_at, None, "no panic past year 9999");
    }
}
