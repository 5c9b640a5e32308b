//! A data change as the table holds it: one item, `CHANGE#<id>#`, with its differences in
//! a list. A change too large for one item (DynamoDB's 400 KB) keeps its differences in as
//! few part items as fit (`CHANGE#<id>#PART#<version>#<n>`), written first; the change item
//! names the version of its parts and is written last, conditionally: its presence says the
//! change is stored whole, and two versions of one change can never mix.
//!
//! The change item is also the change's record in the event log: it carries the event-log
//! key (`eventKey`) that the `eventsByTime` index sorts by.

use serde_json::value::RawValue;

use super::attr::FromJsonError;
use super::event_log::EventRecord;
use super::limits::{self, item_size, value_size, MAX_ITEM_BYTES};
use super::{ensure_storable, keyed, keys, Attr, Item, Receipt, ENTITY_CHANGE, ENTITY_CHANGE_PART, OWNED_ATTRIBUTES};
use crate::digest::ShortHasher;
use crate::envelope::Envelope;
use crate::error::Error;
use crate::events::{DataChange, Difference};
use crate::outcome::EventStatus;

/// Fields of `data` that have their own attribute, or are too big to copy (`data` holds
/// the whole extracted dataset).
const NOT_COPIED: &[&str] =
    &["id", "workflowId", "differences", "url", "createdAt", "workflowName", "metadata", "data"];
/// Longest name of a copied top-level field (longer ones are not Kadoa's).
const MAX_COPIED_NAME_BYTES: usize = 255;
/// Maps and lists above a field's value in its item: `differences` (list), the difference
/// (map), `fields` (list), the field (map). They count towards DynamoDB's 32 levels, so a
/// value nested deeper than 28 is refused (413) as it is read.
const LEVELS_ABOVE_A_VALUE: usize = 4;

/// Everything one data change writes, checked against DynamoDB's rules: nothing is
/// written unless every item fits.
#[derive(Debug)]
pub struct ChangePlan {
    /// The change's partition key.
    pub pk: String,
    /// The change item's sort key.
    pub change_sk: String,
    /// Written last, and only if absent: the commit marker. It holds the differences, or
    /// names the parts that do (`partVersion`, `partCount`).
    pub change: Item,
    /// For a change too large for one item: its differences, in order, in part items.
    pub parts: Vec<Item>,
    /// For a change Kadoa sent with `dataPending: true`: a marker that reconciliation
    /// finds and clears once Kadoa has the change complete.
    pub pending: Option<Item>,
}

/// How a stored change keeps its differences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// In the change item.
    Inline,
    /// In `count` part items of version `version`.
    Parts {
        /// `partVersion`
        version: String,
        /// `partCount`
        count: usize,
    },
}

impl Layout {
    /// The sort keys of the part items of a change whose item has `change_sk`.
    pub fn part_keys(&self, change_sk: &str) -> Vec<String> {
        match self {
            Self::Inline => Vec::new(),
            Self::Parts { version, count } => (0..*count).map(|n| keys::part_sk(change_sk, version, n)).collect(),
        }
    }
}

impl ChangePlan {
    /// Plans the items of `change`, delivered in `envelope`. `matched`, when its
    /// differences met alert rules: how many, and the subject of the alert people get; the
    /// change item carries both (see [`MATCHED`]; the subject is what `kadoa changes list`
    /// shows, from the `timeline` index).
    pub fn new(
        change: &DataChange<'_>,
        envelope: &Envelope<'_>,
        receipt: Receipt,
        matched: Option<(usize, &str)>,
    ) -> Result<Self, Error> {
        let pk = keys::workflow_pk(&change.workflow_id);
        let change_sk = keys::change_sk(&change.change_id);

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
                item.insert(name.clone(), json(value, 0, || "data".to_owned())?);
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
            item.insert("tags".into(), json(tags, 0, || "data.metadata.tags".to_owned())?);
        }
        item.insert("differenceCount".into(), Attr::n(change.differences.len() as u64));
        item.insert("addedCount".into(), Attr::n(change.count("added") as u64));
        item.insert("changedCount".into(), Attr::n(change.count("changed") as u64));
        item.insert("removedCount".into(), Attr::n(change.count("removed") as u64));
        if let Some((count, subject)) = matched {
            item.insert(MATCHED.into(), Attr::n(count as u64));
            item.insert(ALERT_SUBJECT.into(), Attr::s(subject));
        }
        item.insert("arrival".into(), Attr::s(receipt.arrival.as_str()));
        // The change's record in the event log (see the module's comment).
        let record = EventRecord::new(envelope, Some(&change.workflow_id), receipt, EventStatus::Stored)
            .of_change(&change.change_id);
        item.insert("eventType".into(), Attr::s(&envelope.event_type));
        item.insert("timestamp".into(), Attr::s(envelope.timestamp.to_key_string()));
        item.insert("eventKey".into(), Attr::S(record.key().1));
        receipt.stamp(&mut item);
        super::timeline::stamp(&mut item, crate::timestamp::Timestamp::now());

