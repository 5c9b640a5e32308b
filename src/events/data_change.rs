//! `workflow_data_change`: a monitored page's data changed. Stored as one change item
//! (the commit marker, written last) and one item per difference.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{check_id, deserialize_data};
use crate::envelope::Envelope;
use crate::error::RequestError;
use crate::events::event_log::EventRecord;
use crate::store::dynamodb::BATCH_SIZE;
use crate::store::items::{self, Receipt, ENTITY_CHANGE, ENTITY_DIFFERENCE};
use crate::store::limits;
use crate::store::{Item, Store, WriteOutcome};
use crate::timestamp::Timestamp;

#[derive(Debug)]
pub struct DataChange {
    pub change_id: String,
    pub workflow_id: String,
    /// `data.createdAt`, or the envelope's timestamp when Kadoa sent none.
    pub created_at: Timestamp,
    pub differences: Vec<Difference>,
    pub url: Option<String>,
    pub workflow_name: Option<String>,
    pub tags: Option<Value>,
    /// Other top-level scalars of `data` (`summary`, `screenshotUrl`, …), kept as they come.
    pub extra: Map<String, Value>,
}

/// One row that was added, removed or changed.
#[derive(Debug, Deserialize)]
pub struct Difference {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub fields: Vec<Field>,
}

/// One field of a row: a string `key`, and `value` / `previousValue` of any JSON type
/// (plus anything else Kadoa puts there), kept as the object it came as. (A plain map
/// rather than `#[serde(flatten)]`, which buffers every value twice.)
#[derive(Debug, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Field(Map<String, Value>);

impl Field {
    pub fn key(&self) -> &str {
        self.0.get("key").and_then(Value::as_str).unwrap_or_default()
    }
}

impl TryFrom<Map<String, Value>> for Field {
    type Error = String;

    fn try_from(field: Map<String, Value>) -> Result<Self, String> {
        match field.get("key") {
            Some(Value::String(_)) => Ok(Self(field)),
            // Worded like serde's own message, which `deserialize_data` turns into a path.
            None | Some(Value::Null) => Err("missing field `key`".to_owned()),
            Some(_) => Err("key must be a string".to_owned()),
        }
    }
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    id: String,
    workflow_id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    differences: Vec<Difference>,
    url: Option<String>,
    created_at: Option<String>,
    workflow_name: Option<String>,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    workflow_name: Option<String>,
    tags: Option<Value>,
}

/// Fields of `data` that have their own attribute, or are too big to copy (`data` holds
/// the whole extracted dataset).
const NOT_COPIED: &[&str] =
    &["id", "workflowId", "differences", "url", "createdAt", "workflowName", "metadata", "data"];

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

