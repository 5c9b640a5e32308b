//! The receiver's decisions without AWS: an in-memory store and a publisher that keeps what
//! it is given. What is DynamoDB's (conditions, transactions, parts, limits) is tested
//! against moto in tests/it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};

use super::memory::MemoryStore;
use super::*;
use crate::alerts::WorkflowState;
use crate::table::Attr;

/// Keeps every message; fails the next `failures` publishes.
#[derive(Default)]
struct FakePublisher {
    sent: Mutex<Vec<AlertMessage>>,
    failures: AtomicU32,
}

impl FakePublisher {
    fn subjects(&self) -> Vec<String> {
        self.sent.lock().unwrap().iter().map(|message| message.subject.clone()).collect()
    }
}

impl Publisher for FakePublisher {
    fn publish<'a>(&'a self, message: &'a AlertMessage) -> BoxFuture<'a, Result<(), Error>> {
        let failed = self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if !failed {
            self.sent.lock().unwrap().push(message.clone());
        }
        async move {
            if failed {
                Err(Error::unavailable("Publish", "injected outage"))
            } else {
                Ok(())
            }
        }
        .boxed()
    }
}

struct Fixture {
    store: Arc<MemoryStore>,
    publisher: Arc<FakePublisher>,
    receiver: Receiver,
    deliveries: AtomicU32,
}

fn fixture_with(alert_types: &[&str]) -> Fixture {
    let store = Arc::new(MemoryStore::default());
    let publisher = Arc::new(FakePublisher::default());
    let rules = Rules {
        retention_days: 0,
        alert_repeat: Duration::from_secs(3600),
        alert_types: alert_types.iter().map(|t| (*t).to_owned()).collect::<BTreeSet<_>>(),
    };
    let receiver = Receiver::new(store.clone(), publisher.clone(), rules);
    Fixture { store, publisher, receiver, deliveries: AtomicU32::new(0) }
}

fn fixture() -> Fixture {
    fixture_with(DEFAULT_ALERT_TYPES)
}

fn failed(at: &str) -> Value {
    json!({"eventType": "workflow_failed", "timestamp": at,
           "data": {"workflowId": "wf_1", "workflowName": "Shop", "reason": "blocked"}})
}

fn finished(at: &str) -> Value {
    json!({"eventType": "workflow_finished", "timestamp": at, "data": {"id": "wf_1", "jobId": "j1"}})
}

fn credits_low(at: &str) -> Value {
    json!({"eventType": "credits_low", "timestamp": at, "data": {"message": "50 credits left"}})
}

impl Fixture {
    async fn apply(&self, body: &Value) -> Result<Applied, Error> {
        let body = body.to_string();
        let delivery = Delivery::parse(body.as_bytes(), None)?;
        // Each delivery its own receipt time: one with the same time would be taken as
        // this one's own retried write.
        let delivered = self.deliveries.fetch_add(1, Ordering::SeqCst);
        let received_at = Timestamp::now().plus_millis(i64::from(delivered) - 1000).unwrap();
        self.receiver.apply(&delivery, received_at, Arrival::Webhook).await
    }

    async fn outcome(&self, body: &Value) -> Outcome {
        self.apply(body).await.unwrap().outcome
    }

    /// The event-log records' statuses, by key.
    fn statuses(&self) -> Vec<String> {
        let status = |item: &Item| match item.get("status") {
            Some(Attr::S(status)) => status.clone(),
            other => format!("{other:?}"),
        };
        self.store.items_of(crate::table::ENTITY_EVENT).iter().map(status).collect()
    }
}

#[tokio::test]
async fn a_first_failure_claims_publishes_and_commits() {
    let f = fixture();
    let applied = f.apply(&failed("2025-01-15T10:00:00Z")).await.unwrap();
    assert_eq!(applied.outcome, Outcome::Alerted);
    assert!(applied.alerted_at.is_some());
    assert_eq!(f.publisher.subjects().len(), 1);
    assert_eq!(f.store.calls(), ["claim_health", "commit_health"]);
    let health = f.store.health("wf_1");
    assert_eq!(health.state, Some(WorkflowState::Failing));
    assert_eq!(health.last_alert_at, health.last_event_at);
    assert_eq!(health.workflow_name.as_deref(), Some("Shop"));
    assert!(!f.store.claimed("wf_1"), "the commit gives the claim back");
    assert_eq!(f.statuses(), ["alerted"]);
}

