//! What goes on the bus (pure): a table stream record → the EventBridge entry it
//! announces, if any. An entry announces a change item that was just inserted, or an
//! event-log item that just became `alerted` (a workflow failed, failed again after the
//! repeat window, recovered, or an alerting account event). Every other write (a retry
//! that found its item, a pending change completed, a claim, the health item) announces
//! nothing: the table decides once, so the bus hears once.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::EventRecord;
use base64::Engine as _;
use serde_dynamo::AttributeValue;
use serde_json::{json, Map, Value};

use crate::events::{FAILED, FINISHED, RECOVERED};
use crate::table::{ENTITY_CHANGE, ENTITY_CHANGE_ALERT, ENTITY_EVENT};

/// The `source` of every entry.
pub const SOURCE: &str = "kadoa.webhook";
/// `detail-type` of a stored change.
pub const DATA_CHANGE: &str = "Kadoa Data Change";
/// `detail-type` of an alerted failure.
pub const WORKFLOW_FAILED: &str = "Kadoa Workflow Failed";
/// `detail-type` of an alerted recovery (a recovery, or a finished run that ended a failure).
pub const WORKFLOW_RECOVERED: &str = "Kadoa Workflow Recovered";
/// `detail-type` of any other alerted event (credits low, service degradation, …).
pub const ACCOUNT_NOTICE: &str = "Kadoa Account Notice";
/// `detail-type` of a change whose alert rules told people (`kadoa rules`).
pub const CHANGE_MATCHED: &str = "Kadoa Change Matched";

/// EventBridge's limit on one entry (detail, detail-type, source, time): 256 KB. Kept
/// below it by the room the other fields take.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
const ROOM_FOR_THE_REST: usize = 1024;

/// An item image of a stream record, in DynamoDB's types: a number is its stored text
/// (`serde_dynamo` keeps `N` as a string), read by [`plain`].
type Image = HashMap<String, AttributeValue>;

/// One entry for the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEntry {
    /// `detail-type`
    pub detail_type: &'static str,
    /// `detail`, as JSON text.
    pub detail: String,
    /// The event's own time (`createdAt` of a change, `timestamp` of an event), RFC 3339.
    pub time: Option<String>,
}

/// The entry `record` announces, if any: by the kind of item written (its `entity`),
/// each kind with its own rule and its own entry.
pub fn entry_of(record: &EventRecord) -> Option<BusEntry> {
    let new: &Image = &record.change.new_image;
    // An absent image is read as an empty one; an item always has its keys.
    let old: Option<&Image> = Some(&*record.change.old_image).filter(|old| !old.is_empty());
    match text(new, "entity")? {
        ENTITY_CHANGE => change_announced(record, new, old),
        ENTITY_EVENT => incident_announced(new, old),
        ENTITY_CHANGE_ALERT => rule_alert_announced(new, old),
        _ => None,
    }
}

/// A change item is written once (retries find it, completions modify it): announced
/// when inserted.
fn change_announced(record: &EventRecord, new: &Image, old: Option<&Image>) -> Option<BusEntry> {
    (old.is_none() && record.event_name != "REMOVE").then(|| change_entry(new))
}

/// An event-log item is announced when this write made it `alerted`: a record put by the
/// alert's commit, or a claim replaced by its record.
fn incident_announced(new: &Image, old: Option<&Image>) -> Option<BusEntry> {
    let alerted = |image: &Image| text(image, "status") == Some("alerted");
    (alerted(new) && !old.is_some_and(alerted)).then(|| incident_entry(new))
}

/// A change's rule alert is announced when its record is written: the claim replaced by
/// what was sent.
fn rule_alert_announced(new: &Image, old: Option<&Image>) -> Option<BusEntry> {
    let sent = |image: &Image| text(image, "status") == Some("sent");
    (sent(new) && !old.is_some_and(sent)).then(|| rule_alert_entry(new))
}

