//! DynamoDB's JSON, written straight from our [`Item`]s, for the writes that carry a
//! delivery's items (a data change's transaction and its batches, reconciliation's too)
//! and for the updates of a workflow's health (claim, commit, release).
//!
//! The SDK would first copy every item into its own types (an `AttributeValue` tree in a
//! `HashMap` per item), then serialize and drop those: `make profile` counted that as a
//! fifth of a warm delivery and nearly a third of a 3000-difference one. Here the request
//! body is written once, straight into its bytes, and handed to the SDK's own call through
//! [`mutate_request`](aws_sdk_dynamodb::client::customize::CustomizableOperation::mutate_request),
//! which runs before each attempt is signed: the SDK still resolves the endpoint, signs,
//! sends, retries and reads the answer exactly as for its own body. (Its endpoint rules see
//! a request without table names; those only matter for a table given by ARN, and
//! `TABLE_NAME` is a name.) The body is the operation's documented request syntax; `tests`
//! pin it, and the integration tests check that a retried attempt re-sends it.

use aws_sdk_dynamodb::config::http::HttpRequest;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;

use crate::table::{Attr, Item};

/// One request of a `BatchWriteItem`.
#[derive(Debug)]
pub enum Write {
    /// Put this item.
    Put(Item),
    /// Delete the item with this key.
    Delete {
        /// Its partition key.
        pk: String,
        /// Its sort key.
        sk: String,
    },
}

/// A conditional update of one item: an `UpdateItem`, or an action of a transaction.
#[derive(Debug)]
pub struct Update<'a> {
    /// The item's `pk` and `sk`.
    pub key: (&'a str, &'a str),
    /// `SET …`, `REMOVE …`.
    pub update: &'a str,
    /// Must hold for the update to happen.
    pub condition: &'a str,
    /// Placeholders of attribute names (`#state`) and the names.
    pub names: &'a [(&'a str, &'a str)],
    /// Placeholders of values (`:state`) and the values.
    pub values: &'a [(&'a str, Attr)],
}

#[cfg(test)]
impl Update<'_> {
    /// Placeholders DynamoDB would refuse (moto does not): listed but not used in the
    /// expressions, used but not listed, or listed twice (a JSON object with a key twice).
    pub fn unmatched_placeholders(&self) -> Vec<String> {
        use std::collections::BTreeSet;
        let mut used = BTreeSet::new();
        for text in [self.update, self.condition] {
            let mut rest = text;
            while let Some(start) = rest.find(['#', ':']) {
                let tail = rest.get(start + 1..).unwrap_or_default();
                let end = tail.find(|c: char| !c.is_ascii_alphanumeric() && c != '_').unwrap_or(tail.len());
                used.insert(rest.get(start..start + 1 + end).unwrap_or_default().to_owned());
                rest = tail.get(end..).unwrap_or_default();
            }
        }
        let listed: Vec<String> = self
            .names
            .iter()
            .map(|(placeholder, _)| *placeholder)
            .chain(self.values.iter().map(|(placeholder, _)| *placeholder))
            .map(str::to_owned)
            .collect();
        let unique: BTreeSet<String> = listed.iter().cloned().collect();
        let mut unmatched: Vec<String> = used.symmetric_difference(&unique).cloned().collect();
        if unique.len() < listed.len() {
            unmatched.push("(a placeholder listed twice)".to_owned());
        }
        unmatched
    }
}

/// A request body, ready to be sent (and re-sent by a retry) in place of the SDK's own.
#[derive(Debug, Clone)]
pub struct Body(Bytes);

