//! Failure and recovery alerts, end to end: the handler publishes through SNS (moto), an
//! SQS subscription catches what people would get.

use crate::support::{fixture, fixture_body, s, Harness};
use serde_json::{json, Value};

fn health_event(event_type: &str, timestamp: &str) -> String {
    json!({
        "eventType": event_type,
        "timestamp": timestamp,
        "data": {
            "workflowId": "wf_123", "workflowName": "Product Monitor", "source": "Product Monitor",
            "sourceUrl": "https://monitored-page.com", "url": "https://monitored-page.com",
            "reason": "Access blocked by bot protection",
            "action": "No action needed. We'll email you when the workflow recovers."
        }
    })
    .to_string()
}

fn failed(timestamp: &str) -> String {
    health_event("workflow_failed", timestamp)
}

fn recovered(timestamp: &str) -> String {
    health_event("workflow_recovered", timestamp)
}

#[tokio::test]
async fn failure_alert_reaches_subscribers_with_subject_text_and_attributes() {
    let harness = Harness::new().await;
    let (status, answer) = harness.send_event(&fixture("workflow_failed.json")).await;
    assert_eq!((status, answer), (200, json!({"status": "alerted", "eventType": "workflow_failed"})));

    let alerts = harness.alerts().await;
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert["Subject"], "Kadoa: workflow failed - Product Monitor");
    let text = alert["Message"].as_str().unwrap();
    assert!(text.starts_with("The Kadoa workflow \"Product Monitor\" failed: it is not collecting data."), "{text}");
    assert!(text.contains("Reason:   Access blocked by bot protection"), "{text}");
    assert_eq!(alert["MessageAttributes"]["eventType"], json!({"Type": "String", "Value": "workflow_failed"}));
    assert_eq!(alert["MessageAttributes"]["workflowId"], json!({"Type": "String", "Value": "wf_123"}));

    // Claim, publish, commit: three calls, the event-log item included.
    assert_eq!(
        harness.calls.snapshot(),
        [("UpdateItem".to_owned(), 1), ("Publish".to_owned(), 1), ("TransactWriteItems".to_owned(), 1)].into()
    );

    // The event log keeps exactly what people were sent, and the health moved on.
    let events = harness.items_of("event").await;
    assert_eq!(events.len(), 1);
    assert_eq!(s(&events[0], "status"), "alerted");
    let Some(aws_sdk_dynamodb::types::AttributeValue::M(sent)) = events[0].get("alert") else { panic!("alert") };
    assert_eq!(s(sent, "subject"), "Kadoa: workflow failed - Product Monitor");
    assert_eq!(
        s(sent, "sms"),
        "Kadoa: \"Product Monitor\" failed (15 Jan 10:30 UTC): Access blocked by bot protection"
    );
    assert_eq!(s(sent, "email"), text);
    let health = harness.items_of("health").await;
    assert_eq!(health.len(), 1);
    assert_eq!(s(&health[0], "state"), "failing");
    assert_eq!(s(&health[0], "lastEventAt"), "2025-01-15T10:30:00.000Z");
    assert!(!health[0].contains_key("claimId"), "the claim is released");
}

#[tokio::test]
async fn four_deliveries_of_a_failure_send_one_alert() {
    let harness = Harness::new().await;
    let body = fixture_body("workflow_failed.json");
    let statuses = harness.deliver_times(&body, 4).await;
    assert_eq!(statuses, ["alerted", "duplicate", "duplicate", "duplicate"]);
    assert_eq!(harness.alerts().await.len(), 1);
    assert_eq!(harness.calls.count("Publish"), 1);
    let events = harness.items_of("event").await;
    assert_eq!(events.len(), 1, "retries map to the one record");
    assert_eq!(s(&events[0], "status"), "alerted");
}

#[tokio::test]
async fn sns_outage_answers_503_and_the_retry_alerts_once() {
    let harness = Harness::builder().sns_through_proxy().build().await;
    let proxy = harness.proxy.clone().unwrap();
    let body = fixture_body("workflow_failed.json");

    proxy.set_up(false);
    let (status, answer) = harness.deliver(&body).await;
    assert_eq!((status, answer), (503, json!({"error": "temporarily unavailable"})));
    assert!(harness.alerts().await.is_empty());
    assert!(harness.items_of("event").await.is_empty(), "nothing recorded for an alert not sent");

    proxy.set_up(true);
    let (status, answer) = harness.deliver(&body).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("alerted")));
    let (_, answer) = harness.deliver(&body).await;
    assert_eq!(answer["status"], "duplicate");
    assert_eq!(harness.alerts().await.len(), 1);
}

