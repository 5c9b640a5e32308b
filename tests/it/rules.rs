//! Alert rules on data changes, end to end against moto: one message per change through
//! retries, concurrent deliveries and a change in parts; the topic's filter policies send
//! it where the rule says; `kadoa rules` and `kadoa changes show`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::support::moto::moto;
use crate::support::template::template;
use crate::support::{s, sdk_config, Harness};
use kadoa_webhook::alerts::{AlertMessage, Publisher, SnsPublisher};
use kadoa_webhook::outcome::Arrival;
use kadoa_webhook::receiver::Delivery;
use kadoa_webhook::rules::{Notify, Rule};
use kadoa_webhook::timestamp::Timestamp;

fn rule(definition: Value) -> Rule {
    serde_json::from_value(definition).unwrap()
}

/// "price below 20" on every workflow, by `notify`.
fn price_below_20(notify: &str) -> Rule {
    rule(json!({"name": "cheap", "field": "price", "difference": "changed",
        "condition": {"is": "below", "than": "20"}, "notify": notify}))
}

/// A change of `wf_123` whose rows' prices went from 24.99 to `prices`.
fn price_change(id: &str, prices: &[&str]) -> String {
    let differences: Vec<Value> = prices
        .iter()
        .enumerate()
        .map(|(row, price)| {
            json!({"type": "changed", "fields": [
            {"key": "sku", "value": format!("sku-{row}")},
            {"key": "price", "previousValue": 24.99, "value": price.parse::<Value>().unwrap()}]})
        })
        .collect();
    // An hour ago: `kadoa rules test` replays the last days.
    let at = Timestamp::now().plus_millis(-3_600_000).unwrap().to_key_string();
    json!({"eventType": "workflow_data_change", "timestamp": at,
        "data": {"id": id, "workflowId": "wf_123", "url": "https://shop.example/p/1", "createdAt": at,
                 "metadata": {"workflowName": "Product Monitor"}, "differences": differences}})
    .to_string()
}

#[tokio::test]
async fn a_change_that_meets_a_rule_is_told_once_with_its_channels_and_recorded_beside_it() {
    let harness = Harness::builder().change_rules(vec![price_below_20("both")]).build().await;
    let body = price_change("c1", &["19.99"]);
    assert_eq!(harness.deliver_times(&body, 3).await, ["alerted", "duplicate", "duplicate"]);

    let alerts = harness.alerts().await;
    assert_eq!(alerts.len(), 1, "told once");
    assert_eq!(alerts[0]["Subject"], "Product Monitor: price 24.99 -> 19.99 (below 20)");
    assert_eq!(alerts[0]["MessageAttributes"]["eventType"]["Value"], "change_matched");
    assert_eq!(
        alerts[0]["MessageAttributes"]["notify"],
        json!({"Type": "String.Array", "Value": "[\"email\",\"sms\"]"})
    );
    let text = alerts[0]["Message"].as_str().unwrap();
    assert!(text.contains("  - price 24.99 → 19.99 (below 20)  [rule cheap, row 1]"), "{text}");

    let change = &harness.items_of("change").await[0];
    assert_eq!(crate::support::n(change, "matched"), 1);
    let records = harness.items_of("changeAlert").await;
    assert_eq!(records.len(), 1);
    assert_eq!(s(&records[0], "sk"), "CHANGE#c1#ALERT");
    assert_eq!(s(&records[0], "subject"), "Product Monitor: price 24.99 -> 19.99 (below 20)");
    assert_eq!(s(&records[0], "notify"), "both");
    assert!(harness.items_of("claim").await.is_empty(), "the claim became the record");
}

#[tokio::test]
async fn a_change_that_meets_no_rule_writes_what_it_did_before_rules() {
    let harness = Harness::builder().change_rules(vec![price_below_20("email")]).build().await;
    assert_eq!(harness.deliver_times(&price_change("c1", &["21"]), 1).await, ["stored"]);
    // One PutItem (the change) and no read: the rules were read at start-up.
    let sent = harness.sent.take();
    let operations: Vec<&str> = sent.iter().map(|(operation, _)| operation.as_str()).collect();
    assert_eq!(operations, ["PutItem"]);
    assert!(harness.alerts().await.is_empty());
}

