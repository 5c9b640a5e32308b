//! Reconciliation against a local fake of Kadoa's API: what never reached the receiver is
//! stored and alerted once; what did costs reads only; pending changes are completed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use aws_sdk_dynamodb::types::AttributeValue;
use kadoa_webhook::kadoa_api::{ApiRetry, KadoaApi};
use kadoa_webhook::reconcile::{Reconciler, Report};
use kadoa_webhook::timestamp::Timestamp;
use serde_json::{json, Value};

use crate::support::kadoa::FakeKadoa;
use crate::support::moto::moto;
use crate::support::{n, s, Harness};

const KEY: &str = "tenant-api-key";

fn change(id: &str, differences: usize, created_at: &str) -> Value {
    let differences: Vec<Value> = (0..differences)
        .map(|i| json!({"type": "changed", "fields": [{"key": "price", "value": i, "previousValue": i + 1}]}))
        .collect();
    json!({"id": id, "workflowId": "wf_123", "data": null, "dataPending": false, "differences": differences,
           "url": "https://monitored-page.com", "summary": null, "screenshotUrl": "https://x/s.png", "createdAt": created_at})
}

fn failure(at: &str) -> Value {
    json!({"eventType": "workflow_failed", "timestamp": at,
           "data": {"workflowId": "wf_123", "workflowName": "Product Monitor", "source": "Product Monitor",
                    "reason": "Access blocked by bot protection", "action": "No action needed."}})
}

fn api(fake: &FakeKadoa, key: &str) -> KadoaApi {
    let retry = ApiRetry { tries: 4, first_wait: Duration::from_millis(10), max_wait: Duration::from_secs(2) };
    KadoaApi::new(&fake.url, key.to_owned(), retry).unwrap()
}

fn ts(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

async fn reconcile(harness: &Harness, fake: &FakeKadoa) -> Report {
    let (api, receiver) = (api(fake, KEY), harness.receiver());
    let reconciler = Reconciler::new(&api, &receiver, &harness.store, 0);
    reconciler.run(ts("2025-01-15T00:00:00Z"), ts("2025-01-16T00:00:00Z"), &|_| {}).await
}

#[tokio::test]
async fn what_never_arrived_is_stored_and_alerted_once() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    fake.put_change(change("c-small", 3, "2025-01-15T10:00:00Z"));
    fake.put_change(change("c-large", 130, "2025-01-15T11:00:00Z"));
    fake.add_delivery(failure("2025-01-15T10:30:00Z"));
    fake.add_delivery(
        json!({"eventType": "workflow_finished", "timestamp": "2025-01-15T09:00:00Z", "data": {"id": "wf_123"}}),
    );

    let report = reconcile(&harness, &fake).await;
    assert_eq!(
        (report.changes_seen, report.stored_now, report.events_seen, report.events_replayed, report.failures.len()),
        (2, 2, 2, 2, 0),
        "{report}"
    );
    assert_eq!(harness.differences().await.len(), 133);
    let alerts = harness.alerts().await;
    assert_eq!(alerts.len(), 1);
    let text = alerts[0]["Message"].as_str().unwrap();
    assert!(text.contains("\nLate:     Kadoa reported this at the time above"), "{text}");
    let arrivals: Vec<String> = harness.items_of("event").await.iter().map(|e| s(e, "arrival")).collect();
    assert!(arrivals.iter().all(|a| a == "reconcile"), "{arrivals:?}");

    // A second run finds everything and writes nothing.
    harness.calls.reset();
    let report = reconcile(&harness, &fake).await;
    assert_eq!((report.already_stored, report.stored_now, report.events_logged, report.events_replayed), (2, 0, 2, 0));
    assert_eq!(harness.calls.snapshot(), [("BatchGetItem".to_owned(), 2), ("Query".to_owned(), 1)].into());
    assert!(harness.alerts().await.is_empty());
}

