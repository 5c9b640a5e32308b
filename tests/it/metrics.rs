//! The metric lines (EMF) each entry point writes, and the dashboard and silence alarm
//! that read them.

use std::collections::{BTreeMap, BTreeSet};

use kadoa_webhook::http::WATCH_EVENT;
use kadoa_webhook::kadoa_api::{ApiRetry, KadoaApi};
use kadoa_webhook::metrics::{Function, Publish, CATALOGUE, OUTCOMES};
use kadoa_webhook::reconcile::Reconciler;
use lambda_http::Body;
use serde_json::{json, Value};

use crate::support::kadoa::FakeKadoa;
use crate::support::template::{resource, template};
use crate::support::Harness;

const NAMESPACE: &str = "KadoaWebhook";

fn change(id: &str, differences: usize) -> String {
    let differences: Vec<Value> =
        (0..differences).map(|i| json!({"type": "added", "fields": [{"key": "price", "value": i}]})).collect();
    json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": id, "workflowId": "wf_metrics", "differences": differences}})
    .to_string()
}

fn health(event_type: &str, timestamp: &str) -> String {
    json!({"eventType": event_type, "timestamp": timestamp, "data": {"workflowId": "wf_health", "reason": "blocked"}})
        .to_string()
}

/// A line, parsed and checked against the EMF specification's shape: every metric a
/// directive names has a number (or list of numbers) at the top level, every dimension a
/// string value; returns the line.
fn emf(line: &str) -> Value {
    let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let aws = &line["_aws"];
    assert!(aws["Timestamp"].as_i64().unwrap() > 1_700_000_000_000, "{line}");
    for directive in aws["CloudWatchMetrics"].as_array().unwrap() {
        assert!(directive["Namespace"].as_str().unwrap().ends_with(NAMESPACE), "{line}");
        for set in directive["Dimensions"].as_array().unwrap() {
            for dimension in set.as_array().unwrap() {
                let name = dimension.as_str().unwrap();
                assert!(line[name].is_string(), "dimension {name} has no string value: {line}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            let known = CATALOGUE.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("{name} unknown"));
            let unit = metric["Unit"].as_str().unwrap();
            assert!(matches!(unit, "Count" | "Milliseconds"), "{unit}");
            let sets: Vec<Vec<&str>> = known.dimensions.iter().map(|s| s.to_vec()).collect();
            assert_eq!(directive["Dimensions"], json!(sets), "{name}'s dimensions");
            let value = &line[name];
            assert!(value.is_number() || value.as_array().is_some_and(|v| v.iter().all(Value::is_number)), "{line}");
        }
    }
    line
}

/// The metrics a line publishes: (name, dimensions with their values), as CloudWatch
/// files them.
fn published(line: &Value) -> BTreeSet<(String, BTreeMap<String, String>)> {
    let mut metrics = BTreeSet::new();
    for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for set in directive["Dimensions"].as_array().unwrap() {
            let dimensions: BTreeMap<String, String> = set
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d.as_str().unwrap().to_owned(), line[d.as_str().unwrap()].as_str().unwrap().to_owned()))
                .collect();
            for metric in directive["Metrics"].as_array().unwrap() {
                metrics.insert((metric["Name"].as_str().unwrap().to_owned(), dimensions.clone()));
            }
        }
    }
    metrics
}

fn number(line: &Value, name: &str) -> f64 {
    line[name].as_f64().unwrap_or_else(|| panic!("no {name}: {line}"))
}