#[tokio::test]
async fn simultaneous_deliveries_of_one_failure_send_one_alert() {
    let harness = Harness::new().await;
    let body = fixture_body("workflow_failed.json");
    let (a, b) = tokio::join!(harness.deliver(&body), harness.deliver(&body));
    let answers = [a, b];
    let alerted = answers.iter().filter(|(status, answer)| *status == 200 && answer["status"] == "alerted").count();
    assert_eq!(alerted, 1, "{answers:?}");
    // The other one was told to come back (503) or already saw the result (duplicate).
    for (status, answer) in &answers {
        assert!(*status == 503 || answer["status"] == "alerted" || answer["status"] == "duplicate", "{answers:?}");
    }
    // Kadoa's retry of the one that got 503 changes nothing.
    let (status, answer) = harness.deliver(&body).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(harness.alerts().await.len(), 1);
}

#[tokio::test]
async fn repeated_failures_alert_again_only_after_the_window() {
    let harness = Harness::builder().alert_repeat_minutes(60).build().await;
    let sequence = [
        (failed("2025-01-15T10:00:00Z"), "alerted"),
        (failed("2025-01-15T10:30:00Z"), "suppressed"),
        (failed("2025-01-15T11:00:00Z"), "alerted"),
        (failed("2025-01-15T11:05:00Z"), "suppressed"),
        (recovered("2025-01-15T11:10:00Z"), "alerted"),
        (recovered("2025-01-15T11:20:00Z"), "suppressed"),
        // An out-of-order retry of an old failure: changes nothing, tells nobody.
        (failed("2025-01-15T10:45:00Z"), "suppressed"),
        (failed("2025-01-15T12:00:00Z"), "alerted"),
    ];
    for (body, expected) in &sequence {
        let (status, answer) = harness.deliver(body).await;
        assert_eq!((status, answer["status"].as_str()), (200, Some(*expected)), "{body}");
    }
    let subjects: Vec<String> =
        harness.alerts().await.iter().map(|alert| alert["Subject"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        subjects,
        [
            "Kadoa: workflow failed - Product Monitor",
            "Kadoa: workflow failed - Product Monitor",
            "Kadoa: workflow recovered - Product Monitor",
            "Kadoa: workflow failed - Product Monitor"
        ]
    );

    let events = harness.items_of("event").await;
    let decisions: Vec<(String, String)> = events.iter().map(|e| (s(e, "timestamp"), s(e, "status"))).collect();
    assert_eq!(
        decisions,
        [
            ("2025-01-15T10:00:00.000Z", "alerted"),
            ("2025-01-15T10:30:00.000Z", "suppressed"),
            ("2025-01-15T10:45:00.000Z", "stale"),
            ("2025-01-15T11:00:00.000Z", "alerted"),
            ("2025-01-15T11:05:00.000Z", "suppressed"),
            ("2025-01-15T11:10:00.000Z", "alerted"),
            ("2025-01-15T11:20:00.000Z", "suppressed"),
            ("2025-01-15T12:00:00.000Z", "alerted"),
        ]
        .map(|(t, d)| (t.to_owned(), d.to_owned()))
    );
    let health = &harness.items_of("health").await[0];
    assert_eq!((s(health, "state"), s(health, "lastEventAt")), ("failing".into(), "2025-01-15T12:00:00.000Z".into()));
}

#[tokio::test]
async fn the_repeat_alert_says_still_failing() {
    let harness = Harness::builder().alert_repeat_minutes(0).build().await;
    harness.deliver(&failed("2025-01-15T10:00:00Z")).await;
    harness.deliver(&failed("2025-01-15T10:05:00Z")).await;
    let alerts = harness.alerts().await;
    assert_eq!(alerts.len(), 2);
    let text = alerts[1]["Message"].as_str().unwrap();
    assert!(
        text.starts_with("The Kadoa workflow \"Product Monitor\" is still failing (since Wed 15 Jan 2025, 10:00 UTC)."),
        "{text}"
    );
}

#[tokio::test]
async fn other_event_types_never_alert() {
    let harness = Harness::new().await;
    for name in [
        "workflow_data_change.json",
        "workflow_finished.json",
        "workflow_validation_anomaly_change.json",
        "unknown_event_type.json",
    ] {
        let (status, _) = harness.send_event(&fixture(name)).await;
        assert_eq!(status, 200, "{name}");
    }
    let health_like = json!({"eventType": "workflow_health_degraded", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"workflowId": "wf_123", "reason": "slow"}});
    assert_eq!(harness.deliver(&health_like.to_string()).await.1["status"], "stored");
    assert_eq!(harness.calls.count("Publish"), 0);
    assert!(harness.alerts().await.is_empty());
    // The finished run recorded the workflow as healthy, quietly.
    let health = harness.items_of("health").await;
    assert_eq!((health.len(), s(&health[0], "state")), (1, "healthy".to_owned()));
}