#[tokio::test]
async fn what_the_webhook_delivered_costs_reads_only() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let delivered = change("c-hook", 4, "2025-01-15T10:00:00Z");
    fake.put_change(delivered.clone());
    fake.add_delivery(failure("2025-01-15T10:30:00Z"));
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:05Z", "data": delivered});
    assert_eq!(harness.deliver(&body.to_string()).await.1["status"], "stored");
    // Kadoa's log holds the body as sent; the webhook got the same event, its keys in
    // another order.
    let sent = r#"{"data":{"action":"No action needed.","reason":"Access blocked by bot protection","source":"Product Monitor","workflowId":"wf_123","workflowName":"Product Monitor"},"timestamp":"2025-01-15T10:30:00Z","eventType":"workflow_failed"}"#;
    assert_eq!(harness.deliver(sent).await.1["status"], "alerted");
    harness.alerts().await;

    harness.calls.reset();
    let report = reconcile(&harness, &fake).await;
    assert_eq!((report.already_stored, report.events_logged, report.stored_now, report.events_replayed), (1, 1, 0, 0));
    assert_eq!(
        harness.calls.snapshot(),
        [("BatchGetItem".to_owned(), 2), ("Query".to_owned(), 1)].into(),
        "reads only"
    );
    assert!(harness.alerts().await.is_empty());
    assert_eq!(harness.items_of("event").await.len(), 1, "the failure logged once (the change is its own record)");
}

#[tokio::test]
async fn a_pending_change_is_completed_by_a_later_run() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let mut pending = change("c-pending", 3, "2025-01-15T10:00:00Z");
    pending["dataPending"] = json!(true);
    fake.put_change(pending.clone());
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:00Z", "data": pending});
    assert_eq!(harness.deliver(&body.to_string()).await.1["status"], "stored");
    assert_eq!(harness.items_of("pending").await.len(), 1);

    let report = reconcile(&harness, &fake).await;
    assert_eq!((report.still_pending, report.pending_completed), (1, 0), "{report}");

    // Kadoa completes it: two differences, other values.
    let mut complete = change("c-pending", 2, "2025-01-15T10:00:00Z");
    complete["differences"][0]["fields"][0]["value"] = json!(42);
    fake.put_change(complete);
    let report = reconcile(&harness, &fake).await;
    assert_eq!((report.pending_completed, report.failures.len()), (1, 0), "{report}");

    let stored = &harness.items_of("change").await[0];
    assert_eq!(stored.get("dataPending"), Some(&AttributeValue::Bool(false)));
    assert_eq!(n(stored, "differenceCount"), 2);
    assert!(!s(stored, "completedAt").is_empty());
    let differences = harness.differences().await;
    assert_eq!(differences.len(), 2, "the third difference of the pending version is gone");
    let Some(AttributeValue::L(fields)) = differences[0].get("fields") else { panic!() };
    let Some(AttributeValue::M(field)) = fields.first() else { panic!() };
    assert_eq!(field["value"], AttributeValue::N("42".into()));
    assert!(harness.items_of("pending").await.is_empty());
}

#[tokio::test]
async fn a_large_pending_change_completed_replaces_its_parts() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let large = |count: usize, text: &str, pending: bool| {
        let mut change = change("c-large-pending", 0, "2025-01-15T10:00:00Z");
        let value = text.repeat(300);
        change["differences"] = json!((0..count)
            .map(|i| json!({"type": "added", "fields": [{"key": "i", "value": i}, {"key": "t", "value": value}]}))
            .collect::<Vec<_>>());
        change["dataPending"] = json!(pending);
        change
    };
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:00Z", "data": large(3000, "a", true)});
    assert_eq!(harness.deliver(&body.to_string()).await.1["status"], "stored");
    assert_eq!(harness.items_of("changePart").await.len(), 3);

    fake.put_change(large(2000, "b", false));
    let report = reconcile(&harness, &fake).await;
    assert_eq!((report.pending_completed, report.failures.len()), (1, 0), "{report}");
    assert_eq!(harness.items_of("changePart").await.len(), 2, "the pending version's parts are gone");
    let differences = harness.differences().await;
    assert_eq!(differences.len(), 2000);
    let value = differences[0]["fields"].as_l().unwrap()[1].as_m().unwrap()["value"].as_s().unwrap().clone();
    assert!(value.starts_with('b'), "Kadoa's final version");
    assert!(harness.items_of("pending").await.is_empty());
}