#[tokio::test]
async fn a_retry_of_a_decided_event_is_a_duplicate_and_tells_nobody_again() {
    let f = fixture();
    f.apply(&failed("2025-01-15T10:00:00Z")).await.unwrap();
    assert_eq!(f.outcome(&failed("2025-01-15T10:00:00Z")).await, Outcome::Duplicate);
    assert_eq!(f.publisher.subjects().len(), 1);
    assert_eq!(f.statuses(), ["alerted"], "its own record is left be");
}

#[tokio::test]
async fn failing_again_inside_the_repeat_window_is_suppressed_and_later_alerts_again() {
    let f = fixture();
    f.apply(&failed("2025-01-15T10:00:00Z")).await.unwrap();
    assert_eq!(f.outcome(&failed("2025-01-15T10:30:00Z")).await, Outcome::Suppressed);
    assert_eq!(f.store.health("wf_1").last_event_at, Timestamp::parse_rfc3339("2025-01-15T10:30:00Z"));
    assert_eq!(f.outcome(&failed("2025-01-15T11:01:00Z")).await, Outcome::Alerted, "an hour after the alert");
    assert_eq!(f.publisher.subjects().len(), 2);
    assert_eq!(f.store.health("wf_1").failing_since, Timestamp::parse_rfc3339("2025-01-15T10:00:00Z"));
}

#[tokio::test]
async fn a_finished_run_after_a_failure_is_a_recovery_named_as_the_failure_was() {
    let f = fixture();
    f.apply(&failed("2025-01-15T10:00:00Z")).await.unwrap();
    assert_eq!(f.outcome(&finished("2025-01-15T10:30:00Z")).await, Outcome::Alerted);
    let subjects = f.publisher.subjects();
    assert!(subjects[1].contains("Shop"), "{subjects:?}");
    let health = f.store.health("wf_1");
    assert_eq!((health.state, health.failing_since), (Some(WorkflowState::Healthy), None));
    assert_eq!(f.outcome(&finished("2025-01-15T11:00:00Z")).await, Outcome::Stored, "news for nobody");
}

#[tokio::test]
async fn an_older_event_is_stale_and_changes_nothing() {
    let f = fixture();
    f.apply(&failed("2025-01-15T10:00:00Z")).await.unwrap();
    let applied = f.apply(&finished("2025-01-15T09:00:00Z")).await.unwrap();
    assert_eq!((applied.outcome, applied.stale), (Outcome::Suppressed, true));
    assert_eq!(f.store.health("wf_1").state, Some(WorkflowState::Failing));
    assert_eq!(f.statuses().iter().filter(|s| *s == "stale").count(), 1);
    assert_eq!(f.store.calls().iter().filter(|c| **c == "commit_health").count(), 1, "only the first committed");
}

#[tokio::test]
async fn a_failure_wins_a_tie_with_a_finished_run_and_not_the_other_way_round() {
    let f = fixture();
    f.apply(&finished("2025-01-15T10:00:00Z")).await.unwrap();
    assert_eq!(f.outcome(&failed("2025-01-15T10:00:00Z")).await, Outcome::Alerted);
    let applied = f.apply(&finished("2025-01-15T10:00:00Z")).await.unwrap();
    assert!(applied.stale, "{applied:?}");
    assert_eq!(f.store.health("wf_1").state, Some(WorkflowState::Failing));
}

#[tokio::test]
async fn a_newer_event_while_another_delivery_holds_the_claim_is_a_503() {
    let f = fixture();
    f.store.hold_claim("wf_1", false);
    let error = f.apply(&failed("2025-01-15T10:00:00Z")).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(error.detail().contains("being applied by another delivery"), "{}", error.detail());
    assert!(f.publisher.subjects().is_empty());
    assert!(f.statuses().is_empty(), "nothing recorded");
}

#[tokio::test]
async fn a_claim_whose_lease_ran_out_is_taken_over() {
    let f = fixture();
    f.store.hold_claim("wf_1", true);
    assert_eq!(f.outcome(&failed("2025-01-15T10:00:00Z")).await, Outcome::Alerted);
    assert!(!f.store.claimed("wf_1"));
}