        let pending = (item.get("dataPending") == Some(&Attr::Bool(true))).then(|| {
            let mut marker =
                keyed(keys::PENDING_PK.to_owned(), keys::pending_sk(&change.workflow_id, &change.change_id), "pending");
            marker.insert("workflowId".into(), Attr::s(&change.workflow_id));
            marker.insert("changeId".into(), Attr::s(&change.change_id));
            receipt.stamp(&mut marker);
            marker
        });

        // Each difference is built straight into the list it is stored in.
        let mut differences = Vec::with_capacity(change.differences.len());
        let mut differences_size = 0;
        for (index, difference) in change.differences.iter().enumerate() {
            let attr = difference_attr(index, difference)?;
            differences_size += 1 + value_size(&attr);
            differences.push(attr);
        }
        let inline_size = item_size(&item) + COMPLETED_AT_BYTES + DIFFERENCES.len() + 3 + differences_size;
        let parts = if inline_size <= MAX_ITEM_BYTES {
            item.insert(DIFFERENCES.into(), Attr::L(differences));
            Vec::new()
        } else {
            let version = version_of(&change.differences);
            let parts =
                Parts { pk: &pk, change_sk: &change_sk, version: &version, change, receipt }.pack(differences)?;
            item.insert("partVersion".into(), Attr::s(&version));
            item.insert("partCount".into(), Attr::n(parts.len() as u64));
            parts
        };
        let plan = Self { pk, change_sk, change: item, parts, pending };
        plan.ensure_every_item_fits()?;
        Ok(plan)
    }

    /// Checks every item exactly as it will be sent, before anything is written: the change
    /// item with all it will ever carry (`completedAt` too, which completing a pending
    /// change adds), each part, the marker. So a change is stored whole or refused (413),
    /// never refused by DynamoDB after its parts went in.
    fn ensure_every_item_fits(&self) -> Result<(), Error> {
        if let Err(exceeded) = limits::check_leaving(&self.change, COMPLETED_AT_BYTES) {
            let largest = self
                .change
                .iter()
                .map(|(name, value)| (name, name.len() + value_size(value)))
                .max_by_key(|(_, bytes)| *bytes)
                .map(|(name, bytes)| format!(" (the largest attribute, {name}, takes {bytes})"));
            return Err(Error::too_large(format!("data {exceeded}{}", largest.unwrap_or_default())));
        }
        for part in &self.parts {
            ensure_storable(part, "data.differences")?;
        }
        if let Some(marker) = &self.pending {
            ensure_storable(marker, "data")?;
        }
        Ok(())
    }

    /// How this plan keeps its differences.
    pub fn layout(&self) -> Layout {
        match (self.change.get("partVersion"), self.change.get("partCount")) {
            (Some(Attr::S(version)), Some(_)) => Layout::Parts { version: version.clone(), count: self.parts.len() },
            _ => Layout::Inline,
        }
    }
}

/// On a change item: how many of its differences met alert rules when it was stored. Its
/// alert is due from then on, until the alert's record (`CHANGE#<id>#ALERT`) says it went:
/// written in the change's own write, so no failure between storing and telling loses it.
pub const MATCHED: &str = "matched";
/// On a change item that met alert rules: the subject of its alert.
pub const ALERT_SUBJECT: &str = "alertSubject";

/// The attribute that holds a change's (or a part's) differences.
pub const DIFFERENCES: &str = "differences";
/// The attribute that completing a pending change adds to its item (a key string).
pub const COMPLETED_AT: &str = "completedAt";
/// What [`COMPLETED_AT`] adds to an item: its name and a 24-byte key string.
const COMPLETED_AT_BYTES: usize = COMPLETED_AT.len() + 24;

