//! The items of one data change: one per difference, the event-log item, and the change
//! item itself, which is written last and conditionally: its presence says the change is
//! stored whole.

use serde_json::value::RawValue;

use super::attr::FromJsonError;
use super::event_log::EventRecord;
use super::{
    ensure_storable, keyed, keys, limits, Attr, Item, Receipt, ENTITY_CHANGE, ENTITY_DIFFERENCE, OWNED_ATTRIBUTES,
};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::events::DataChange;
use crate::outcome::EventStatus;

/// Fields of `data` that have their own attribute, or are too big to copy (`data` holds
/// the whole extracted dataset).
const NOT_COPIED: &[&str] =
    &["id", "workflowId", "differences", "url", "createdAt", "workflowName", "metadata", "data"];
/// Longest name of a copied top-level field (longer ones are not Kadoa's).
const MAX_COPIED_NAME_BYTES: usize = 255;

/// Everything one data change writes, checked against DynamoDB's rules: nothing is
/// written unless every item fits.
#[derive(Debug)]
pub struct ChangePlan {
    /// The change's partition key.
    pub pk: String,
    /// The change item's sort key.
    pub change_sk: String,
    /// One item per difference, in order.
    pub differences: Vec<Item>,
    /// The event-log item.
    pub event: Item,
    /// Written last, and only if absent: the commit marker.
    pub change: Item,
    /// For a change Kadoa sent with `dataPending: true`: a marker that reconciliation
    /// finds and clears once Kadoa has the change complete.
    pub pending: Option<Item>,
}

impl ChangePlan {
    /// Plans the items of `change`, delivered in `envelope`.
    pub fn new(change: &DataChange<'_>, envelope: &Envelope<'_>, receipt: Receipt) -> Result<Self, Error> {
        let pk = keys::workflow_pk(&change.workflow_id);
        let change_sk = keys::change_sk(&change.change_id);

        let differences = change
            .differences
            .iter()
            .enumerate()
            .map(|(index, difference)| {
                // Named only when something is wrong with it.
                let path = || format!("data.differences[{index}]");
                let mut item = keyed(pk.clone(), keys::difference_sk(&change_sk, index), ENTITY_DIFFERENCE);
                item.insert("workflowId".into(), Attr::s(&change.workflow_id));
                item.insert("changeId".into(), Attr::s(&change.change_id));
                item.insert("index".into(), Attr::n(index as u64));
                item.insert("type".into(), Attr::s(&difference.kind));
                let fields = difference
                    .fields
                    .iter()
                    .map(|field| {
                        let map = field.0.iter().map(|(key, value)| Ok((key.clone(), json(value, path)?)));
                        map.collect::<Result<_, Error>>().map(Attr::M)
                    })
                    .collect::<Result<_, Error>>()?;
                item.insert("fields".into(), Attr::L(fields));
                receipt.stamp(&mut item);
                limits::check(&item).map_err(|exceeded| Error::too_large(format!("{} {exceeded}", path())))?;
                Ok(item)
            })
            .collect::<Result<Vec<Item>, Error>>()?;

        let mut item = keyed(pk.clone(), change_sk.clone(), ENTITY_CHANGE);
        // Kadoa's other top-level scalars (`summary`, `screenshotUrl`, `dataPending`, …) are
        // copied first, so that nothing the product writes below can be taken by them.
        for (name, value) in &change.fields {
            let copied = !NOT_COPIED.contains(&name.as_str())
                && !OWNED_ATTRIBUTES.contains(&name.as_str())
                && !name.is_empty()
                && name.len() <= MAX_COPIED_NAME_BYTES
                && !value.get().starts_with(['{', '[']);
            if copied {
                item.insert(name.clone(), json(value, || "data".to_owned())?);
            }
        }
        item.insert("workflowId".into(), Attr::s(&change.workflow_id));
        item.insert("changeId".into(), Attr::s(&change.change_id));
        item.insert("createdAt".into(), Attr::s(change.created_at.to_key_string()));
        if let Some(url) = &change.url {
            item.insert("url".into(), Attr::s(url));
        }
        if let Some(name) = &change.workflow_name {
            item.insert("workflowName".into(), Attr::s(name));
        }
        if let Some(tags) = change.tags {
            item.insert("tags".into(), json(tags, || "data.metadata.tags".to_owned())?);
        }
        item.insert("differenceCount".into(), Attr::n(change.differences.len() as u64));
        item.insert("addedCount".into(), Attr::n(change.count("added") as u64));
        item.insert("changedCount".into(), Attr::n(change.count("changed") as u64));
        item.insert("removedCount".into(), Attr::n(change.count("removed") as u64));
        item.insert("arrival".into(), Attr::s(receipt.arrival.as_str()));
        receipt.stamp(&mut item);
        ensure_storable(&item, "data")?;

        let event = EventRecord::new(envelope, Some(&change.workflow_id), receipt, EventStatus::Stored)
            .of_change(&change.change_id, change.differences.len())
            .to_item()?;

        let pending = (item.get("dataPending") == Some(&Attr::Bool(true))).then(|| {
            let mut marker =
                keyed(keys::PENDING_PK.to_owned(), keys::pending_sk(&change.workflow_id, &change.change_id), "pending");
            marker.insert("workflowId".into(), Attr::s(&change.workflow_id));
            marker.insert("changeId".into(), Attr::s(&change.change_id));
            receipt.stamp(&mut marker);
            marker
        });
        Ok(Self { pk, change_sk, differences, event, change: item, pending })
    }
}