#[tokio::test]
async fn kadoa_busy_or_failing_is_retried() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    fake.put_change(change("c-retried", 1, "2025-01-15T10:00:00Z"));
    fake.fail_next(500, None);
    fake.fail_next(429, Some(1));
    let started = std::time::Instant::now();
    let report = reconcile(&harness, &fake).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.stored_now, 1);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");
    assert_eq!(fake.requests().iter().filter(|r| r.starts_with("/v5/changes?")).count(), 3);
}

#[tokio::test]
async fn one_change_whatever_way_it_came() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let listed = change("c-once", 2, "2025-01-15T10:00:00.123456Z");
    fake.put_change(listed.clone());
    let mut without_created_at = listed.clone();
    without_created_at.as_object_mut().unwrap().remove("createdAt");
    for data in [without_created_at, listed] {
        let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:09Z", "data": data});
        harness.deliver(&body.to_string()).await;
    }
    let report = reconcile(&harness, &fake).await;
    assert_eq!((report.already_stored, report.stored_now), (1, 0));
    assert_eq!(harness.items_of("change").await.len(), 1);
}

#[tokio::test]
async fn the_schedule_moves_its_watermark_only_after_a_clean_run() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let receiver = harness.receiver();
    let now = Timestamp::now();

    let wrong = api(&fake, "wrong-key");
    let report = Reconciler::new(&wrong, &receiver, &harness.store, 0).run_scheduled(now, &|_| {}).await.unwrap();
    assert!(!report.is_clean());
    assert!(report.failures[0].contains("Kadoa refused the API key (401)"), "{report}");
    assert_eq!(harness.store.watermark().await.unwrap(), None, "unchanged");
    assert!(harness.items().await.is_empty(), "nothing written");

    let right = api(&fake, KEY);
    let report = Reconciler::new(&right, &receiver, &harness.store, 0).run_scheduled(now, &|_| {}).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(harness.store.watermark().await.unwrap(), Some(now));
    let first_window = fake.requests().into_iter().find(|r| r.starts_with("/v5/changes?")).unwrap();
    let day_before = now.plus_millis(-24 * 3600 * 1000).unwrap().to_key_string().replace(':', "%3A");
    assert!(first_window.contains(&day_before), "the first run looks back a day: {first_window}");
}

#[tokio::test]
async fn the_command_reports_and_fails_loudly_on_a_wrong_key() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    fake.put_change(change("c-cli", 2, "2025-01-15T10:00:00Z"));
    // Run without blocking this test's runtime: the fake Kadoa is served on it.
    let run = |key: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kadoa"))
            .args(["reconcile", "--from", "2025-01-15T00:00:00Z", "--to", "2025-01-16T00:00:00Z"])
            .env_clear()
            .envs([
                ("TABLE_NAME", harness.table.as_str()),
                ("ALERT_TOPIC_ARN", harness.topic_arn.as_str()),
                ("KADOA_API_KEY", key),
                ("KADOA_API_URL", fake.url.as_str()),
                ("AWS_ENDPOINT_URL", moto().endpoint.as_str()),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                (kadoa_webhook::aws::PATIENCE_VARIABLE, "60"),
            ])
            .output()
    };
    let failed = run("wrong-key").await.unwrap();
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(!failed.status.success());
    assert!(stdout.contains("Kadoa refused the API key (401): check KADOA_API_KEY"), "{stdout}");
    assert!(!String::from_utf8_lossy(&failed.stderr).contains("wrong-key"), "the key is never printed");
    assert!(harness.items().await.is_empty());

    let done = run(KEY).await.unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{stdout} {}", String::from_utf8_lossy(&done.stderr));
    assert!(stdout.starts_with("changes: 1 seen, 0 already stored, 1 stored now\n"), "{stdout}");
    assert!(done.stderr.is_empty(), "no progress bar and no logs off a terminal without -v");
    assert_eq!(harness.items_of("change").await.len(), 1);
}