/// Every webhook outcome, a replay, the watch, and a reconciliation run, with the
/// lines each wrote (by outcome for the webhook's).
async fn every_line() -> (BTreeMap<String, Value>, Vec<Value>) {
    let harness = Harness::builder().through_proxy().spool().event_bus().build().await;
    let mut by_outcome = BTreeMap::new();
    let deliver = |body: String, outcome: &'static str| {
        let harness = &harness;
        async move {
            let before = harness.metrics.lines().len();
            let (status, answer) = harness.deliver(&body).await;
            let lines = harness.metrics.lines();
            assert_eq!(lines.len(), before + 1, "one line per request ({status} {answer})");
            (outcome, emf(&lines[before]))
        }
    };
    let sent = [
        deliver(change("c1", 3), "stored").await,
        deliver(change("c1", 3), "duplicate").await,
        deliver(health("workflow_failed", "2025-01-15T10:00:00Z"), "alerted").await,
        deliver(health("workflow_failed", "2025-01-15T10:05:00Z"), "suppressed").await,
        deliver(health("workflow_failed", "2025-01-15T09:00:00Z"), "stale").await,
        deliver(
            json!({"eventType": "made_up_type", "timestamp": "2025-01-15T10:30:00Z", "data": {}}).to_string(),
            "accepted",
        )
        .await,
        deliver("{not json".to_owned(), "rejected").await,
    ];
    for (outcome, line) in sent {
        by_outcome.insert(outcome.to_owned(), line);
    }
    let unauthorized = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://example.lambda-url.us-east-1.on.aws/")
        .header("authorization", "Bearer wrong")
        .body(Body::from(change("c9", 1)))
        .unwrap();
    assert_eq!(harness.send(unauthorized).await.0, 401);
    by_outcome.insert("unauthorized".into(), emf(harness.metrics.lines().last().unwrap()));

    // The table unreachable: spooled (202), then replayed.
    let proxy = harness.proxy.clone().unwrap();
    proxy.set_up(false);
    assert_eq!(harness.deliver(&health("workflow_recovered", "2025-01-15T11:00:00Z")).await.0, 202);
    by_outcome.insert("queued".into(), emf(harness.metrics.lines().last().unwrap()));
    proxy.set_up(true);
    assert_eq!(harness.replay_all().await, 1);
    let mut others = vec![emf(harness.metrics.lines().last().unwrap())];
    let (status, watched) = harness.send_event(WATCH_EVENT).await;
    assert_eq!((status, &watched["connected"]), (200, &json!(true)));
    others.push(emf(harness.metrics.lines().last().unwrap()));

    // No spool: the same outage is a 503.
    let unspooled = Harness::builder().through_proxy().build().await;
    let (status, watched) = unspooled.send_event(WATCH_EVENT).await;
    assert_eq!((status, &watched["connected"]), (200, &json!(false)), "nothing stored yet");
    others.push(emf(unspooled.metrics.lines().last().unwrap()));
    unspooled.proxy.clone().unwrap().set_up(false);
    assert_eq!(unspooled.deliver(&change("c2", 1)).await.0, 503);
    by_outcome.insert("failed".into(), emf(unspooled.metrics.lines().last().unwrap()));

    // A reconciliation run that finds one change missing.
    let fake = FakeKadoa::start("key").await;
    fake.put_change(json!({"id": "missed", "workflowId": "wf_metrics", "createdAt": "2025-01-15T12:00:00Z",
        "differences": [{"type": "added", "fields": [{"key": "price", "value": 1}]}]}));
    // And a failure of another workflow, which it alerts.
    fake.add_delivery(json!({"eventType": "workflow_failed", "timestamp": "2025-01-15T12:00:00Z",
        "data": {"workflowId": "wf_missed", "reason": "blocked"}}));
    let api = KadoaApi::new(&fake.url, "key".into(), ApiRetry::default()).unwrap();
    let receiver = harness.receiver();
    let from = kadoa_webhook::timestamp::Timestamp::parse_rfc3339("2025-01-15T00:00:00Z").unwrap();
    let report =
        Reconciler::new(&api, &receiver, &harness.store, 0).run(from, from.plus_days(1).unwrap(), &|_| {}).await;
    assert!(report.is_clean(), "{report}");
    harness.metrics.emit(&report.metrics(std::time::Duration::from_millis(1500)));
    others.push(emf(harness.metrics.lines().last().unwrap()));
    // The next run finds nothing missing: what every hour of steady traffic looks like.
    let report =
        Reconciler::new(&api, &receiver, &harness.store, 0).run(from, from.plus_days(1).unwrap(), &|_| {}).await;
    harness.metrics.emit(&report.metrics(std::time::Duration::from_millis(900)));
    others.push(emf(harness.metrics.lines().last().unwrap()));
    // The outbox announces what was stored and alerted.
    assert_eq!(harness.drain_outbox().await.failures, []);
    others.push(emf(harness.metrics.lines().last().unwrap()));
    (by_outcome, others)
}