impl Body {
    /// A `TransactWriteItems` that puts `first` only if `condition` holds, and every item
    /// of `rest`. `token` is the idempotency token the SDK would have generated (a retry of
    /// the call re-sends the same one).
    pub fn transact_puts(table: &str, first: &Item, condition: &str, rest: &[Item], token: &str) -> Self {
        let mut json = Json::with_capacity(rest.len() + 1);
        json.raw(r#"{"TransactItems":["#);
        json.put(table, first, Some(condition));
        for item in rest {
            json.raw(",");
            json.put(table, item, None);
        }
        json.end_transaction(token)
    }

    /// A `BatchWriteItem` of `writes` (at most 25) on `table`.
    pub fn batch(table: &str, writes: &[Write]) -> Self {
        let mut json = Json::with_capacity(writes.len());
        json.raw(r#"{"RequestItems":{"#);
        json.string(table);
        json.raw(":[");
        for (index, write) in writes.iter().enumerate() {
            if index > 0 {
                json.raw(",");
            }
            match write {
                Write::Put(item) => {
                    json.raw(r#"{"PutRequest":{"Item":"#);
                    json.item(item);
                }
                Write::Delete { pk, sk } => {
                    json.raw(r#"{"DeleteRequest":{"Key":"#);
                    json.key(pk, sk);
                }
            }
            json.raw("}}");
        }
        json.raw("]}}");
        Self(json.0.into())
    }

    /// An `UpdateItem` of `update`. With `return_old`, DynamoDB answers with the item as
    /// it was, also when the condition fails.
    pub fn update_item(table: &str, update: &Update<'_>, return_old: bool) -> Self {
        let mut json = Json::with_capacity(1);
        json.update(table, update);
        if return_old {
            json.raw(r#","ReturnValues":"ALL_OLD","ReturnValuesOnConditionCheckFailure":"ALL_OLD""#);
        }
        json.raw("}");
        Self(json.0.into())
    }

    /// A `TransactWriteItems` of `update` and a put of `item`, with the idempotency token
    /// `token`.
    pub fn transact_update_put(table: &str, update: &Update<'_>, item: &Item, token: &str) -> Self {
        let mut json = Json::with_capacity(2);
        json.raw(r#"{"TransactItems":[{"Update":"#);
        json.update(table, update);
        json.raw("}},");
        json.put(table, item, None);
        json.end_transaction(token)
    }

    /// Puts this body into `request` (and its length into `Content-Length`): what
    /// `mutate_request` calls before every attempt is signed.
    pub fn replace(&self, request: &mut HttpRequest) {
        request.headers_mut().insert("content-length", self.0.len().to_string());
        *request.body_mut() = SdkBody::from(self.0.clone());
    }
}

/// A JSON text being written. Only what DynamoDB's requests need; strings that need no
/// escaping (nearly all) are copied as they are, the others are escaped by serde_json.
struct Json(Vec<u8>);

impl Json {
    /// Room for `items` items of a typical size.
    fn with_capacity(items: usize) -> Self {
        Self(Vec::with_capacity(128 + items * 512))
    }

    fn raw(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
    }

    fn string(&mut self, text: &str) {
        // Without an early exit, so the compiler checks many bytes at a time.
        let needs_escaping = text.bytes().fold(false, |found, b| found | (b < 0x20) | (b == b'"') | (b == b'\\'));
        if needs_escaping {
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.0, text);
        } else {
            self.0.push(b'"');
            self.raw(text);
            self.0.push(b'"');
        }
    }

    fn put(&mut self, table: &str, item: &Item, condition: Option<&str>) {
        self.raw(r#"{"Put":{"TableName":"#);
        self.string(table);
        self.raw(r#","Item":"#);
        self.item(item);
        if let Some(condition) = condition {
            self.raw(r#","ConditionExpression":"#);
            self.string(condition);
        }
        self.raw("}}");
    }

    /// `{"pk":{"S":…},"sk":{"S":…}}`.
    fn key(&mut self, pk: &str, sk: &str) {
        self.raw(r#"{"pk":{"S":"#);
        self.string(pk);
        self.raw(r#"},"sk":{"S":"#);
        self.string(sk);
        self.raw("}}");
    }

    /// Closes a `TransactItems` list with its idempotency token, and the request.
    fn end_transaction(mut self, token: &str) -> Body {
        self.raw(r#"],"ClientRequestToken":"#);
        self.string(token);
        self.raw("}");
        Body(self.0.into())
    }

    /// The members of an update, from `{` up to (not including) its closing `}`.
    fn update(&mut self, table: &str, update: &Update<'_>) {
        self.raw(r#"{"TableName":"#);
        self.string(table);
        self.raw(r#","Key":"#);
        self.key(update.key.0, update.key.1);
        self.raw(r#","UpdateExpression":"#);
        self.string(update.update);
        self.raw(r#","ConditionExpression":"#);
        self.string(update.condition);
        // DynamoDB refuses an empty map here: none is written.
        if !update.names.is_empty() {
            self.raw(r#","ExpressionAttributeNames":{"#);
            for (index, (placeholder, name)) in update.names.iter().enumerate() {
                if index > 0 {
                    self.raw(",");
                }
                self.string(placeholder);
                self.raw(":");
                self.string(name);
            }
            self.raw("}");
        }
        if !update.values.is_empty() {
            self.raw(r#","ExpressionAttributeValues":"#);
            self.map(update.values.iter().map(|(placeholder, value)| (*placeholder, value)));
        }
    }

    fn item(&mut self, item: &Item) {
        self.map(item.iter().map(|(name, value)| (name.as_str(), value)));
    }

    fn map<'a>(&mut self, entries: impl Iterator<Item = (&'a str, &'a Attr)>) {
        self.raw("{");
        for (index, (name, value)) in entries.enumerate() {
            if index > 0 {
                self.raw(",");
            }
            self.string(name);
            self.raw(":");
            self.value(value);
        }
        self.raw("}");
    }

    /// `{"S":…}`, `{"N":…}`, …; nesting is bounded by [`crate::table::limits::MAX_NESTING`].
    fn value(&mut self, value: &Attr) {
        match value {
            Attr::S(text) => {
                self.raw(r#"{"S":"#);
                self.string(text);
            }
            Attr::N(number) => {
                self.raw(r#"{"N":"#);
                self.string(number);
            }
            Attr::Bool(true) => self.raw(r#"{"BOOL":true"#),
            Attr::Bool(false) => self.raw(r#"{"BOOL":false"#),
            Attr::Null => self.raw(r#"{"NULL":true"#),
            Attr::L(list) => {
                self.raw(r#"{"L":["#);
                for (index, value) in list.iter().enumerate() {
                    if index > 0 {
                        self.raw(",");
                    }
                    self.value(value);
                }
                self.raw("]");
            }
            Attr::M(entries) => {
                self.raw(r#"{"M":"#);
                self.map(entries.iter().map(|(name, value)| (name.as_str(), value)));
            }
        }
        self.raw("}");
    }
}

/// A fresh idempotency token for one `TransactWriteItems`: 32 random hex digits, as
/// unique as the SDK's own.
pub fn request_token() -> String {
    format!("{:032x}", fastrand::u128(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};

    fn item() -> Item {
        Item::from([
            ("pk".into(), Attr::s("WORKFLOW#wf")),
            ("sk".into(), Attr::s("CHANGE#c#")),
            ("n".into(), Attr::N("10.50".into())),
            ("flag".into(), Attr::Bool(false)),
            ("none".into(), Attr::Null),
            (
                "fields".into(),
                Attr::L(vec![Attr::M(vec![
                    ("key".into(), Attr::s("quote \" and \u{1}")),
                    ("empty".into(), Attr::L(vec![])),
                ])]),
            ),
        ])
    }

    fn item_json() -> Json {
        json!({
            "pk": {"S": "WORKFLOW#wf"},
            "sk": {"S": "CHANGE#c#"},
            "n": {"N": "10.50"},
            "flag": {"BOOL": false},
            "none": {"NULL": true},
            "fields": {"L": [{"M": {"key": {"S": "quote \" and \u{1}"}, "empty": {"L": []}}}]},
        })
    }

    fn parsed(body: &Body) -> Json {
        serde_json::from_slice(&body.0[..]).unwrap()
    }

    #[test]
    fn a_transaction_is_dynamodbs_request_syntax() {
        let body = Body::transact_puts("t", &item(), "attribute_not_exists(pk)", &[item()], "tok");
        let expected = json!({
            "TransactItems": [
                {"Put": {"TableName": "t", "Item": item_json(), "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": "t", "Item": item_json()}},
            ],
            "ClientRequestToken": "tok",
        });
        assert_eq!(parsed(&body), expected);
    }

    fn update() -> Update<'static> {
        Update {
            key: ("WORKFLOW#wf", "HEALTH"),
            update: "SET #state = :state REMOVE #claimId",
            condition: "#claimId = :claim",
            names: &[("#state", "state"), ("#claimId", "claimId")],
            values: &[],
        }
    }

    #[test]
    fn updates_are_dynamodbs_request_syntax() {
        let values = [(":state", Attr::s("failing")), (":claim", Attr::s("c\"1")), (":n", Attr::N("7".into()))];
        let update = Update { values: &values, ..update() };
        let expected_update = json!({
            "TableName": "t",
            "Key": {"pk": {"S": "WORKFLOW#wf"}, "sk": {"S": "HEALTH"}},
            "UpdateExpression": "SET #state = :state REMOVE #claimId",
            "ConditionExpression": "#claimId = :claim",
            "ExpressionAttributeNames": {"#state": "state", "#claimId": "claimId"},
            "ExpressionAttributeValues": {":state": {"S": "failing"}, ":claim": {"S": "c\"1"}, ":n": {"N": "7"}},
        });
        assert_eq!(parsed(&Body::update_item("t", &update, false)), expected_update);
        let mut returning = expected_update.clone();
        returning["ReturnValues"] = json!("ALL_OLD");
        returning["ReturnValuesOnConditionCheckFailure"] = json!("ALL_OLD");
        assert_eq!(parsed(&Body::update_item("t", &update, true)), returning);
        let transaction = json!({
            "TransactItems": [{"Update": expected_update}, {"Put": {"TableName": "t", "Item": item_json()}}],
            "ClientRequestToken": "tok",
        });
        assert_eq!(parsed(&Body::transact_update_put("t", &update, &item(), "tok")), transaction);
        let without =
            Update { update: "REMOVE flag", condition: "attribute_exists(pk)", names: &[], values: &[], ..update };
        let body = parsed(&Body::update_item("t", &without, false));
        assert!(body.get("ExpressionAttributeNames").is_none() && body.get("ExpressionAttributeValues").is_none());
    }

    #[test]
    fn placeholders_listed_and_not_used_or_used_and_not_listed_are_found() {
        let values = [(":state", Attr::s("failing")), (":claim", Attr::s("c1")), (":spare", Attr::Null)];
        let mismatched = Update { names: &[("#state", "state"), ("#extra", "x")], values: &values, ..update() };
        assert_eq!(mismatched.unmatched_placeholders(), ["#claimId", "#extra", ":spare"]);
        let names = [("#state", "state"), ("#claimId", "claimId"), ("#state", "state")];
        let twice = Update { names: &names, values: &values[..2], ..update() };
        assert_eq!(twice.unmatched_placeholders(), ["(a placeholder listed twice)"]);
    }

    #[test]
    fn a_batch_is_dynamodbs_request_syntax() {
        let delete = Write::Delete { pk: "WORKFLOW#wf".into(), sk: "CHANGE#c#00001".into() };
        let body = Body::batch("t", &[Write::Put(item()), delete, Write::Put(item())]);
        let put = json!({"PutRequest": {"Item": item_json()}});
        let delete = json!({"DeleteRequest": {"Key": {"pk": {"S": "WORKFLOW#wf"}, "sk": {"S": "CHANGE#c#00001"}}}});
        assert_eq!(parsed(&body), json!({"RequestItems": {"t": [put, delete, put]}}));
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut every_byte_char: String = (0u8..=127).map(char::from).collect();
        every_byte_char.push_str("é 🚀 \u{2028} \u{7f}");
        for text in ["", "plain", "quote \" back \\ slash", "tab\tnew\nline\u{0}", "é 🚀", every_byte_char.as_str()]
        {
            let mut json = Json(Vec::new());
            json.string(text);
            assert_eq!(String::from_utf8(json.0).unwrap(), serde_json::to_string(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn the_body_replaces_the_sdks_with_its_length() {
        let body = Body::batch("t", &[Write::Put(item())]);
        let mut request = HttpRequest::new(SdkBody::from("{}"));
        request.headers_mut().insert("content-length", "2");
        body.replace(&mut request);
        assert_eq!(request.body().bytes(), Some(&body.0[..]));
        assert_eq!(request.headers().get("content-length"), Some(body.0.len().to_string().as_str()));
    }

    #[test]
    fn request_tokens_fit_dynamodbs_rules_and_differ() {
        let (a, b) = (request_token(), request_token());
        assert_eq!(a.len(), 32, "1 to 36 characters");
        assert_ne!(a, b);
    }
}
