//! The envelope every Kadoa webhook shares: `{"eventType", "timestamp", "data"}`.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;

use crate::error::Error;
use crate::timestamp::Timestamp;

/// Longest `eventType` accepted: it becomes part of the event log's sort key.
pub const MAX_EVENT_TYPE_BYTES: usize = 64;

/// A delivery's body, checked for shape but not yet for its event type's fields. `data`
/// stays raw JSON text borrowed from the body, so numbers keep every digit Kadoa sent.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// `eventType`: letters, digits, `_ . : -`, at most [`MAX_EVENT_TYPE_BYTES`].
    pub event_type: String,
    /// `timestamp`: when Kadoa says the event happened.
    pub timestamp: Timestamp,
    /// `data`, a JSON object, as raw text.
    pub data: &'a RawValue,
}

impl<'a> Envelope<'a> {
    /// Parses a body; `header_event` is the `X-Kadoa-Event` header, when the request had one.
    pub fn parse(body: &'a [u8], header_event: Option<&str>) -> Result<Self, Error> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid("body is empty; expected a JSON object"));
        }
        let text = std::str::from_utf8(body).map_err(|_| Error::invalid("body is not UTF-8"))?;
        let fields: HashMap<String, &'a RawValue> = serde_json::from_str(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => Error::invalid("body must be a JSON object"),
            _ => Error::invalid(format!("body is not valid JSON: {e}")),
        })?;

        let event_type = match fields.get("eventType").map(|raw| serde_json::from_str::<String>(raw.get())) {
            None => return Err(Error::invalid("eventType is required")),
            Some(Ok(text)) if !text.trim().is_empty() => check_event_type(text.trim())?,
            Some(_) => return Err(Error::invalid("eventType must be a non-empty string")),
        };
        if let Some(header) = header_event {
            if header.trim() != event_type {
                return Err(Error::invalid(format!(
                    "X-Kadoa-Event header {:?} does not match eventType {event_type:?}",
                    header.trim()
                )));
            }
        }
        let timestamp = match fields.get("timestamp").map(|raw| serde_json::from_str::<String>(raw.get())) {
            None => return Err(Error::invalid("timestamp is required")),
            Some(Ok(text)) => Timestamp::parse_rfc3339(&text)
                .ok_or_else(|| Error::invalid(format!("timestamp {text:?} is not an RFC 3339 date-time")))?,
            Some(Err(_)) => return Err(Error::invalid("timestamp must be an RFC 3339 string")),
        };
        let data = match fields.get("data") {
            None => return Err(Error::invalid("data is required")),
            Some(raw) if raw.get().starts_with('{') => *raw,
            Some(_) => return Err(Error::invalid("data must be a JSON object")),
        };

        Ok(Self { event_type, timestamp, data })
    }

    /// First 16 hex digits of the SHA-256 of the event's canonical JSON (type, time, and
    /// `data` with keys sorted, no spaces): two different events sharing a type and time
    /// differ, while a retry — or the same event re-serialized in Kadoa's delivery log —
    /// keeps it. (A data change is identified by its ids instead: see `EventRecord`.)
    pub fn identity_hash(&self) -> String {
        let mut canonical = format!("{}\n{}\n", self.event_type, self.timestamp.to_key_string());
        match serde_json::from_str::<serde_json::Value>(self.data.get()) {
            Ok(value) => write_canonical(&value, &mut canonical),
            // `data` was read as a JSON object already; this cannot happen.
            Err(_) => canonical.push_str(self.data.get()),
        }
        short_hash(canonical.as_bytes())
    }
}