#[tokio::test]
async fn concurrent_deliveries_of_a_matching_change_tell_it_once() {
    let harness = Arc::new(Harness::builder().change_rules(vec![price_below_20("email")]).build().await);
    let body = price_change("c1", &["19.99"]);
    let deliveries = (0..6).map(|_| {
        let (harness, body) = (harness.clone(), body.clone());
        tokio::spawn(async move { harness.deliver(&body).await })
    });
    let answers: Vec<(u16, Value)> =
        futures::future::join_all(deliveries).await.into_iter().map(Result::unwrap).collect();
    let alerted = answers.iter().filter(|(_, answer)| answer["status"] == "alerted").count();
    assert_eq!(alerted, 1, "{answers:?}");
    for (status, answer) in &answers {
        // Another delivery alerting it: 503 or spooled (Kadoa or the replay tries again).
        assert!(matches!(status, 200 | 202 | 503), "{status} {answer}");
    }
    // Kadoa's retries of the ones that were turned away.
    assert!(harness.deliver_times(&body, 2).await.iter().all(|status| status == "duplicate"));
    assert_eq!(harness.alerts().await.len(), 1);
}

#[tokio::test]
async fn a_change_in_parts_with_many_matches_is_one_message_with_a_count() {
    let harness = Harness::builder().change_rules(vec![price_below_20("email")]).build().await;
    let prices: Vec<String> = (0..3000).map(|row| if row % 6 == 0 { "10".into() } else { "21".into() }).collect();
    let prices: Vec<&str> = prices.iter().map(String::as_str).collect();
    let mut body: Value = serde_json::from_str(&price_change("big", &prices)).unwrap();
    // Long values, so that the change needs parts.
    for difference in body["data"]["differences"].as_array_mut().unwrap() {
        difference["fields"][0]["value"] = json!("s".repeat(200));
    }
    let body = body.to_string();
    assert_eq!(harness.deliver_times(&body, 2).await, ["alerted", "duplicate"]);
    let change = &harness.items_of("change").await[0];
    assert!(change.contains_key("partVersion"), "stored in parts");
    let alerts = harness.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["Subject"], "Product Monitor: price 24.99 -> 10 (below 20) +499 more");
    assert!(alerts[0]["Message"].as_str().unwrap().contains("  ... and 480 more."));
}

#[tokio::test]
async fn an_alert_the_topic_refused_is_sent_by_reconciliation_once() {
    let harness = Harness::builder().sns_through_proxy().change_rules(vec![price_below_20("email")]).build().await;
    let proxy = harness.proxy.clone().unwrap();
    proxy.set_up(false);
    let body = price_change("c1", &["19.99"]);
    let (status, _) = harness.deliver(&body).await;
    assert_eq!(status, 503, "SNS is down: Kadoa is asked to try again");
    assert_eq!(harness.items_of("change").await.len(), 1, "the change is stored all the same");
    proxy.set_up(true);
    // Kadoa gave up; reconciliation finds the change in Kadoa's API.
    let delivery = Delivery::parse(body.as_bytes(), None).unwrap();
    let receiver = harness.receiver();
    let applied = receiver.apply(&delivery, Timestamp::now(), Arrival::Reconcile).await.unwrap();
    assert!(applied.alerted_at.is_some());
    let again = receiver.apply(&delivery, Timestamp::now(), Arrival::Reconcile).await.unwrap();
    assert_eq!(again.alerted_at, None);
    let alerts = harness.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0]["Message"].as_str().unwrap().contains("Late:"));
}

