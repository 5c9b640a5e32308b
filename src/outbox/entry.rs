//! What goes on the bus (pure): a table stream record → the EventBridge entry it
//! announces, if any. An entry announces a change item that was just inserted, or an
//! event-log item that just became `alerted` (a workflow failed, failed again after the
//! repeat window, recovered, or an alerting account event). Every other write (a retry
//! that found its item, a pending change completed, a claim, the health item) announces
//! nothing: the table decides once, so the bus hears once.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::events::{FAILED, FINISHED, RECOVERED};
use crate::table::{ENTITY_CHANGE, ENTITY_EVENT};

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

/// EventBridge's limit on one entry (detail, detail-type, source, time): 256 KB. Kept
/// below it by the room the other fields take.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
const ROOM_FOR_THE_REST: usize = 1024;

/// A DynamoDB stream record, as Lambda hands it over: only what the drain reads. Images
/// are kept as DynamoDB's typed JSON and read by [`plain`], which keeps every number
/// exactly as stored (a library's item type would read them as floating point).
#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    /// `INSERT`, `MODIFY` or `REMOVE`.
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    /// The change itself.
    #[serde(default)]
    pub dynamodb: StreamChange,
}

/// A record's item images and position.
#[derive(Debug, Default, Deserialize)]
pub struct StreamChange {
    /// The item after the write.
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<Map<String, Value>>,
    /// The item before it (absent for an insert).
    #[serde(rename = "OldImage", default)]
    pub old_image: Option<Map<String, Value>>,
    /// Where the record stands in its shard: what a failure is reported by.
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: Option<String>,
}

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

/// The entry `record` announces, if any.
pub fn entry_of(record: &StreamRecord) -> Option<BusEntry> {
    let new = record.dynamodb.new_image.as_ref()?;
    let old = record.dynamodb.old_image.as_ref();
    let text =
        |image: &Map<String, Value>, name: &str| image.get(name).and_then(|v| v["S"].as_str()).map(str::to_owned);
    match text(new, "entity").as_deref() {
        // Inserted: a change item is written once (retries find it, completions modify it).
        Some(ENTITY_CHANGE) if old.is_none() && record.event_name != "REMOVE" => Some(change_entry(new)),
        Some(ENTITY_EVENT) => {
            let alerted = |image: &Map<String, Value>| text(image, "status").as_deref() == Some("alerted");
            // Became alerted with this write: a record put by the alert's commit, or a
            // claim replaced by its record.
            (alerted(new) && !old.is_some_and(alerted)).then(|| incident_entry(new))
        }
        _ => None,
    }
}

fn change_entry(image: &Map<String, Value>) -> BusEntry {
    let mut detail = Map::new();
    for name in [
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
    ] {
        if let Some(value) = image.get(name) {
            detail.insert(name.to_owned(), plain(value));
        }
    }
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

fn incident_entry(image: &Map<String, Value>) -> BusEntry {
    let event_type = image.get("eventType").and_then(|v| v["S"].as_str()).unwrap_or_default();
    let detail_type = match event_type {
        FAILED => WORKFLOW_FAILED,
        RECOVERED | FINISHED => WORKFLOW_RECOVERED,
        _ => ACCOUNT_NOTICE,
    };
    let mut detail = Map::new();
    for name in ["eventType", "timestamp", "workflowId", "receivedAt", "arrival", "alert"] {
        if let Some(value) = image.get(name) {
            detail.insert(name.to_owned(), plain(value));
        }
    }
    detail.insert("item".into(), key_of(image));
    let payload = match (image.get("payload"), image.get("payloadJson")) {
        (Some(payload), _) => Some(plain(payload)),
        (None, Some(text)) => text["S"].as_str().map(|text| json!(text)),
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

fn key_of(image: &Map<String, Value>) -> Value {
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

/// DynamoDB's typed JSON (`{"S": "a"}`, `{"N": "19.99"}`, `{"M": {…}}`, …) as plain JSON.
/// A number is a JSON number with its exact stored text (a DynamoDB number, or the string
/// set of an [`crate::table::Attr::NumberText`]).
pub fn plain(typed: &Value) -> Value {
    let Some((kind, value)) = typed.as_object().and_then(|o| o.iter().next()) else { return Value::Null };
    match (kind.as_str(), value) {
        ("S" | "B", text) => text.clone(),
        ("N", Value::String(text)) => crate::table::attr::json_number(text),
        ("BOOL", flag) => flag.clone(),
        ("NULL", _) => Value::Null,
        ("L", Value::Array(items)) => Value::Array(items.iter().map(plain).collect()),
        ("M", Value::Object(fields)) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), plain(v))).collect()),
        ("SS", Value::Array(items)) => {
            let texts: Vec<String> = items.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect();
            crate::table::attr::json_of_string_set(&texts)
        }
        ("SS" | "BS", list) => list.clone(),
        ("NS", Value::Array(items)) => Value::Array(
            items.iter().map(|n| n.as_str().map_or(Value::Null, crate::table::attr::json_number)).collect(),
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event_name: &str, new: Value, old: Option<Value>) -> StreamRecord {
        serde_json::from_value(json!({"eventName": event_name,
            "dynamodb": {"NewImage": new, "OldImage": old, "SequenceNumber": "100"}}))
        .unwrap()
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
            let value = plain(&typed);
            assert!(value.is_number(), "{typed}: {value}");
            value.to_string()
        };
        assert_eq!(exact(json!({"N": "98765432109876543210"})), "98765432109876543210");
        assert_eq!(exact(json!({"N": "19.99"})), "19.99");
        for (text, leaves) in [("1.50", "1.50"), ("-0", "-0"), ("1e400", "1e+400")] {
            assert_eq!(exact(json!({"SS": [text]})), leaves, "stored as Attr::NumberText");
        }
        assert_eq!(plain(&json!({"SS": ["a", "b"]})), json!(["a", "b"]));
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
    fn an_entry_over_256_kb_carries_the_count_and_the_key_instead() {
        let big = json!({"S": "x".repeat(300 * 1024)});
        let entry = entry_of(&record("INSERT", change(one_difference(big)), None)).unwrap();
        assert!(fits(&entry));
        let detail: Value = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!((detail["differencesOmitted"].clone(), detail.get("differences")), (json!(true), None));
        assert_eq!((detail["differenceCount"].clone(), detail["fieldKeys"].clone()), (json!(1), json!(["price"])));
    }
}
