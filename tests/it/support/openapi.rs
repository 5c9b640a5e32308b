//! Request bodies held against the schemas of Kadoa's published OpenAPI description
//! (fixtures/kadoa-openapi-requests.json, extracted from kadoa-org/kadoa-sdks; its
//! `_source` says which commit). The checker knows what those schemas use: `$ref`,
//! `type`, `required`, `properties`, `additionalProperties`, `items`, `enum`, `oneOf`
//! and `format: uri`. It is stricter than JSON Schema in one way, on purpose: an object
//! schema that lists `properties` is closed, so a property the description does not name
//! (a typo, a field Kadoa does not know) is refused. That is also what makes the channel
//! `config`'s `oneOf` decidable: the WebSocket alternative (`"properties": {}`, "leave
//! empty object {}") would otherwise accept every object.

use std::sync::OnceLock;

use serde_json::Value;

fn description() -> &'static Value {
    static DESCRIPTION: OnceLock<Value> = OnceLock::new();
    DESCRIPTION.get_or_init(|| {
        serde_json::from_str(include_str!("../fixtures/kadoa-openapi-requests.json")).expect("the fixture is JSON")
    })
}

/// The operation's key in the fixture for a request: `PUT /v5/notifications/settings/x`
/// is `PUT /v5/notifications/settings/{settingsId}`.
fn operation(method: &str, path: &str) -> Option<String> {
    let requests = description()["requests"].as_object()?;
    requests
        .keys()
        .find(|key| {
            let Some((m, template)) = key.split_once(' ') else { return false };
            let (want, got): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
            m == method
                && want.len() == got.len()
                && want.iter().zip(&got).all(|(w, g)| (w.starts_with('{') && !g.is_empty()) || w == g)
        })
        .cloned()
}

/// Whether `body`, sent as `method path`, is what Kadoa's description asks for. `Ok` for
/// requests the fixture does not cover (GETs carry no body).
pub fn check_request(method: &str, path: &str, body: &Value) -> Result<(), String> {
    match operation(method, path) {
        Some(key) => check(&description()["requests"][&key], body, "body").map_err(|e| format!("{key}: {e}")),
        None => Ok(()),
    }
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &description()["components"]["schemas"][name],
        None => schema,
    }
}

fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => false,
    }
}

/// `value` (at `at`) against `schema`.
pub fn check(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(schema);
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        if !type_matches(kind, value) {
            return Err(format!("{at}: {value} is not of type {kind}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {}", Value::Array(allowed.clone())));
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("uri") {
        if let Some(text) = value.as_str() {
            url::Url::parse(text).map_err(|e| format!("{at}: {text:?} is not a URI: {e}"))?;
        }
    }
    if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = alternatives.iter().filter(|a| check(a, value, at).is_ok()).count();
        if matching != 1 {
            return Err(format!("{at}: matches {matching} of the oneOf alternatives, not exactly one"));
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, item) in values.iter().enumerate() {
            check(items, item, &format!("{at}[{i}]"))?;
        }
    }
    match value.as_object() {
        Some(object) => check_object(schema, object, at),
        None => Ok(()),
    }
}

fn check_object(schema: &Value, object: &serde_json::Map<String, Value>, at: &str) -> Result<(), String> {
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !object.contains_key(name) {
            return Err(format!("{at}: {name} is required"));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (name, value) in object {
        let here = format!("{at}.{name}");
        match (properties.and_then(|p| p.get(name)), additional) {
            (Some(property), _) => check(property, value, &here)?,
            (None, Some(Value::Bool(true))) => {}
            (None, Some(additional @ Value::Object(_))) => check(additional, value, &here)?,
            (None, _) if properties.is_some() => return Err(format!("{here}: not in Kadoa's description")),
            (None, _) => {}
        }
    }
    Ok(())
}

#[test]
fn the_checker_refuses_what_kadoa_would() {
    use serde_json::json;
    let channel = json!({"name": "AWS", "channelType": "WEBHOOK",
        "config": {"webhookUrl": "https://x.example/", "httpMethod": "POST", "auth": {"type": "bearer", "token": "t"}}});
    assert_eq!(check_request("POST", "/v5/notifications/channels", &channel), Ok(()));
    assert_eq!(check_request("PUT", "/v5/notifications/channels/ch_1", &channel), Ok(()));
    let mut upper = channel.clone();
    upper["config"]["auth"]["type"] = json!("HEADER");
    assert!(check_request("POST", "/v5/notifications/channels", &upper).is_err(), "the README's old \"HEADER\"");
    let mut no_url = channel.clone();
    no_url["config"].as_object_mut().unwrap().remove("webhookUrl");
    assert!(check_request("POST", "/v5/notifications/channels", &no_url).is_err());
    let settings =
        json!({"eventType": "workflow_failed", "eventConfiguration": {}, "enabled": true, "channelIds": ["a"]});
    assert_eq!(check_request("POST", "/v5/notifications/settings", &settings), Ok(()));
    assert_eq!(check_request("PUT", "/v5/notifications/settings/s_1", &settings), Ok(()));
    let recovered = json!({"eventType": "workflow_recovered", "eventConfiguration": {}, "channelIds": ["a"]});
    assert!(check_request("POST", "/v5/notifications/settings", &recovered).is_err(), "not an event type there");
    let unconfigured = json!({"eventType": "workflow_failed", "channelIds": ["a"]});
    assert!(check_request("POST", "/v5/notifications/settings", &unconfigured).is_err(), "eventConfiguration");
    let extra = json!({"eventType": "workflow_failed", "eventConfiguration": {}, "channels": ["a"]});
    assert!(check_request("PUT", "/v5/notifications/settings/s_1", &extra).is_err(), "a name it does not know");
    assert_eq!(check_request("POST", "/v5/notifications/test", &json!({"eventType": "workflow_data_change"})), Ok(()));
    assert!(check_request("POST", "/v5/notifications/test", &json!({})).is_err());
}