/// What each of the template's two subscriptions receives of `messages`, with SMS for
/// failures only (`filter_sms`) or not.
async fn routed(filter_sms: bool, messages: &[AlertMessage]) -> (Vec<String>, Vec<String>) {
    let config = sdk_config(&moto().endpoint).await;
    let (sns, sqs) = (aws_sdk_sns::Client::new(&config), aws_sdk_sqs::Client::new(&config));
    let id = format!("{}-{filter_sms}", std::process::id());
    let topic = sns.create_topic().name(format!("route-{id}")).send().await.unwrap().topic_arn.unwrap();
    let resources = &template()["Resources"];
    let email_policy = resources["AlertEmailSubscription"]["Properties"]["FilterPolicy"].clone();
    let sms_policy = &resources["AlertSmsSubscription"]["Properties"]["FilterPolicy"]["Fn::If"];
    assert_eq!(sms_policy[0], "FilterSms");
    let sms_policy = sms_policy[if filter_sms { 1 } else { 2 }].clone();
    let mut queues = Vec::new();
    for (name, policy) in [("email", email_policy), ("sms", sms_policy)] {
        let url = sqs.create_queue().queue_name(format!("{name}-{id}")).send().await.unwrap().queue_url.unwrap();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let arn = attributes.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("FilterPolicy", policy.to_string())
            .attributes("RawMessageDelivery", "false")
            .send()
            .await
            .unwrap();
        queues.push(url);
    }
    let publisher = SnsPublisher::new(sns.clone(), topic.clone());
    for message in messages {
        publisher.publish(message).await.unwrap();
    }
    // A CloudWatch alarm's message: no attributes at all.
    sns.publish().topic_arn(&topic).subject("alarm").message("ALARM").send().await.unwrap();
    let mut received = Vec::new();
    for url in queues {
        let output = sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
        let mut subjects: Vec<String> = output
            .messages()
            .iter()
            .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["Subject"].as_str().unwrap().to_owned())
            .collect();
        subjects.sort();
        received.push(subjects);
    }
    (received.remove(0), received.remove(0))
}

fn message(subject: &str, event_type: &str, notify: Notify) -> AlertMessage {
    AlertMessage {
        subject: subject.into(),
        email: "text".into(),
        sms: "sms".into(),
        event_type: event_type.into(),
        workflow_id: None,
        notify,
    }
}

#[tokio::test]
async fn the_subscriptions_filter_policies_send_each_alert_where_it_says() {
    let messages = [
        message("failed", "workflow_failed", Notify::Both),
        message("recovered", "workflow_recovered", Notify::Both),
        message("rule email", "change_matched", Notify::Email),
        message("rule sms", "change_matched", Notify::Sms),
        message("rule both", "change_matched", Notify::Both),
    ];
    let (email, sms) = routed(true, &messages).await;
    assert_eq!(email, ["alarm", "failed", "recovered", "rule both", "rule email"], "alarms reach e-mail as before");
    assert_eq!(sms, ["failed", "rule both", "rule sms"], "SMS for failures only, and the rules that ask for it");
    let (email, sms) = routed(false, &messages).await;
    assert_eq!(email, ["alarm", "failed", "recovered", "rule both", "rule email"]);
    assert_eq!(sms, ["alarm", "failed", "recovered", "rule both", "rule sms"], "an unfiltered phone gets alarms too");
}