/// The record as sent to people, with the change's key (its differences stay in the
/// table; the record lists at most 20 matches, so it always fits an entry).
fn rule_alert_entry(image: &Image) -> BusEntry {
    const COPIED: &[&str] = &[
        "changeId",
        "workflowId",
        "workflowName",
        "url",
        "createdAt",
        "alertedAt",
        "arrival",
        "subject",
        "notify",
        "matchCount",
        "rules",
        "matches",
    ];
    let mut detail = copied(image, COPIED);
    let change_key = json!({"pk": text(image, "pk"), "sk": text(image, "sk").and_then(|sk| sk.strip_suffix("ALERT"))});
    detail.insert("item".into(), change_key);
    let time = text(image, "createdAt").map(str::to_owned);
    BusEntry { detail_type: CHANGE_MATCHED, detail: Value::Object(detail).to_string(), time }
}

/// The attributes `names` of `image` that it has, as plain JSON.
fn copied(image: &Image, names: &[&str]) -> Map<String, Value> {
    names.iter().filter_map(|name| Some(((*name).to_owned(), plain(image.get(*name)?)))).collect()
}

/// A string attribute of `image`.
fn text<'a>(image: &'a Image, name: &str) -> Option<&'a str> {
    match image.get(name)? {
        AttributeValue::S(text) => Some(text),
        _ => None,
    }
}

fn change_entry(image: &Image) -> BusEntry {
    const COPIED: &[&str] = &[
        "changeId",
        "workflowId",
        "workflowName",
        "url",
        "createdAt",
        "receivedAt",
        "arrival",
        "differenceCount",
        "addedCount",
        "changedCount",
        "removedCount",
        "tags",
    ];
    let mut detail = copied(image, COPIED);
    detail.insert("item".into(), key_of(image));
    let differences = image.get("differences").map(plain);
    let keys = differences.as_ref().map(field_keys).unwrap_or_default();
    detail.insert("fieldKeys".into(), json!(keys));
    // A change stored in parts has its differences there: too large for an entry anyway.
    let in_parts = image.contains_key("partCount");
    let time = detail.get("createdAt").and_then(Value::as_str).map(str::to_owned);
    let entry = |detail: &Map<String, Value>| BusEntry {
        detail_type: DATA_CHANGE,
        detail: Value::Object(detail.clone()).to_string(),
        time: time.clone(),
    };
    if let (Some(differences), false) = (differences, in_parts) {
        let mut whole = detail.clone();
        whole.insert("differences".into(), differences);
        whole.insert("differencesOmitted".into(), json!(false));
        let whole = entry(&whole);
        if fits(&whole) {
            return whole;
        }
    }
    // Too large: the count and the item's key (read the differences from the table).
    detail.insert("differencesOmitted".into(), json!(true));
    let without = entry(&detail);
    if fits(&without) {
        return without;
    }
    // Still too large (tags near 400 KB, say): only the identity, the counts and the key.
    for optional in ["fieldKeys", "tags", "url", "workflowName"] {
        detail.remove(optional);
    }
    entry(&detail)
}

fn incident_entry(image: &Image) -> BusEntry {
    let event_type = text(image, "eventType").unwrap_or_default();
    let detail_type = match event_type {
        FAILED => WORKFLOW_FAILED,
        RECOVERED | FINISHED => WORKFLOW_RECOVERED,
        _ => ACCOUNT_NOTICE,
    };
    let mut detail = copied(image, &["eventType", "timestamp", "workflowId", "receivedAt", "arrival", "alert"]);
    detail.insert("item".into(), key_of(image));
    let payload = match (image.get("payload"), image.get("payloadJson")) {
        (Some(payload), _) => Some(plain(payload)),
        (None, Some(AttributeValue::S(text))) => Some(json!(text)),
        (None, Some(_)) => None,
        (None, None) => None,
    };
    let time = detail.get("timestamp").and_then(Value::as_str).map(str::to_owned);
    if let Some(payload) = payload {
        let mut whole = detail.clone();
        whole.insert("data".into(), payload);
        let whole = BusEntry { detail_type, detail: Value::Object(whole).to_string(), time: time.clone() };
        if fits(&whole) {
            return whole;
        }
        detail.insert("dataOmitted".into(), json!(true));
    }
    let entry = BusEntry { detail_type, detail: Value::Object(detail.clone()).to_string(), time: time.clone() };
    if fits(&entry) {
        return entry;
    }
    detail.remove("alert");
    BusEntry { detail_type, detail: Value::Object(detail).to_string(), time }
}