/// `{index, type, fields}`: one difference as the change keeps it; 413 naming it when it
/// nests deeper than DynamoDB allows.
fn difference_attr(index: usize, difference: &Difference<'_>) -> Result<Attr, Error> {
    // Named only when something is wrong with it.
    let path = || format!("data.differences[{index}]");
    let fields = difference
        .fields
        .iter()
        .map(|field| {
            let map = field.0.iter().map(|(key, value)| Ok((key.clone(), json(value, LEVELS_ABOVE_A_VALUE, path)?)));
            map.collect::<Result<_, Error>>().map(Attr::M)
        })
        .collect::<Result<_, Error>>()?;
    Ok(Attr::M(vec![
        ("fields".to_owned(), Attr::L(fields)),
        ("index".to_owned(), Attr::n(index as u64)),
        ("type".to_owned(), Attr::s(&difference.kind)),
    ]))
}

/// A hash of the differences as Kadoa sent them: the version their part items are keyed
/// by, so that the parts of two versions of one change never mix.
fn version_of(differences: &[Difference<'_>]) -> String {
    let mut hasher = ShortHasher::new();
    for difference in differences {
        hasher.update(difference.kind.as_bytes());
        for field in &difference.fields {
            hasher.update(&(field.0.len() as u64).to_le_bytes());
            for (key, value) in &field.0 {
                hasher.update(key.as_bytes());
                hasher.update(value.get().as_bytes());
            }
        }
        hasher.update(b"");
    }
    hasher.finish()
}

/// What the part items of one change share.
struct Parts<'a> {
    pk: &'a str,
    change_sk: &'a str,
    version: &'a str,
    change: &'a DataChange<'a>,
    receipt: Receipt,
}

impl Parts<'_> {
    /// Part `n`, without differences yet.
    fn empty(&self, n: usize) -> Item {
        let sk = keys::part_sk(self.change_sk, self.version, n);
        let mut part = keyed(self.pk.to_owned(), sk, ENTITY_CHANGE_PART);
        part.insert("workflowId".into(), Attr::s(&self.change.workflow_id));
        part.insert("changeId".into(), Attr::s(&self.change.change_id));
        part.insert("part".into(), Attr::n(n as u64));
        self.receipt.stamp(&mut part);
        part
    }

    /// `differences` in order, in as few parts as fit; 413 naming a difference that fits
    /// no item on its own.
    fn pack(&self, differences: Vec<Attr>) -> Result<Vec<Item>, Error> {
        let mut parts = Vec::new();
        let mut part = self.empty(0);
        // An upper bound of the part's size with its list: the list's overhead counted once.
        let fixed = |part: &Item| item_size(part) + DIFFERENCES.len() + 3;
        let mut size = fixed(&part);
        let mut current: Vec<Attr> = Vec::new();
        for (index, difference) in differences.into_iter().enumerate() {
            let needed = 1 + value_size(&difference);
            if fixed(&part) + needed > MAX_ITEM_BYTES {
                return Err(Error::too_large(format!(
                    "data.differences[{index}] needs {} bytes as a DynamoDB item; DynamoDB stores at most \
                     {MAX_ITEM_BYTES} bytes per item",
                    fixed(&part) + needed
                )));
            }
            if size + needed > MAX_ITEM_BYTES {
                part.insert(DIFFERENCES.into(), Attr::L(std::mem::take(&mut current)));
                parts.push(part);
                part = self.empty(parts.len());
                size = fixed(&part);
            }
            size += needed;
            current.push(difference);
        }
        part.insert(DIFFERENCES.into(), Attr::L(current));
        parts.push(part);
        Ok(parts)
    }
}

