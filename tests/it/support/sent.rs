//! Every DynamoDB request the app sends, as sent, and what DynamoDB bills for it: the
//! write units of on-demand capacity (one per started KB of each item written, two inside
//! a transaction; index writes not counted) by DynamoDB's published item-size rules.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct SentRequests(Arc<Mutex<Vec<(String, Value)>>>);

impl SentRequests {
    pub fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for SentRequests {
    fn name(&self) -> &'static str {
        "SentRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = super::faults::operation(cfg).to_owned();
        let body = serde_json::from_slice(context.request().body().bytes().unwrap_or(b"{}"))?;
        self.0.lock().unwrap().push((operation, body));
        Ok(())
    }
}

/// The size DynamoDB counts for an item in its JSON form (`{"name": {"S": "…"}, …}`):
/// names and values in UTF-8 bytes, a number one byte per two significant digits plus
/// one, one byte for a boolean or null, three bytes plus one per element for a list or map.
pub fn item_size(item: &Value) -> usize {
    item.as_object().unwrap().iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &Value) -> usize {
    let (kind, inner) = value.as_object().unwrap().iter().next().unwrap();
    match kind.as_str() {
        "S" => inner.as_str().unwrap().len(),
        "N" => {
            let digits: String = inner.as_str().unwrap().chars().filter(char::is_ascii_digit).collect();
            let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
            significant.div_ceil(2) + 1
        }
        "BOOL" | "NULL" => 1,
        "SS" => inner.as_array().unwrap().iter().map(|v| v.as_str().unwrap().len()).sum(),
        "L" => 3 + inner.as_array().unwrap().iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        "M" => 3 + inner.as_object().unwrap().iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        other => panic!("a {other} value"),
    }
}

/// Write units of one item written outside a transaction.
pub fn units(item: &Value) -> usize {
    item_size(item).div_ceil(1024)
}

/// Write units and calls of what was sent.
pub fn bill(sent: &[(String, Value)]) -> (usize, usize) {
    let mut write_units = 0;
    for (operation, body) in sent {
        write_units += match operation.as_str() {
            "PutItem" => units(&body["Item"]),
            "BatchWriteItem" => {
                let requests = body["RequestItems"].as_object().unwrap().values().flat_map(|r| r.as_array().unwrap());
                requests.map(|r| r.get("PutRequest").map_or(1, |put| units(&put["Item"]))).sum()
            }
            "TransactWriteItems" => body["TransactItems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|action| 2 * action.get("Put").map_or(1, |put| units(&put["Item"])))
                .sum(),
            "UpdateItem" | "DeleteItem" => 1,
            _ => 0,
        };
    }
    (write_units, sent.len())
}

/// The write units of the index entries an item put makes, per index of the template's
/// table (`(name, units)`).
pub fn index_units(item: &Value) -> Vec<(String, usize)> {
    index_entries(item).into_iter().map(|(index, size)| (index, size.div_ceil(1024))).collect()
}

/// The index entries an item put makes, per index of the template's table (`(name,
/// bytes)`): an item with an index's keys writes an entry of its table keys, the index's
/// keys and the projected attributes it has, plus 100 bytes (DynamoDB's rule).
pub fn index_entries(item: &Value) -> Vec<(String, usize)> {
    let table = &super::template::resource("EventsTable")["Properties"];
    let indexes = table["GlobalSecondaryIndexes"].as_array().unwrap();
    let mut entries = Vec::new();
    for index in indexes {
        let keys: Vec<&str> =
            index["KeySchema"].as_array().unwrap().iter().map(|k| k["AttributeName"].as_str().unwrap()).collect();
        if !keys.iter().all(|key| item.get(key).is_some()) {
            continue;
        }
        let projected =
            index["Projection"]["NonKeyAttributes"].as_array().into_iter().flatten().filter_map(Value::as_str);
        let names: std::collections::BTreeSet<&str> = ["pk", "sk"].into_iter().chain(keys).chain(projected).collect();
        let entry: serde_json::Map<String, Value> =
            names.into_iter().filter_map(|name| Some((name.to_owned(), item.get(name)?.clone()))).collect();
        let size = item_size(&Value::Object(entry)) + 100;
        entries.push((index["IndexName"].as_str().unwrap().to_owned(), size));
    }
    entries
}

/// Every item put by what was sent.
pub fn items_put(sent: &[(String, Value)]) -> Vec<&Value> {
    let mut items = Vec::new();
    for (operation, body) in sent {
        match operation.as_str() {
            "PutItem" => items.push(&body["Item"]),
            "BatchWriteItem" => items.extend(
                body["RequestItems"]
                    .as_object()
                    .unwrap()
                    .values()
                    .flat_map(|r| r.as_array().unwrap())
                    .filter_map(|r| r.get("PutRequest"))
                    .map(|put| &put["Item"]),
            ),
            "TransactWriteItems" => items.extend(
                body["TransactItems"].as_array().unwrap().iter().filter_map(|a| a.get("Put")).map(|put| &put["Item"]),
            ),
            _ => {}
        }
    }
    items
}
