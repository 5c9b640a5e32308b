//! EventBridge events through the outbox: the table's stream (moto's) → the drain →
//! moto's EventBridge → a queue per rule.

use std::collections::BTreeMap;

use kadoa_webhook::kadoa_api::{ApiRetry, KadoaApi};
use kadoa_webhook::reconcile::Reconciler;
use serde_json::{json, Value};

use crate::support::kadoa::FakeKadoa;
use crate::support::template::{resource, template};
use crate::support::Harness;
use crate::template::{actions_called, policy};

fn change(id: &str, differences: usize, text_bytes: usize) -> String {
    let text = "x".repeat(text_bytes);
    let differences: Vec<Value> = (0..differences)
        .map(|i| json!({"type": "changed", "fields": [{"key": "price", "value": i, "previousValue": 1.50}, {"key": "t", "value": text}]}))
        .collect();
    json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": id, "workflowId": "wf_1", "url": "https://shop.example/p", "differences": differences}})
    .to_string()
}

fn health(event_type: &str, timestamp: &str) -> String {
    json!({"eventType": event_type, "timestamp": timestamp,
        "data": {"workflowId": "wf_2", "workflowName": "Shop", "reason": "blocked"}})
    .to_string()
}

fn detail_types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["detail-type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn every_detail_type_reaches_its_rule_once() {
    let harness = Harness::builder().event_bus().build().await;
    let sent = [
        (change("c1", 2, 0), "stored"),
        (change("c1", 2, 0), "duplicate"),
        (health("workflow_failed", "2025-01-15T10:00:00Z"), "alerted"),
        (health("workflow_failed", "2025-01-15T10:05:00Z"), "suppressed"),
        // Still failing after the repeat window: alerted again.
        (health("workflow_failed", "2025-01-15T11:30:00Z"), "alerted"),
        (health("workflow_recovered", "2025-01-15T12:00:00Z"), "alerted"),
        (health("workflow_finished", "2025-01-15T12:10:00Z"), "stored"),
        (json!({"eventType": "credits_low", "timestamp": "2025-01-15T12:00:00Z", "data": {"message": "10 left"}}).to_string(), "alerted"),
        (json!({"eventType": "workflow_started", "timestamp": "2025-01-15T12:00:00Z", "data": {"workflowId": "wf_2"}}).to_string(), "stored"),
    ];
    for (body, status) in &sent {
        assert_eq!(harness.deliver(body).await.1["status"], *status, "{body}");
    }
    assert_eq!(harness.drain_outbox().await.failures, []);
    let all = harness.bus_events("all").await;
    assert_eq!(
        detail_types(&all),
        [
            "Kadoa Data Change",
            "Kadoa Workflow Failed",
            "Kadoa Workflow Failed",
            "Kadoa Workflow Recovered",
            "Kadoa Account Notice"
        ],
        "{all:#?}"
    );
    assert!(all.iter().all(|e| e["source"] == "kadoa.webhook"));
    let change = &all[0]["detail"];
    assert_eq!((change["changeId"].as_str(), change["workflowId"].as_str()), (Some("c1"), Some("wf_1")));
    assert_eq!((change["url"].as_str(), change["arrival"].as_str()), (Some("https://shop.example/p"), Some("webhook")));
    assert_eq!((change["differenceCount"].clone(), change["differencesOmitted"].clone()), (json!(2), json!(false)));
    assert_eq!(change["fieldKeys"], json!(["price", "t"]));
    assert_eq!(
        change["differences"][1],
        json!({"index": 1, "type": "changed", "fields": [{"key": "price", "value": 1, "previousValue": 1.50}, {"key": "t", "value": ""}]})
    );
    assert_eq!(change["item"], json!({"pk": "WORKFLOW#wf_1", "sk": "CHANGE#c1#"}));
    assert_eq!(all[0]["time"], "2025-01-15T10:30:00Z", "the change's own time");
    let failed = &all[1]["detail"];
    assert_eq!(
        (failed["workflowId"].as_str(), failed["timestamp"].as_str()),
        (Some("wf_2"), Some("2025-01-15T10:00:00.000Z"))
    );
    assert_eq!(failed["data"]["reason"], "blocked");
    assert!(failed["alert"]["subject"].as_str().unwrap().contains("failed"), "{failed}");
    assert_eq!(all[4]["detail"]["eventType"], "credits_low");

    // The rules the README offers, as local_aws.py creates them.
    assert_eq!(detail_types(&harness.bus_events("price").await), ["Kadoa Data Change"]);
    assert_eq!(detail_types(&harness.bus_events("failures").await), ["Kadoa Workflow Failed"; 2]);

    // Nothing announced twice: retries change nothing on the stream that announces.
    for (body, _) in &sent {
        harness.deliver(body).await;
    }
    harness.drain_outbox().await;
    assert_eq!(harness.bus_events("all").await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_publish_that_fails_after_the_store_is_published_once_when_lambda_sends_it_again() {
    let harness = Harness::builder().events_through_proxy().build().await;
    assert_eq!(harness.deliver(&change("c1", 1, 0)).await.1["status"], "stored");
    assert_eq!(harness.deliver(&health("workflow_failed", "2025-01-15T10:00:00Z")).await.1["status"], "alerted");
    let stream = crate::support::resources::stream_event(&harness.outbox.as_ref().unwrap().stream_arn).await;
    let proxy = harness.proxy.clone().unwrap();
    proxy.set_up(false);
    let answer = harness.drain_records(stream.clone()).await;
    // Everything stored: the first announcing record is reported, so Lambda sends it (and
    // the ones after it) again.
    let first_announcing = stream["Records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dynamodb"]["NewImage"]["entity"]["S"] == "change")
        .unwrap()["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(answer.failures.len(), 1);
    assert_eq!(answer.failures[0].item_identifier, first_announcing);
    assert_eq!(harness.bus_events("all").await, Vec::<Value>::new());

    proxy.set_up(true);
    // Lambda's retry: the batch from the reported record on.
    let records: Vec<Value> = stream["Records"]
        .as_array()
        .unwrap()
        .iter()
        .skip_while(|r| r["dynamodb"]["SequenceNumber"] != first_announcing.as_str())
        .cloned()
        .collect();
    assert_eq!(harness.drain_records(json!({"Records": records})).await.failures, []);
    assert_eq!(detail_types(&harness.bus_events("all").await), ["Kadoa Data Change", "Kadoa Workflow Failed"]);
    // A drain of what came after publishes nothing again.
    harness.drain_outbox().await;
    assert_eq!(harness.bus_events("all").await, Vec::<Value>::new());
}

#[tokio::test]
async fn whichever_path_stored_a_change_it_is_announced_once() {
    let harness = Harness::builder().event_bus().through_proxy().spool().build().await;
    // The webhook stores c1.
    assert_eq!(harness.deliver(&change("c1", 1, 0)).await.1["status"], "stored");
    // The table down: c2 is spooled, then replayed.
    let proxy = harness.proxy.clone().unwrap();
    proxy.set_up(false);
    assert_eq!(harness.deliver(&change("c2", 1, 0)).await.0, 202);
    proxy.set_up(true);
    assert_eq!(harness.replay_all().await, 1);
    // Kadoa has c1 (stored), c2 (replayed) and c3, which never arrived.
    let fake = FakeKadoa::start("key").await;
    for id in ["c1", "c2", "c3"] {
        let data = serde_json::from_str::<Value>(&change(id, 1, 0)).unwrap()["data"].clone();
        let mut data = data.as_object().unwrap().clone();
        data.insert("createdAt".into(), json!("2025-01-15T10:30:00Z"));
        fake.put_change(Value::Object(data));
    }
    let api = KadoaApi::new(&fake.url, "key".into(), ApiRetry::default()).unwrap();
    let receiver = harness.receiver();
    let from = kadoa_webhook::timestamp::Timestamp::parse_rfc3339("2025-01-15T00:00:00Z").unwrap();
    let report =
        Reconciler::new(&api, &receiver, &harness.store, 0).run(from, from.plus_days(1).unwrap(), &|_| {}).await;
    assert_eq!((report.stored_now, report.already_stored), (1, 2), "{report}");
    // Again, every way: a retry, a replay of a spooled copy, a second reconciliation.
    harness.deliver(&change("c1", 1, 0)).await;
    let spooled = json!({"receivedAt": "2025-01-15T10:30:01.000Z", "body": change("c2", 1, 0)});
    let queue_url = &harness.spool.as_ref().unwrap().queue_url;
    harness.sqs.send_message().queue_url(queue_url).message_body(spooled.to_string()).send().await.unwrap();
    harness.replay_all().await;
    Reconciler::new(&api, &receiver, &harness.store, 0).run(from, from.plus_days(1).unwrap(), &|_| {}).await;

    assert_eq!(harness.drain_outbox().await.failures, []);
    let all = harness.bus_events("all").await;
    let arrivals: BTreeMap<&str, &str> = all
        .iter()
        .map(|e| (e["detail"]["changeId"].as_str().unwrap(), e["detail"]["arrival"].as_str().unwrap()))
        .collect();
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(arrivals, BTreeMap::from([("c1", "webhook"), ("c2", "replay"), ("c3", "reconcile")]));
}

#[tokio::test]
async fn a_change_over_256_kb_is_announced_by_its_count_and_key() {
    let harness = Harness::builder().event_bus().build().await;
    // ~330 KB: one item, too large for an event; ~660 KB: stored in parts.
    assert_eq!(harness.deliver(&change("one-item", 1000, 300)).await.1["status"], "stored");
    assert_eq!(harness.deliver(&change("in-parts", 2000, 300)).await.1["status"], "stored");
    assert_eq!(harness.drain_outbox().await.failures, []);
    let all = harness.bus_events("all").await;
    assert_eq!(all.len(), 2);
    for (event, (id, count)) in all.iter().zip([("one-item", 1000), ("in-parts", 2000)]) {
        let detail = &event["detail"];
        assert_eq!((detail["changeId"].as_str(), detail["differenceCount"].as_u64()), (Some(id), Some(count)));
        assert_eq!((detail["differencesOmitted"].clone(), detail.get("differences")), (json!(true), None));
        assert_eq!(detail["item"]["sk"], format!("CHANGE#{id}#"));
        assert!(detail.to_string().len() < 256 * 1024);
    }
    assert_eq!(all[0]["detail"]["fieldKeys"], json!(["price", "t"]), "still matched by the price rule");
    assert_eq!(harness.bus_events("price").await.len(), 1, "a change in parts has no field keys on its item");
}

#[tokio::test]
async fn the_outbox_may_only_put_events_on_its_bus() {
    let harness = Harness::builder().event_bus().build().await;
    harness.deliver(&change("c1", 1, 0)).await;
    harness.calls.reset();
    harness.drain_outbox().await;
    let mut needs = actions_called(&harness);
    // Lambda's stream trigger reads the stream, sends what it gives up on to the
    // dead-letter queue, and writes the logs, with the function's role.
    needs.extend(
        [
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
            "sqs:SendMessage",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ]
        .map(str::to_owned),
    );
    let (granted, resources) = policy("OutboxFunction");
    assert_eq!(granted, needs, "OutboxFunction's policy vs. what the drain called");
    let bus = json!({"Fn::If": ["CreateEventBus", {"Fn::GetAtt": ["EventBus", "Arn"]},
        {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}]});
    assert!(resources.contains(&bus), "PutEvents on this stack's bus only: {resources:?}");
    assert!(resources.contains(&json!({"Fn::Sub": "${EventsTable.Arn}/stream/*"})));
    assert_eq!(resource("OutboxFunction")["Properties"]["Environment"]["Variables"]["EVENT_BUS"], bus);
    for function in ["WebhookFunction", "ReplayFunction", "ReconcileFunction"] {
        assert!(!policy(function).0.iter().any(|a| a.starts_with("events:")), "{function} publishes nothing itself");
    }
}

#[test]
fn without_a_bus_name_there_is_no_bus_no_stream_and_no_outbox() {
    assert_eq!(template()["Parameters"]["EventBusName"]["Default"], "");
    assert_eq!(
        template()["Conditions"]["HasEventBus"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "EventBusName"}, ""]}]})
    );
    assert_eq!(
        template()["Conditions"]["CreateEventBus"],
        json!({"Fn::And": [{"Condition": "HasEventBus"}, {"Fn::Not": [{"Fn::Equals": [{"Ref": "EventBusName"}, "default"]}]}]})
    );
    assert_eq!(resource("EventBus")["Condition"], "CreateEventBus", "`default` is the account's own bus");
    for name in [
        "OutboxFunction",
        "OutboxRole",
        "OutboxLogGroup",
        "OutboxDeadLetterQueue",
        "OutboxDeadLettersAlarm",
        "OutboxLateAlarm",
    ] {
        assert_eq!(resource(name)["Condition"], "HasEventBus", "{name}");
    }
    let stream = &resource("EventsTable")["Properties"]["StreamSpecification"]["Fn::If"];
    assert_eq!((stream[0].as_str(), &stream[2]), (Some("HasEventBus"), &json!({"Ref": "AWS::NoValue"})));
    assert_eq!(stream[1]["StreamViewType"], "NEW_AND_OLD_IMAGES", "the drain tells a new alert from an old one");
    let trigger = &resource("OutboxFunction")["Properties"]["Events"]["TableStream"]["Properties"];
    assert_eq!(trigger["FunctionResponseTypes"], json!(["ReportBatchItemFailures"]));
    assert_eq!(trigger["Stream"], json!({"Fn::GetAtt": ["EventsTable", "StreamArn"]}));
    assert_eq!(resource("OutboxFunction")["Properties"]["Handler"], "outbox");
}

