//! The single table's keys. `#` separates the parts of a key; ids are written with `%` and
//! `#` percent-encoded (`%25`, `%23`), so no id can reach into another's key and every
//! prefix that ends at a `#` selects exactly one thing.

use crate::timestamp::Timestamp;

/// DynamoDB's limit on a partition key value.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB's limit on a sort key value.
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// Events that name no workflow (account and service events) are logged under this
/// partition key.
pub const ACCOUNT_PK: &str = "ACCOUNT";
/// Sort key of a workflow's health item.
pub const HEALTH_SK: &str = "HEALTH";
/// Partition of the markers of changes Kadoa still has pending (`dataPending`).
pub const PENDING_PK: &str = "PENDING";
/// Key of reconciliation's watermark: how far it has checked Kadoa's API.
pub const RECONCILE_PK: &str = "RECONCILE";
/// Sort key of the watermark.
pub const WATERMARK_SK: &str = "WATERMARK";

/// `CHANGE#<16 hex of the SHA-256 of workflow and change id>`: a pending change's marker
/// under [`PENDING_PK`] (a hash keeps it short whatever the ids; the item holds the ids).
pub fn pending_sk(workflow_id: &str, change_id: &str) -> String {
    let ids = format!("{workflow_id}\n{change_id}");
    format!("CHANGE#{}", crate::envelope::short_hash(ids.as_bytes()))
}

/// `id` as it appears inside a key: `%` → `%25`, `#` → `%23`.
pub fn key_part(id: &str) -> String {
    if !id.contains(['%', '#']) {
        return id.to_owned();
    }
    id.replace('%', "%25").replace('#', "%23")
}

/// `WORKFLOW#<workflowId>`: every item of one workflow.
pub fn workflow_pk(workflow_id: &str) -> String {
    format!("WORKFLOW#{}", key_part(workflow_id))
}

/// The partition of an event: its workflow's, or [`ACCOUNT_PK`].
pub fn event_pk(workflow_id: Option<&str>) -> String {
    workflow_id.map_or_else(|| ACCOUNT_PK.to_owned(), workflow_pk)
}

/// `CHANGE#<changeId>#`: a change is identified by its workflow and its id alone, so the
/// same change stored from a webhook, a replay or Kadoa's API is one item. The trailing
/// `#` makes it the prefix of its own differences and of nothing else.
pub fn change_sk(change_id: &str) -> String {
    format!("CHANGE#{}#", key_part(change_id))
}

/// `CHANGE#<changeId>#PART#<version>#<n>`: part `n` (four digits keep parts in order under
/// the table's string sort) of the version `version` of a large change.
pub fn part_sk(change_sk: &str, version: &str, n: usize) -> String {
    format!("{change_sk}PART#{version}#{n:04}")
}

/// `CHANGE#<changeId>#ALERT`: the record of the change's rule alert. It is not a part
/// (`…#PART#`) and no change key ends without `#`, so it names nothing else.
pub fn change_alert_sk(change_sk: &str) -> String {
    format!("{change_sk}ALERT")
}

/// Partition of the alert rules.
pub const RULES_PK: &str = "RULES";

/// `RULE#<name>`: a rule (names are letters, digits, `-` and `_`).
pub fn rule_sk(name: &str) -> String {
    format!("RULE#{}", key_part(name))
}

/// `EVENT#<timestamp>#<eventType>#<event hash>`.
pub fn event_sk(timestamp: Timestamp, event_type: &str, event_hash: &str) -> String {
    format!("EVENT#{}#{event_type}#{event_hash}", timestamp.to_key_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn keys_follow_the_data_model() {
        assert_eq!(workflow_pk("wf_123"), "WORKFLOW#wf_123");
        assert_eq!(event_pk(None), "ACCOUNT");
        let change = change_sk("change_123");
        assert_eq!(change, "CHANGE#change_123#");
        assert_eq!(part_sk(&change, "0123abcd", 7), "CHANGE#change_123#PART#0123abcd#0007");
        assert_eq!(
            event_sk(ts("2025-01-15T10:30:00Z"), "workflow_failed", "0123456789abcdef"),
            "EVENT#2025-01-15T10:30:00.000Z#workflow_failed#0123456789abcdef"
        );
    }

    #[test]
    fn ids_with_separators_cannot_collide() {
        let plain = change_sk("c1");
        let tricky = change_sk("c1#PART#v#0000");
        assert_eq!(tricky, "CHANGE#c1%23PART%23v%230000#");
        assert_ne!(part_sk(&plain, "v", 0), tricky);
        assert_ne!(change_sk("a%23b"), change_sk("a#b"));
        assert_eq!(workflow_pk("w#1"), "WORKFLOW#w%231");
    }

    #[test]
    fn a_change_prefix_selects_that_change_only() {
        let c1 = change_sk("c1");
        for other in ["c10", "c1!", "c1 x", "c1#x"] {
            let key = change_sk(other);
            assert!(!key.starts_with(&c1), "{key} would be returned for c1");
            assert!(!part_sk(&key, "v", 0).starts_with(&c1));
        }
        assert!(part_sk(&c1, "v", 0).starts_with(&c1));
    }

    #[test]
    fn part_keys_sort_in_order_after_their_change() {
        let change = change_sk("c");
        let mut keys: Vec<String> = [10, 2, 100, 1].iter().map(|&i| part_sk(&change, "v", i)).collect();
        keys.sort();
        assert_eq!(keys, [1, 2, 10, 100].iter().map(|&i| part_sk(&change, "v", i)).collect::<Vec<_>>());
        assert!(change < keys[0]);
    }
}