#[tokio::test]
async fn a_failed_publish_releases_the_claim_and_the_retry_alerts() {
    let f = fixture();
    f.publisher.failures.store(1, Ordering::SeqCst);
    assert!(f.apply(&failed("2025-01-15T10:00:00Z")).await.unwrap_err().is_transient());
    assert_eq!(f.store.calls(), ["claim_health", "release_health"]);
    assert!(!f.store.claimed("wf_1"), "released: the retry need not wait for the lease");
    assert_eq!(f.store.health("wf_1").state, None, "the health did not move");
    assert!(f.statuses().is_empty());
    assert_eq!(f.outcome(&failed("2025-01-15T10:00:00Z")).await, Outcome::Alerted);
    assert_eq!(f.publisher.subjects().len(), 1);
}

#[tokio::test]
async fn a_commit_after_a_publish_is_tried_again() {
    let f = fixture();
    f.store.fail("commit_health", 1);
    assert_eq!(f.outcome(&failed("2025-01-15T10:00:00Z")).await, Outcome::Alerted);
    assert_eq!(f.store.calls(), ["claim_health", "commit_health", "commit_health"]);
    assert_eq!(f.store.health("wf_1").state, Some(WorkflowState::Failing));
}

#[tokio::test]
async fn when_every_commit_after_a_publish_fails_the_alert_is_answered_and_recorded() {
    let f = fixture();
    f.store.fail("commit_health", COMMIT_TRIES);
    let applied = f.apply(&failed("2025-01-15T10:00:00Z")).await.unwrap();
    assert_eq!(applied.outcome, Outcome::Alerted, "a 503 would tell people twice");
    assert!(applied.alerted_at.is_some());
    assert_eq!(f.store.calls().last(), Some(&"record_alert"));
    assert_eq!(f.statuses(), ["alerted"], "the record, on its own");
    assert!(f.store.claimed("wf_1"), "not released: the lease keeps a retry from alerting at once");
    f.store.fail("commit_health", COMMIT_TRIES);
    f.store.fail("record_alert", 1);
    let applied = fixture_retry(&f).await;
    assert_eq!(applied.outcome, Outcome::Alerted, "even with the record lost");
}

/// Another workflow's failure, on `f` (whose `wf_1` claim is still held).
async fn fixture_retry(f: &Fixture) -> Applied {
    let mut body = failed("2025-01-15T10:00:00Z");
    body["data"]["workflowId"] = json!("wf_2");
    f.apply(&body).await.unwrap()
}

#[tokio::test]
async fn a_failed_commit_without_an_alert_releases_and_answers_503() {
    let f = fixture();
    f.store.fail("commit_health", 1);
    assert!(f.apply(&finished("2025-01-15T10:00:00Z")).await.unwrap_err().is_transient());
    assert_eq!(f.store.calls(), ["claim_health", "commit_health", "release_health"], "tried once");
    assert!(!f.store.claimed("wf_1"));
    assert_eq!(f.outcome(&finished("2025-01-15T10:00:00Z")).await, Outcome::Stored);
}

#[tokio::test]
async fn a_failed_claim_tells_nobody() {
    let f = fixture();
    f.store.fail("claim_health", 1);
    assert!(f.apply(&failed("2025-01-15T10:00:00Z")).await.unwrap_err().is_transient());
    assert!(f.publisher.subjects().is_empty());
}

#[tokio::test]
async fn news_of_a_kind_turned_off_is_suppressed_but_moves_the_health() {
    let f = fixture_with(&["workflow_recovered"]);
    assert_eq!(f.outcome(&failed("2025-01-15T10:00:00Z")).await, Outcome::Suppressed);
    assert!(f.publisher.subjects().is_empty());
    assert_eq!(f.store.health("wf_1").state, Some(WorkflowState::Failing));
    assert_eq!(f.store.health("wf_1").last_alert_at, None);
    assert_eq!(f.statuses(), ["suppressed"]);
    assert_eq!(f.outcome(&finished("2025-01-15T10:30:00Z")).await, Outcome::Alerted, "recoveries still alert");
}

#[tokio::test]
async fn a_health_event_far_in_the_future_is_refused_before_any_claim() {
    let f = fixture();
    let ahead = Timestamp::now().plus_millis(FUTURE_ALLOWANCE.as_millis() as i64 + 60_000).unwrap();
    let error = f.apply(&failed(&ahead.to_key_string())).await.unwrap_err();
    assert_eq!(error.status(), 400);
    assert!(f.store.calls().is_empty());
}