/// Whether `entry` is within EventBridge's size for one entry.
pub fn fits(entry: &BusEntry) -> bool {
    entry_size(entry) <= MAX_ENTRY_BYTES
}

/// An entry's size as EventBridge counts it (detail, detail-type, source, time), with
/// room for the rest.
pub fn entry_size(entry: &BusEntry) -> usize {
    entry.detail.len() + entry.detail_type.len() + SOURCE.len() + 14 + ROOM_FOR_THE_REST
}

fn key_of(image: &Image) -> Value {
    json!({"pk": image.get("pk").map(plain), "sk": image.get("sk").map(plain)})
}

/// The distinct keys of the differences' fields, in first-seen order: what a rule matches
/// on (`"detail": {"fieldKeys": ["price"]}`).
fn field_keys(differences: &Value) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for difference in differences.as_array().into_iter().flatten() {
        for field in difference["fields"].as_array().into_iter().flatten() {
            if let Some(key) = field["key"].as_str() {
                if !keys.iter().any(|k| k == key) {
                    keys.push(key.to_owned());
                }
            }
        }
    }
    keys
}

/// A DynamoDB value (`{"S": "a"}`, `{"N": "19.99"}`, `{"M": {…}}`, … as read) as plain
/// JSON. A number is a JSON number with its exact stored text (a DynamoDB number, or the
/// string set of an [`crate::table::Attr::NumberText`]); binary is its base64 text, as the
/// stream carries it; a map's keys are in sorted order.
pub fn plain(value: &AttributeValue) -> Value {
    let base64 = |bytes: &Vec<u8>| Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    match value {
        AttributeValue::S(text) => Value::String(text.clone()),
        AttributeValue::N(text) => crate::table::attr::json_number(text),
        AttributeValue::Bool(flag) => Value::Bool(*flag),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::B(bytes) => base64(bytes),
        AttributeValue::L(items) => Value::Array(items.iter().map(plain).collect()),
        AttributeValue::M(fields) => {
            let sorted: std::collections::BTreeMap<_, _> = fields.iter().collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), plain(v))).collect())
        }
        AttributeValue::Ss(texts) => crate::table::attr::json_of_string_set(texts),
        AttributeValue::Ns(numbers) => {
            Value::Array(numbers.iter().map(|n| crate::table::attr::json_number(n)).collect())
        }
        AttributeValue::Bs(items) => Value::Array(items.iter().map(base64).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event_name: &str, new: Value, old: Option<Value>) -> EventRecord {
        serde_json::from_value(json!({"eventName": event_name, "eventID": "e1", "awsRegion": "us-east-1",
            "dynamodb": {"NewImage": new, "OldImage": old, "SequenceNumber": "100", "SizeBytes": 10}}))
        .unwrap()
    }

    /// [`plain`] of DynamoDB's typed JSON, as a stream record carries it.
    fn plain_of(typed: &Value) -> Value {
        plain(&serde_json::from_value(typed.clone()).unwrap())
    }

    fn change(differences: Value) -> Value {
        json!({"pk": {"S": "WORKFLOW#wf"}, "sk": {"S": "CHANGE#c1#"}, "entity": {"S": "change"},
            "changeId": {"S": "c1"}, "workflowId": {"S": "wf"}, "createdAt": {"S": "2025-01-15T10:30:00.000Z"},
            "receivedAt": {"S": "2025-01-15T10:30:01.000Z"}, "arrival": {"S": "webhook"},
            "differenceCount": {"N": "1"}, "differences": differences})
    }

    fn one_difference(value: Value) -> Value {
        json!({"L": [{"M": {"index": {"N": "0"}, "type": {"S": "changed"},
            "fields": {"L": [{"M": {"key": {"S": "price"}, "value": value}}]}}}]})
    }

    #[test]
    fn an_inserted_change_is_announced_with_its_differences_in_plain_json() {
        let entry = entry_of(&record("INSERT", change(one_difference(json!({"N": "19.99"}))), None)).unwrap();
        assert_eq!((entry.detail_type, entry.time.as_deref()), (DATA_CHANGE, Some("2025-01-15T10:30:00.000Z")));
        let detail: Value = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(
            detail["differences"],
            json!([{"index": 0, "type": "changed", "fields": [{"key": "price", "value": 19.99}]}])
        );
        assert_eq!((detail["fieldKeys"].clone(), detail["differenceCount"].clone()), (json!(["price"]), json!(1)));
        assert_eq!(detail["item"], json!({"pk": "WORKFLOW#wf", "sk": "CHANGE#c1#"}));
        assert_eq!(detail["differencesOmitted"], false);
    }

    #[test]
    fn numbers_stay_exact_json_numbers() {
        let exact = |typed: Value| {
            let value = plain_of(&typed);
            assert!(value.is_number(), "{typed}: {value}");
            value.to_string()
        };
        assert_eq!(exact(json!({"N": "98765432109876543210"})), "98765432109876543210");
        assert_eq!(exact(json!({"N": "19.99"})), "19.99");
        for (text, leaves) in [("1.50", "1.50"), ("-0", "-0"), ("1e400", "1e+400")] {
            assert_eq!(exact(json!({"SS": [text]})), leaves, "stored as Attr::NumberText");
        }
        assert_eq!(plain_of(&json!({"SS": ["a", "b"]})), json!(["a", "b"]));
        assert_eq!(plain_of(&json!({"NS": ["1.50", "7"]})).to_string(), "[1.50,7]");
    }

    #[test]
    fn an_announced_change_carries_each_number_as_sent() {
        for (typed, text) in [
            (json!({"N": "98765432109876543210"}), "98765432109876543210"),
            (json!({"SS": ["1.50"]}), "1.50"),
            (json!({"SS": ["-0"]}), "-0"),
            (json!({"SS": ["1e400"]}), "1e+400"),
            (json!({"N": "19.99"}), "19.99"),
        ] {
            let entry = entry_of(&record("INSERT", change(one_difference(typed)), None)).unwrap();
            let expected = format!(r#""fields":[{{"key":"price","value":{text}}}]"#);
            assert!(entry.detail.contains(&expected), "{}", entry.detail);
        }
    }

    #[test]
    fn a_change_modified_or_a_claim_or_a_suppressed_event_is_not_announced() {
        let stored = change(one_difference(json!({"S": "x"})));
        assert!(entry_of(&record("MODIFY", stored.clone(), Some(stored))).is_none(), "a pending change completed");
        let event = |status: Option<&str>| {
            let mut item = json!({"pk": {"S": "WORKFLOW#wf"}, "sk": {"S": "EVENT#x"}, "entity": {"S": "event"},
                "eventType": {"S": "workflow_failed"}, "timestamp": {"S": "2025-01-15T10:30:00.000Z"}});
            if let Some(status) = status {
                item["status"] = json!({"S": status});
            }
            item
        };
        assert!(entry_of(&record("INSERT", event(None), None)).is_none(), "a claim");
        assert!(entry_of(&record("INSERT", event(Some("suppressed")), None)).is_none());
        let alerted = entry_of(&record("MODIFY", event(Some("alerted")), Some(event(None)))).unwrap();
        assert_eq!(alerted.detail_type, WORKFLOW_FAILED, "a claim replaced by its record");
        assert!(entry_of(&record("MODIFY", event(Some("alerted")), Some(event(Some("alerted"))))).is_none());
    }

    #[test]
    fn a_rule_alert_is_announced_once_when_its_record_replaces_the_claim() {
        let claim = json!({"pk": {"S": "WORKFLOW#wf_1"}, "sk": {"S": "CHANGE#c1#ALERT"}, "entity": {"S": "claim"},
            "claimId": {"S": "1-2-3"}});
        let sent = json!({"pk": {"S": "WORKFLOW#wf_1"}, "sk": {"S": "CHANGE#c1#ALERT"}, "entity": {"S": "changeAlert"},
            "status": {"S": "sent"}, "changeId": {"S": "c1"}, "workflowId": {"S": "wf_1"},
            "createdAt": {"S": "2025-01-15T10:30:00.000Z"}, "subject": {"S": "Shop: price 24.99 -> 19.99 (below 20)"},
            "matchCount": {"N": "1"}, "rules": {"L": [{"S": "cheap"}]},
            "matches": {"L": [{"M": {"rule": {"S": "cheap"}, "field": {"S": "price"}, "previous": {"S": "24.99"}, "value": {"S": "19.99"}}}]}});
        assert!(entry_of(&record("INSERT", claim.clone(), None)).is_none(), "a claim is nothing yet");
        let entry = entry_of(&record("MODIFY", sent.clone(), Some(claim))).unwrap();
        assert_eq!((entry.detail_type, entry.time.as_deref()), (CHANGE_MATCHED, Some("2025-01-15T10:30:00.000Z")));
        let detail: Value = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(detail["subject"], "Shop: price 24.99 -> 19.99 (below 20)");
        assert_eq!(detail["matchCount"], 1);
        assert_eq!(detail["matches"][0]["value"], "19.99");
        assert_eq!(detail["item"], json!({"pk": "WORKFLOW#wf_1", "sk": "CHANGE#c1#"}), "the change's own key");
        assert!(entry_of(&record("MODIFY", sent.clone(), Some(sent))).is_none(), "rewritten: not again");
    }

    #[test]
    fn an_entry_over_256_kb_carries_the_count_and_the_key_instead() {
        let big = json!({"S": "x".repeat(300 * 1024)});
        let entry = entry_of(&record("INSERT", change(one_difference(big)), None)).unwrap();
        assert!(fits(&entry));
        let detail: Value = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!((detail["differencesOmitted"].clone(), detail.get("differences")), (json!(true), None));
        assert_eq!((detail["differenceCount"].clone(), detail["fieldKeys"].clone()), (json!(1), json!(["price"])));
    }

    #[test]
    fn every_dynamodb_type_becomes_plain_json() {
        let typed = json!({"M": {"z": {"BOOL": true}, "a": {"NULL": true}, "b": {"B": "AAEC/w=="},
            "bs": {"BS": ["AA==", "AQ=="]}, "l": {"L": [{"S": "x"}, {"N": "-1.0e5"}]}}});
        assert_eq!(
            plain_of(&typed).to_string(),
            r#"{"a":null,"b":"AAEC/w==","bs":["AA==","AQ=="],"l":["x",-1.0e+5],"z":true}"#,
            "binary as the stream's base64, keys sorted, numbers as serde_json writes them"
        );
    }

    #[test]
    fn a_record_read_as_lambda_sends_it_announces_once() {
        let text = r#"{"eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
            "dynamodb": {"ApproximateCreationDateTime": 1736937000.5, "Keys": {"pk": {"S": "WORKFLOW#wf"}},
              "NewImage": {"pk": {"S": "WORKFLOW#wf"}, "sk": {"S": "CHANGE#c1#"}, "entity": {"S": "change"},
                "changeId": {"S": "c1"}, "differenceCount": {"N": "98765432109876543210"}},
              "SequenceNumber": "111", "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"}}"#;
        let record: EventRecord = serde_json::from_str(text).unwrap();
        let entry = entry_of(&record).unwrap();
        assert!(entry.detail.contains(r#""differenceCount":98765432109876543210"#), "{}", entry.detail);
        let removed = text.replace(r#""eventName": "INSERT""#, r#""eventName": "REMOVE""#);
        assert!(entry_of(&serde_json::from_str(&removed).unwrap()).is_none(), "a removal announces nothing");
    }
}