/// `value` as JSON with object keys sorted and no white space.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(list) => {
            out.push('[');
            for (i, value) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(value, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `body` with every lone UTF-16 surrogate escape (`\ud83d` without its pair, as
/// JavaScript writes a string cut inside an emoji) replaced by `\ufffd`, U+FFFD REPLACEMENT
/// CHARACTER: JSON allows such escapes, Rust strings cannot hold them, and DynamoDB and SNS
/// take UTF-8 only. Borrowed as it is when there is none (nearly always). A backslash is
/// met only inside JSON strings, so escapes are found without parsing.
pub fn repair_lone_surrogates(body: &[u8]) -> Cow<'_, [u8]> {
    fn escape_at(body: &[u8], at: usize) -> Option<u16> {
        match body.get(at..at + 6) {
            Some([b'\\', b'u', hex @ ..]) => u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok(),
            _ => None,
        }
    }
    let mut repaired: Option<Vec<u8>> = None;
    let (mut at, mut copied) = (0, 0);
    while let Some(offset) = body.get(at..).and_then(|rest| rest.iter().position(|&b| b == b'\\')) {
        at += offset;
        let lone = match escape_at(body, at) {
            Some(0xD800..=0xDBFF) => match escape_at(body, at + 6) {
                Some(0xDC00..=0xDFFF) => {
                    at += 12;
                    continue;
                }
                _ => true,
            },
            Some(0xDC00..=0xDFFF) => true,
            Some(_) => {
                at += 6;
                continue;
            }
            None => false,
        };
        if !lone {
            at += 2; // any other escape, `\\` included
            continue;
        }
        let out = repaired.get_or_insert_with(|| Vec::with_capacity(body.len()));
        out.extend_from_slice(body.get(copied..at).unwrap_or_default());
        out.extend_from_slice(b"\\ufffd");
        at += 6;
        copied = at;
    }
    match repaired {
        None => Cow::Borrowed(body),
        Some(mut out) => {
            out.extend_from_slice(body.get(copied..).unwrap_or_default());
            Cow::Owned(out)
        }
    }
}

/// Event types become part of keys and log lines: a short word, nothing else.
fn check_event_type(event_type: &str) -> Result<String, Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    if event_type.len() > MAX_EVENT_TYPE_BYTES || !event_type.chars().all(allowed) {
        return Err(Error::invalid(format!(
            "eventType {event_type:?} is not an event type (at most {MAX_EVENT_TYPE_BYTES} letters, digits, _ . : -)"
        )));
    }
    Ok(event_type.to_owned())
}

