//! A local fake of Kadoa's REST API, following its documented shapes: the change list
//! (skip/limit pagination), one change, the delivery log (offset/limit, `hasMore`), the
//! `x-api-key` check, and failures a test scripts (500, 429 with `Retry-After`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use kadoa_webhook::timestamp::Timestamp;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    key: String,
    changes: Vec<Value>,
    deliveries: Vec<Value>,
    failures: VecDeque<(u16, Option<u64>)>,
    requests: Vec<String>,
}

#[derive(Clone)]
pub struct FakeKadoa {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeKadoa {
    pub async fn start(key: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State { key: key.to_owned(), ..State::default() }));
        let served = state.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let state = served.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let (status, retry_after, body) = answer(&state, &String::from_utf8_lossy(&request));
                    let retry = retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default();
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(body.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { url, state }
    }

    /// A change as `GET /v5/changes` lists it (replaces one with the same id).
    pub fn put_change(&self, change: Value) {
        let mut state = self.state.lock().unwrap();
        state.changes.retain(|c| c["id"] != change["id"]);
        state.changes.push(change);
    }

    /// A delivery in the log: `payload` is the webhook body as sent.
    pub fn add_delivery(&self, payload: Value) {
        let mut state = self.state.lock().unwrap();
        let id = state.deliveries.len();
        state.deliveries.push(json!({
            "id": format!("log_{id}"), "workflowId": payload["data"]["workflowId"], "eventType": payload["eventType"],
            "eventStatus": "failed", "channelConfig": {}, "payload": payload, "eventId": format!("evt_{id}"),
            "createdAt": payload["timestamp"]
        }));
    }

    /// The next request is answered `status` (with `Retry-After`, when given).
    pub fn fail_next(&self, status: u16, retry_after: Option<u64>) {
        self.state.lock().unwrap().failures.push_back((status, retry_after));
    }

    /// Paths asked for, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn in_window(at: &Value, query: &[(String, String)]) -> bool {
    let get = |name: &str| query.iter().find(|(k, _)| k == name).and_then(|(_, v)| Timestamp::parse_rfc3339(v));
    let Some(at) = at.as_str().and_then(Timestamp::parse_rfc3339) else { return false };
    get("startDate").is_none_or(|from| at >= from) && get("endDate").is_none_or(|to| at < to)
}

fn answer(state: &Mutex<State>, request: &str) -> (u16, Option<u64>, String) {
    let mut state = state.lock().unwrap();
    let target = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    state.requests.push(target.clone());
    let key = request
        .lines()
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("x-api-key")))
        .map(|(_, value)| value.trim().to_owned());
    if key.as_deref() != Some(state.key.as_str()) {
        return (401, None, json!({"error": "Unauthorized", "message": "Invalid API key"}).to_string());
    }
    if let Some((status, retry_after)) = state.failures.pop_front() {
        return (status, retry_after, json!({"error": "try again"}).to_string());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect();
    let number = |name: &str, default: usize| {
        query.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse().ok()).unwrap_or(default)
    };
    if path == "/v5/changes" {
        let matching: Vec<&Value> = state.changes.iter().filter(|c| in_window(&c["createdAt"], &query)).collect();
        let (skip, limit) = (number("skip", 0), number("limit", 20));
        let page: Vec<Value> = matching
            .iter()
            .skip(skip)
            .take(limit)
            .map(|c| {
                let mut listed = (*c).clone();
                listed.as_object_mut().unwrap().remove("visualDiff"); // list answers omit it
                listed
            })
            .collect();
        let total = matching.len();
        let body = json!({"timestamp": "2025-01-16T00:00:00Z", "changesCount": page.len(), "changes": page,
            "pagination": {"totalCount": total, "page": skip / limit + 1, "totalPages": total.div_ceil(limit).max(1), "limit": limit}});
        return (200, None, body.to_string());
    }
    if let Some(id) = path.strip_prefix("/v5/changes/") {
        let id = decode(id);
        return match state.changes.iter().find(|c| c["id"] == id.as_str()) {
            Some(change) => (200, None, change.to_string()),
            None => (404, None, json!({"error": "Not found"}).to_string()),
        };
    }
    if path == "/v5/notifications/logs" {
        let matching: Vec<&Value> = state.deliveries.iter().filter(|d| in_window(&d["createdAt"], &query)).collect();
        let (offset, limit) = (number("offset", 0), number("limit", 50));
        let page: Vec<&Value> = matching.iter().skip(offset).take(limit).copied().collect();
        let body = json!({"status": "ok", "message": "", "data": {"events": page,
            "pagination": {"total": matching.len(), "limit": limit, "offset": offset, "hasMore": offset + page.len() < matching.len()}}});
        return (200, None, body.to_string());
    }
    (404, None, json!({"error": "Not found"}).to_string())
}
