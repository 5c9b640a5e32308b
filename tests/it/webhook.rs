//! The HTTP contract and the data model, end to end: the real handler, the real SDK,
//! moto over HTTP.

use crate::support::{fixture, fixture_body, n, s, Harness, SECRET};
use serde_json::{json, Value};

/// Every file in `events/`, with the answer it must get.
const FIXTURES: &[(&str, u16, Option<&str>)] = &[
    ("workflow_data_change.json", 200, Some("stored")),
    ("workflow_finished.json", 200, Some("stored")),
    ("workflow_failed.json", 200, Some("alerted")),
    ("workflow_recovered.json", 200, Some("alerted")),
    ("workflow_validation_anomaly_change.json", 200, Some("stored")),
    // On a fresh table there was no failure: the finished run is stored, quietly.
    ("workflow_finished_after_failure.json", 200, Some("stored")),
    ("credits_low.json", 200, Some("alerted")),
    ("system_maintenance.json", 200, Some("stored")),
    ("rotated_secret.json", 200, Some("stored")),
    ("basic_auth.json", 200, Some("stored")),
    ("base64_body.json", 200, Some("stored")),
    ("unknown_event_type.json", 200, Some("accepted")),
    ("unauthenticated.json", 401, None),
    ("wrong_secret.json", 401, None),
    ("malformed.json", 400, None),
    // Stored: no rule here (the local stack's rule alerts it in `make samples`).
    ("workflow_price_drop.json", 200, Some("stored")),
    ("not_json.json", 400, None),
    ("get_method.json", 405, None),
];

#[tokio::test]
async fn every_event_file_gets_its_expected_answer() {
    let dir = format!("{}/events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(name, ..)| name.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "every file in events/ has an expectation here, and only those");

    for (name, status, outcome) in FIXTURES {
        // A fresh table each, so every event is seen for the first time.
        let harness = Harness::new().await;
        let (got_status, body) = harness.send_event(&fixture(name)).await;
        assert_eq!(got_status, *status, "{name}: {body}");
        match outcome {
            Some(outcome) => assert_eq!(body["status"], *outcome, "{name}: {body}"),
            None => {
                assert!(body["error"].is_string(), "{name}: {body}");
                assert!(harness.items().await.is_empty(), "{name} stored something");
            }
        }
    }
}

#[tokio::test]
async fn a_data_change_is_one_item_holding_its_differences() {
    let harness = Harness::new().await;
    let (status, body) = harness.send_event(&fixture("workflow_data_change.json")).await;
    assert_eq!((status, body), (200, json!({"status": "stored", "eventType": "workflow_data_change"})));

    let changes = harness.items_of("change").await;
    assert_eq!(changes.len(), 1);
    let change = &changes[0];
    assert_eq!(s(change, "pk"), "WORKFLOW#wf_123");
    assert_eq!(s(change, "sk"), "CHANGE#change_123#");
    assert_eq!(s(change, "createdAt"), "2025-01-15T10:30:00.000Z");
    assert_eq!(s(change, "workflowName"), "Product Monitor");
    assert_eq!(s(change, "url"), "https://monitored-page.com");
    assert_eq!(s(change, "summary"), "Price of Product A rose to 29.99; New Product added");
    assert_eq!((n(change, "differenceCount"), n(change, "addedCount"), n(change, "changedCount")), (2, 1, 1));

    let differences = harness.differences().await;
    assert_eq!(differences.len(), 2);
    assert_eq!((s(&differences[0], "type"), n(&differences[0], "index")), ("changed".into(), 0));
    assert_eq!((s(&differences[1], "type"), n(&differences[1], "index")), ("added".into(), 1));
    let fields = differences[0]["fields"].as_l().unwrap()[0].as_m().unwrap();
    assert_eq!(fields["value"], aws_sdk_dynamodb::types::AttributeValue::N("29.99".into()));

    assert_eq!(harness.items().await.len(), 1, "one item: no event-log item of its own, no item per difference");
    assert_eq!(s(change, "eventType"), "workflow_data_change");
    assert!(s(change, "eventKey").starts_with("EVENT#2025-01-15T10:30:00.000Z#workflow_data_change#"));
}

fn change_with(change_id: &str, differences: usize) -> String {
    let differences: Vec<Value> = (0..differences)
        .map(|i| json!({"type": "changed", "fields": [{"key": "price", "value": i, "previousValue": i + 1}]}))
        .collect();
    change_of(change_id, differences)
}

fn change_of(change_id: &str, differences: Vec<Value>) -> String {
    json!({
        "eventType": "workflow_data_change",
        "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": change_id, "workflowId": "wf_big", "differences": differences}
    })
    .to_string()
}