#[test]
fn a_record_the_outbox_cannot_publish_alarms_long_before_it_is_dead_lettered() {
    let late = &resource("OutboxLateAlarm")["Properties"];
    assert_eq!(
        (&late["Namespace"], &late["MetricName"], &late["Statistic"]),
        (&json!("AWS/Lambda"), &json!("IteratorAge"), &json!("Maximum"))
    );
    assert_eq!(late["Dimensions"], json!([{"Name": "FunctionName", "Value": {"Ref": "OutboxFunction"}}]));
    assert_eq!(late["TreatMissingData"], "notBreaching", "an idle stream invokes nothing");
    let alarm_after_ms = late["Threshold"].as_u64().unwrap()
        + late["Period"].as_u64().unwrap() * 1000 * late["EvaluationPeriods"].as_u64().unwrap();
    let trigger = &resource("OutboxFunction")["Properties"]["Events"]["TableStream"]["Properties"];
    let dead_lettered_after_ms = trigger["MaximumRecordAgeInSeconds"].as_u64().unwrap() * 1000;
    assert!(alarm_after_ms <= 20 * 60 * 1000, "people hear of a stuck shard within 20 minutes: {alarm_after_ms} ms");
    assert!(alarm_after_ms < dead_lettered_after_ms / 10);
}