fn change(id: &str, differences: usize) -> Value {
    let differences: Vec<Value> = (0..differences)
        .map(|i| json!({"type": "added", "fields": [{"key": format!("k{i}"), "value": "x".repeat(300)}]}))
        .collect();
    json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:00Z",
           "data": {"id": id, "workflowId": "wf_1", "differences": differences}})
}

#[tokio::test]
async fn a_change_is_stored_once() {
    let f = fixture();
    let applied = f.apply(&change("c1", 2)).await.unwrap();
    assert_eq!((applied.outcome, applied.differences), (Outcome::Stored, 2));
    assert_eq!(f.outcome(&change("c1", 2)).await, Outcome::Duplicate);
    assert_eq!(f.store.items_of(crate::table::ENTITY_CHANGE).len(), 1);
    assert!(f.publisher.subjects().is_empty());
}

#[tokio::test]
async fn a_large_change_is_written_in_parts_and_once() {
    let f = fixture();
    assert_eq!(f.outcome(&change("big", 3000)).await, Outcome::Stored);
    let parts = f.store.items().len() - 1;
    assert!(parts > 1, "{parts} parts");
    assert_eq!(f.outcome(&change("big", 3000)).await, Outcome::Duplicate);
    assert_eq!(f.store.items().len(), parts + 1);
}

#[tokio::test]
async fn a_change_the_store_cannot_take_is_a_503() {
    let f = fixture();
    f.store.fail("write_change", 1);
    assert!(f.apply(&change("c1", 1)).await.unwrap_err().is_transient());
    assert_eq!(f.outcome(&change("c1", 1)).await, Outcome::Stored);
}

#[tokio::test]
async fn a_notice_that_does_not_alert_is_logged_once() {
    let f = fixture();
    let maintenance = json!({"eventType": "system_maintenance", "timestamp": "2025-01-15T08:00:00Z",
                             "data": {"message": "maintenance"}});
    assert_eq!(f.outcome(&maintenance).await, Outcome::Stored);
    assert_eq!(f.outcome(&maintenance).await, Outcome::Duplicate);
    let unknown = json!({"eventType": "something_new", "timestamp": "2025-01-15T08:00:00Z", "data": {}});
    assert_eq!(f.outcome(&unknown).await, Outcome::Accepted);
    assert_eq!(f.outcome(&unknown).await, Outcome::Accepted);
    assert_eq!(f.statuses().len(), 2);
    assert!(f.publisher.subjects().is_empty());
}

#[tokio::test]
async fn an_alerting_notice_is_told_once() {
    let f = fixture();
    assert_eq!(f.outcome(&credits_low("2025-01-15T09:00:00Z")).await, Outcome::Alerted);
    assert_eq!(f.outcome(&credits_low("2025-01-15T09:00:00Z")).await, Outcome::Duplicate);
    assert_eq!(f.publisher.subjects().len(), 1);
    assert_eq!(f.statuses(), ["alerted"]);
    assert_eq!(f.store.calls(), ["claim_event", "commit_event", "claim_event"]);
}

#[tokio::test]
async fn a_notice_whose_publish_fails_is_released_and_told_on_the_retry() {
    let f = fixture();
    f.publisher.failures.store(1, Ordering::SeqCst);
    assert!(f.apply(&credits_low("2025-01-15T09:00:00Z")).await.unwrap_err().is_transient());
    assert!(f.store.items().is_empty(), "the claim was released");
    assert_eq!(f.outcome(&credits_low("2025-01-15T09:00:00Z")).await, Outcome::Alerted);
    assert_eq!(f.publisher.subjects().len(), 1);
}

#[tokio::test]
async fn a_notice_another_delivery_is_alerting_is_a_503_until_its_lease_runs_out() {
    let f = fixture();
    let body = credits_low("2025-01-15T09:00:00Z");
    let text = body.to_string();
    let envelope = Envelope::parse(text.as_bytes(), None).unwrap();
    let receipt = Receipt::new(Timestamp::now(), 0, Arrival::Webhook);
    let (pk, sk) = EventRecord::with_payload(&envelope, None, receipt, EventStatus::Alerted).key();
    f.store.hold_event_claim(&pk, &sk, false);
    let error = f.apply(&body).await.unwrap_err();
    assert!(error.detail().contains("being alerted by another delivery"), "{}", error.detail());
    f.store.hold_event_claim(&pk, &sk, true);
    assert_eq!(f.outcome(&body).await, Outcome::Alerted);
}

