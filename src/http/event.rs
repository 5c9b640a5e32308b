//! The Lambda event of an HTTP request, read in one pass: a function URL or an HTTP API
//! (payload 2.0), or a REST API (payload 1.0).
//!
//! Why not `lambda_http`'s or `aws_lambda_events`' request types: the contract says an
//! event that cannot be read gets a 400, and with those types the runtime fails such an
//! event before our handler runs (an invocation error, whose log line could quote a
//! header: the credential, even). They are also an untagged enum, which serde reads by
//! copying the whole event, body included, and trying each shape. Only the method, the
//! headers and the body matter here, and both payload versions name them without
//! overlap, so this one small struct reads either, and anything it cannot read is
//! answered 400 by the handler.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue, Method};
use lambda_http::{Body, Request};
use serde::Deserialize;

use crate::events::null_as_default;

/// What this function reads of an HTTP event; everything else in it is skipped unread.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpEvent {
    /// Payload 1.0 (REST API).
    #[serde(deserialize_with = "null_as_default")]
    http_method: Option<String>,
    /// Payload 2.0 (function URL, HTTP API): `requestContext.http.method`.
    #[serde(deserialize_with = "null_as_default")]
    request_context: RequestContext,
    /// One value per name (2.0 joins repeated headers with commas). Ordered maps: which of
    /// two names differing only in case wins is the same on every instance.
    #[serde(deserialize_with = "null_as_default")]
    headers: BTreeMap<String, Option<String>>,
    /// Payload 1.0: every value of every header.
    #[serde(deserialize_with = "null_as_default")]
    multi_value_headers: BTreeMap<String, Option<Vec<String>>>,
    #[serde(deserialize_with = "null_as_default")]
    body: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    is_base64_encoded: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RequestContext {
    #[serde(deserialize_with = "null_as_default")]
    http: Http,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Http {
    #[serde(deserialize_with = "null_as_default")]
    method: Option<String>,
}

/// Why an event is not a request this function can read (the details may quote a
/// header, so they are not kept).
#[derive(Debug, PartialEq, Eq)]
pub struct Unreadable;

impl HttpEvent {
    /// Whether the event is payload 2.0 (a function URL, an HTTP API), whose answers may
    /// carry `cookies`.
    pub fn is_payload_v2(&self) -> bool {
        self.request_context.http.method.is_some()
    }

    /// The HTTP request the event carries. For 1.0, a name in `headers` replaces its
    /// values from `multiValueHeaders`, as API Gateway's own SDKs read them.
    pub fn into_request(self) -> Result<Request, Unreadable> {
        // Payload 2.0's own field first: an emulator (cargo-lambda's function URL) may send a
        // 1.0 `httpMethod` beside it that is not the request's.
        let method = self.request_context.http.method.or(self.http_method).ok_or(Unreadable)?;
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| Unreadable)?;
        let mut headers = HeaderMap::with_capacity(self.headers.len().max(self.multi_value_headers.len()));
        for (name, values) in self.multi_value_headers {
            let name = header_name(&name)?;
            for value in values.unwrap_or_default() {
                headers.append(name.clone(), header_value(value)?);
            }
        }
        for (name, value) in self.headers {
            if let Some(value) = value {
                headers.insert(header_name(&name)?, header_value(value)?);
            }
        }
        let body = match (self.body, self.is_base64_encoded) {
            (None, _) => Body::Empty,
            (Some(text), false) => Body::Text(text),
            (Some(encoded), true) => Body::Binary(STANDARD.decode(encoded).map_err(|_| Unreadable)?),
        };
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

fn header_name(name: &str) -> Result<HeaderName, Unreadable> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| Unreadable)
}

fn header_value(value: String) -> Result<HeaderValue, Unreadable> {
    HeaderValue::try_from(value).map_err(|_| Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(event: serde_json::Value) -> Result<Request, Unreadable> {
        serde_json::from_value::<HttpEvent>(event).unwrap().into_request()
    }

    fn text(request: &Request) -> &str {
        match request.body() {
            Body::Text(text) => text,
            _ => panic!("not text"),
        }
    }

    #[test]
    fn payload_2_method_wins_over_a_stray_1_0_field() {
        // cargo-lambda's function URL (`make dev`) sends `httpMethod: GET` beside the real one.
        let event = json!({"version": "2.0", "httpMethod": "GET", "headers": {},
            "requestContext": {"http": {"method": "POST", "path": "/"}}, "body": "{}"});
        let parsed: HttpEvent = serde_json::from_value(event).unwrap();
        assert!(parsed.is_payload_v2());
        assert_eq!(parsed.into_request().unwrap().method(), Method::POST);
        let rest: HttpEvent = serde_json::from_value(json!({"httpMethod": "POST", "headers": {}})).unwrap();
        assert!(!rest.is_payload_v2());
    }

    #[test]
    fn a_function_url_event_is_read() {
        let request = read(json!({
            "version": "2.0", "rawPath": "/", "cookies": ["a=b"],
            "headers": {"authorization": "Bearer s", "x-kadoa-event": "workflow_failed"},
            "requestContext": {"http": {"method": "POST", "path": "/"}, "timeEpoch": 1},
            "body": "{\"a\":1}", "isBase64Encoded": false,
        }))
        .unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.headers()["authorization"], "Bearer s");
        assert_eq!(request.headers()["x-kadoa-event"], "workflow_failed");
        assert_eq!(text(&request), "{\"a\":1}");
    }

    #[test]
    fn a_rest_api_event_is_read_with_every_header_value() {
        let request = read(json!({
            "httpMethod": "PUT", "path": "/", "queryStringParameters": null,
            "headers": {"Authorization": "Bearer s"},
            "multiValueHeaders": {"Authorization": ["Bearer s"], "Accept": ["a", "b"], "X-None": null},
            "requestContext": {"httpMethod": "PUT", "identity": {"sourceIp": "203.0.113.7"}},
            "body": null, "isBase64Encoded": false,
        }))
        .unwrap();
        assert_eq!(request.method(), Method::PUT);
        let accept: Vec<_> = request.headers().get_all("accept").iter().collect();
        assert_eq!(accept, ["a", "b"]);
        let authorization: Vec<_> = request.headers().get_all("authorization").iter().collect();
        assert_eq!(authorization, ["Bearer s"], "headers replaces, not repeats, multiValueHeaders");
        assert!(matches!(request.body(), Body::Empty));
    }

    #[test]
    fn a_base64_body_is_decoded() {
        let request = read(json!({"httpMethod": "POST", "body": "eyJhIjoxfQ==", "isBase64Encoded": true})).unwrap();
        assert!(matches!(request.body(), Body::Binary(bytes) if bytes == b"{\"a\":1}"));
    }

    #[test]
    fn what_is_not_a_readable_request_is_unreadable() {
        for event in [
            json!({}),
            json!({"httpMethod": "PO ST"}),
            json!({"httpMethod": "POST", "headers": {"x-evil": "bad\u{1}value"}}),
            json!({"httpMethod": "POST", "headers": {"bad name": "v"}}),
            json!({"httpMethod": "POST", "body": "!!", "isBase64Encoded": true}),
        ] {
            assert_eq!(read(event.clone()).err(), Some(Unreadable), "{event}");
        }
    }

    #[test]
    fn nulls_read_as_absent() {
        let event = json!({"httpMethod": "POST", "headers": null, "multiValueHeaders": null, "body": null,
                           "isBase64Encoded": null, "requestContext": null});
        assert!(read(event).is_ok());
    }
}
