//! Keys and items of the single table (SPEC section 4), built without any I/O.

use serde::Serialize;

use super::Item;
use crate::error::RequestError;
use crate::timestamp::Timestamp;

pub const ENTITY_CHANGE: &str = "change";
pub const ENTITY_DIFFERENCE: &str = "difference";
pub const ENTITY_EVENT: &str = "event";
pub const ENTITY_HEALTH: &str = "health";

/// Events that name no workflow are logged under this partition.
pub const UNKNOWN_WORKFLOW: &str = "unknown";

pub fn workflow_pk(workflow_id: &str) -> String {
    format!("WORKFLOW#{workflow_id}")
}

pub fn change_sk(created_at: Timestamp, change_id: &str) -> String {
    format!("CHANGE#{}#{change_id}", created_at.to_key_string())
}

/// Six digits keep differences in order under the string sort of the table.
pub fn difference_sk(change_sk: &str, index: usize) -> String {
    format!("{change_sk}#DIFF#{index:06}")
}

pub fn event_sk(timestamp: Timestamp, event_type: &str, body_hash: &str) -> String {
    format!("EVENT#{}#{event_type}#{body_hash}", timestamp.to_key_string())
}

pub const HEALTH_SK: &str = "HEALTH";

/// What every item of one delivery shares: when it arrived and when it may expire.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub received_at: Timestamp,
    /// Epoch seconds for DynamoDB TTL, when `RETENTION_DAYS` > 0.
    pub expires_at: Option<i64>,
}

impl Receipt {
    pub fn new(received_at: Timestamp, retention_days: u32) -> Self {
        let expires_at = (retention_days > 0).then(|| received_at.plus_days(retention_days).unix_seconds());
        Self { received_at, expires_at }
    }
}

/// Turns a serializable value into an item, native DynamoDB types throughout.
pub fn to_item(value: &impl Serialize) -> Result<Item, RequestError> {
    // Everything serialized here came out of serde_json, so a failure would be our bug;
    // it still becomes a clear 400 rather than a panic.
    serde_dynamo::to_item(value).map_err(|e| RequestError::bad_request(format!("cannot store the event: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn keys_follow_the_data_model() {
        let created = ts("2025-01-15T10:30:00Z");
        assert_eq!(workflow_pk("wf_123"), "WORKFLOW#wf_123");
        let change = change_sk(created, "change_123");
        assert_eq!(change, "CHANGE#2025-01-15T10:30:00.000Z#change_123");
        assert_eq!(difference_sk(&change, 7), "CHANGE#2025-01-15T10:30:00.000Z#change_123#DIFF#000007");
        assert_eq!(
            event_sk(created, "workflow_failed", "0123456789abcdef"),
            "EVENT#2025-01-15T10:30:00.000Z#workflow_failed#0123456789abcdef"
        );
    }

    #[test]
    fn difference_keys_sort_in_index_order() {
        let change = change_sk(ts("2025-01-15T10:30:00Z"), "c");
        let mut keys: Vec<String> = [10, 2, 100, 1].iter().map(|&i| difference_sk(&change, i)).collect();
        keys.sort();
        assert_eq!(keys, [1, 2, 10, 100].iter().map(|&i| difference_sk(&change, i)).collect::<Vec<_>>());
        // The change item sorts before its own differences.
        assert!(change < keys[0]);
    }

    #[test]
    fn receipt_sets_expiry_only_with_retention() {
        let now = ts("2025-01-15T10:30:00Z");
        assert_eq!(Receipt::new(now, 0).expires_at, None);
        assert_eq!(Receipt::new(now, 30).expires_at, Some(now.unix_seconds() + 30 * 86_400));
    }
}
