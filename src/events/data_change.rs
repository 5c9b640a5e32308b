//! `workflow_data_change`: a monitored page's data changed. Parsed here (pure); stored as
//! one change item and one item per difference (see [`crate::table::change`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{check_id, deserialize_at, deserialize_data, null_as_default};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::timestamp::Timestamp;

/// A data change, its values still raw JSON so that every digit survives.
#[derive(Debug)]
pub struct DataChange<'a> {
    /// `data.id`
    pub change_id: String,
    /// `data.workflowId`
    pub workflow_id: String,
    /// `data.createdAt`, or the envelope's timestamp when Kadoa sent none.
    pub created_at: Timestamp,
    /// `data.differences`, in order.
    pub differences: Vec<Difference<'a>>,
    /// `data.url`
    pub url: Option<String>,
    /// `data.metadata.workflowName`, else `data.workflowName`.
    pub workflow_name: Option<String>,
    /// `data.metadata.tags`, any JSON.
    pub tags: Option<&'a RawValue>,
    /// Every top-level field of `data`, for the scalars the change item copies.
    pub fields: BTreeMap<String, &'a RawValue>,
}

/// One row that was added, removed or changed.
#[derive(Debug, Deserialize)]
pub struct Difference<'a> {
    /// `added`, `removed` or `changed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The row's fields.
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub fields: Vec<Field<'a>>,
}

/// One field of a row: a string `key`, and `value` / `previousValue` of any JSON type
/// (plus anything else Kadoa puts there), kept as the object it came as.
/// Its entries are in key order, each key once (a list: small fields, many of them).
#[derive(Debug)]
pub struct Field<'a>(pub Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldVisitor(std::marker::PhantomData))
    }
}

/// Reads a field as a map would (key order, each key once, the last one sent winning)
/// into a list straight away: a `BTreeMap` per field cost a twentieth of a
/// 3000-difference delivery.
struct FieldVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a map")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Field<'a>, M::Error> {
        let mut entries: Vec<(String, &'a RawValue)> = Vec::with_capacity(map.size_hint().unwrap_or(3).min(16));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        // Stable sort of the reversed list: of equal keys the last sent comes first, and
        // `dedup_by` keeps the first of each run.
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        let key = entries.iter().find(|(name, _)| name == "key").map(|(_, raw)| raw.get());
        match key {
            Some(key) if key.starts_with('"') => Ok(Field(entries)),
            // Worded like serde's own message, which `deserialize_data` turns into a path.
            None | Some("null") => Err(serde::de::Error::custom("missing field `key`")),
            Some(_) => Err(serde::de::Error::custom("key must be a string")),
        }
    }
}

/// `data` read in one pass: `differences` parsed where it is met, every other top-level
/// field kept raw (the typed ones are read from there; the other scalars are copied to
/// the change item). A derived struct would need a second pass over the whole of `data`
/// for the raw fields, and serde's `flatten` would buffer all of it first: on a 1.3 MB
/// change, either is a tenth of the delivery's instructions.
struct Data<'a> {
    differences: Vec<Difference<'a>>,
    fields: BTreeMap<String, &'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Data<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DataVisitor(std::marker::PhantomData))
    }
}

struct DataVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for DataVisitor<'a> {
    type Value = Data<'a>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Data<'a>, M::Error> {
        let mut differences = None;
        let mut fields = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let duplicate = match name.as_str() {
                // `null` is none.
                "differences" => {
                    let value = map.next_value::<Option<Vec<Difference<'a>>>>()?.unwrap_or_default();
                    differences.replace(value).is_some()
                }
                _ => {
                    let value = map.next_value()?;
                    fields.insert(name, value).is_some()
                }
            };
            if duplicate {
                return Err(serde::de::Error::custom("a field appears twice"));
            }
        }
        Ok(Data { differences: differences.unwrap_or_default(), fields })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    workflow_name: Option<String>,
    #[serde(borrow)]
    tags: Option<&'a RawValue>,
}

impl<'a> DataChange<'a> {
    /// Parses the envelope's `data`; 400 naming the field when it is not a data change.
    pub fn parse(envelope: &Envelope<'a>) -> Result<Self, Error> {
        let Data { differences, fields } = deserialize_data(envelope.data)?;
        let field = |name: &str| fields.get(name).copied().filter(|raw| raw.get() != "null");
        let required = |name: &str| field(name).ok_or_else(|| Error::invalid(format!("data.{name} is required")));
        let id: String = deserialize_at(required("id")?, "data.id")?;
        let workflow_id: String = deserialize_at(required("workflowId")?, "data.workflowId")?;
        let text =
            |name: &str| field(name).map(|raw| deserialize_at::<String>(raw, &format!("data.{name}"))).transpose();
        let created_at = match text("createdAt")? {
            None => envelope.timestamp,
            Some(text) => Timestamp::parse_rfc3339(&text)
                .ok_or_else(|| Error::invalid(format!("data.createdAt {text:?} is not an RFC 3339 date-time")))?,
        };
        let metadata: Option<Metadata<'a>> =
            field("metadata").map(|raw| deserialize_at(raw, "data.metadata")).transpose()?;
        let (metadata_name, tags) = metadata.map_or((None, None), |m| (m.workflow_name, m.tags));
        Ok(Self {
            change_id: check_id("data.id", &id)?,
            workflow_id: check_id("data.workflowId", &workflow_id)?,
            created_at,
            differences,
            url: text("url")?,
            workflow_name: metadata_name.or(text("workflowName")?),
            tags,
            fields,
        })
    }