/// A JSON value from the payload, `path` naming it in the 413 when it nests too deep (or in
/// the 500 if serde_json cannot read it again: it read it once already).
fn json(value: &RawValue, path: impl Fn() -> String) -> Result<Attr, Error> {
    Attr::from_json(value).map_err(|e| match e {
        FromJsonError::TooDeep => Error::too_large(format!("{} {e}", path())),
        FromJsonError::Json(e) => Error::internal(&path(), e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::DataChange;
    use crate::outcome::Arrival;
    use crate::timestamp::Timestamp;
    use serde_json::{json, Value};

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

    fn plan_of(data: Value, retention_days: u32) -> Result<ChangePlan, Error> {
        let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z", "data": data});
        let body = body.to_string();
        let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
        let received = Timestamp::parse_rfc3339("2025-01-16T00:00:00Z").unwrap();
        let receipt = Receipt::new(received, retention_days, Arrival::Webhook);
        ChangePlan::new(&DataChange::parse(&envelope)?, &envelope, receipt)
    }

    fn s(text: &str) -> Attr {
        Attr::s(text)
    }

    fn n(text: &str) -> Attr {
        Attr::N(text.into())
    }

    #[test]
    fn change_item_summarises_the_change() {
        let plan = plan_of(documented(), 0).unwrap();
        let change = &plan.change;
        assert_eq!(change["pk"], s("WORKFLOW#wf_123"));
        assert_eq!(change["sk"], s("CHANGE#change_123#"));
        assert_eq!(change["entity"], s("change"));
        assert_eq!(change["createdAt"], s("2025-01-15T10:30:00.000Z"));
        assert_eq!(change["workflowName"], s("Product Monitor"));
        assert_eq!(change["tags"], Attr::L(vec![s("pricing")]));
        assert_eq!(change["differenceCount"], n("2"));
        assert_eq!(change["addedCount"], n("1"));
        assert_eq!(change["changedCount"], n("1"));
        assert_eq!(change["removedCount"], n("0"));
        assert_eq!(change["receivedAt"], s("2025-01-16T00:00:00.000Z"));
        assert_eq!(change["arrival"], s("webhook"));
        // Extra scalars are kept; objects and the dataset are not.
        assert_eq!(change["summary"], s("1 changed, 1 added"));
        assert_eq!(change["dataPending"], Attr::Bool(false));
        assert!(!change.contains_key("visualDiff"));
        assert!(!change.contains_key("data"));
        assert!(!change.contains_key("expiresAt"));
    }

    #[test]
    fn differences_keep_native_types_and_order() {
        let plan = plan_of(documented(), 0).unwrap();
        assert_eq!(plan.differences.len(), 2);
        let first = &plan.differences[0];
        assert_eq!(first["sk"], s("CHANGE#change_123#DIFF#000000"));
        assert_eq!(first["entity"], s("difference"));
        assert_eq!(first["index"], n("0"));
        assert_eq!(first["type"], s("changed"));
        let Attr::L(fields) = &first["fields"] else { panic!("fields is a list") };
        assert_eq!(fields[0].get("key"), Some(&s("price")));
        assert_eq!(fields[0].get("value"), Some(&n("29.99")));
        assert_eq!(fields[0].get("previousValue"), Some(&n("24.99")));
        assert_eq!(plan.differences[1]["sk"], s("CHANGE#change_123#DIFF#000001"));
    }

    #[test]
    fn numbers_are_stored_exactly() {
        let mut data = documented();
        let body = data.to_string().replace("29.99", "98765432109876543210").replace("24.99", "1e200");
        data = serde_json::from_str(&body).unwrap();
        // serde_json's Value would round these; the plan reads the raw text.
        let text = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z", "data": "X"})
            .to_string()
            .replace("\"X\"", &body);
        let envelope = Envelope::parse(text.as_bytes(), None).unwrap();
        let receipt = Receipt::new(Timestamp::now(), 0, Arrival::Webhook);
        let plan = ChangePlan::new(&DataChange::parse(&envelope).unwrap(), &envelope, receipt).unwrap();
        let Attr::L(fields) = &plan.differences[0]["fields"] else { panic!() };
        assert_eq!(fields[0].get("value"), Some(&n("98765432109876543210")));
        assert_eq!(fields[0].get("previousValue"), Some(&s("1e200")), "out of DynamoDB's range: its exact text");
        drop(data);
    }

    #[test]
    fn a_pending_change_leaves_a_marker_for_reconciliation() {
        assert!(plan_of(documented(), 0).unwrap().pending.is_none());
        let mut data = documented();
        data["dataPending"] = json!(true);
        let marker = plan_of(data, 0).unwrap().pending.unwrap();
        assert_eq!(marker["pk"], s("PENDING"));
        assert_eq!(marker["sk"], Attr::S(keys::pending_sk("wf_123", "change_123")));
        assert_eq!(keys::pending_sk(&"w".repeat(256), &"#".repeat(256)).len(), "CHANGE#".len() + 16);
    }

    #[test]
    fn retention_sets_expires_at_on_every_item() {
        let plan = plan_of(documented(), 7).unwrap();
        let expected = Attr::n(Timestamp::parse_rfc3339("2025-01-23T00:00:00Z").unwrap().unix_seconds());
        assert_eq!(plan.change["expiresAt"], expected);
        assert_eq!(plan.event["expiresAt"], expected);
        assert!(plan.differences.iter().all(|d| d["expiresAt"] == expected));
    }

    #[test]
    fn payload_fields_never_take_the_products_attributes() {
        let mut data = documented();
        data["pk"] = json!("WORKFLOW#someone-else");
        data["entity"] = json!("evil");
        data["expiresAt"] = json!(1);
        data["receivedAt"] = json!("never");
        data["differenceCount"] = json!(99);
        let plan = plan_of(data, 0).unwrap();
        assert_eq!(plan.change["pk"], s("WORKFLOW#wf_123"));
        assert_eq!(plan.change["entity"], s("change"));
        assert!(!plan.change.contains_key("expiresAt"), "TTL would delete the commit marker");
        assert_eq!(plan.change["receivedAt"], s("2025-01-16T00:00:00.000Z"));
        assert_eq!(plan.change["differenceCount"], n("2"));
    }

    #[test]
    fn an_oversized_difference_is_refused_by_name() {
        let mut data = documented();
        data["differences"][1]["fields"][0]["value"] = json!("x".repeat(500 * 1024));
        let error = plan_of(data, 0).unwrap_err();
        assert!(matches!(error, Error::TooLarge(_)));
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
        let error = plan_of(data, 0).unwrap_err();
        assert!(matches!(error, Error::TooLarge(_)));
        assert_eq!(
            error.detail(),
            "data.differences[0] nests more than 32 levels of objects and arrays; DynamoDB stores at most 32"
        );
    }
}