pub use crate::digest::short_hash;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_become_the_replacement_character_and_pairs_stay() {
        let repaired = |text: &str| String::from_utf8(repair_lone_surrogates(text.as_bytes()).into_owned()).unwrap();
        assert_eq!(repaired(r#"{"a":"cut \ud83d"}"#), r#"{"a":"cut \ufffd"}"#);
        assert_eq!(repaired(r#"{"a":"\udc00 low"}"#), r#"{"a":"\ufffd low"}"#);
        assert_eq!(repaired(r#"{"a":"\ud83d\ud83d\ude80"}"#), r#"{"a":"\ufffd\ud83d\ude80"}"#);
        // A pair, an escaped backslash before a `u`, and other escapes are left as they are.
        for kept in [r#"{"a":"\ud83d\ude80"}"#, r#"{"a":"\\ud83d"}"#, r#"{"a":"\n\u00e9\"\\"}"#, "{}", r#""\"#] {
            assert!(matches!(repair_lone_surrogates(kept.as_bytes()), Cow::Borrowed(_)), "{kept}");
        }
        let text: String = serde_json::from_str(&repaired(r#""x\ud83dy""#)).unwrap();
        assert_eq!(text, "x\u{fffd}y");
    }

    const FAILED: &str =
        r#"{"eventType":"workflow_failed","timestamp":"2025-01-15T10:30:00Z","data":{"workflowId":"wf_123"}}"#;

    fn error_of(body: &str, header: Option<&str>) -> String {
        Envelope::parse(body.as_bytes(), header).unwrap_err().detail().to_owned()
    }

    #[test]
    fn parses_a_documented_envelope() {
        let envelope = Envelope::parse(FAILED.as_bytes(), Some("workflow_failed")).unwrap();
        assert_eq!(envelope.event_type, "workflow_failed");
        assert_eq!(envelope.timestamp.to_key_string(), "2025-01-15T10:30:00.000Z");
        assert_eq!(envelope.data.get(), r#"{"workflowId":"wf_123"}"#);
        assert_eq!(envelope.identity_hash().len(), 16);
    }

    #[test]
    fn same_event_same_hash_different_event_different_hash() {
        let other = FAILED.replace("wf_123", "wf_124");
        let a = Envelope::parse(FAILED.as_bytes(), None).unwrap();
        let b = Envelope::parse(FAILED.as_bytes(), None).unwrap();
        let c = Envelope::parse(other.as_bytes(), None).unwrap();
        assert_eq!(a.identity_hash(), b.identity_hash());
        assert_ne!(a.identity_hash(), c.identity_hash());
    }

    #[test]
    fn the_same_event_serialized_otherwise_keeps_its_hash() {
        let reordered = r#"{ "data": {"workflowName": "x", "workflowId": "wf_123"}, "timestamp": "2025-01-15T11:30:00+01:00",
                            "eventType": "workflow_failed" }"#;
        let original = FAILED.replace(r#"{"workflowId":"wf_123"}"#, r#"{"workflowId":"wf_123","workflowName":"x"}"#);
        let a = Envelope::parse(original.as_bytes(), None).unwrap();
        let b = Envelope::parse(reordered.as_bytes(), None).unwrap();
        assert_eq!(a.identity_hash(), b.identity_hash());
    }

    #[test]
    fn rejections_name_the_problem() {
        assert_eq!(error_of("", None), "body is empty; expected a JSON object");
        assert_eq!(error_of("{not json", None), "body is not valid JSON: key must be a string at line 1 column 2");
        assert_eq!(error_of("[1,2]", None), "body must be a JSON object");
        assert_eq!(error_of(r#"{"timestamp":"2025-01-15T10:30:00Z","data":{}}"#, None), "eventType is required");
        assert_eq!(error_of(r#"{"eventType":5,"data":{}}"#, None), "eventType must be a non-empty string");
        assert_eq!(error_of(r#"{"eventType":"x","data":{}}"#, None), "timestamp is required");
        assert_eq!(
            error_of(r#"{"eventType":"x","timestamp":"soon","data":{}}"#, None),
            r#"timestamp "soon" is not an RFC 3339 date-time"#
        );
        assert_eq!(error_of(r#"{"eventType":"x","timestamp":"2025-01-15T10:30:00Z"}"#, None), "data is required");
        assert_eq!(
            error_of(r#"{"eventType":"x","timestamp":"2025-01-15T10:30:00Z","data":[]}"#, None),
            "data must be a JSON object"
        );
    }

    #[test]
    fn non_utf8_body_is_rejected() {
        let error = Envelope::parse(&[0x7b, 0xff, 0xfe, 0x7d], None).unwrap_err();
        assert_eq!(error.detail(), "body is not UTF-8");
    }

    #[test]
    fn header_must_agree_with_event_type() {
        let error = error_of(FAILED, Some("workflow_recovered"));
        assert_eq!(error, r#"X-Kadoa-Event header "workflow_recovered" does not match eventType "workflow_failed""#);
    }

    #[test]
    fn event_types_are_short_words() {
        let long = format!(r#"{{"eventType":"{}","timestamp":"2025-01-15T10:30:00Z","data":{{}}}}"#, "x".repeat(1100));
        let error = error_of(&long, None);
        assert!(error.starts_with(r#"eventType "xxxx"#), "{error}");
        assert!(error.len() <= crate::error::MAX_MESSAGE_BYTES, "{}", error.len());
        let hash = r#"{"eventType":"a#b","timestamp":"2025-01-15T10:30:00Z","data":{}}"#;
        assert!(error_of(hash, None).contains("is not an event type"));
    }

    #[test]
    fn huge_header_is_not_echoed_whole() {
        let header = "h".repeat(1 << 20);
        let error = error_of(FAILED, Some(&header));
        assert!(error.len() <= crate::error::MAX_MESSAGE_BYTES, "{}", error.len());
    }
}