#[tokio::test]
async fn ten_differences_cost_one_conditional_put() {
    let harness = Harness::new().await;
    let (status, _) = harness.deliver(&change_with("c10", 10)).await;
    assert_eq!(status, 200);
    assert_eq!(harness.calls.snapshot(), [("PutItem".to_owned(), 1)].into());
    assert_eq!(harness.differences().await.len(), 10);
}

/// A change of `count` differences, each with a text of `bytes` bytes.
fn change_with_text(change_id: &str, count: usize, bytes: usize, text: char) -> String {
    let value = text.to_string().repeat(bytes);
    let differences: Vec<Value> = (0..count)
        .map(|i| json!({"type": "added", "fields": [{"key": "i", "value": i}, {"key": "t", "value": value}]}))
        .collect();
    change_of(change_id, differences)
}

#[tokio::test]
async fn retried_delivery_stores_once() {
    let harness = Harness::new().await;
    let body = fixture_body("workflow_data_change.json");
    let statuses = harness.deliver_times(&body, 4).await;
    assert_eq!(statuses, ["stored", "duplicate", "duplicate", "duplicate"]);
    let items = harness.items().await;
    assert_eq!(items.len(), 1, "one change item");
    assert_eq!(harness.differences().await.len(), 2);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_change_store_it_once() {
    let harness = Harness::new().await;
    let body = change_with("c-concurrent", 30);
    let (a, b) = tokio::join!(harness.deliver(&body), harness.deliver(&body));
    let mut outcomes = [a.1["status"].as_str().unwrap().to_owned(), b.1["status"].as_str().unwrap().to_owned()];
    outcomes.sort();
    assert_eq!(outcomes, ["duplicate", "stored"]);
    assert_eq!(harness.items_of("change").await.len(), 1);
    assert_eq!(harness.differences().await.len(), 30);
}

#[tokio::test]
async fn three_thousand_small_differences_are_one_item() {
    let harness = Harness::new().await;
    let (status, body) = harness.deliver(&change_with("c3000", 3000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(harness.calls.snapshot(), [("PutItem".to_owned(), 1)].into());
    let differences = harness.differences().await;
    let indexes: Vec<i64> = differences.iter().map(|d| n(d, "index")).collect();
    assert_eq!(indexes, (0..3000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_change_over_400_kb_goes_into_parts_and_commits_last() {
    let harness = Harness::new().await;
    // 3000 differences of ~330 bytes: about 1 MB, three parts.
    let body = change_with_text("c-large", 3000, 300, 'a');
    let (status, answer) = harness.deliver(&body).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")), "{answer}");
    // One read (is it a retry?), the parts in batches of up to 1 MB (two parts, then one),
    // one conditional put of the change item.
    assert_eq!(
        harness.calls.snapshot(),
        [("GetItem".to_owned(), 1), ("BatchWriteItem".to_owned(), 2), ("PutItem".to_owned(), 1)].into()
    );
    assert_eq!(harness.items_of("changePart").await.len(), 3);
    let indexes: Vec<i64> = harness.differences().await.iter().map(|d| n(d, "index")).collect();
    assert_eq!(indexes, (0..3000).collect::<Vec<_>>());

    // Kadoa's retry of it costs one read and stores nothing.
    harness.calls.reset();
    assert_eq!(harness.deliver(&body).await.1["status"], "duplicate");
    assert_eq!(harness.calls.snapshot(), [("GetItem".to_owned(), 1)].into());
}

#[tokio::test]
async fn a_large_change_resent_with_other_content_changes_nothing() {
    let harness = Harness::new().await;
    assert_eq!(harness.deliver(&change_with_text("c-v", 2000, 300, 'a')).await.1["status"], "stored");
    let before = harness.items().await;
    assert_eq!(harness.deliver(&change_with_text("c-v", 2000, 300, 'b')).await.1["status"], "duplicate");
    assert_eq!(harness.items().await, before, "nothing written");
}

#[tokio::test]
async fn two_versions_of_a_large_change_delivered_at_once_never_mix() {
    let harness = Harness::new().await;
    let (a, b) = (change_with_text("c-race", 2000, 300, 'a'), change_with_text("c-race", 2000, 300, 'b'));
    let (first, second) = tokio::join!(harness.deliver(&a), harness.deliver(&b));
    let mut outcomes = [first.1["status"].to_string(), second.1["status"].to_string()];
    outcomes.sort();
    assert_eq!(outcomes, ["\"duplicate\"", "\"stored\""]);
    let differences = harness.differences().await;
    assert_eq!(differences.len(), 2000, "the parts of the version the change item names");
    let texts: std::collections::HashSet<String> = differences
        .iter()
        .map(|d| d["fields"].as_l().unwrap()[1].as_m().unwrap()["value"].as_s().unwrap()[..1].to_owned())
        .collect();
    assert_eq!(texts.len(), 1, "one version only: {texts:?}");
}

#[tokio::test]
async fn concurrent_deliveries_of_one_large_change_store_it_once() {
    let harness = Harness::new().await;
    let body = change_with_text("c-twice", 2000, 300, 'a');
    let (a, b) = tokio::join!(harness.deliver(&body), harness.deliver(&body));
    let mut outcomes = [a.1["status"].to_string(), b.1["status"].to_string()];
    outcomes.sort();
    assert_eq!(outcomes, ["\"duplicate\"", "\"stored\""]);
    assert_eq!(harness.items_of("change").await.len(), 1);
    assert_eq!(harness.differences().await.len(), 2000);
}

#[tokio::test]
async fn dynamodb_outage_answers_503_and_the_retry_stores_once() {
    let harness = Harness::builder().through_proxy().build().await;
    let proxy = harness.proxy.clone().unwrap();
    let body = fixture_body("workflow_data_change.json");

    proxy.set_up(false);
    let (status, answer) = harness.deliver(&body).await;
    assert_eq!((status, answer), (503, json!({"error": "temporarily unavailable"})));
    assert_eq!(harness.calls.count("PutItem"), 1, "one operation (the SDK retried inside it)");
    assert!(harness.items().await.is_empty());

    proxy.set_up(true);
    let (status, answer) = harness.deliver(&body).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")));
    let (_, answer) = harness.deliver(&body).await;
    assert_eq!(answer["status"], "duplicate");
    assert_eq!(harness.items_of("change").await.len(), 1);
    assert_eq!(harness.differences().await.len(), 2);
}

#[tokio::test]
async fn a_delivery_that_failed_half_way_completes_on_retry() {
    let harness = Harness::builder().through_proxy().build().await;
    let proxy = harness.proxy.clone().unwrap();
    let body = change_with_text("c-half", 2000, 300, 'a'); // two parts

    // The outage starts after the read and the batch of parts: the commit fails.
    harness.calls.trip_after(2, &proxy);
    let (status, _) = harness.deliver(&body).await;
    assert_eq!(status, 503);
    assert_eq!(harness.items_of("changePart").await.len(), 2, "half written: the parts");
    assert!(harness.items_of("change").await.is_empty(), "no commit marker for a partial change");

    proxy.set_up(true);
    let (status, answer) = harness.deliver(&body).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")));
    assert_eq!(harness.differences().await.len(), 2000);
    assert_eq!(harness.items_of("change").await.len(), 1);
    assert_eq!(harness.items_of("changePart").await.len(), 2, "the retry rewrote the same parts");
}

#[tokio::test]
async fn rejected_requests_store_nothing_and_say_why() {
    let harness = Harness::new().await;
    let valid = fixture_body("workflow_data_change.json");
    let request = |method: &str, auth: Option<String>, event: Option<&str>, body: &str| {
        let mut builder = lambda_http::http::Request::builder().method(method).uri("https://x.on.aws/");
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        if let Some(event) = event {
            builder = builder.header("x-kadoa-event", event);
        }
        builder.body(lambda_http::Body::from(body.to_owned())).unwrap()
    };
    let bearer = || Some(format!("Bearer {SECRET}"));
    let mut deep = json!("leaf");
    for _ in 0..40 {
        deep = json!({ "n": deep });
    }
    let deep_change = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": "c", "workflowId": "w", "differences": [{"type": "added", "fields": [{"key": "k", "value": deep}]}]}})
    .to_string();
    let cases: Vec<(lambda_http::Request, u16, &str)> = vec![
        (request("DELETE", bearer(), None, &valid), 405, "method DELETE is not allowed; use POST"),
        (request("POST", None, None, &valid), 401, "unauthorized"),
        (request("POST", Some("Bearer nope".into()), None, &valid), 401, "unauthorized"),
        (request("POST", Some(SECRET.into()), None, &valid), 401, "unauthorized"),
        (request("POST", bearer(), None, "not json"), 400, "body is not valid JSON: expected ident at line 1 column 2"),
        (request("POST", bearer(), None, "[]"), 400, "body must be a JSON object"),
        (request("POST", bearer(), None, r#"{"data":{}}"#), 400, "eventType is required"),
        (
            request("POST", bearer(), None, r#"{"eventType":"workflow_failed","timestamp":"2025-01-15T10:30:00Z"}"#),
            400,
            "data is required",
        ),
        (
            request("POST", bearer(), Some("workflow_failed"), &valid),
            400,
            r#"X-Kadoa-Event header "workflow_failed" does not match eventType "workflow_data_change""#,
        ),
        (
            request("POST", bearer(), None, &valid.replace(r#""workflowId":"wf_123","#, "")),
            400,
            "data.workflowId is required",
        ),
        (request("POST", bearer(), None, &valid.replace(r#""id":"change_123","#, "")), 400, "data.id is required"),
        (
            request(
                "POST",
                bearer(),
                None,
                r#"{"eventType":"workflow_failed","timestamp":"2025-01-15T10:30:00Z","data":{"reason":"x"}}"#,
            ),
            400,
            "data.workflowId is required",
        ),
        (
            request(
                "POST",
                bearer(),
                None,
                r#"{"eventType":"workflow_finished","timestamp":"2025-01-15T10:30:00Z","data":{}}"#,
            ),
            400,
            "data.id (the workflow id) is required",
        ),
        (
            request("POST", bearer(), None, &deep_change),
            413,
            "data.differences[0] nests more than 32 levels of objects and arrays; DynamoDB stores at most 32",
        ),
    ];
    for (request, status, error) in cases {
        let (got, body) = harness.send(request).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(error)));
    }
    assert!(harness.items().await.is_empty());
    assert_eq!(harness.calls.total(), 0, "nothing was even attempted");
}

#[tokio::test]
async fn oversized_change_is_refused_whole() {
    let harness = Harness::new().await;
    let mut body: Value = serde_json::from_str(&change_with("c-big", 30)).unwrap();
    body["data"]["differences"][29]["fields"][0]["value"] = json!("x".repeat(450 * 1024));
    let (status, answer) = harness.deliver(&body.to_string()).await;
    assert_eq!(status, 413);
    assert!(answer["error"].as_str().unwrap().starts_with("data.differences[29] needs "), "{answer}");
    assert!(harness.items().await.is_empty(), "none of the 29 that fit were written");
}

#[tokio::test]
async fn secrets_come_from_secrets_manager_and_are_cached() {
    let harness = Harness::builder().secrets_manager("managed-old\nmanaged-new\n".into()).build().await;
    let body = fixture_body("workflow_finished.json");
    let send = |secret: &str| {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://x.on.aws/")
            .header("authorization", format!("Bearer {secret}"))
            .body(lambda_http::Body::from(body.clone()))
            .unwrap()
    };
    assert_eq!(harness.send(send("managed-new")).await.0, 200);
    assert_eq!(harness.send(send("managed-old")).await.0, 200);
    assert_eq!(harness.send(send(SECRET)).await.0, 401, "WEBHOOK_SECRET is not configured here");
    assert_eq!(harness.startup_calls.get("GetSecretValue"), Some(&1), "read at start-up");
    assert_eq!(harness.calls.count("GetSecretValue"), 0, "then cached");
}

#[tokio::test]
async fn custom_auth_header_carries_the_secret() {
    let harness = Harness::builder().auth_header("X-Webhook-Token").build().await;
    let body = fixture_body("workflow_finished.json");
    let send = |name: &str, value: &str| {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://x.on.aws/")
            .header(name, value)
            .body(lambda_http::Body::from(body.clone()))
            .unwrap()
    };
    assert_eq!(harness.send(send("authorization", &format!("Bearer {SECRET}"))).await.0, 401);
    assert_eq!(harness.send(send("x-webhook-token", SECRET)).await.0, 200);
}

#[tokio::test]
async fn retention_days_set_expires_at_on_every_item() {
    let harness = Harness::builder().retention_days(30).build().await;
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    harness.send_event(&fixture("workflow_data_change.json")).await;
    harness.deliver(&change_with_text("c-parts", 2000, 300, 'a')).await;
    harness.send_event(&fixture("workflow_failed.json")).await;
    let items = harness.items().await;
    // Two change items, two parts, a failure's event and its workflow's health.
    assert_eq!(items.len(), 6, "{items:?}");
    for item in &items {
        let expires = n(item, "expiresAt");
        assert!((before + 30 * 86_400..=before + 30 * 86_400 + 60).contains(&expires), "{item:?}");
    }
}

#[tokio::test]
async fn logged_events_are_stored_once_with_their_payload() {
    let harness = Harness::new().await;
    let body = fixture_body("workflow_validation_anomaly_change.json");
    assert_eq!(harness.deliver(&body).await.1["status"], "stored");
    assert_eq!(harness.deliver(&body).await.1["status"], "duplicate");
    let events = harness.items_of("event").await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(s(event, "pk"), "WORKFLOW#wf_123");
    assert!(s(event, "sk").starts_with("EVENT#2025-01-15T10:30:00.000Z#workflow_validation_anomaly_change#"));
    let Some(aws_sdk_dynamodb::types::AttributeValue::M(payload)) = event.get("payload") else { panic!("payload") };
    assert_eq!(n(payload, "anomaliesCountTotal"), 15);
}

#[tokio::test]
async fn unknown_event_types_are_accepted_and_logged() {
    let harness = Harness::new().await;
    let body = r#"{"eventType":"workflow_teleported","timestamp":"2025-01-15T10:30:00Z","data":{"exportId":"e1"}}"#;
    let (status, answer) = harness.deliver(body).await;
    assert_eq!((status, answer), (200, json!({"status": "accepted", "eventType": "workflow_teleported"})));
    let events = harness.items_of("event").await;
    assert_eq!(events.len(), 1);
    assert_eq!(s(&events[0], "pk"), "ACCOUNT", "no workflow: the account-level partition");
}

#[tokio::test]
async fn unprocessed_items_are_sent_again() {
    // DynamoDB throttles: the first two answers leave their whole batch unprocessed.
    let harness = Harness::builder().unprocessed_responses(2).build().await;
    let (status, answer) = harness.deliver(&change_with_text("c-throttled", 2000, 300, 'a')).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")));
    assert_eq!(harness.calls.count("BatchWriteItem"), 1 + 2, "one batch of parts, sent again twice");
    assert_eq!(harness.differences().await.len(), 2000);
}

/// The bodies of the retried operation's attempts, which must all be the same request.
fn same_request_every_attempt(harness: &Harness, attempts: usize) -> Value {
    let bodies = harness.faults.bodies();
    assert_eq!(bodies.len(), attempts);
    assert!(bodies.iter().all(|body| *body == bodies[0]), "a retry sends what the first attempt sent");
    serde_json::from_slice(&bodies[0]).unwrap()
}

#[tokio::test]
async fn a_put_whose_answer_is_lost_is_retried_and_still_answers_stored() {
    let options = Harness::builder().lost_answers("PutItem", 1);
    let harness = options.build().await;
    let (status, answer) = harness.deliver(&change_with("c-lost-answer", 10)).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")), "the retry found its own write");
    same_request_every_attempt(&harness, 2);
    assert_eq!(harness.differences().await.len(), 10);
    // A later delivery of it is a duplicate.
    assert_eq!(harness.deliver(&change_with("c-lost-answer", 10)).await.1["status"], "duplicate");
}

#[tokio::test]
async fn a_batch_whose_answer_is_lost_is_retried_with_the_same_request() {
    let options = Harness::builder().lost_answers("BatchWriteItem", 1);
    let harness = options.build().await;
    let (status, answer) = harness.deliver(&change_with_text("c-lost-batch", 2000, 300, 'a')).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")));
    let request = same_request_every_attempt(&harness, 2);
    assert_eq!(request["RequestItems"][&harness.table].as_array().map(Vec::len), Some(2), "two parts");
    assert_eq!(harness.differences().await.len(), 2000);
}

#[tokio::test]
async fn items_still_unprocessed_after_the_retries_answer_503() {
    let harness = Harness::builder().unprocessed_responses(usize::MAX).build().await;
    let (status, _) = harness.deliver(&change_with_text("c-throttled-forever", 2000, 300, 'a')).await;
    assert_eq!(status, 503);
    // The batch gives up after its first try and 8 rounds.
    assert_eq!(harness.calls.count("BatchWriteItem"), 9);
    assert!(harness.items_of("change").await.is_empty(), "no commit marker: Kadoa's retry will complete it");
}

#[tokio::test]
async fn rest_api_v1_events_work_too() {
    let harness = Harness::new().await;
    let event = json!({
        "resource": "/", "path": "/", "httpMethod": "POST",
        "headers": {"Authorization": format!("Bearer {SECRET}"), "Content-Type": "application/json",
                    "X-Kadoa-Event": "workflow_finished"},
        "multiValueHeaders": {"Authorization": [format!("Bearer {SECRET}")], "Content-Type": ["application/json"],
                              "X-Kadoa-Event": ["workflow_finished"]},
        "queryStringParameters": null, "multiValueQueryStringParameters": null, "pathParameters": null,
        "stageVariables": null,
        "requestContext": {"resourceId": "abc", "resourcePath": "/", "httpMethod": "POST", "stage": "prod",
                           "requestId": "r1", "accountId": "123456789012", "apiId": "api1",
                           "identity": {"sourceIp": "203.0.113.7"}, "path": "/prod/"},
        "body": fixture_body("workflow_finished.json"),
        "isBase64Encoded": false
    });
    let (status, answer) = harness.send_event(&event.to_string()).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")));
}

#[tokio::test]
async fn payload_2_answers_carry_cookies_and_rest_answers_do_not() {
    let harness = Harness::new().await;
    let body = fixture_body("workflow_failed.json");
    let v2 = json!({"version": "2.0", "headers": {"authorization": format!("Bearer {SECRET}")},
        "requestContext": {"http": {"method": "POST", "path": "/"}}, "body": body});
    let answer = serde_json::to_value(harness.app.handle_event(&v2.to_string(), None).await).unwrap();
    // cargo-lambda's function URL refuses an answer without it; AWS takes it.
    assert_eq!((answer["statusCode"].as_u64(), &answer["cookies"]), (Some(200), &json!([])));
    let rest = json!({"httpMethod": "POST", "headers": {"authorization": format!("Bearer {SECRET}")}, "body": body});
    let answer = serde_json::to_value(harness.app.handle_event(&rest.to_string(), None).await).unwrap();
    assert_eq!(answer["statusCode"], 200);
    assert!(answer.get("cookies").is_none(), "a REST API refuses fields it does not know: {answer}");
}

/// A change whose summary leaves its item just too little room for what is added after
/// the differences move to parts (`partVersion`, `partCount`, and the `completedAt` that
/// completing it would add) is refused before anything is written: no part is left behind.
#[tokio::test]
async fn a_change_just_over_400_kb_is_refused_before_any_write() {
    use kadoa_webhook::table::change::ChangePlan;
    use kadoa_webhook::table::limits::MAX_ITEM_BYTES;
    use kadoa_webhook::table::Receipt;

    let with_summary = |change_id: &str, bytes: usize| {
        let mut body: Value = serde_json::from_str(&change_with_text(change_id, 30, 15_000, 'd')).unwrap();
        body["data"]["summary"] = json!("s".repeat(bytes));
        body.to_string()
    };
    let plans = |bytes: usize| {
        let body = with_summary("c-edge", bytes);
        let envelope = kadoa_webhook::envelope::Envelope::parse(body.as_bytes(), None).unwrap();
        let change = kadoa_webhook::events::DataChange::parse(&envelope).unwrap();
        let receipt =
            Receipt::new(kadoa_webhook::timestamp::Timestamp::now(), 0, kadoa_webhook::outcome::Arrival::Webhook);
        ChangePlan::new(&change, &envelope, receipt, None).is_ok()
    };
    let (mut fits, mut refused) = (MAX_ITEM_BYTES - 4096, MAX_ITEM_BYTES);
    while refused - fits > 1 {
        let middle = (fits + refused) / 2;
        if plans(middle) {
            fits = middle
        } else {
            refused = middle
        }
    }

    let harness = Harness::new().await;
    let (status, answer) = harness.deliver(&with_summary("c-edge", fits + 1)).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().starts_with("data needs "), "{answer}");
    assert!(harness.items().await.is_empty(), "no part was written");

    // (A byte less is stored whole on AWS, whose limit is 409,600 bytes; moto refuses items
    // over 405,000, so that side is tested on the plan: table::change's boundary tests.)
}
