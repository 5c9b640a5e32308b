//! A local fake of Kadoa's REST API on wiremock, following its documented shapes: the
//! change list (skip/limit pagination), one change, the delivery log (offset/limit,
//! `hasMore`), webhook channels, notification settings and the test notification, the
//! `x-api-key` check, and failures a test scripts (500, 429 with `Retry-After`).
//!
//! Settings are kept as Kadoa keeps them: one per (workflow or workspace, event type),
//! with a list of channels; a second POST for a pair answers 400 ("duplicate settings",
//! as Kadoa's OpenAPI description says); GET filters by `eventType` and `workflowId`
//! (`null`: the workspace's); PUT replaces one by id. Every body sent to the channel,
//! settings and test endpoints is held against the request schemas of Kadoa's published
//! description (support/openapi.rs): a body that does not match is answered 400 and
//! recorded in `violations`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use kadoa_webhook::timestamp::Timestamp;
use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Default)]
struct State {
    key: String,
    changes: Vec<Value>,
    deliveries: Vec<Value>,
    failures: VecDeque<(u16, Option<u64>)>,
    requests: Vec<String>,
    /// Every page is the first, and more always follow.
    broken_pagination: bool,
    /// Every request is redirected here, with this status.
    redirect_to: Option<(String, u16)>,
    /// Requests for these paths are answered 500, always.
    broken_paths: Vec<String>,
    /// Every `CUT` in an answer is sent as a lone UTF-16 surrogate escape (`\ud83d`).
    cut_strings: bool,
    /// Notification channels, as created or updated.
    channels: Vec<Value>,
    /// Notification settings, as Kadoa lists them (`channels` as objects).
    settings: Vec<Value>,
    /// Settings created so far (their ids).
    settings_made: usize,
    /// Every request that could change something (not a GET), as `METHOD path`.
    writes: Vec<String>,
    /// Bodies that did not match Kadoa's published request schemas.
    violations: Vec<String>,
    /// Test notifications asked for.
    tests: usize,
}

pub struct FakeKadoa {
    pub url: String,
    state: Arc<Mutex<State>>,
    /// Serves until dropped.
    _server: MockServer,
}

impl FakeKadoa {
    pub async fn start(key: &str) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State { key: key.to_owned(), ..State::default() }));
        Mock::given(any()).respond_with(Api(state.clone())).mount(&server).await;
        Self { url: server.uri(), state, _server: server }
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

    /// From now on every `CUT` in an answer goes out as a lone surrogate escape, as
    /// JavaScript writes a string cut inside an emoji.
    pub fn cut_strings(&self) {
        self.state.lock().unwrap().cut_strings = true;
    }

    /// From now on every request for `path` is answered 500.
    pub fn fail_always(&self, path: &str) {
        self.state.lock().unwrap().broken_paths.push(path.to_owned());
    }

    /// From now on every list answers its first page and says more follow.
    pub fn break_pagination(&self) {
        self.state.lock().unwrap().broken_pagination = true;
    }

    /// From now on every request is answered with a redirect to `url` (same path).
    pub fn redirect_to(&self, url: &str) {
        self.redirect_with(url, 302);
    }

    /// From now on every request is answered `status` (a 3xx) to `url` (same path).
    pub fn redirect_with(&self, url: &str, status: u16) {
        self.state.lock().unwrap().redirect_to = Some((url.to_owned(), status));
    }

    /// The channels Kadoa holds.
    pub fn channels(&self) -> Vec<Value> {
        self.state.lock().unwrap().channels.clone()
    }

    /// A channel Kadoa already holds.
    pub fn add_channel(&self, channel: Value) {
        self.state.lock().unwrap().channels.push(channel);
    }

    /// A channel deleted in Kadoa.
    pub fn remove_channel(&self, id: &str) {
        self.state.lock().unwrap().channels.retain(|c| c["id"] != id);
    }

    /// The notification settings Kadoa holds, as it lists them.
    pub fn settings(&self) -> Vec<Value> {
        self.state.lock().unwrap().settings.clone()
    }

    /// Settings Kadoa already holds: `workflow` (`None`: the workspace's), `event_type`,
    /// `enabled`, sending to `channels` (which must exist). Their id.
    pub fn add_settings(&self, workflow: Option<&str>, event_type: &str, enabled: bool, channels: &[&str]) -> String {
        let mut state = self.state.lock().unwrap();
        let mut body = json!({"eventType": event_type, "eventConfiguration": {"digest": false}, "enabled": enabled,
            "channelIds": channels});
        if let Some(workflow) = workflow {
            body["workflowId"] = json!(workflow);
        }
        let (status, answer) = create_settings(&mut state, &body);
        assert_eq!(status, 201, "{answer}");
        answer["data"]["settings"]["id"].as_str().unwrap().to_owned()
    }

    /// The channel ids of each settings object, by (workflow or `-`, event type).
    pub fn subscriptions(&self) -> std::collections::BTreeMap<(String, String), (bool, Vec<String>)> {
        let state = self.state.lock().unwrap();
        state
            .settings
            .iter()
            .map(|s| {
                let workflow = s["workflowId"].as_str().unwrap_or("-").to_owned();
                let ids = s["channels"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned());
                ((workflow, s["eventType"].as_str().unwrap().to_owned()), (s["enabled"] == true, ids.collect()))
            })
            .collect()
    }

    /// Every request that could change something (not a GET), as `METHOD path`, in order.
    pub fn writes(&self) -> Vec<String> {
        self.state.lock().unwrap().writes.clone()
    }

    /// Bodies sent that Kadoa's published request schemas refuse (empty: all matched).
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// How many test notifications were asked for.
    pub fn tests(&self) -> usize {
        self.state.lock().unwrap().tests
    }

    /// Paths asked for, with their query as sent, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// Answers every request from the shared state.
