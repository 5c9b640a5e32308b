//! Everything Kadoa can send: a finished run that ends a failure, account and service
//! events, and which of them alert.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::support::{fixture, fixture_body, s, Harness};

fn subjects_and_types(alerts: &[serde_json::Value]) -> Vec<(String, String)> {
    alerts
        .iter()
        .map(|a| {
            let subject = a["Subject"].as_str().unwrap_or_default().to_owned();
            let event_type = a["MessageAttributes"]["eventType"]["Value"].as_str().unwrap_or_default().to_owned();
            (subject, event_type)
        })
        .collect()
}

#[tokio::test]
async fn a_finished_run_after_a_failure_is_one_recovery() {
    let harness = Harness::new().await;
    assert_eq!(harness.send_event(&fixture("workflow_failed.json")).await.1["status"], "alerted");
    let finished = fixture_body("workflow_finished_after_failure.json");
    assert_eq!(harness.deliver_times(&finished, 4).await, ["alerted", "duplicate", "duplicate", "duplicate"]);
    // Kadoa's recovery for the same incident, arriving later, tells nobody again.
    let recovered = fixture_body("workflow_recovered.json").replace("10:45:00Z", "11:05:00Z");
    assert_eq!(harness.deliver(&recovered).await.1["status"], "suppressed");
    // Nor does the next finished run.
    let next_run = finished.replace("11:00:00Z", "12:00:00Z");
    assert_eq!(harness.deliver(&next_run).await.1["status"], "stored");

    let alerts = harness.alerts().await;
    assert_eq!(
        subjects_and_types(&alerts),
        [
            ("Kadoa: workflow failed - Product Monitor".to_owned(), "workflow_failed".to_owned()),
            ("Kadoa: workflow recovered - Product Monitor".to_owned(), "workflow_recovered".to_owned()),
        ]
    );
    let text = alerts[1]["Message"].as_str().unwrap();
    assert!(
        text.starts_with("The Kadoa workflow \"Product Monitor\" recovered: it is collecting data again."),
        "{text}"
    );
    let health = &harness.items_of("health").await[0];
    assert_eq!((s(health, "state"), s(health, "lastEventType")), ("healthy".into(), "workflow_finished".into()));
    assert!(!health.contains_key("failingSince"));
}

#[tokio::test]
async fn finished_runs_of_a_healthy_workflow_stay_quiet() {
    let harness = Harness::new().await;
    for hour in ["10", "11", "12"] {
        let body = fixture_body("workflow_finished.json").replace("10:30:00Z", &format!("{hour}:30:00Z"));
        assert_eq!(harness.deliver(&body).await.1["status"], "stored");
    }
    assert_eq!(harness.calls.count("Publish"), 0);
    assert!(harness.alerts().await.is_empty());
}

#[tokio::test]
async fn simultaneous_failure_and_finished_run_leave_one_consistent_story() {
    let harness = Harness::new().await;
    harness.send_event(&fixture("workflow_failed.json")).await;
    let finished = fixture_body("workflow_finished_after_failure.json");
    let (a, b) = tokio::join!(harness.deliver(&finished), harness.deliver(&finished));
    let alerted = [&a, &b].iter().filter(|(status, answer)| *status == 200 && answer["status"] == "alerted").count();
    assert_eq!(alerted, 1, "{a:?} {b:?}");
    assert_eq!(harness.deliver(&finished).await.1["status"], "duplicate");
    assert_eq!(harness.alerts().await.len(), 2, "the failure and one recovery");
}

#[tokio::test]
async fn an_account_event_alerts_once_whatever_kadoa_retries() {
    let harness = Harness::new().await;
    let body = fixture_body("credits_low.json");
    assert_eq!(harness.deliver_times(&body, 4).await, ["alerted", "duplicate", "duplicate", "duplicate"]);
    let alerts = harness.alerts().await;
    assert_eq!(subjects_and_types(&alerts), [("Kadoa: credits are running low".to_owned(), "credits_low".to_owned())]);
    let text = alerts[0]["Message"].as_str().unwrap();
    assert!(text.starts_with("Kadoa reports: credits are running low.\n"), "{text}");
    assert!(text.contains("  message: Your workspace has 50 credits left"), "{text}");

    let events = harness.items_of("event").await;
    assert_eq!(events.len(), 1);
    assert_eq!((s(&events[0], "pk"), s(&events[0], "status")), ("ACCOUNT".into(), "alerted".into()));
    assert!(!events[0].contains_key("claimId"), "the claim became the record");
    let Some(AttributeValue::M(sent)) = events[0].get("alert") else { panic!("alert") };
    assert_eq!(s(sent, "sms"), "Kadoa: credits are running low (15 Jan 09:00 UTC): Your workspace has 50 credits left");
}

#[tokio::test]
async fn simultaneous_deliveries_of_an_account_event_alert_once() {
    let harness = Harness::new().await;
    let body = fixture_body("credits_low.json");
    let (a, b) = tokio::join!(harness.deliver(&body), harness.deliver(&body));
    let statuses = [&a, &b].map(|(status, answer)| (*status, answer["status"].as_str().unwrap_or("-").to_owned()));
    assert!(statuses.contains(&(200, "alerted".to_owned())), "{statuses:?}");
    assert_eq!(harness.deliver(&body).await.1["status"], "duplicate");
    assert_eq!(harness.alerts().await.len(), 1);
}

#[tokio::test]
async fn a_type_turned_off_is_logged_not_alerted() {
    let harness = Harness::builder().alert_event_types("workflow_recovered").build().await;
    assert_eq!(harness.deliver(&fixture_body("credits_low.json")).await.1["status"], "stored");
    assert_eq!(harness.deliver(&fixture_body("workflow_failed.json")).await.1["status"], "suppressed");
    assert_eq!(harness.deliver(&fixture_body("workflow_recovered.json")).await.1["status"], "alerted");
    let alerts = harness.alerts().await;
    assert_eq!(
        subjects_and_types(&alerts),
        [("Kadoa: workflow recovered - Product Monitor".to_owned(), "workflow_recovered".to_owned())]
    );
    // The failure still moved the health: the recovery is news.
    let statuses: Vec<String> = harness.items_of("event").await.iter().map(|e| s(e, "status")).collect();
    assert_eq!(statuses.len(), 3);
}

#[tokio::test]
async fn account_events_without_a_workflow_are_logged_at_account_level() {
    let harness = Harness::new().await;
    let (status, answer) = harness.send_event(&fixture("system_maintenance.json")).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")));
    let events = harness.items_of("event").await;
    assert_eq!((s(&events[0], "pk"), s(&events[0], "eventType")), ("ACCOUNT".into(), "system_maintenance".into()));
    assert!(harness.alerts().await.is_empty());
}