#[tokio::test]
async fn each_invocation_writes_one_emf_line_with_its_outcome_and_measures() {
    let (by_outcome, others) = every_line().await;
    let outcomes: BTreeSet<&str> = by_outcome.keys().map(String::as_str).collect();
    assert_eq!(outcomes, OUTCOMES.iter().copied().collect(), "every outcome was produced");
    for (outcome, line) in &by_outcome {
        assert_eq!((line["Function"].as_str(), line["Outcome"].as_str()), (Some("webhook"), Some(outcome.as_str())));
        assert_eq!(number(line, "Deliveries"), 1.0, "{line}");
        assert!(number(line, "Duration") >= 0.0);
        let authenticated = !matches!(outcome.as_str(), "unauthorized");
        assert_eq!(number(line, "AuthenticatedDeliveries"), if authenticated { 1.0 } else { 0.0 }, "{outcome}");
        let event_type = match outcome.as_str() {
            "stored" | "duplicate" | "failed" => "workflow_data_change",
            "accepted" => "other",
            "rejected" | "unauthorized" => "none",
            "queued" => "workflow_recovered",
            _ => "workflow_failed",
        };
        assert_eq!(line["EventType"], event_type, "{outcome}: {line}");
        // Only what happened is measured.
        assert_eq!(
            line.get("DifferencesStored").map(|_| number(line, "DifferencesStored")),
            (outcome == "stored").then_some(3.0)
        );
        assert_eq!(line.get("AlertsPublished").is_some(), outcome == "alerted", "{outcome}");
        assert_eq!(line.get("Spooled").is_some(), outcome == "queued", "{outcome}");
        let parsed = !matches!(outcome.as_str(), "rejected" | "unauthorized");
        assert_eq!(line.get("DeliveryDelay").is_some(), parsed, "{outcome}: {line}");
        // The workflow is on the line for Logs Insights, never a dimension.
        let dimensions: Vec<&Value> = line["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["Dimensions"].as_array().unwrap())
            .collect();
        assert!(!json!(dimensions).to_string().contains("orkflow"), "{line}");
    }
    let alerted = &by_outcome["alerted"];
    assert_eq!(alerted["workflowId"], "wf_health");
    // The event is from 2025: its alert went out more than a year after it.
    assert!(number(alerted, "AlertDelay") > 365.0 * 86_400_000.0, "{alerted}");
    assert!(number(alerted, "DeliveryDelay") > 365.0 * 86_400_000.0);
    assert_eq!(by_outcome["failed"]["status"], 503);

    let [replay, watch_connected, watch_empty, reconcile, clean_reconcile, outbox] = others.as_slice() else {
        panic!("{others:?}")
    };
    assert_eq!(number(clean_reconcile, "ReconcileMissing"), 0.0);
    assert!(published(clean_reconcile).is_empty(), "a clean run publishes no metric: {clean_reconcile}");
    assert_eq!(replay["Function"], "replay");
    assert_eq!((number(replay, "ReplayApplied"), number(replay, "ReplayFailed")), (1.0, 0.0));
    assert_eq!(number(replay, "AlertsPublished"), 1.0, "the recovery alerted on replay");
    assert_eq!((watch_connected["Function"].as_str(), number(watch_connected, "Connected")), (Some("watch"), 1.0));
    assert_eq!(number(watch_empty, "Connected"), 0.0);
    assert_eq!(reconcile["Function"], "reconcile");
    assert_eq!((number(reconcile, "ReconcileMissing"), number(reconcile, "ReconcileApplied")), (2.0, 2.0));
    assert_eq!(number(reconcile, "AlertsPublished"), 1.0, "{reconcile}");
    assert_eq!((number(reconcile, "ReconcileSkipped"), number(reconcile, "ReconcileFailures")), (0.0, 0.0));
    assert_eq!(number(reconcile, "Duration"), 1500.0);
    // Two changes stored (c1, and reconciliation's), three alerts (failure, recovery,
    // reconciliation's failure; the second failure was suppressed).
    assert_eq!(outbox["Function"], "outbox");
    assert_eq!((number(outbox, "EventsPublished"), number(outbox, "EventsFailed")), (5.0, 0.0), "{outbox}");
}

/// The dashboard's body with CloudFormation's substitutions made.
fn dashboard() -> Value {
    let body = resource("Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"].as_str().unwrap();
    let mut text = body.replace("${AWS::StackName}", "stack").replace("${AWS::Region}", "us-east-1");
    while let Some(start) = text.find("${") {
        let end = start + text[start..].find('}').unwrap();
        let name = text[start + 2..end].split('.').next().unwrap().to_owned();
        assert!(template()["Resources"][&name].is_object(), "the dashboard names {name}, not in the template");
        text.replace_range(start..=end, &format!("resource-{name}"));
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the dashboard body is not JSON: {e}"))
}

/// AWS's own metrics the dashboard and alarms may read (published for free).
const AWS_METRICS: &[(&str, &str)] = &[
    ("AWS/Lambda", "Invocations"),
    ("AWS/Lambda", "Errors"),
    ("AWS/Lambda", "Duration"),
    ("AWS/Lambda", "Throttles"),
    ("AWS/Lambda", "IteratorAge"),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
    ("AWS/SNS", "NumberOfNotificationsDelivered"),
    ("AWS/SNS", "NumberOfNotificationsFailed"),
];

/// The metrics the template's log metric filters publish (name, dimension names), and
/// whether each publishes on every log event (a DefaultValue: billed every hour); those
/// of `DetailedMetrics` apart.
fn filter_metrics(detailed: bool) -> Vec<(String, BTreeSet<String>, bool)> {
    let mut metrics = Vec::new();
    for resource in template()["Resources"].as_object().unwrap().values() {
        let is_detailed = resource["Condition"] == "HasDetailedMetrics";
        if resource["Type"] != "AWS::Logs::MetricFilter" || is_detailed != detailed {
            continue;
        }
        for transformation in resource["Properties"]["MetricTransformations"].as_array().unwrap() {
            assert_eq!(transformation["MetricNamespace"], json!({"Fn::Sub": "${AWS::StackName}/KadoaWebhook"}));
            let dimensions = transformation["Dimensions"].as_array().into_iter().flatten();
            let dimensions = dimensions.map(|d| d["Key"].as_str().unwrap().to_owned()).collect();
            let name = transformation["MetricName"].as_str().unwrap().to_owned();
            metrics.push((name, dimensions, transformation.get("DefaultValue").is_some()));
        }
    }
    metrics
}

/// Whether a metric (namespace, name, dimensions) the dashboard or an alarm reads is
/// published: by a metric line, by a metric filter, or by AWS.
fn is_published(
    emitted: &BTreeSet<(String, BTreeMap<String, String>)>,
    namespace: &str,
    name: &str,
    dimensions: &BTreeMap<String, String>,
) -> bool {
    if namespace.starts_with("AWS/") {
        return AWS_METRICS.contains(&(namespace, name));
    }
    assert_eq!(namespace, format!("stack/{NAMESPACE}"), "as the template's METRICS_NAMESPACE");
    let keys: BTreeSet<String> = dimensions.keys().cloned().collect();
    emitted.contains(&(name.to_owned(), dimensions.clone()))
        || filter_metrics(false).iter().any(|(n, d, _)| n == name && *d == keys)
}

/// Every field a Logs Insights query reads is on some metric line: the words of the query,
/// quoted strings and aliases aside, are its commands, functions or the lines' fields.
fn assert_query_reads_emitted_fields(query: &str, lines: &[&Value]) {
    const WORDS: &[&str] = &[
        "SOURCE",
        "filter",
        "fields",
        "stats",
        "sort",
        "limit",
        "by",
        "as",
        "and",
        "or",
        "in",
        "desc",
        "count",
        "sum",
        "max",
        "pct",
        "ispresent",
        "message",
        "timestamp",
        "resource",
        "WebhookLogGroup",
    ];
    let mut unquoted = String::new();
    for (i, part) in query.split(['"', '\'']).enumerate() {
        if i % 2 == 0 {
            unquoted.push_str(part);
            unquoted.push(' ');
        }
    }
    let words: Vec<&str> = unquoted.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let aliases: BTreeSet<&str> = words.windows(2).filter(|w| w[0] == "as").map(|w| w[1]).collect();
    for word in words {
        if WORDS.contains(&word) || aliases.contains(word) || word.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        assert!(
            lines.iter().any(|line| line.get(word).is_some()),
            "the query reads {word}, on no metric line: {query}"
        );
    }
}

#[tokio::test]
async fn the_dashboard_and_alarms_read_only_published_metrics_and_few_of_them() {
    let (by_outcome, others) = every_line().await;
    let lines: Vec<&Value> = by_outcome.values().chain(&others).collect();
    let mut emitted: BTreeSet<_> = lines.iter().copied().flat_map(published).collect();
    // A failure counted 0 is on its line, and published in the hours it is not 0.
    for line in &lines {
        for metric in CATALOGUE.iter().filter(|m| m.publish == Publish::WhenNonZero && line.get(m.name).is_some()) {
            let function = line["Function"].as_str().unwrap().to_owned();
            emitted.insert((metric.name.to_owned(), BTreeMap::from([("Function".to_owned(), function)])));
        }
    }
    let dashboard = dashboard();
    let (mut shown, mut log_widgets) = (0, 0);
    for widget in dashboard["widgets"].as_array().unwrap() {
        let properties = &widget["properties"];
        let Some(metrics) = properties["metrics"].as_array() else {
            assert_eq!(widget["type"], "log");
            let query = properties["query"].as_str().unwrap();
            assert!(query.contains("SOURCE 'resource-WebhookLogGroup'"), "{query}");
            assert_query_reads_emitted_fields(query, &lines);
            log_widgets += 1;
            continue;
        };
        for metric in metrics {
            let parts: Vec<&str> = metric.as_array().unwrap().iter().filter_map(Value::as_str).collect();
            let [namespace, name, dimensions @ ..] = parts.as_slice() else { panic!("{metric}") };
            let dimensions: BTreeMap<String, String> =
                dimensions.chunks(2).map(|pair| (pair[0].to_owned(), pair[1].to_owned())).collect();
            assert!(
                is_published(&emitted, namespace, name, &dimensions),
                "the dashboard shows {namespace} {name} {dimensions:?}, which nothing publishes"
            );
            shown += 1;
        }
    }
    assert!(shown >= 20 && log_widgets >= 4, "{shown} metrics, {log_widgets} log widgets");
    for name in
        ["AuthenticatedDeliveries", "AlertsPublished", "Spooled", "ReplayApplied", "ReconcileMissing", "Connected"]
    {
        assert!(dashboard.to_string().contains(&format!("\"{name}\"")), "{name}");
    }
    // The breakdowns: by outcome and event type, delay percentiles, per workflow.
    for clause in ["by EventType, Outcome", "pct(DeliveryDelay, 99)", "by workflowId"] {
        assert!(dashboard.to_string().contains(clause), "{clause}");
    }

    // The saved queries over the metric lines read their fields.
    let mut queries = 0;
    for resource in template()["Resources"].as_object().unwrap().values() {
        let query = resource["Properties"]["QueryString"].as_str().unwrap_or_default();
        if resource["Type"] == "AWS::Logs::QueryDefinition" && query.contains("message = \"metrics\"") {
            assert_query_reads_emitted_fields(query, &lines);
            queries += 1;
        }
    }
    assert_eq!(queries, 4, "deliveries by type, delay percentiles, per workflow, reconciliation runs");

    // Every alarm reads a published metric.
    let mut alarms = 0;
    for (id, resource) in template()["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let properties = &resource["Properties"];
        let namespace = match &properties["Namespace"] {
            Value::String(aws) => aws.clone(),
            sub => sub["Fn::Sub"].as_str().unwrap().replace("${AWS::StackName}", "stack"),
        };
        let dimensions: BTreeMap<String, String> = properties["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| (d["Name"].as_str().unwrap().to_owned(), d["Value"].as_str().unwrap_or("resource").to_owned()))
            .collect();
        let name = properties["MetricName"].as_str().unwrap();
        assert!(is_published(&emitted, &namespace, name, &dimensions), "{id} reads {namespace} {name}, not published");
        alarms += 1;
    }
    assert_eq!(alarms, 12);
    for function in Function::ALL {
        assert!(lines.iter().any(|line| line["Function"] == function.as_str()), "{function:?} wrote no line");
    }

    // Steady traffic: a change stored, a retry's duplicate, the hourly watch, a clean
    // reconciliation, an outbox batch; with the filters that publish on every log event.
    let [_, watch, _, _, clean_reconcile, outbox] = others.as_slice() else { panic!() };
    let steady: BTreeSet<_> = [&by_outcome["stored"], &by_outcome["duplicate"], watch, clean_reconcile, outbox]
        .into_iter()
        .flat_map(published)
        .collect();
    let always_filters = filter_metrics(false).into_iter().filter(|(_, _, every_event)| *every_event).count();
    let count = steady.len() + always_filters;
    assert!(count <= 10, "{count} custom metrics at continuous traffic: {steady:?}");
    assert_eq!(count, 4, "AuthenticatedDeliveries, DeliveryDelay, Connected, EventsPublished: {steady:?}");
    // DetailedMetrics' filters read fields the webhook's lines carry.
    let detailed = filter_metrics(true);
    assert_eq!(detailed.len(), 3);
    for (name, dimensions, _) in detailed {
        for field in dimensions.iter().chain([&name]).filter(|f| *f != "Deliveries") {
            assert!(by_outcome["stored"].get(field).is_some(), "{field}");
        }
    }
}

#[test]
fn the_functions_publish_under_the_stacks_namespace() {
    for function in ["WebhookFunction", "ReplayFunction", "ReconcileFunction"] {
        let variables = &resource(function)["Properties"]["Environment"]["Variables"];
        assert_eq!(variables["METRICS_NAMESPACE"], json!({"Fn::Sub": "${AWS::StackName}/KadoaWebhook"}), "{function}");
    }
    let watch = &resource("WebhookFunction")["Properties"]["Events"]["Watch"];
    assert_eq!(watch["Type"], "ScheduleV2");
    assert_eq!(watch["Properties"]["ScheduleExpression"], "rate(1 hour)");
    assert_eq!(watch["Properties"]["Input"], WATCH_EVENT, "the schedule sends what the webhook reads as the watch");
}

#[test]
fn the_silence_alarm_fires_only_on_a_connected_stack_gone_quiet() {
    let parameter = &template()["Parameters"]["SilenceHours"];
    assert_eq!((parameter["Default"].as_u64(), parameter["MinValue"].as_u64()), (Some(24), Some(0)));
    // CloudWatch's limit: a period of an hour times the evaluation periods is at most 7 days.
    assert_eq!(parameter["MaxValue"].as_u64(), Some(168));
    assert_eq!(
        template()["Conditions"]["HasSilenceAlarm"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "SilenceHours"}, 0]}]})
    );

    let quiet = &resource("NoDeliveriesAlarm");
    let properties = &quiet["Properties"];
    assert_eq!(quiet["Condition"], "HasSilenceAlarm");
    assert_eq!(properties["Namespace"], json!({"Fn::Sub": "${AWS::StackName}/KadoaWebhook"}));
    assert_eq!(properties["MetricName"], "AuthenticatedDeliveries");
    assert_eq!(properties["Dimensions"], json!([{"Name": "Function", "Value": "webhook"}]));
    assert_eq!((properties["Statistic"].as_str(), properties["Period"].as_u64()), (Some("Sum"), Some(3600)));
    assert_eq!(properties["EvaluationPeriods"], json!({"Ref": "SilenceHours"}));
    assert_eq!(properties["DatapointsToAlarm"], json!({"Ref": "SilenceHours"}));
    assert_eq!(
        (properties["ComparisonOperator"].as_str(), properties["Threshold"].as_u64()),
        (Some("LessThanThreshold"), Some(1))
    );
    assert_eq!(properties["TreatMissingData"], "breaching", "no delivery is no data point");
    assert!(properties.get("AlarmActions").is_none(), "people hear of it through the composite alarm only");

    let connected = &resource("StackConnectedAlarm")["Properties"];
    assert_eq!(connected["MetricName"], "Connected");
    assert_eq!(connected["Dimensions"], json!([{"Name": "Function", "Value": "watch"}]));
    assert_eq!(
        (connected["ComparisonOperator"].as_str(), connected["Threshold"].as_u64()),
        (Some("GreaterThanOrEqualToThreshold"), Some(1))
    );
    // A new stack: no data, no ALARM; once connected, a watch that stops keeps it in ALARM.
    assert_eq!(connected["TreatMissingData"], "missing", "a watch that stops cannot hide a silence");
    assert!(connected.get("AlarmActions").is_none());

    let silence = &resource("SilenceAlarm");
    assert_eq!(
        (silence["Type"].as_str(), silence["Condition"].as_str()),
        (Some("AWS::CloudWatch::CompositeAlarm"), Some("HasSilenceAlarm"))
    );
    assert_eq!(
        silence["Properties"]["AlarmRule"],
        json!({"Fn::Sub": "ALARM(\"${NoDeliveriesAlarm}\") AND ALARM(\"${StackConnectedAlarm}\")"})
    );
    assert_eq!(silence["Properties"]["AlarmActions"], json!([{"Ref": "AlertTopic"}]));
    // Both metrics are ones the code emits.
    for name in ["AuthenticatedDeliveries", "Connected"] {
        assert!(CATALOGUE.iter().any(|m| m.name == name && m.dimensions == [["Function"]]));
    }
}