#[tokio::test]
async fn alerts_for_two_workflows_are_independent() {
    let harness = Harness::new().await;
    let other: Value = {
        let mut body: Value = serde_json::from_str(&failed("2025-01-15T10:00:00Z")).unwrap();
        body["data"]["workflowId"] = json!("wf_other");
        body
    };
    assert_eq!(harness.deliver(&failed("2025-01-15T10:00:00Z")).await.1["status"], "alerted");
    assert_eq!(harness.deliver(&other.to_string()).await.1["status"], "alerted");
    assert_eq!(harness.alerts().await.len(), 2);
}

#[tokio::test]
async fn a_claim_left_by_a_dead_delivery_holds_only_until_it_expires() {
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    let harness = Harness::new().await;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let leave_claim = |expires_at: i64| {
        harness
            .dynamodb
            .put_item()
            .table_name(&harness.table)
            .item("pk", AV::S("WORKFLOW#wf_123".into()))
            .item("sk", AV::S("HEALTH".into()))
            .item("entity", AV::S("health".into()))
            .item("claimId", AV::S("a-delivery-that-died".into()))
            .item("claimExpiresAt", AV::N(expires_at.to_string()))
            .send()
    };
    let body = fixture_body("workflow_failed.json");

    leave_claim(now_ms + 60_000).await.unwrap();
    let (status, _) = harness.deliver(&body).await;
    assert_eq!(status, 503, "a live claim makes Kadoa come back later");

    leave_claim(now_ms - 1).await.unwrap();
    let (status, answer) = harness.deliver(&body).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("alerted")), "an expired claim is taken over");
    assert_eq!(harness.alerts().await.len(), 1);
}