/// One malformed record fails itself, not the batch: the records before it are published,
/// it is reported (Lambda sends it and those after it again); one without a sequence
/// number cannot be reported, so it is skipped and counted, and the batch goes on.
#[tokio::test]
async fn a_malformed_record_is_reported_alone_and_one_without_a_position_is_skipped() {
    let harness = Harness::builder().event_bus().build().await;
    let change = |id: &str| {
        format!(
            r#"{{"pk": {{"S": "WORKFLOW#wf"}}, "sk": {{"S": "CHANGE#{id}#"}}, "entity": {{"S": "change"}},
            "changeId": {{"S": "{id}"}}, "workflowId": {{"S": "wf"}}, "createdAt": {{"S": "2025-01-15T10:30:00.000Z"}}}}"#
        )
    };
    let record = |image: String, sequence: Option<&str>| {
        let position = sequence.map(|s| format!(r#", "SequenceNumber": "{s}""#)).unwrap_or_default();
        format!(
            r#"{{"eventName": "INSERT", "eventID": "e", "awsRegion": "us-east-1",
            "dynamodb": {{"SizeBytes": 100, "NewImage": {image}{position}}}}}"#
        )
    };
    let batch = [
        record(change("c1"), Some("100")),
        record("\"not a map\"".to_owned(), None),
        record(change("c2"), None),
        record(change("c3").replace("\"c3\"}", "\"c3\\ud800\"}"), Some("400")),
        record(change("c5"), Some("500")),
    ];
    let answer = harness.drain_text(&format!(r#"{{"Records": [{}]}}"#, batch.join(","))).await;
    assert_eq!(answer.failures.iter().map(|f| f.item_identifier.as_str()).collect::<Vec<_>>(), ["400"]);
    let published: Vec<Value> =
        harness.bus_events("all").await.into_iter().map(|e| e["detail"]["changeId"].clone()).collect();
    assert_eq!(published, [json!("c1"), json!("c2")], "before the reported record; none after it");
}
