//! The README's queries (Data model → Queries), run against what the receiver stored.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use crate::support::{fixture_body, n, s, Harness, Item};

fn text(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A workflow with a small and a large change, a failure, a finished run, and an account
/// event, delivered out of time order.
async fn stored() -> Harness {
    let harness = Harness::new().await;
    let change = |id: &str, at: &str, count: usize, bytes: usize| {
        let value = "x".repeat(bytes);
        let differences: Vec<_> = (0..count)
            .map(|i| json!({"type": "added", "fields": [{"key": "i", "value": i}, {"key": "t", "value": value}]}))
            .collect();
        json!({"eventType": "workflow_data_change", "timestamp": at,
               "data": {"id": id, "workflowId": "wf_123", "createdAt": at, "differences": differences}})
        .to_string()
    };
    let failed = json!({"eventType": "workflow_failed", "timestamp": "2025-01-15T11:00:00Z",
                        "data": {"workflowId": "wf_123", "reason": "blocked"}});
    for body in [
        change("change_late", "2025-01-15T12:00:00Z", 2, 10),
        change("change_123", "2025-01-15T10:30:00Z", 3, 10),
        change("change_large", "2025-01-14T09:00:00Z", 2000, 300),
        failed.to_string(),
        fixture_body("credits_low.json"),
    ] {
        assert_eq!(harness.deliver(&body).await.0, 200, "{body}");
    }
    harness
}

async fn query(
    harness: &Harness,
    index: Option<&str>,
    condition: &str,
    values: &[(&str, &str)],
    newest_first: bool,
) -> Vec<Item> {
    let mut request = harness
        .dynamodb
        .query()
        .table_name(&harness.table)
        .set_index_name(index.map(str::to_owned))
        .key_condition_expression(condition)
        .scan_index_forward(!newest_first);
    for (name, value) in values {
        request = request.expression_attribute_values(*name, text(value));
    }
    request.into_paginator().items().send().collect::<Result<Vec<_>, _>>().await.unwrap()
}

#[tokio::test]
async fn a_change_with_all_its_differences_in_one_request() {
    let harness = stored().await;
    let condition = "pk = :pk AND begins_with(sk, :change)";
    let items =
        query(&harness, None, condition, &[(":pk", "WORKFLOW#wf_123"), (":change", "CHANGE#change_123#")], false).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["differences"].as_l().unwrap().len(), 3);

    // A large change: the change item first, then its parts in order.
    let items =
        query(&harness, None, condition, &[(":pk", "WORKFLOW#wf_123"), (":change", "CHANGE#change_large#")], false)
            .await;
    assert_eq!(s(&items[0], "entity"), "change");
    let version = s(&items[0], "partVersion");
    let parts: Vec<&Item> =
        items[1..].iter().filter(|part| s(part, "sk").contains(&format!("#PART#{version}#"))).collect();
    assert_eq!(parts.len() as i64, n(&items[0], "partCount"));
    let indexes: Vec<i64> = parts
        .iter()
        .flat_map(|part| part["differences"].as_l().unwrap())
        .map(|d| d.as_m().unwrap()["index"].as_n().unwrap().parse().unwrap())
        .collect();
    assert_eq!(indexes, (0..2000).collect::<Vec<i64>>());
}

#[tokio::test]
async fn a_workflows_changes_in_a_time_range() {
    let harness = stored().await;
    let condition = "pk = :pk AND createdAt BETWEEN :from AND :to";
    let values =
        [(":pk", "WORKFLOW#wf_123"), (":from", "2025-01-15T00:00:00.000Z"), (":to", "2025-01-16T00:00:00.000Z")];
    let items = query(&harness, Some("changesByTime"), condition, &values, false).await;
    let ids: Vec<String> = items.iter().map(|item| s(item, "changeId")).collect();
    assert_eq!(ids, ["change_123", "change_late"], "in time order, the large change of the day before left out");
    assert_eq!(n(&items[0], "differenceCount"), 3);
    assert!(!items[0].contains_key("differences"), "the index holds summaries, not differences");
}

#[tokio::test]
async fn a_workflows_recent_events_newest_first_with_its_changes() {
    let harness = stored().await;
    let items = query(&harness, Some("eventsByTime"), "pk = :pk", &[(":pk", "WORKFLOW#wf_123")], true).await;
    let log: Vec<(String, String)> = items.iter().map(|item| (s(item, "eventType"), s(item, "timestamp"))).collect();
    let expected = [
        ("workflow_data_change", "2025-01-15T12:00:00.000Z"),
        ("workflow_failed", "2025-01-15T11:00:00.000Z"),
        ("workflow_data_change", "2025-01-15T10:30:00.000Z"),
        ("workflow_data_change", "2025-01-14T09:00:00.000Z"),
    ];
    assert_eq!(log, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert_eq!(s(&items[1], "status"), "alerted");
    assert_eq!(s(&items[0], "changeId"), "change_late");
}

#[tokio::test]
async fn the_account_events() {
    let harness = stored().await;
    let items = query(&harness, Some("eventsByTime"), "pk = :pk", &[(":pk", "ACCOUNT")], true).await;
    let types: Vec<String> = items.iter().map(|item| s(item, "eventType")).collect();
    assert_eq!(types, ["credits_low"]);
    assert_eq!(s(&items[0], "status"), "alerted");
}

#[tokio::test]
async fn every_workflows_changes_of_a_day_and_the_workflows_directory() {
    let harness = stored().await;
    let day = |bucket: &str| {
        harness
            .dynamodb
            .query()
            .table_name(&harness.table)
            .index_name("timeline")
            .key_condition_expression("#bucket = :day")
            .expression_attribute_names("#bucket", "bucket")
            .expression_attribute_values(":day", text(bucket))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
    };
    let items = day("CHANGE#2025-01-15").await.unwrap();
    let mut ids: Vec<String> = items.iter().map(|item| s(item, "changeId")).collect();
    ids.sort();
    assert_eq!(ids, ["change_123", "change_late"], "the day's changes, the day before's left out");
    assert!(!items[0].contains_key("differences"), "the index holds what a listing prints");
    let events: Vec<String> = day("EVENT#2025-01-15").await.unwrap().iter().map(|i| s(i, "eventType")).collect();
    assert!(events.contains(&"workflow_failed".to_owned()), "{events:?}");
    let health = day("HEALTH").await.unwrap();
    assert_eq!(health.iter().map(|i| s(i, "pk")).collect::<Vec<_>>(), ["WORKFLOW#wf_123"]);
}