#[tokio::test]
async fn kadoa_rules_adds_lists_tests_and_removes_and_changes_show_prints_the_alert() {
    use crate::cli::{json_out, kadoa, stack_env, stdout};
    let harness = Harness::new().await;
    let env = stack_env(&harness);
    // Two changes stored before the rule: one it would have alerted.
    harness.deliver(&price_change("c-old-1", &["19.99"])).await;
    harness.deliver(&price_change("c-old-2", &["22"])).await;

    let never =
        kadoa(&["rules", "add", "drop", "--field", "price", "--type", "added", "--decreased-by", "5%"], &env).await;
    assert_eq!(never.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&never.stderr).contains("can never match"));
    let bad_number = kadoa(&["rules", "add", "x", "--field", "price", "--below", "twenty"], &env).await;
    assert_eq!(bad_number.status.code(), Some(2), "clap refuses it: usage");
    let two = kadoa(&["rules", "add", "x", "--field", "price", "--below", "1", "--above", "2"], &env).await;
    assert_eq!(two.status.code(), Some(2), "one condition per rule");

    let added = kadoa(&["rules", "add", "cheap", "--field", "price", "--below", "20", "--notify", "both"], &env).await;
    assert_eq!(added.status.code(), Some(0));
    assert!(
        stdout(&added).contains("rule cheap: price below 20 (any rows of every workflow; email and SMS)"),
        "{}",
        stdout(&added)
    );
    let again = kadoa(&["rules", "add", "cheap", "--field", "price", "--below", "20"], &env).await;
    assert_eq!(again.status.code(), Some(1), "a name is taken once");

    let listed = json_out(&kadoa(&["rules", "list", "--output", "json"], &env).await);
    assert_eq!(listed[0]["name"], "cheap");
    assert_eq!(listed[0]["condition"], "below 20");
    assert_eq!(listed[0]["definition"]["condition"], json!({"is": "below", "than": "20"}));

    assert_eq!(kadoa(&["rules", "test", "cheap", "--days", "367"], &env).await.status.code(), Some(2));
    let tested = kadoa(&["rules", "test", "cheap", "--days", "366", "--output", "json"], &env).await;
    let tested = json_out(&tested);
    assert_eq!((tested["changes"].as_u64(), tested["alerting"].as_u64()), (Some(2), Some(1)), "{tested}");
    assert_eq!(tested["alerts"][0]["changeId"], "c-old-1");
    assert_eq!(tested["alerts"][0]["subject"], "Product Monitor: price 24.99 -> 19.99 (below 20)");
    let human = stdout(&kadoa(&["rules", "test", "cheap", "--days", "366"], &env).await);
    assert!(human.contains("1 of the last 2 changes (366 days) would have alerted"), "{human}");

    // A new change meets it: a function started now reads the rule (a warm one within a minute).
    let body = price_change("c-new", &["18"]);
    let delivery = Delivery::parse(body.as_bytes(), None).unwrap();
    let applied = harness.receiver().apply(&delivery, Timestamp::now(), Arrival::Webhook).await.unwrap();
    assert!(applied.alerted_at.is_some());
    let shown = json_out(&kadoa(&["changes", "show", "c-new", "--workflow", "wf_123", "--output", "json"], &env).await);
    assert_eq!(shown["ruleAlert"]["status"], "sent");
    assert_eq!(shown["ruleAlert"]["subject"], "Product Monitor: price 24.99 -> 18 (below 20)");
    assert_eq!(shown["ruleAlert"]["matches"][0]["rule"], "cheap");
    let human = stdout(&kadoa(&["changes", "show", "c-new", "--workflow", "wf_123"], &env).await);
    assert!(human.contains("rule alert:  sent "), "{human}");

    let removed = kadoa(&["rules", "remove", "cheap"], &env).await;
    assert_eq!(removed.status.code(), Some(0));
    assert_eq!(kadoa(&["rules", "remove", "cheap"], &env).await.status.code(), Some(1));
    assert_eq!(json_out(&kadoa(&["rules", "list", "--output", "json"], &env).await), json!([]));
}

#[tokio::test]
async fn a_rule_alert_reaches_the_bus_once_as_kadoa_change_matched() {
    let harness = Harness::builder().event_bus().change_rules(vec![price_below_20("email")]).build().await;
    let body = price_change("c1", &["19.99"]);
    assert_eq!(harness.deliver_times(&body, 2).await, ["alerted", "duplicate"]);
    assert_eq!(harness.drain_outbox().await.failures, []);
    let events = harness.bus_events("all").await;
    let types: Vec<&str> = events.iter().map(|e| e["detail-type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Kadoa Data Change", "Kadoa Change Matched"]);
    let matched = &events[1]["detail"];
    assert_eq!(matched["subject"], "Product Monitor: price 24.99 -> 19.99 (below 20)");
    assert_eq!(matched["rules"], json!(["cheap"]));
    assert_eq!(matched["matches"][0]["previous"], "24.99");
    assert_eq!(matched["item"], json!({"pk": "WORKFLOW#wf_123", "sk": "CHANGE#c1#"}));
}

#[tokio::test]
async fn a_matching_change_spooled_in_an_outage_is_told_once_by_the_replay() {
    let harness = Harness::builder().through_proxy().spool().change_rules(vec![price_below_20("email")]).build().await;
    let proxy = harness.proxy.clone().unwrap();
    let body = price_change("c1", &["19.99"]);
    proxy.set_up(false);
    assert_eq!(harness.deliver(&body).await.1["status"], "queued", "the table is down: spooled");
    proxy.set_up(true);
    // Kadoa's retry and the replay at once: one of them tells it.
    let (replayed, retried) = tokio::join!(harness.replay_all(), harness.deliver(&body));
    assert_eq!(replayed, 1);
    assert!(["alerted", "duplicate", "queued"].contains(&retried.1["status"].as_str().unwrap()), "{retried:?}");
    harness.replay_all().await; // a retry that met the claim was spooled too
    let alerts = harness.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(harness.deliver(&body).await.1["status"], "duplicate");
    assert_eq!(harness.alerts().await.len(), 0);
    assert_eq!(harness.items_of("changeAlert").await.len(), 1);
}