#[tokio::test]
async fn a_notice_told_but_not_recorded_is_still_answered_alerted() {
    let f = fixture();
    f.store.fail("commit_event", 1);
    assert_eq!(f.outcome(&credits_low("2025-01-15T09:00:00Z")).await, Outcome::Alerted);
    assert_eq!(f.publisher.subjects().len(), 1);
}

// Alert rules on data changes: told once per change, whatever path stored it.

/// "price below 20", for every workflow, by email.
fn price_below_20() -> crate::rules::Rule {
    serde_json::from_value(json!({"name": "cheap", "field": "price", "difference": "changed",
        "condition": {"is": "below", "than": "20"}, "notify": "email"}))
    .unwrap()
}

fn price_change(id: &str, previous: &str, value: &str) -> Value {
    json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:00Z",
           "data": {"id": id, "workflowId": "wf_1", "url": "https://shop.example/p/1",
                    "metadata": {"workflowName": "Product Monitor"},
                    "differences": [{"type": "changed", "fields": [
                        {"key": "price", "previousValue": previous.parse::<Value>().unwrap(),
                         "value": value.parse::<Value>().unwrap()}]}]}})
}

fn fixture_with_rule() -> Fixture {
    let f = fixture();
    f.store.set_rules(vec![price_below_20()]);
    f
}

impl Fixture {
    async fn apply_as(&self, body: &Value, arrival: Arrival) -> Result<Applied, Error> {
        let body = body.to_string();
        let delivery = Delivery::parse(body.as_bytes(), None)?;
        let delivered = self.deliveries.fetch_add(1, Ordering::SeqCst);
        let received_at = Timestamp::now().plus_millis(i64::from(delivered) - 1000).unwrap();
        self.receiver.apply(&delivery, received_at, arrival).await
    }

    fn alert_records(&self) -> Vec<Item> {
        self.store.items_of(crate::table::ENTITY_CHANGE_ALERT)
    }
}

#[tokio::test]
async fn a_change_that_meets_a_rule_is_stored_and_told_once() {
    let f = fixture_with_rule();
    let applied = f.apply(&price_change("c1", "24.99", "19.99")).await.unwrap();
    assert_eq!((applied.outcome, applied.differences), (Outcome::Alerted, 1));
    assert!(applied.alerted_at.is_some());
    assert_eq!(f.publisher.subjects(), ["Product Monitor: price 24.99 -> 19.99 (below 20)"]);
    let change = &f.store.items_of(crate::table::ENTITY_CHANGE)[0];
    assert_eq!(change.get("matched"), Some(&Attr::n(1)), "the change says its alert is due");
    let records = f.alert_records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].get("subject"), Some(&Attr::s("Product Monitor: price 24.99 -> 19.99 (below 20)")));
    assert_eq!(records[0].get("status"), Some(&Attr::s("sent")));

    for arrival in [Arrival::Webhook, Arrival::Replay, Arrival::Reconcile] {
        let again = f.apply_as(&price_change("c1", "24.99", "19.99"), arrival).await.unwrap();
        assert_eq!((again.outcome, again.alerted_at), (Outcome::Duplicate, None), "{arrival:?}");
    }
    assert_eq!(f.publisher.subjects().len(), 1, "told once");
}

#[tokio::test]
async fn a_change_that_meets_no_rule_costs_one_write_and_reads_the_rules_once_a_minute() {
    let f = fixture_with_rule();
    assert_eq!(f.outcome(&price_change("c1", "24.99", "21")).await, Outcome::Stored);
    assert_eq!(f.outcome(&price_change("c2", "21", "22")).await, Outcome::Stored);
    assert_eq!(f.store.calls(), ["load_rules", "write_change", "write_change"]);
    let change = &f.store.items_of(crate::table::ENTITY_CHANGE)[0];
    assert_eq!(change.get("matched"), None);
    assert!(f.publisher.subjects().is_empty() && f.alert_records().is_empty());
}