struct Api(Arc<Mutex<State>>);

impl Respond for Api {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.0.lock().unwrap();
        let path = request.url.path().to_owned();
        state.requests.push(match request.url.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        });
        let cut = state.cut_strings;
        let json = move |status: u16, body: Value| {
            let text = body.to_string();
            let text = if cut { text.replace("CUT", r"\ud83d") } else { text };
            ResponseTemplate::new(status).set_body_raw(text, "application/json")
        };
        if let Some((target, status)) = &state.redirect_to {
            let location = format!("{target}{}", request.url.path());
            return ResponseTemplate::new(*status).insert_header("location", location.as_str());
        }
        let key = request.headers.get("x-api-key").and_then(|value| value.to_str().ok());
        if key != Some(state.key.as_str()) {
            return json(401, json!({"error": "Unauthorized", "message": "Invalid API key"}));
        }
        if state.broken_paths.contains(&path) {
            return json(500, json!({"error": "internal"}));
        }
        if let Some((status, retry_after)) = state.failures.pop_front() {
            let answer = json(status, json!({"error": "try again"}));
            return match retry_after {
                Some(seconds) => answer.insert_header("retry-after", seconds.to_string().as_str()),
                None => answer,
            };
        }
        let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        let number = |name: &str, default: usize| {
            query.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse().ok()).unwrap_or(default)
        };
        let in_window = |at: &Value| {
            let bound =
                |name: &str| query.iter().find(|(k, _)| k == name).and_then(|(_, v)| Timestamp::parse_rfc3339(v));
            let Some(at) = at.as_str().and_then(Timestamp::parse_rfc3339) else { return false };
            bound("startDate").is_none_or(|from| at >= from) && bound("endDate").is_none_or(|to| at < to)
        };
        if path == "/v5/changes" {
            let matching: Vec<&Value> = state.changes.iter().filter(|c| in_window(&c["createdAt"])).collect();
            let (mut skip, limit) = (number("skip", 0), number("limit", 20));
            if state.broken_pagination {
                skip = 0;
            }
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
            return json(
                200,
                json!({"timestamp": "2025-01-16T00:00:00Z", "changesCount": page.len(), "changes": page,
                    "pagination": {"totalCount": total, "page": skip / limit + 1,
                        "totalPages": if state.broken_pagination { 1_000_000 } else { total.div_ceil(limit).max(1) }, "limit": limit}}),
            );
        }
        if let Some(id) = path.strip_prefix("/v5/changes/") {
            let id = percent_decoded(id);
            return match state.changes.iter().find(|c| c["id"] == id.as_str()) {
                Some(change) => json(200, change.clone()),
                None => json(404, json!({"error": "Not found"})),
            };
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let method = request.method.as_str();
        if method != "GET" {
            state.writes.push(format!("{method} {path}"));
        }
        if let Err(violation) = super::openapi::check_request(method, &path, &body) {
            state.violations.push(violation.clone());
            return json(400, json!({"error": "Bad request", "message": violation}));
        }
        if path == "/v5/notifications/channels" && method == "GET" {
            return json(200, json!({"data": {"channels": state.channels}}));
        }
        if path == "/v5/notifications/channels" && method == "POST" {
            let id = format!("ch_{}", state.channels.len() + 1);
            let mut channel = body.clone();
            channel["id"] = json!(id);
            state.channels.push(channel.clone());
            return json(201, json!({"data": {"channel": channel}}));
        }
        if let (Some(id), "PUT") = (path.strip_prefix("/v5/notifications/channels/"), method) {
            let id = percent_decoded(id);
            return match state.channels.iter_mut().find(|c| c["id"] == id.as_str()) {
                Some(channel) => {
                    *channel = body.clone();
                    channel["id"] = json!(id);
                    json(200, json!({"data": {"channel": channel}}))
                }
                None => json(404, json!({"error": "Not found"})),
            };
        }
        if path == "/v5/notifications/settings" && method == "POST" {
            let (status, answer) = create_settings(&mut state, &body);
            return json(status, answer);
        }
        if path == "/v5/notifications/settings" && method == "GET" {
            let filter = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let (event_type, workflows) = (filter("eventType"), filter("workflowId"));
            let listed: Vec<Value> = state
                .settings
                .iter()
                .filter(|s| event_type.as_ref().is_none_or(|t| s["eventType"] == t.as_str()))
                .filter(|s| match workflows.as_deref() {
                    None => true,
                    Some("null") => s.get("workflowId").is_none(),
                    Some(ids) => ids.split(',').any(|id| s["workflowId"] == id),
                })
                .cloned()
                .collect();
            return json(200, json!({"status": "ok", "message": "", "data": {"settings": listed}}));
        }
        if let (Some(id), "PUT") = (path.strip_prefix("/v5/notifications/settings/"), method) {
            let (status, answer) = update_settings(&mut state, &percent_decoded(id), &body);
            return json(status, answer);
        }
        if path == "/v5/notifications/test" && method == "POST" {
            state.tests += 1;
            return json(
                200,
                json!({"data": {"eventId": format!("evt_test_{}", state.tests), "eventType": body["eventType"], "workflowId": "wf_test"}}),
            );
        }
        if path == "/v5/notifications/logs" {
            let matching: Vec<&Value> = state.deliveries.iter().filter(|d| in_window(&d["createdAt"])).collect();
            let (mut offset, limit) = (number("offset", 0), number("limit", 50));
            if state.broken_pagination {
                offset = 0;
            }
            let page: Vec<&Value> = matching.iter().skip(offset).take(limit).copied().collect();
            return json(
                200,
                json!({"status": "ok", "message": "", "data": {"events": page,
                    "pagination": {"total": matching.len(), "limit": limit, "offset": offset, "hasMore": state.broken_pagination || offset + page.len() < matching.len()}}}),
            );
        }
        json(404, json!({"error": "Not found"}))
    }
}

