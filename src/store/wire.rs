//! DynamoDB's JSON, written straight from our [`Item`]s, for the writes that carry a
//! delivery's items (a data change's transaction and its batches).
//!
//! The SDK would first copy every item into its own types (an `AttributeValue` tree in a
//! `HashMap` per item), then serialize and drop those: `make profile` counted that as a
//! fifth of a warm delivery and of a 3000-difference one. Here the request body is written
//! once, by serde_json, and handed to the SDK's own call through
//! [`mutate_request`](aws_sdk_dynamodb::client::customize::CustomizableOperation::mutate_request),
//! which runs before each attempt is signed: the SDK still resolves the endpoint, signs,
//! sends, retries and reads the answer exactly as for its own body. The body is the
//! operation's documented request syntax; `tests` pin it.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::config::http::HttpRequest;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::error::Error;
use crate::table::{Attr, Item};

/// `{"S": …}`, `{"N": …}`, … for one value.
struct Value<'a>(&'a Attr);

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self.0 {
            Attr::S(text) => map.serialize_entry("S", text)?,
            Attr::N(number) => map.serialize_entry("N", number)?,
            Attr::Bool(value) => map.serialize_entry("BOOL", value)?,
            Attr::Null => map.serialize_entry("NULL", &true)?,
            Attr::L(list) => map.serialize_entry("L", &List(list))?,
            Attr::M(entries) => map.serialize_entry("M", &Entries(entries))?,
        }
        map.end()
    }
}

struct List<'a>(&'a [Attr]);

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(Value))
    }
}

struct Entries<'a>(&'a [(String, Attr)]);

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (name, Value(value))))
    }
}

/// An item: attribute name → value.
struct Attributes<'a>(&'a Item);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (name, Value(value))))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Put<'a> {
    table_name: &'a str,
    item: Attributes<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition_expression: Option<&'a str>,
}

#[derive(Serialize)]
enum TransactItem<'a> {
    Put(Put<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TransactWriteItems<'a> {
    transact_items: Vec<TransactItem<'a>>,
    client_request_token: &'a str,
}

#[derive(Serialize)]
enum WriteRequest<'a> {
    PutRequest {
        #[serde(rename = "Item")]
        item: Attributes<'a>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchWriteItem<'a> {
    request_items: BTreeMap<&'a str, Vec<WriteRequest<'a>>>,
}

/// A request body, ready to be sent (and re-sent by a retry) in place of the SDK's own.
#[derive(Debug, Clone)]
pub struct Body(Bytes);

impl Body {
    fn json(request: &impl Serialize) -> Result<Self, Error> {
        serde_json::to_vec(request).map(|json| Self(json.into())).map_err(|e| Error::internal("DynamoDB request", e))
    }

    /// A `TransactWriteItems` that puts `first` only if no item has its key
    /// (`condition`), and every item of `rest`. `token` is the idempotency token the SDK
    /// would have generated (a retry of the call re-sends the same one).
    pub fn transact_puts(
        table: &str,
        first: &Item,
        condition: &str,
        rest: &[Item],
        token: &str,
    ) -> Result<Self, Error> {
        let put = |item, condition_expression| {
            TransactItem::Put(Put { table_name: table, item: Attributes(item), condition_expression })
        };
        let transact_items =
            std::iter::once(put(first, Some(condition))).chain(rest.iter().map(|item| put(item, None))).collect();
        Self::json(&TransactWriteItems { transact_items, client_request_token: token })
    }

    /// A `BatchWriteItem` that puts `items` (at most 25) into `table`.
    pub fn batch_puts(table: &str, items: &[Item]) -> Result<Self, Error> {
        let requests = items.iter().map(|item| WriteRequest::PutRequest { item: Attributes(item) }).collect();
        Self::json(&BatchWriteItem { request_items: BTreeMap::from([(table, requests)]) })
    }

    /// Puts this body into `request` (and its length into `Content-Length`): what
    /// `mutate_request` calls before every attempt is signed.
    pub fn replace(&self, request: &mut HttpRequest) {
        request.headers_mut().insert("content-length", self.0.len().to_string());
        *request.body_mut() = SdkBody::from(self.0.clone());
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
        let body = Body::transact_puts("t", &item(), "attribute_not_exists(pk)", &[item()], "tok").unwrap();
        let expected = json!({
            "TransactItems": [
                {"Put": {"TableName": "t", "Item": item_json(), "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": "t", "Item": item_json()}},
            ],
            "ClientRequestToken": "tok",
        });
        assert_eq!(parsed(&body), expected);
    }

    #[test]
    fn a_batch_is_dynamodbs_request_syntax() {
        let body = Body::batch_puts("t", &[item(), item()]).unwrap();
        let put = json!({"PutRequest": {"Item": item_json()}});
        assert_eq!(parsed(&body), json!({"RequestItems": {"t": [put, put]}}));
    }

    #[test]
    fn the_body_replaces_the_sdks_with_its_length() {
        let body = Body::batch_puts("t", &[item()]).unwrap();
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