#[tokio::test]
async fn a_failed_publish_leaves_the_alert_due_and_a_later_path_tells_it_once() {
    let f = fixture_with_rule();
    f.publisher.failures.store(2, Ordering::SeqCst);
    let body = price_change("c1", "24.99", "19.99");
    assert!(f.apply(&body).await.unwrap_err().is_transient(), "503: Kadoa tries again");
    assert_eq!(f.store.items_of(crate::table::ENTITY_CHANGE).len(), 1, "the change is stored all the same");
    assert!(f.store.items_of(crate::table::ENTITY_CLAIM).is_empty(), "the claim was released");
    assert!(f.apply_as(&body, Arrival::Webhook).await.unwrap_err().is_transient());
    // Kadoa gave up; reconciliation finds the change stored and its alert due.
    let late = f.apply_as(&body, Arrival::Reconcile).await.unwrap();
    assert_eq!(late.outcome, Outcome::Alerted);
    let sent = f.publisher.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].email.contains("Late:"), "{}", sent[0].email);
    assert_eq!(f.outcome(&body).await, Outcome::Duplicate);
    assert_eq!(f.publisher.subjects().len(), 1);
}

#[tokio::test]
async fn a_change_another_delivery_is_alerting_is_a_503_until_its_lease_runs_out() {
    let f = fixture_with_rule();
    let (pk, sk) = ("WORKFLOW#wf_1", "CHANGE#c1#ALERT");
    f.store.hold_event_claim(pk, sk, false);
    let error = f.apply(&price_change("c1", "24.99", "19.99")).await.unwrap_err();
    assert!(error.detail().contains("being alerted by another delivery"), "{}", error.detail());
    assert_eq!(f.store.items_of(crate::table::ENTITY_CHANGE).len(), 1, "stored, and due");
    f.store.hold_event_claim(pk, sk, true);
    assert_eq!(f.outcome(&price_change("c1", "24.99", "19.99")).await, Outcome::Alerted);
    assert_eq!(f.publisher.subjects().len(), 1);
}

#[tokio::test]
async fn a_record_that_fails_after_the_publish_still_answers_alerted_and_the_claim_guards_the_retry() {
    let f = fixture_with_rule();
    f.store.fail("commit_event", 1);
    assert_eq!(f.outcome(&price_change("c1", "24.99", "19.99")).await, Outcome::Alerted);
    let retry = f.apply(&price_change("c1", "24.99", "19.99")).await;
    assert!(retry.unwrap_err().is_transient(), "the unexpired claim holds the retry off");
    assert_eq!(f.publisher.subjects().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_change_stored_before_a_rule_existed_is_not_told_by_a_resend() {
    let f = fixture();
    assert_eq!(f.outcome(&price_change("c1", "24.99", "19.99")).await, Outcome::Stored);
    f.store.set_rules(vec![price_below_20()]);
    tokio::time::advance(crate::rules::cache::REFRESH).await;
    assert_eq!(f.outcome(&price_change("c1", "24.99", "19.99")).await, Outcome::Duplicate);
    assert!(f.publisher.subjects().is_empty());
    assert_eq!(f.outcome(&price_change("c2", "24.99", "19.99")).await, Outcome::Alerted, "a new change is");
}

#[tokio::test]
async fn an_unreadable_rule_table_is_a_503_before_anything_is_written() {
    let f = fixture_with_rule();
    f.store.fail("load_rules", 1);
    assert!(f.apply(&price_change("c1", "24.99", "19.99")).await.unwrap_err().is_transient());
    assert!(f.store.items().is_empty());
    assert_eq!(f.outcome(&price_change("c1", "24.99", "19.99")).await, Outcome::Alerted);
}

#[tokio::test]
async fn concurrent_deliveries_of_a_matching_change_tell_it_once() {
    let f = Arc::new(fixture_with_rule());
    let body = price_change("c1", "24.99", "19.99");
    let tries = (0..8).map(|_| {
        let (f, body) = (f.clone(), body.clone());
        tokio::spawn(async move { f.apply(&body).await })
    });
    let answers = futures::future::join_all(tries).await;
    let alerted = answers.iter().filter(|answer| matches!(answer, Ok(Ok(a)) if a.outcome == Outcome::Alerted)).count();
    assert_eq!(alerted, 1);
    assert_eq!(f.publisher.subjects().len(), 1);
}