/// A JSON value from the payload that sits `levels` maps and lists deep in its item,
/// `path` naming it in the 413 when it nests too deep (or in the 500 if serde_json cannot
/// read it again: it read it once already).
fn json(value: &RawValue, levels: usize, path: impl Fn() -> String) -> Result<Attr, Error> {
    Attr::from_json_below(value, levels).map_err(|e| match e {
        FromJsonError::TooDeep => Error::too_large(format!("{} {e}", path())),
        FromJsonError::Json(e) => Error::internal(&path(), e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::DataChange;
    use crate::outcome::Arrival;
    use crate::table::limits;
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
        ChangePlan::new(&DataChange::parse(&envelope)?, &envelope, receipt, None)
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

    fn differences(item: &Item) -> &[Attr] {
        let Some(Attr::L(list)) = item.get(DIFFERENCES) else { panic!("no differences in {item:?}") };
        list
    }

    #[test]
    fn differences_live_in_the_change_item_with_native_types_and_order() {
        let plan = plan_of(documented(), 0).unwrap();
        assert!(plan.parts.is_empty());
        assert_eq!(plan.layout(), Layout::Inline);
        let list = differences(&plan.change);
        assert_eq!(list.len(), 2);
        let first = &list[0];
        assert_eq!(first.get("index"), Some(&n("0")));
        assert_eq!(first.get("type"), Some(&s("changed")));
        let Some(Attr::L(fields)) = first.get("fields") else { panic!("fields is a list") };
        assert_eq!(fields[0].get("key"), Some(&s("price")));
        assert_eq!(fields[0].get("value"), Some(&n("29.99")));
        assert_eq!(fields[0].get("previousValue"), Some(&n("24.99")));
        assert_eq!(list[1].get("index"), Some(&n("1")));
        assert_eq!(list[1].get("type"), Some(&s("added")));
        assert!(limits::check(&plan.change).is_ok());
    }

    #[test]
    fn the_change_item_is_its_event_log_record() {
        let plan = plan_of(documented(), 0).unwrap();
        assert_eq!(plan.change["eventType"], s("workflow_data_change"));
        assert_eq!(plan.change["timestamp"], s("2025-01-15T10:30:00.000Z"));
        let Attr::S(key) = &plan.change["eventKey"] else { panic!() };
        assert!(key.starts_with("EVENT#2025-01-15T10:30:00.000Z#workflow_data_change#"), "{key}");
    }

    /// A change of `count` differences of about `bytes` each.
    fn large(count: usize, bytes: usize, marker: &str) -> Value {
        let difference = |i: usize| json!({"type": "added", "fields": [{"key": "row", "value": i}, {"key": "text", "value": format!("{marker}{}", "x".repeat(bytes))}]});
        let mut data = documented();
        data["differences"] = Value::Array((0..count).map(difference).collect());
        data
    }

    #[test]
    fn a_change_too_large_for_one_item_goes_into_as_few_parts_as_fit() {
        // 3000 differences of ~300 bytes: about 0.9 MB, so three parts.
        let plan = plan_of(large(3000, 300, "a"), 7).unwrap();
        let Layout::Parts { version, count } = plan.layout() else { panic!("parts expected") };
        assert_eq!(count, plan.parts.len());
        assert_eq!(count, 3, "as few as fit");
        assert!(!plan.change.contains_key(DIFFERENCES));
        assert_eq!(plan.change["partCount"], Attr::n(count as u64));
        let mut next = 0;
        for (n, part) in plan.parts.iter().enumerate() {
            assert_eq!(part["sk"], Attr::S(keys::part_sk(&plan.change_sk, &version, n)));
            assert_eq!(part["entity"], s("changePart"));
            assert_eq!(part["expiresAt"], plan.change["expiresAt"]);
            assert!(limits::check(part).is_ok(), "part {n} fits DynamoDB");
            for difference in differences(part) {
                assert_eq!(difference.get("index"), Some(&Attr::n(next as u64)), "in order");
                next += 1;
            }
        }
        assert_eq!(next, 3000);
        assert_eq!(plan.layout().part_keys(&plan.change_sk).len(), 3);
    }

    #[test]
    fn two_versions_of_a_large_change_have_parts_of_their_own() {
        let version = |data| match plan_of(data, 0).unwrap().layout() {
            Layout::Parts { version, .. } => version,
            Layout::Inline => panic!("parts expected"),
        };
        assert_eq!(version(large(2000, 300, "a")), version(large(2000, 300, "a")), "a retry rewrites the same parts");
        assert_ne!(version(large(2000, 300, "a")), version(large(2000, 300, "b")));
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
        let plan = ChangePlan::new(&DataChange::parse(&envelope).unwrap(), &envelope, receipt, None).unwrap();
        let Some(Attr::L(fields)) = differences(&plan.change)[0].get("fields") else { panic!() };
        assert_eq!(fields[0].get("value"), Some(&n("98765432109876543210")));
        assert_eq!(
            fields[0].get("previousValue"),
            Some(&Attr::NumberText("1e200".into())),
            "out of DynamoDB's range: its exact text"
        );
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
        let mut data = documented();
        data["dataPending"] = json!(true);
        assert_eq!(plan_of(data, 7).unwrap().pending.unwrap()["expiresAt"], expected);
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
        // Four of DynamoDB's 32 levels hold the value (differences, difference, fields, field).
        let nested = |levels: usize| (0..levels).fold(json!("leaf"), |inner, _| json!([inner]));
        let mut data = documented();
        data["differences"][0]["fields"][0]["value"] = nested(28);
        let plan = plan_of(data.clone(), 0).unwrap();
        assert!(limits::check(&plan.change).is_ok(), "32 levels as stored");
        data["differences"][0]["fields"][0]["value"] = nested(29);
        assert!(matches!(plan_of(data, 0), Err(Error::TooLarge(_))));
    }

    /// A change with `attribute` (summary, url, name, tags or an extra field) grown to
    /// `bytes` bytes, and `differences` differences of about 300 bytes (none: the two of
    /// [`documented`]).
    fn grown(attribute: &str, bytes: usize, differences: usize) -> Value {
        let mut data = if differences == 0 { documented() } else { large(differences, 300, "a") };
        let text = json!("x".repeat(bytes));
        match attribute {
            "summary" => data["summary"] = text,
            "url" => data["url"] = text,
            "name" => data["metadata"]["workflowName"] = text,
            "tags" => data["metadata"]["tags"] = json!(["pricing", text]),
            "extra" => data["customNote"] = text,
            other => panic!("no attribute {other}"),
        }
        data
    }

    /// The change item as completing it would finally send it, and every part.
    fn items_as_sent(plan: &ChangePlan) -> Vec<Item> {
        let mut change = plan.change.clone();
        change.insert(COMPLETED_AT.into(), s("2025-01-16T00:00:00.000Z"));
        std::iter::once(change).chain(plan.parts.iter().cloned()).collect()
    }

    /// The largest size within 4 KB under the limit that `holds` (true below it, false above).
    fn largest_where(holds: impl Fn(usize) -> bool) -> usize {
        let (mut yes, mut no) = (MAX_ITEM_BYTES - 4096, MAX_ITEM_BYTES);
        assert!(holds(yes) && !holds(no));
        while no - yes > 1 {
            let middle = (yes + no) / 2;
            if holds(middle) {
                yes = middle
            } else {
                no = middle
            }
        }
        yes
    }

    #[test]
    fn each_attribute_that_grows_is_stored_whole_or_refused_before_any_write() {
        for attribute in ["summary", "url", "name", "tags", "extra"] {
            for differences in [0, 1500] {
                let plan = |bytes| plan_of(grown(attribute, bytes, differences), 0);
                let fits = largest_where(|bytes| plan(bytes).is_ok());
                for bytes in [fits - 64, fits - 1, fits] {
                    let planned = plan(bytes).unwrap();
                    for item in items_as_sent(&planned) {
                        assert_eq!(limits::check(&item), Ok(()), "{attribute} of {bytes} bytes, {differences}");
                    }
                }
                // Refused at the limit itself, not early.
                let at_limit = limits::item_size(&items_as_sent(&plan(fits).unwrap())[0]);
                assert!(at_limit > MAX_ITEM_BYTES - 8, "{attribute}: {at_limit}");
                for bytes in [fits + 1, fits + 64] {
                    let error = plan(bytes).unwrap_err();
                    assert!(matches!(error, Error::TooLarge(_)), "{attribute} of {bytes} bytes: {error:?}");
                    assert!(error.detail().starts_with("data needs "), "{}", error.detail());
                }
            }
        }
    }

    #[test]
    fn a_change_that_fits_only_without_its_differences_moves_them_to_parts() {
        // Just under the limit with its two differences inline: they move to a part, and
        // the change item keeps room for `completedAt`.
        let inline_max =
            largest_where(|bytes| plan_of(grown("summary", bytes, 0), 0).is_ok_and(|p| p.parts.is_empty()));
        let moved = plan_of(grown("summary", inline_max + 1, 0), 0).unwrap();
        assert_eq!(moved.parts.len(), 1);
        let inline = plan_of(grown("summary", inline_max, 0), 0).unwrap();
        let with_completion = limits::item_size(&items_as_sent(&inline)[0]);
        assert!(with_completion <= MAX_ITEM_BYTES && with_completion > MAX_ITEM_BYTES - 8, "{with_completion}");
    }
}