impl DataChange {
    pub fn parse(envelope: &Envelope) -> Result<Self, RequestError> {
        let wire: Wire = deserialize_data(&envelope.data)?;
        let created_at = match &wire.created_at {
            None => envelope.timestamp,
            Some(text) => Timestamp::parse_rfc3339(text).ok_or_else(|| {
                RequestError::bad_request(format!("data.createdAt {text:?} is not an RFC 3339 date-time"))
            })?,
        };
        let metadata = wire.metadata.unwrap_or(Metadata { workflow_name: None, tags: None });
        let extra = envelope
            .data
            .iter()
            .filter(|(key, value)| !NOT_COPIED.contains(&key.as_str()) && is_scalar(value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Ok(Self {
            change_id: check_id("data.id", &wire.id)?,
            workflow_id: check_id("data.workflowId", &wire.workflow_id)?,
            created_at,
            differences: wire.differences,
            url: wire.url,
            workflow_name: metadata.workflow_name.or(wire.workflow_name),
            tags: metadata.tags,
            extra,
        })
    }

    /// Everything to write, checked against DynamoDB's item limits: nothing is written
    /// unless every item fits.
    pub fn plan(&self, envelope: &Envelope, receipt: Receipt) -> Result<ChangePlan, RequestError> {
        let pk = items::workflow_pk(&self.workflow_id);
        let change_sk = items::change_sk(self.created_at, &self.change_id);

        let differences = self
            .differences
            .iter()
            .enumerate()
            .map(|(index, difference)| {
                let item = items::to_item(&DifferenceItem {
                    pk: &pk,
                    sk: items::difference_sk(&change_sk, index),
                    entity: ENTITY_DIFFERENCE,
                    workflow_id: &self.workflow_id,
                    change_id: &self.change_id,
                    index,
                    kind: &difference.kind,
                    fields: &difference.fields,
                    expires_at: receipt.expires_at,
                })?;
                limits::ensure_storable(&item, &format!("data.differences[{index}]"))?;
                Ok(item)
            })
            .collect::<Result<Vec<Item>, RequestError>>()?;

        let count = |kind: &str| self.differences.iter().filter(|d| d.kind == kind).count();
        let mut change = items::to_item(&ChangeItem {
            pk: &pk,
            sk: &change_sk,
            entity: ENTITY_CHANGE,
            workflow_id: &self.workflow_id,
            change_id: &self.change_id,
            created_at: self.created_at.to_key_string(),
            url: self.url.as_deref(),
            workflow_name: self.workflow_name.as_deref(),
            tags: self.tags.as_ref(),
            difference_count: self.differences.len(),
            added_count: count("added"),
            changed_count: count("changed"),
            removed_count: count("removed"),
            received_at: receipt.received_at.to_key_string(),
            expires_at: receipt.expires_at,
        })?;
        // Kadoa's extra fields never overwrite the item's own attributes (or its keys).
        for (name, value) in items::to_item(&self.extra)? {
            change.entry(name).or_insert(value);
        }
        limits::ensure_storable(&change, "data")?;

        let event = EventRecord {
            status: "stored",
            change_id: Some(&self.change_id),
            difference_count: Some(self.differences.len()),
            ..EventRecord::new(envelope, Some(&self.workflow_id), receipt)
        }
        .to_item()?;

        Ok(ChangePlan { pk, change_sk, differences, event, change })
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeItem<'a> {
    pk: &'a str,
    sk: &'a str,
    entity: &'static str,
    workflow_id: &'a str,
    change_id: &'a str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a Value>,
    difference_count: usize,
    added_count: usize,
    changed_count: usize,
    removed_count: usize,
    received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DifferenceItem<'a> {
    pk: &'a str,
    sk: String,
    entity: &'static str,
    workflow_id: &'a str,
    change_id: &'a str,
    index: usize,
    #[serde(rename = "type")]
    kind: &'a str,
    fields: &'a [Field],
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

/// The writes of one data change, in the order they must happen.
#[derive(Debug)]
pub struct ChangePlan {
    pub pk: String,
    pub change_sk: String,
    /// First: every difference, and the event-log item.
    pub differences: Vec<Item>,
    pub event: Item,
    /// Last, conditionally: its presence says the whole change is stored.
    pub change: Item,
}

impl ChangePlan {
    /// Writes the change so that a retried or concurrent delivery stores nothing twice:
    /// differences and event first (overwriting is harmless, their content is the same),
    /// then the change item only if it is absent. A delivery that failed half-way has no
    /// change item yet, so its retry completes it.
    pub async fn apply(self, store: &Store) -> Result<WriteOutcome, RequestError> {
        // With more than one batch of differences, a retry of a stored change is found for
        // the price of one read instead of rewriting every difference.
        if self.differences.len() + 1 > BATCH_SIZE && store.exists(&self.pk, &self.change_sk).await? {
            return Ok(WriteOutcome::AlreadyThere);
        }
        let mut first = self.differences;
        first.push(self.event);
        store.put_all(first).await?;
        store.put_if_absent(self.change).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    use serde_json::json;

    fn envelope(data: Value) -> Envelope {
        let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z", "data": data});
        Envelope::parse(body.to_string().as_bytes(), None).unwrap()
    }

    fn documented() -> Value {
        json!({
            "id": "change_123",
            "workflowId": "wf_123",
            "data": [{"id": "record-1", "name": "Product A", "price": 29.99}],
            "differences": [
                {"type": "changed", "fields": [{"key": "price", "value": 29.99, "previousValue": 24.99}]},
                {"type": "added", "fields": [{"key": "id", "value": "record-2"}, {"key": "name", "value": "New Product"}]}
            ],
            "url": "https://monitored-page.com",
            "createdAt": "2025-01-15T10:30:00Z",
            "metadata": {"workflowName": "Product Monitor", "tags": ["pricing"]},
            "summary": "1 changed, 1 added",
            "dataPending": false,
            "visualDiff": {"before": "a.png"}
        })
    }

    fn plan(data: Value, retention_days: u32) -> Result<ChangePlan, RequestError> {
        let envelope = envelope(data);
        let receipt = Receipt::new(Timestamp::parse_rfc3339("2025-01-16T00:00:00Z").unwrap(), retention_days);
        DataChange::parse(&envelope)?.plan(&envelope, receipt)
    }

    fn s(text: &str) -> AV {
        AV::S(text.to_owned())
    }

    #[test]
    fn change_item_summarises_the_change() {
        let plan = plan(documented(), 0).unwrap();
        let change = &plan.change;
        assert_eq!(change["pk"], s("WORKFLOW#wf_123"));
        assert_eq!(change["sk"], s("CHANGE#2025-01-15T10:30:00.000Z#change_123"));
        assert_eq!(change["entity"], s("change"));
        assert_eq!(change["workflowName"], s("Product Monitor"));
        assert_eq!(change["tags"], AV::L(vec![s("pricing")]));
        assert_eq!(change["differenceCount"], AV::N("2".into()));
        assert_eq!(change["addedCount"], AV::N("1".into()));
        assert_eq!(change["changedCount"], AV::N("1".into()));
        assert_eq!(change["removedCount"], AV::N("0".into()));
        assert_eq!(change["receivedAt"], s("2025-01-16T00:00:00.000Z"));
        // Extra scalars are kept; objects and the dataset are not.
        assert_eq!(change["summary"], s("1 changed, 1 added"));
        assert_eq!(change["dataPending"], AV::Bool(false));
        assert!(!change.contains_key("visualDiff"));
        assert!(!change.contains_key("data"));
        assert!(!change.contains_key("expiresAt"));
    }

    #[test]
    fn differences_keep_native_types_and_order() {
        let plan = plan(documented(), 0).unwrap();
        assert_eq!(plan.differences.len(), 2);
        let first = &plan.differences[0];
        assert_eq!(first["sk"], s("CHANGE#2025-01-15T10:30:00.000Z#change_123#DIFF#000000"));
        assert_eq!(first["entity"], s("difference"));
        assert_eq!(first["index"], AV::N("0".into()));
        assert_eq!(first["type"], s("changed"));
        let AV::L(fields) = &first["fields"] else { panic!("fields is a list") };
        let AV::M(field) = &fields[0] else { panic!("a field is a map") };
        assert_eq!(field["key"], s("price"));
        assert_eq!(field["value"], AV::N("29.99".into()));
        assert_eq!(field["previousValue"], AV::N("24.99".into()));
        assert_eq!(plan.differences[1]["sk"], s("CHANGE#2025-01-15T10:30:00.000Z#change_123#DIFF#000001"));
    }

    #[test]
    fn any_json_value_maps_to_its_dynamodb_type() {
        let mut data = documented();
        data["differences"] = json!([{"type": "changed", "fields": [
            {"key": "k", "value": {"a": [1, "two", null, true]}, "previousValue": null}
        ]}]);
        let plan = plan(data, 0).unwrap();
        let AV::L(fields) = &plan.differences[0]["fields"] else { panic!() };
        let AV::M(field) = &fields[0] else { panic!() };
        let expected =
            AV::M([("a".to_owned(), AV::L(vec![AV::N("1".into()), s("two"), AV::Null(true), AV::Bool(true)]))].into());
        assert_eq!(field["value"], expected);
        assert_eq!(field["previousValue"], AV::Null(true));
    }

    #[test]
    fn created_at_falls_back_to_the_envelope_timestamp() {
        let mut data = documented();
        data.as_object_mut().unwrap().remove("createdAt");
        data["differences"] = Value::Null;
        let plan = plan(data, 0).unwrap();
        assert_eq!(plan.change["createdAt"], s("2025-01-15T10:30:00.000Z"));
        assert!(plan.differences.is_empty());
        assert_eq!(plan.change["differenceCount"], AV::N("0".into()));
    }

    #[test]
    fn retention_sets_expires_at_on_every_item() {
        let plan = plan(documented(), 7).unwrap();
        let expected = AV::N((Timestamp::parse_rfc3339("2025-01-23T00:00:00Z").unwrap().unix_seconds()).to_string());
        assert_eq!(plan.change["expiresAt"], expected);
        assert_eq!(plan.event["expiresAt"], expected);
        assert!(plan.differences.iter().all(|d| d["expiresAt"] == expected));
    }

    #[test]
    fn extra_fields_cannot_overwrite_keys() {
        let mut data = documented();
        data["pk"] = json!("WORKFLOW#someone-else");
        data["entity"] = json!("evil");
        let plan = plan(data, 0).unwrap();
        assert_eq!(plan.change["pk"], s("WORKFLOW#wf_123"));
        assert_eq!(plan.change["entity"], s("change"));
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        let error = |data: Value| plan(data, 0).unwrap_err().detail().to_owned();
        let mut data = documented();
        data.as_object_mut().unwrap().remove("workflowId");
        assert_eq!(error(data), "data.workflowId is required");
        let mut data = documented();
        data.as_object_mut().unwrap().remove("id");
        assert_eq!(error(data), "data.id is required");
        let mut data = documented();
        data["differences"] = json!({"type": "added"});
        assert!(error(data).starts_with("data.differences: invalid type: map"));
        let mut data = documented();
        data["differences"][1] = json!({"fields": []});
        assert_eq!(error(data), "data.differences[1].type is required");
        let mut data = documented();
        data["differences"][0]["fields"][0] = json!({"value": 1});
        assert_eq!(error(data), "data.differences[0].fields[0].key is required");
        let mut data = documented();
        data["createdAt"] = json!("last tuesday");
        assert!(error(data).starts_with("data.createdAt \"last tuesday\" is not"));
    }

    #[test]
    fn an_oversized_difference_is_refused_by_name() {
        let mut data = documented();
        data["differences"][1]["fields"][0]["value"] = json!("x".repeat(500 * 1024));
        let error = plan(data, 0).unwrap_err();
        assert!(matches!(error, RequestError::TooLarge(_)));
        assert!(error.detail().starts_with("data.differences[1] needs "), "{}", error.detail());
    }

    #[test]
    fn too_deep_a_value_is_refused_by_name() {
        let mut deep = json!("leaf");
        for _ in 0..40 {
            deep = json!([deep]);
        }
        let mut data = documented();
        data["differences"][0]["fields"][0]["value"] = deep;
        let error = plan(data, 0).unwrap_err();
        assert!(matches!(error, RequestError::TooLarge(_)));
        assert!(error.detail().starts_with("data.differences[0] nests 42 levels"), "{}", error.detail());
    }
}