/// A path segment as the client encoded it, decoded.
fn percent_decoded(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// The channels `ids` name, as settings list them; `Err` naming one that does not exist.
fn linked_channels(state: &State, ids: &Value) -> Result<Vec<Value>, String> {
    let ids = ids.as_array().cloned().unwrap_or_default();
    ids.iter()
        .map(|id| {
            let channel = state.channels.iter().find(|c| &c["id"] == id).ok_or(format!("no channel {id}"))?;
            Ok(json!({"id": id, "name": channel["name"], "channelType": channel["channelType"]}))
        })
        .collect()
}

/// `POST /v5/notifications/settings`: 400 when the pair already has settings.
fn create_settings(state: &mut State, body: &Value) -> (u16, Value) {
    let pair = |s: &Value| s.get("workflowId") == body.get("workflowId") && s["eventType"] == body["eventType"];
    if state.settings.iter().any(pair) {
        return (
            400,
            json!({"error": "Bad request", "message": "Notification settings already exist for this event type"}),
        );
    }
    let channels = match linked_channels(state, &body["channelIds"]) {
        Ok(channels) => channels,
        Err(message) => return (400, json!({"error": "Bad request", "message": message})),
    };
    state.settings_made += 1;
    let mut settings = json!({"id": format!("set_{}", state.settings_made), "eventType": body["eventType"],
        "eventConfiguration": body["eventConfiguration"], "enabled": body.get("enabled").cloned().unwrap_or(json!(true)),
        "channels": channels, "createdAt": "2025-01-15T00:00:00Z", "updatedAt": "2025-01-15T00:00:00Z"});
    if let Some(workflow) = body.get("workflowId") {
        settings["workflowId"] = workflow.clone();
    }
    state.settings.push(settings.clone());
    (201, json!({"status": "ok", "message": "", "data": {"settings": settings}}))
}

/// `PUT /v5/notifications/settings/{id}`: what the body names replaced.
fn update_settings(state: &mut State, id: &str, body: &Value) -> (u16, Value) {
    let channels = match body.get("channelIds").map(|ids| linked_channels(state, ids)).transpose() {
        Ok(channels) => channels,
        Err(message) => return (400, json!({"error": "Bad request", "message": message})),
    };
    let Some(settings) = state.settings.iter_mut().find(|s| s["id"] == id) else {
        return (404, json!({"error": "Settings not found"}));
    };
    if body.get("eventType").is_some_and(|t| *t != settings["eventType"]) {
        return (400, json!({"error": "Bad request", "message": "eventType cannot change"}));
    }
    for field in ["eventConfiguration", "enabled"] {
        if let Some(value) = body.get(field) {
            settings[field] = value.clone();
        }
    }
    if let Some(channels) = channels {
        settings["channels"] = json!(channels);
    }
    settings["updatedAt"] = json!("2025-01-16T00:00:00Z");
    (200, json!({"status": "ok", "message": "", "data": {"settings": settings}}))
}