#[tokio::test]
async fn an_event_the_receiver_refuses_is_skipped_and_does_not_hold_the_watermark() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    // Kadoa logs a delivery this receiver refuses, whatever the run: an impossible type.
    let recently = Timestamp::now().plus_millis(-60_000).unwrap().to_key_string();
    fake.add_delivery(json!({"eventType": "not a \"type\"", "timestamp": recently, "data": {}}));
    fake.add_delivery(failure(&recently));
    let (api, receiver) = (api(&fake, KEY), harness.receiver());
    let now = Timestamp::now().plus_millis(1000).unwrap();
    let report = Reconciler::new(&api, &receiver, &harness.store, 0).run_scheduled(now, &|_| {}).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.skipped.len(), 1, "{report}");
    assert_eq!(report.events_replayed, 1);
    assert_eq!(harness.store.watermark().await.unwrap(), Some(now));
}

#[tokio::test]
async fn pagination_that_does_not_move_ends_the_run_with_an_error() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    for i in 0..15 {
        fake.put_change(change(&format!("c-{i}"), 1, "2025-01-15T10:00:00Z"));
    }
    fake.add_delivery(failure("2025-01-15T10:30:00Z"));
    fake.break_pagination();
    let report = reconcile(&harness, &fake).await;
    assert!(!report.is_clean());
    let failures = report.failures.join("\n");
    assert!(failures.contains("change list: Kadoa API: the same page twice"), "{failures}");
    assert!(failures.contains("delivery log: Kadoa API: the same page twice"), "{failures}");
    assert!(fake.requests().len() <= 6, "two pages of each list, then it stops: {:?}", fake.requests());
}

#[tokio::test]
async fn the_api_key_never_follows_a_redirect_to_another_origin() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let elsewhere = FakeKadoa::start("another-key").await;
    fake.redirect_to(&elsewhere.url);
    let report = reconcile(&harness, &fake).await;
    assert!(elsewhere.requests().is_empty(), "nothing went to the other origin: {:?}", elsewhere.requests());
    assert!(report.failures.join("\n").contains("to another origin: not followed"), "{report}");
    assert!(!report.is_clean());
}

#[tokio::test]
async fn an_answer_past_the_cap_fails_its_list_and_the_run_moves_on() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    fake.put_change(change("c-huge", 400, "2025-01-15T10:00:00Z"));
    fake.add_delivery(failure("2025-01-15T10:30:00Z"));
    let api = api(&fake, KEY).with_answer_limit(16 * 1024);
    let receiver = harness.receiver();
    let report = Reconciler::new(&api, &receiver, &harness.store, 0)
        .run(ts("2025-01-15T00:00:00Z"), ts("2025-01-16T00:00:00Z"), &|_| {})
        .await;
    let failures = report.failures.join("\n");
    assert!(failures.contains("change list: Kadoa API /v5/changes answered more than 16384 bytes"), "{failures}");
    assert_eq!(report.events_replayed, 1, "the delivery log is still read: {report}");
    assert!(!report.is_clean(), "the window is checked again next time");
    assert_eq!(fake.requests().iter().filter(|r| r.starts_with("/v5/changes?")).count(), 1, "not retried");
}

/// A server that answers every request 200 with a JSON body that never ends (chunked);
/// how many bytes it managed to send, over all connections.
async fn endless_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                let chunk = format!("10000\r\n{}\r\n", "[".repeat(0x10000));
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                while socket.write_all(chunk.as_bytes()).await.is_ok() {
                    counter.fetch_add(0x10000, Ordering::Relaxed);
                }
            });
        }
    });
    (url, sent)
}

