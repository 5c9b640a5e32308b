//! Hostile and extreme input, end to end: what an attacker or an unlucky user can send is
//! stored exactly, refused by name, or trimmed, and never loses data or alerts twice.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use kadoa_webhook::secrets::SecretPolicy;
use serde_json::{json, Value};

use crate::support::{fixture, fixture_body, s, Harness, SECRET};

fn change(id: &str, differences: Value) -> String {
    json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": id, "workflowId": "wf_1", "createdAt": "2025-01-15T10:30:00Z", "differences": differences}})
    .to_string()
}

fn first_value(difference: &crate::support::Item) -> AttributeValue {
    let Some(AttributeValue::L(fields)) = difference.get("fields") else { panic!("fields") };
    let Some(AttributeValue::M(field)) = fields.first() else { panic!("field") };
    field["value"].clone()
}

#[tokio::test]
async fn numbers_are_stored_as_sent_or_as_their_exact_text() {
    let harness = Harness::new().await;
    let body = change(
        "c-numbers",
        json!([{"type": "changed", "fields": [{"key": "a", "value": 1}]},
                                         {"type": "changed", "fields": [{"key": "b", "value": 2}]},
                                         {"type": "changed", "fields": [{"key": "c", "value": 3}]}]),
    )
    .replace(r#""value":1"#, r#""value":98765432109876543210"#)
    .replace(r#""value":2"#, r#""value":1e200"#)
    .replace(r#""value":3"#, r#""value":{"":1}"#);
    assert_eq!(harness.deliver(&body).await, (200, json!({"status": "stored", "eventType": "workflow_data_change"})));
    let values: Vec<AttributeValue> = harness.differences().await.iter().map(first_value).collect();
    assert_eq!(
        values,
        [
            AttributeValue::N("98765432109876543210".into()),
            // Beyond DynamoDB's range: a string set of its exact text (see Attr::NumberText).
            AttributeValue::Ss(vec!["1e200".into()]),
            AttributeValue::S(r#"{"":1}"#.into()),
        ]
    );
}

#[tokio::test]
async fn ids_with_separators_never_collide() {
    let harness = Harness::new().await;
    let one = json!([{"type": "added", "fields": [{"key": "k", "value": "c1"}]}]);
    let tricky = json!([{"type": "added", "fields": [{"key": "k", "value": "tricky"}]}]);
    assert_eq!(harness.deliver(&change("c1", one)).await.1["status"], "stored");
    assert_eq!(harness.deliver(&change("c1#PART#v#0000", tricky.clone())).await.1["status"], "stored");
    assert_eq!(harness.deliver(&change("c10", tricky)).await.1["status"], "stored");
    assert_eq!(harness.items_of("change").await.len(), 3);
    // The README's query for one change and its differences returns c1's items only.
    let items = harness
        .dynamodb
        .query()
        .table_name(&harness.table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :change)")
        .expression_attribute_values(":pk", AttributeValue::S("WORKFLOW#wf_1".into()))
        .expression_attribute_values(":change", AttributeValue::S("CHANGE#c1#".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    let ids: Vec<(String, String)> = items.iter().map(|i| (s(i, "entity"), s(i, "changeId"))).collect();
    assert_eq!(ids, [("change".into(), "c1".into())]);
}

#[tokio::test]
async fn a_change_resent_with_other_content_never_mixes_versions() {
    let harness = Harness::new().await;
    let v1: Vec<Value> =
        (0..3).map(|i| json!({"type": "added", "fields": [{"key": "v", "value": format!("v1-{i}")}]})).collect();
    let v2: Vec<Value> =
        (0..2).map(|i| json!({"type": "added", "fields": [{"key": "v", "value": format!("v2-{i}")}]})).collect();
    assert_eq!(harness.deliver(&change("c-versions", json!(v1))).await.1["status"], "stored");
    assert_eq!(harness.deliver(&change("c-versions", json!(v2))).await.1["status"], "duplicate");
    let values: Vec<AttributeValue> = harness.differences().await.iter().map(first_value).collect();
    assert_eq!(values, ["v1-0", "v1-1", "v1-2"].map(|v| AttributeValue::S(v.into())));
}

#[tokio::test]
async fn an_oversized_failure_alerts_once_with_its_payload_trimmed() {
    let harness = Harness::new().await;
    let mut body: Value = serde_json::from_str(&fixture_body("workflow_failed.json")).unwrap();
    body["data"]["reason"] = json!("blocked ".repeat(60_000)); // 480 KB
    let body = body.to_string();
    assert_eq!(harness.deliver_times(&body, 4).await, ["alerted", "duplicate", "duplicate", "duplicate"]);
    let alerts = harness.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0]["Message"].as_str().unwrap().len() < 8_000, "every field is capped");
    let event = &harness.items_of("event").await[0];
    assert_eq!(event.get("payloadTruncated"), Some(&AttributeValue::Bool(true)));
}

#[tokio::test]
async fn a_far_future_timestamp_cannot_mute_a_workflow() {
    let harness = Harness::new().await;
    let failed = |ts: &str| fixture_body("workflow_failed.json").replace("2025-01-15T10:30:00Z", ts);
    let (status, answer) = harness.deliver(&failed("2999-01-01T00:00:00Z")).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"],
        "timestamp 2999-01-01T00:00:00.000Z is more than 15 minutes ahead of the receiver's clock"
    );
    assert_eq!(harness.deliver(&failed("2025-01-15T10:30:00Z")).await.1["status"], "alerted");
}

#[tokio::test]
async fn timestamps_without_a_utc_form_are_refused_not_panicked_on() {
    let harness = Harness::new().await;
    let body = fixture_body("workflow_failed.json").replace("2025-01-15T10:30:00Z", "9999-12-31T23:59:59-01:00");
    let (status, answer) = harness.deliver(&body).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"], r#"timestamp "9999-12-31T23:59:59-01:00" is not an RFC 3339 date-time"#);
}

#[tokio::test]
async fn an_unreadable_request_gets_an_answer_not_an_invocation_error() {
    let harness = Harness::new().await;
    let mut event: Value = serde_json::from_str(&fixture("workflow_failed.json")).unwrap();
    event["headers"]["x-evil"] = json!("bad\u{1}value");
    let (status, answer) = harness.send_event(&event.to_string()).await;
    assert_eq!((status, answer), (400, json!({"error": "the request could not be read (malformed headers or body)"})));
    // Not even shaped like an HTTP event (a direct invoke, say): the same answer, and the
    // parser's message (which would quote the value) goes nowhere.
    let misshapen = json!({"httpMethod": "POST", "multiValueHeaders": {"authorization": "Bearer x"}, "body": {}});
    let (status, answer) = harness.send_event(&misshapen.to_string()).await;
    assert_eq!((status, answer), (400, json!({"error": "the request could not be read (malformed headers or body)"})));
    assert!(harness.items().await.is_empty());
}

#[tokio::test]
async fn a_huge_event_type_is_not_echoed() {
    let harness = Harness::new().await;
    let body = json!({"eventType": "x".repeat(1 << 20), "timestamp": "2025-01-15T10:30:00Z", "data": {}}).to_string();
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://x.on.aws/")
        .header("authorization", format!("Bearer {SECRET}"))
        .body(lambda_http::Body::from(body))
        .unwrap();
    let (status, answer) = harness.send(request).await;
    assert_eq!(status, 400);
    assert!(answer.to_string().len() < 400, "{} bytes", answer.to_string().len());
}

#[tokio::test]
async fn unauthenticated_requests_cannot_drive_secrets_manager() {
    let policy = SecretPolicy {
        refresh_after: Duration::ZERO, // every request finds the value due for a refresh
        accept_stale_for: Duration::from_secs(3600),
        retry_after: Duration::from_secs(60),
    };
    let harness =
        Harness::builder().secrets_manager(SECRET.to_owned()).through_proxy().secret_policy(policy).build().await;
    assert_eq!(harness.startup_calls.get("GetSecretValue"), Some(&1), "read once during init");
    assert_eq!(harness.calls.count("GetSecretValue"), 0);
    harness.proxy.as_ref().unwrap().set_up(false);
    let stranger = || {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://x.on.aws/")
            .header("authorization", "Bearer guess")
            .body(lambda_http::Body::from("{}"))
            .unwrap()
    };
    for _ in 0..5 {
        assert_eq!(harness.send(stranger()).await.0, 401, "answered at once from the last value read");
    }
    // The one background refresh fails: wait for it (a busy machine may take a while),
    // then no other follows.
    let started = std::time::Instant::now();
    while harness.calls.count("GetSecretValue") < 1 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(harness.calls.count("GetSecretValue"), 1, "one refresh, then backoff");
}

#[tokio::test]
async fn nesting_far_past_any_limit_is_refused_or_trimmed_not_a_crash() {
    let harness = Harness::new().await;
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    // Sent by hand: the test's own JSON reader would not find the event type in it.
    let send = |event_type: &str, body: String| {
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://x.on.aws/")
            .header("x-kadoa-event", event_type)
            .header("authorization", format!("Bearer {SECRET}"))
            .body(lambda_http::Body::from(body))
            .unwrap();
        harness.send(request)
    };
    let value = json!([{"type": "added", "fields": [{"key": "k", "value": "X"}]}]);
    let (status, answer) = send("workflow_data_change", change("c-deep", value).replace("\"X\"", &deep)).await;
    assert_eq!(status, 413, "{answer}");
    // An extra field of the payload, nested past serde_json's and DynamoDB's limits.
    let failure = fixture_body("workflow_failed.json").replace("\"action\":", &format!("\"extra\":{deep},\"action\":"));
    let (status, answer) = send("workflow_failed", failure).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("alerted")));
    let event = &harness.items_of("event").await[0];
    assert_eq!(event.get("payloadTruncated"), Some(&AttributeValue::Bool(true)));
}

#[tokio::test]
async fn a_request_aws_refuses_answers_422_without_aws_words() {
    let harness = Harness::builder().refused_by_aws("PutItem").build().await;
    let (status, answer) = harness.deliver(&fixture_body("workflow_data_change.json")).await;
    assert_eq!(status, 422);
    assert_eq!(answer, json!({"error": "AWS refused to store this delivery; retrying will not help"}));
    assert!(!answer.to_string().contains("kadoa-events"), "no table names, keys or limits echoed");
}

/// `body` with every `CUT` made a lone UTF-16 surrogate escape, as JavaScript writes a
/// string cut inside an emoji.
fn cut(body: serde_json::Value) -> String {
    body.to_string().replace("CUT", r"\ud83d")
}

#[tokio::test]
async fn lone_surrogates_are_stored_and_alerted_as_the_replacement_character() {
    let harness = Harness::new().await;
    let change = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": "cCUT", "workflowId": "wfCUT", "summary": "price upCUT", "metadata": {"workflowName": "ShopCUT"},
                 "differences": [{"type": "changed", "fields": [{"key": "nameCUT", "value": "Caf\u{e9}CUT", "previousValue": "CUT"}]}]}});
    let (status, answer) = harness.deliver(&cut(change.clone())).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")), "{answer}");
    let stored = &harness.items_of("change").await[0];
    assert_eq!((s(stored, "changeId"), s(stored, "workflowId")), ("c\u{fffd}".into(), "wf\u{fffd}".into()));
    assert_eq!((s(stored, "summary"), s(stored, "workflowName")), ("price up\u{fffd}".into(), "Shop\u{fffd}".into()));
    assert_eq!(s(stored, "pk"), "WORKFLOW#wf\u{fffd}");
    let field = harness.differences().await[0]["fields"].as_l().unwrap()[0].as_m().unwrap().clone();
    assert_eq!(s(&field, "key"), "name\u{fffd}");
    assert_eq!((s(&field, "value"), s(&field, "previousValue")), ("Caf\u{e9}\u{fffd}".into(), "\u{fffd}".into()));
    assert_eq!(harness.deliver(&cut(change)).await.1["status"], "duplicate", "a retry finds it");

    let failure = json!({"eventType": "workflow_failed", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"workflowId": "wf_1", "workflowName": "Product CUT Monitor", "reason": "blocked CUT"}});
    let (status, answer) = harness.deliver(&cut(failure)).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("alerted")), "{answer}");
    let alert = &harness.alerts().await[0];
    let text = alert["Message"].as_str().unwrap();
    assert!(text.contains("Product \u{fffd} Monitor") && text.contains("blocked \u{fffd}"), "{text}");
}