#[test]
fn every_alarm_reads_well_as_an_email_subject_and_an_sms() {
    let resources = template()["Resources"].as_object().unwrap();
    let mut named = 0;
    for (id, resource) in resources {
        let kind = resource["Type"].as_str().unwrap();
        if !kind.starts_with("AWS::CloudWatch::") || !kind.ends_with("Alarm") {
            continue;
        }
        let properties = &resource["Properties"];
        let description = properties["AlarmDescription"].to_string();
        assert!(description.len() > 40, "{id} explains itself");
        if properties.get("AlarmActions").is_none() {
            continue; // a part of the composite silence alarm
        }
        let name = properties["AlarmName"]["Fn::Sub"].as_str().unwrap_or_else(|| panic!("{id} has no readable name"));
        let readable = name.strip_prefix("${AWS::StackName}: ").unwrap_or_else(|| panic!("{id}: {name}"));
        // CloudWatch's email subject is `ALARM: "<name>" in <region>`; an SMS shows the same.
        assert!(readable.starts_with("Kadoa ") && readable.len() <= 70, "{id}: {readable}");
        named += 1;
    }
    assert_eq!(named, 11);
}

#[test]
fn saved_queries_read_the_log_lines_the_code_writes() {
    let expected = [
        ("RefusedDeliveriesQuery", "status >= 400"),
        ("AlertsSentQuery", "outcome = \"alerted\""),
        ("SlowestDeliveriesQuery", "sort duration_ms desc"),
        ("SpooledAndReplayedQuery", "outcome = \"queued\""),
        ("DeliveriesByTypeQuery", "by EventType, Outcome"),
        ("DelayPercentilesQuery", "pct(DeliveryDelay, 99)"),
        ("PerWorkflowQuery", "by workflowId"),
    ];
    for (id, clause) in expected {
        let query = &resource(id);
        assert_eq!(query["Type"], "AWS::Logs::QueryDefinition");
        let text = query["Properties"]["QueryString"].as_str().unwrap();
        assert!(text.contains(clause) && text.contains("message"), "{id}: {text}");
        assert!(query["Properties"]["LogGroupNames"].to_string().contains("WebhookLogGroup"), "{id}");
    }
    // The fields they read are the webhook's log line's (src/http/mod.rs).
    let source = include_str!("../../src/http/mod.rs");
    for field in ["event_type", "workflow_id", "outcome", "status", "duration_ms", "error = detail"] {
        assert!(source.contains(field), "{field}");
    }
}