    /// How many differences are of `kind` (`added`, `changed`, `removed`).
    pub fn count(&self, kind: &str) -> usize {
        self.differences.iter().filter(|d| d.kind == kind).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(data: Value) -> Result<(usize, String), String> {
        let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z", "data": data});
        let body = body.to_string();
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        DataChange::parse(&envelope)
            .map(|change| (change.differences.len(), change.created_at.to_key_string()))
            .map_err(|e| e.detail().to_owned())
    }

    fn documented() -> Value {
        json!({
            "id": "change_123", "workflowId": "wf_123",
            "differences": [
                {"type": "changed", "fields": [{"key": "price", "value": 29.99, "previousValue": 24.99}]},
                {"type": "added", "fields": [{"key": "id", "value": "record-2"}]}
            ],
            "createdAt": "2025-01-15T10:30:00Z"
        })
    }

    #[test]
    fn a_rows_field_is_read_as_a_map_reads_it() {
        let body = r#"{"eventType":"workflow_data_change","timestamp":"2025-01-15T10:30:00Z",
            "data":{"id":"c1","workflowId":"wf","differences":[{"type":"changed","fields":[
                {"value":1,"key":"price","previousValue":2,"value":3}]}]}}"#;
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let change = DataChange::parse(&envelope).unwrap();
        let field: Vec<(&str, &str)> =
            change.differences[0].fields[0].0.iter().map(|(name, raw)| (name.as_str(), raw.get())).collect();
        assert_eq!(field, [("key", r#""price""#), ("previousValue", "2"), ("value", "3")]);
        for (fields, error) in [
            (json!([{"value": 1}]), "data.differences[0].fields[0].key is required"),
            (json!([{"key": null}]), "data.differences[0].fields[0].key is required"),
            (json!([{"key": 7}]), "data.differences[0].fields[0]: key must be a string"),
            (json!([7]), "data.differences[0].fields[0]: invalid type: integer `7`, expected a map"),
        ] {
            let data = json!({"id": "c", "workflowId": "wf", "differences": [{"type": "added", "fields": fields}]});
            assert_eq!(parse(data).unwrap_err(), error);
        }
    }

    #[test]
    fn a_field_sent_twice_is_refused_not_guessed() {
        let body = r#"{"eventType":"workflow_data_change","timestamp":"2025-01-15T10:30:00Z",
            "data":{"id":"c1","workflowId":"wf","id":"c2","differences":[]}}"#;
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let error = DataChange::parse(&envelope).unwrap_err();
        assert_eq!(error.detail(), "data: a field appears twice");
    }

    #[test]
    fn created_at_falls_back_to_the_envelope_timestamp() {
        let mut data = documented();
        data.as_object_mut().unwrap().remove("createdAt");
        data["differences"] = Value::Null;
        assert_eq!(parse(data), Ok((0, "2025-01-15T10:30:00.000Z".to_owned())));
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        let error = |data: Value| parse(data).unwrap_err();
        let mut data = documented();
        data.as_object_mut().unwrap().remove("workflowId");
        assert_eq!(error(data), "data.workflowId is required");
        let mut data = documented();
        data.as_object_mut().unwrap().remove("id");
        assert_eq!(error(data), "data.id is required");
        let mut data = documented();
        data["differences"] = json!({"type": "added"});
        assert_eq!(error(data), "data.differences: invalid type: map, expected a sequence");
        let mut data = documented();
        data["differences"][1] = json!({"fields": []});
        assert_eq!(error(data), "data.differences[1].type is required");
        let mut data = documented();
        data["differences"][0]["fields"][0] = json!({"value": 1});
        assert_eq!(error(data), "data.differences[0].fields[0].key is required");
        let mut data = documented();
        data["differences"][0]["fields"][0] = json!({"key": 5});
        assert_eq!(error(data), "data.differences[0].fields[0]: key must be a string");
        let mut data = documented();
        data["id"] = Value::Null;
        assert_eq!(error(data), "data.id is required");
        let mut data = documented();
        data["url"] = json!(5);
        assert_eq!(error(data), "data.url: invalid type: integer `5`, expected a string");
        let mut data = documented();
        data["createdAt"] = json!("last tuesday");
        assert_eq!(error(data), "data.createdAt \"last tuesday\" is not an RFC 3339 date-time");
    }
}