#[tokio::test]
async fn an_endless_answer_is_cut_at_the_cap_and_fails_the_run_clearly() {
    let harness = Harness::new().await;
    let (url, sent) = endless_server().await;
    let retry = ApiRetry { tries: 1, first_wait: Duration::from_millis(10), max_wait: Duration::from_millis(10) };
    let api = KadoaApi::new(&url, KEY.to_owned(), retry).unwrap();
    let receiver = harness.receiver();
    let reconciler = Reconciler::new(&api, &receiver, &harness.store, 0);
    let run = reconciler.run(ts("2025-01-15T00:00:00Z"), ts("2025-01-16T00:00:00Z"), &|_| {});
    let report = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the reads stop");
    let failures = report.failures.join("\n");
    let cap = kadoa_webhook::kadoa_api::MAX_ANSWER_BYTES;
    for list in ["change list: Kadoa API /v5/changes", "delivery log: Kadoa API /v5/notifications/logs"] {
        assert!(failures.contains(&format!("{list} answered more than {cap} bytes")), "{failures}");
    }
    // Two answers read up to the cap, plus what sat in socket buffers when each stopped.
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent <= 2 * cap + 16 * 1024 * 1024, "{sent} bytes sent: the reads stopped at the cap");
}

#[tokio::test]
async fn ids_with_spaces_are_stored_once_and_a_second_run_writes_nothing() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let mut spaced = change(" c-spaced ", 2, "2025-01-15T10:00:00Z");
    spaced["workflowId"] = json!(" wf_123 ");
    fake.put_change(spaced);
    let report = reconcile(&harness, &fake).await;
    assert_eq!(report.stored_now, 1, "{report}");
    harness.sent.take();
    let report = reconcile(&harness, &fake).await;
    assert_eq!((report.stored_now, report.already_stored), (0, 1), "{report}");
    let writes: Vec<String> = harness
        .sent
        .take()
        .into_iter()
        .map(|(operation, _)| operation)
        .filter(|operation| !["BatchGetItem", "Query", "GetItem"].contains(&operation.as_str()))
        .collect();
    assert!(writes.is_empty(), "a second run writes nothing: {writes:?}");
}

#[tokio::test]
async fn a_pending_change_that_keeps_failing_is_outstanding_and_does_not_hold_the_watermark() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let mut pending = change("c-stuck", 1, "2025-01-15T10:00:00Z");
    pending["dataPending"] = json!(true);
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:00Z", "data": pending});
    assert_eq!(harness.deliver(&body.to_string()).await.1["status"], "stored");
    fake.fail_always("/v5/changes/c-stuck");

    let (api, receiver) = (api(&fake, KEY), harness.receiver());
    let reconciler = Reconciler::new(&api, &receiver, &harness.store, 0);
    for (run, now) in [(1, "2025-01-16T00:00:00Z"), (2, "2025-01-16T01:00:00Z")] {
        let report = reconciler.run_scheduled(ts(now), &|_| {}).await.unwrap();
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.outstanding.len(), 1, "{report}");
        assert!(report.outstanding[0].starts_with(&format!("pending change c-stuck, try {run}: ")), "{report}");
        assert_eq!(harness.store.watermark().await.unwrap(), Some(ts(now)), "the watermark moves on");
    }
    let marker = &harness.items_of("pending").await[0];
    assert_eq!(n(marker, "tries"), 2);
    assert!(s(marker, "lastError").contains("Kadoa API"), "{marker:?}");
    let alarm = &crate::support::template::resource("ReconcileOutstandingMetric")["Properties"];
    assert_eq!(alarm["FilterPattern"], r#"{ $.message = "pending change outstanding" }"#);
}

#[tokio::test]
async fn a_change_with_a_lone_surrogate_is_stored_once() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let mut cut = change("c-CUT", 1, "2025-01-15T10:00:00Z");
    cut["differences"][0]["fields"][0]["value"] = json!("caf\u{e9} CUT");
    fake.put_change(cut);
    fake.cut_strings();
    let report = reconcile(&harness, &fake).await;
    assert_eq!((report.stored_now, report.failures.len(), report.skipped.len()), (1, 0, 0), "{report}");
    assert_eq!(s(&harness.items_of("change").await[0], "changeId"), "c-\u{fffd}");
    let report = reconcile(&harness, &fake).await;
    assert_eq!((report.stored_now, report.already_stored), (0, 1), "{report}");
}