#[tokio::test]
async fn kadoas_own_examples_in_a_runs_order_alert_the_failure_and_the_recovery() {
    // workflow_finished at 10:30, workflow_failed at 10:30, workflow_recovered at 10:45.
    let harness = Harness::new().await;
    let mut statuses = Vec::new();
    for name in ["workflow_finished.json", "workflow_failed.json", "workflow_recovered.json"] {
        let (status, answer) = harness.send_event(&fixture(name)).await;
        assert_eq!(status, 200, "{name}: {answer}");
        statuses.push(answer["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses, ["stored", "alerted", "alerted"], "a failure is never silenced by an event of its instant");
    let subjects: Vec<String> =
        harness.alerts().await.iter().map(|a| a["Subject"].as_str().unwrap().to_owned()).collect();
    assert_eq!(subjects, ["Kadoa: workflow failed - Product Monitor", "Kadoa: workflow recovered - Product Monitor"]);

    // A finished run at the failure's own instant does not end the incident.
    let harness = Harness::new().await;
    assert_eq!(harness.send_event(&fixture("workflow_failed.json")).await.1["status"], "alerted");
    assert_eq!(harness.send_event(&fixture("workflow_finished.json")).await.1["status"], "suppressed");
    let health = harness.items_of("health").await;
    assert_eq!(s(&health[0], "state"), "failing");
}

#[tokio::test]
async fn make_samples_tells_the_story_every_time_after_the_printed_curl() {
    // The local stack, with the alert rule it ships with.
    let local_rules = include_str!("../../scripts/local_rules.json");
    let harness = Harness::builder().change_rules(serde_json::from_str(local_rules).unwrap()).build().await;
    // What a newcomer does: `make dev`'s curl first (a failure of wf_123, dated now)...
    let curl = samples(&["--curl"]);
    let body = curl.split("-d '").nth(1).and_then(|rest| rest.strip_suffix("'\n")).unwrap();
    assert_eq!(harness.deliver(body).await.1["status"], "alerted", "{curl}");
    assert_eq!(harness.alerts().await.len(), 1, "the curl's failure was told (and taken off the queue)");
    // ...then `make samples`, twice: each time its failures and recoveries are told.
    for run in 1..=2 {
        let mut answers = Vec::new();
        for line in samples(&["--print"]).lines() {
            let sample: Value = serde_json::from_str(line).unwrap();
            let (status, answer) = harness.send_event(&sample["event"].to_string()).await;
            let outcome = answer["status"].as_str().unwrap_or_default().to_owned();
            let expected = sample["expected"].as_str().unwrap().to_owned();
            answers.push((sample["file"].as_str().unwrap().to_owned(), status, outcome, expected));
        }
        // The expectation the script prints beside each answer is the answer.
        let surprises: Vec<String> = answers
            .iter()
            .filter(|(_, status, outcome, expected)| {
                let (code, word) = expected.split_once(' ').unwrap_or((expected, ""));
                code != status.to_string() || !(word.is_empty() || word == outcome)
            })
            .map(|(file, status, outcome, expected)| format!("{file}: {status} {outcome}, expected {expected}"))
            .collect();
        assert!(surprises.is_empty(), "run {run}: {surprises:#?}");
        let alerted: Vec<&str> =
            answers.iter().filter(|(.., outcome, _)| outcome == "alerted").map(|(file, ..)| file.as_str()).collect();
        assert_eq!(
            alerted,
            [
                "credits_low.json",
                "workflow_failed.json",
                "workflow_recovered.json",
                "workflow_price_drop.json",
                "workflow_failed.json",
                "workflow_finished_after_failure.json"
            ],
            "run {run}: {answers:?}"
        );
        let alerts = harness.alerts().await;
        let subjects: Vec<&str> = alerts.iter().map(|a| a["Subject"].as_str().unwrap()).collect();
        assert_eq!(subjects.len(), 6, "run {run}: {subjects:?}");
        assert!(subjects.contains(&"Product Monitor: price 24.99 -> 19.99 (below 20)"), "{subjects:?}");
        assert_eq!(subjects.iter().filter(|s| s.contains("workflow failed")).count(), 2, "{subjects:?}");
        assert_eq!(subjects.iter().filter(|s| s.contains("workflow recovered")).count(), 2, "{subjects:?}");
        let refused: Vec<u16> = answers.iter().map(|(_, status, ..)| *status).filter(|status| *status >= 400).collect();
        assert_eq!(refused, [401, 401, 400, 400, 405]);
    }
}

/// What scripts/samples.py prints with `args` (the curl `make dev` shows, or the story).
fn samples(args: &[&str]) -> String {
    let output = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/samples.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn an_alert_whose_writes_hang_ends_inside_the_functions_timeout() {
    use kadoa_webhook::store::health::{ALERT_PATH, CLAIM_LEASE};
    use std::time::{Duration, Instant};
    let harness = Harness::builder().deployed_timeouts().build().await;
    // A slow claim and publish, then a commit that hangs (twice) and a record write that
    // hangs: each is cut at its cap. The slow ones end 1.5 s and 2 s inside their caps (2 s
    // and 3 s): room for a busy machine's slow moto.
    harness.stalls.hold("UpdateItem", Duration::from_millis(500));
    harness.stalls.hold("Publish", Duration::from_millis(1000));
    harness.stalls.hold("TransactWriteItems", Duration::from_secs(600));
    harness.stalls.hold("PutItem", Duration::from_secs(600));
    let started = Instant::now();
    let (status, answer) = harness.deliver(&fixture_body("workflow_failed.json")).await;
    let took = started.elapsed();
    assert_eq!((status, answer["status"].as_str()), (200, Some("alerted")), "people were told: {answer}");
    let timeout = crate::support::template::resource("WebhookFunction")["Properties"]["Timeout"].as_u64().unwrap();
    assert!(took < ALERT_PATH + Duration::from_secs(1), "{took:?}: longer than the alert path's caps");
    assert!(
        took < Duration::from_secs(timeout) && took < CLAIM_LEASE,
        "{took:?}: the function or the lease ends first"
    );
    assert!(took >= Duration::from_millis(7500), "{took:?}: the hangs were real (0.5 + 1 + 2 + 2 + 2 s)");
    assert_eq!(harness.alerts().await.len(), 1);
}

#[tokio::test]
async fn a_publish_whose_answer_was_lost_tells_people_at_most_twice() {
    // SNS acted on the publish; its answer was lost. It is not tried again inside the call
    // (that would tell people again at once): the claim is released, and Kadoa's retry
    // publishes the one extra copy the README allows. Nothing after that.
    let harness = Harness::builder().lost_answers("Publish", 1).build().await;
    let body = fixture_body("workflow_failed.json");
    assert_eq!(harness.deliver(&body).await.0, 503);
    assert_eq!(harness.calls.count("Publish"), 1, "one attempt: no retry inside the call");
    assert_eq!(harness.deliver(&body).await.1["status"], "alerted");
    assert_eq!(harness.deliver(&body).await.1["status"], "duplicate");
    assert_eq!(harness.alerts().await.len(), 2, "the lost answer's copy and the retry's");
}

#[tokio::test]
async fn a_publish_whose_answer_came_late_tells_people_at_most_twice() {
    use std::time::Duration;
    let harness = Harness::builder().deployed_timeouts().build().await;
    harness.stalls.hold_answer("Publish", Duration::from_millis(3500));
    let body = fixture_body("workflow_failed.json");
    assert_eq!(harness.deliver(&body).await.0, 503, "given up after 3 s: counted as not sent");
    harness.stalls.hold_answer("Publish", Duration::ZERO);
    assert_eq!(harness.deliver(&body).await.1["status"], "alerted");
    assert_eq!(harness.deliver(&body).await.1["status"], "duplicate");
    assert_eq!(harness.alerts().await.len(), 2, "the late answer's copy and the retry's");
}
