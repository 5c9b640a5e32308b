//! Nothing lost when AWS stumbles for longer than Kadoa's retries: an accepted delivery
//! waits in the spool (SQS, S3 for large bodies) and the replay applies it exactly as the
//! webhook would have.

use serde_json::{json, Value};

use crate::support::{fixture_body, s, Harness, TEST_MAX_RECEIVES};

fn queued(event_type: &str) -> (u16, Value) {
    (202, json!({"status": "queued", "eventType": event_type}))
}

fn change(id: &str, differences: usize) -> String {
    let differences: Vec<Value> =
        (0..differences).map(|i| json!({"type": "added", "fields": [{"key": "i", "value": i}]})).collect();
    json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": id, "workflowId": "wf_123", "differences": differences}})
    .to_string()
}

#[tokio::test]
async fn a_dynamodb_outage_is_spooled_and_replayed_exactly_once() {
    let harness = Harness::builder().through_proxy().spool().build().await;
    let proxy = harness.proxy.clone().unwrap();
    proxy.set_up(false);
    let burst = [
        change("c-small", 3),
        change("c-large", 130),
        fixture_body("workflow_failed.json"),
        fixture_body("workflow_recovered.json"),
    ];
    for body in &burst {
        let event_type = serde_json::from_str::<Value>(body).unwrap()["eventType"].as_str().unwrap().to_owned();
        assert_eq!(harness.deliver(body).await, queued(&event_type));
    }
    assert!(harness.items().await.is_empty());
    assert_eq!(harness.spool_depths().await, (4, 0));

    proxy.set_up(true);
    assert_eq!(harness.replay_all().await, 4);
    assert_eq!(harness.items_of("change").await.len(), 2);
    assert_eq!(harness.differences().await.len(), 133);
    let alerts = harness.alerts().await;
    let subjects: Vec<&str> = alerts.iter().map(|a| a["Subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["Kadoa: workflow failed - Product Monitor", "Kadoa: workflow recovered - Product Monitor"]);
    let text = alerts[0]["Message"].as_str().unwrap();
    assert!(text.contains("\nLate:     Kadoa reported this at the time above"), "{text}");
    let mut records = harness.items_of("event").await;
    records.extend(harness.items_of("change").await);
    let arrivals: Vec<String> = records.iter().map(|e| s(e, "arrival")).collect();
    assert_eq!(arrivals, ["replay"; 4]);
    assert_eq!(harness.spool_depths().await, (0, 0));

    // Kadoa's late retry of the failure changes nothing: the recovery is newer.
    assert_eq!(harness.deliver(&burst[2]).await.1["status"], "suppressed");
    assert_eq!(harness.alerts().await.len(), 0);
}

#[tokio::test]
async fn an_sns_outage_during_a_failure_is_alerted_once_on_replay() {
    let harness = Harness::builder().sns_through_proxy().spool().build().await;
    let proxy = harness.proxy.clone().unwrap();
    let body = fixture_body("workflow_failed.json");
    proxy.set_up(false);
    assert_eq!(harness.deliver(&body).await, queued("workflow_failed"));
    proxy.set_up(true);
    assert_eq!(harness.replay_all().await, 1);
    assert_eq!(harness.alerts().await.len(), 1);
    assert_eq!(harness.deliver(&body).await.1["status"], "duplicate");
    assert_eq!(harness.spool_depths().await, (0, 0));
}

#[tokio::test]
async fn with_the_spool_down_too_the_answer_is_503_and_nothing_is_half_accepted() {
    let options = Harness::builder().through_proxy().spool().spool_through_proxy();
    let harness = options.build().await;
    harness.proxy.as_ref().unwrap().set_up(false);
    let (status, answer) = harness.deliver(&fixture_body("workflow_failed.json")).await;
    assert_eq!((status, answer), (503, json!({"error": "temporarily unavailable"})));
    harness.proxy.as_ref().unwrap().set_up(true);
    assert!(harness.items().await.is_empty());
    assert_eq!(harness.spool_depths().await, (0, 0));
}

#[tokio::test]
async fn a_six_megabyte_delivery_is_spooled_through_s3_and_replayed_intact() {
    let harness = Harness::builder().through_proxy().spool().build().await;
    // 20 differences of 300 KB each: the largest body Lambda accepts.
    let differences: Vec<Value> = (0..20)
        .map(|i| json!({"type": "changed", "fields": [{"key": "text", "value": format!("{i:02}{}", "x".repeat(300_000))}]}))
        .collect();
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": "c-6mb", "workflowId": "wf_123", "differences": differences}})
    .to_string();
    assert!(body.len() > 6_000_000, "{}", body.len());
    harness.proxy.as_ref().unwrap().set_up(false);
    assert_eq!(harness.deliver(&body).await, queued("workflow_data_change"));
    assert_eq!(harness.spool_objects().await, 1, "the body went to S3");
    harness.proxy.as_ref().unwrap().set_up(true);
    assert_eq!(harness.replay_all().await, 1);
    let stored = harness.differences().await;
    assert_eq!(stored.len(), 20);
    let total: usize = stored.iter().map(|d| format!("{:?}", d["fields"]).len()).sum();
    assert!(total > 6_000_000, "{total}");
    assert_eq!(harness.spool_objects().await, 0, "a replayed body is removed");
}

#[tokio::test]
async fn two_messages_of_one_s3_body_both_count_as_done() {
    let harness = Harness::builder().through_proxy().spool().build().await;
    let differences: Vec<Value> = (0..3)
        .map(|i| json!({"type": "changed", "fields": [{"key": "text", "value": "x".repeat(100_000 + i)}]}))
        .collect();
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": "c-twice", "workflowId": "wf_123", "differences": differences}})
    .to_string();
    harness.proxy.as_ref().unwrap().set_up(false);
    assert_eq!(harness.deliver(&body).await, queued("workflow_data_change"));
    // The SDK re-sent a SendMessage whose answer was lost: a second message, one object.
    let queue_url = &harness.spool.as_ref().unwrap().queue_url;
    let waiting = harness.sqs.receive_message().queue_url(queue_url).visibility_timeout(0).send().await.unwrap();
    let copy = waiting.messages.unwrap()[0].body.clone().unwrap();
    harness.sqs.send_message().queue_url(queue_url).message_body(copy).send().await.unwrap();
    assert_eq!(harness.spool_depths().await, (2, 0));
    harness.proxy.as_ref().unwrap().set_up(true);

    assert_eq!(harness.replay_all().await, 2, "the copy whose body is gone counts as done");
    assert_eq!(harness.spool_depths().await, (0, 0), "nothing left to retry, nothing dead-lettered");
    assert_eq!(harness.differences().await.len(), 3);
    assert_eq!(harness.spool_objects().await, 0);
}

#[tokio::test]
async fn a_forged_spool_message_cannot_alert_from_the_future_or_mute_a_workflow() {
    let harness = Harness::builder().spool().build().await;
    let queue_url = harness.spool.as_ref().unwrap().queue_url.clone();
    let far = |at: &str| {
        json!({"eventType": "workflow_failed", "timestamp": at, "data": {"workflowId": "wf_123"}}).to_string()
    };
    // Someone able to send to the queue: a receipt in 2999, and a failure dated then.
    for (received_at, at) in
        [("2999-01-01T00:00:00.000Z", "2999-01-01T00:00:00Z"), ("2025-01-15T10:30:00.000Z", "2999-01-01T00:00:00Z")]
    {
        let forged = json!({"receivedAt": received_at, "body": far(at)});
        harness.sqs.send_message().queue_url(&queue_url).message_body(forged.to_string()).send().await.unwrap();
    }
    let (received, failed) = harness.replay_once(30).await;
    assert_eq!((received, failed.len()), (2, 2), "both refused, as the webhook would refuse them");
    assert!(harness.alerts().await.is_empty());
    assert!(harness.items_of("health").await.is_empty(), "the workflow is not muted");
    // A real failure still alerts.
    assert_eq!(harness.deliver(&fixture_body("workflow_failed.json")).await.1["status"], "alerted");
}

#[tokio::test]
async fn a_message_that_keeps_failing_reaches_the_dead_letter_queue_alone() {
    let harness = Harness::builder().through_proxy().spool().build().await;
    let spool = harness.spool.as_ref().unwrap();
    harness.proxy.as_ref().unwrap().set_up(false);
    assert_eq!(harness.deliver(&fixture_body("workflow_failed.json")).await, queued("workflow_failed"));
    harness.proxy.as_ref().unwrap().set_up(true);
    // A message that is not a spooled delivery (say, sent by hand): it can never succeed.
    harness
        .sqs
        .send_message()
        .queue_url(&spool.queue_url)
        .message_body("{\"not\": \"a delivery\"}")
        .send()
        .await
        .unwrap();

    let (received, failed) = harness.replay_once(0).await;
    assert_eq!((received, failed.len()), (2, 1), "only the bad message is returned");
    for _ in 0..TEST_MAX_RECEIVES + 1 {
        harness.replay_once(0).await;
    }
    // The dead-letter alarm watches exactly this metric.
    assert_eq!(harness.spool_depths().await, (0, 1));
    assert_eq!(harness.alerts().await.len(), 1, "the good one was applied once");
}

#[tokio::test]
async fn a_kadoa_retry_during_the_replay_still_alerts_once() {
    let harness = Harness::builder().through_proxy().spool().build().await;
    let body = fixture_body("workflow_failed.json");
    harness.proxy.as_ref().unwrap().set_up(false);
    assert_eq!(harness.deliver(&body).await, queued("workflow_failed"));
    harness.proxy.as_ref().unwrap().set_up(true);
    let (replayed, retried) = tokio::join!(harness.replay_all(), harness.deliver(&body));
    assert_eq!(replayed, 1);
    assert!(["alerted", "duplicate", "queued"].contains(&retried.1["status"].as_str().unwrap()), "{retried:?}");
    harness.replay_all().await; // a retry that met the claim was spooled too
    assert_eq!(harness.alerts().await.len(), 1);
    assert_eq!(harness.items_of("event").await.len(), 1);
}

#[tokio::test]
async fn only_authenticated_valid_deliveries_are_spooled_and_the_happy_path_costs_nothing_more() {
    let harness = Harness::builder().through_proxy().spool().build().await;
    assert_eq!(harness.deliver(&change("c-happy", 3)).await.1["status"], "stored");
    assert_eq!(harness.calls.snapshot(), [("PutItem".to_owned(), 1)].into(), "no spool call");

    harness.proxy.as_ref().unwrap().set_up(false);
    assert_eq!(harness.deliver("{\"eventType\": 5}").await.0, 400);
    let stranger = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://x.on.aws/")
        .header("authorization", "Bearer guess")
        .body(lambda_http::Body::from(fixture_body("workflow_failed.json")))
        .unwrap();
    assert_eq!(harness.send(stranger).await.0, 401);
    harness.proxy.as_ref().unwrap().set_up(true);
    assert_eq!(harness.spool_depths().await, (0, 0));
}

#[tokio::test]
async fn a_delivery_about_to_run_out_of_time_is_spooled() {
    let harness = Harness::builder().spool().build().await;
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://x.on.aws/")
        .header("authorization", format!("Bearer {}", crate::support::SECRET))
        .body(lambda_http::Body::from(fixture_body("workflow_failed.json")))
        .unwrap();
    // The function's deadline is just the margin away: no time left to apply it.
    let deadline = std::time::Instant::now() + kadoa_webhook::http::SPOOL_MARGIN;
    let answer = harness.app.handle(request, Some(deadline)).await;
    assert_eq!((answer.status_code, answer.json_body()), queued("workflow_failed"));
    assert_eq!(harness.replay_all().await, 1);
    assert_eq!(harness.alerts().await.len(), 1);
}

#[tokio::test]
async fn a_body_sqs_would_refuse_is_spooled_through_s3() {
    let harness = Harness::builder().through_proxy().spool().build().await;
    // JSON allows U+FFFF unescaped; SQS refuses it in a message.
    let body = fixture_body("workflow_failed.json").replace("bot protection", "bot protection \u{FFFF}");
    harness.proxy.as_ref().unwrap().set_up(false);
    assert_eq!(harness.deliver(&body).await, queued("workflow_failed"));
    assert_eq!(harness.spool_objects().await, 1);
    harness.proxy.as_ref().unwrap().set_up(true);
    assert_eq!(harness.replay_all().await, 1);
    assert_eq!(harness.alerts().await.len(), 1);
}
