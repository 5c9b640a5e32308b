//! template.yaml against the code: when one changes without the other, these fail.

use std::collections::BTreeSet;

use kadoa_webhook::outcome::{Arrival, EventStatus};
use kadoa_webhook::table::event_log::EventRecord;
use kadoa_webhook::table::{Attr, Receipt};
use serde_json::{json, Value};

use kadoa_webhook::kadoa_api::{ApiRetry, KadoaApi};
use kadoa_webhook::reconcile::Reconciler;

use crate::support;
use crate::support::kadoa::FakeKadoa;
use crate::support::template::{resource, template};
use crate::support::Harness;

fn function() -> &'static Value {
    resource("WebhookFunction")
}

#[test]
fn every_function_is_one_binary_on_provided_al2023_picked_by_its_handler() {
    // One release build and link for the whole stack: `sam build` compiles kadoa-lambda once.
    let _ = env!("CARGO_BIN_EXE_kadoa-lambda");
    let functions: Vec<(&String, &Value)> = template()["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Serverless::Function")
        .collect();
    let mut handlers = BTreeSet::new();
    for (name, function) in &functions {
        assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        assert_eq!(function["Metadata"]["BuildProperties"]["Binary"], "kadoa-lambda", "{name}");
        let properties = &function["Properties"];
        assert_eq!(properties["Runtime"], "provided.al2023", "{name}");
        assert_eq!(properties["Architectures"], json!([{"Ref": "Architecture"}]), "{name}");
        assert_eq!(properties["LoggingConfig"]["LogFormat"], "JSON", "{name}");
        let handler = properties["Handler"].as_str().unwrap();
        assert!(kadoa_webhook::functions::Function::from_handler(handler).is_some(), "{name}: Handler {handler}");
        handlers.insert(handler);
    }
    assert_eq!(handlers.len(), functions.len(), "each function runs a part of its own");
    assert_eq!(handlers.len(), kadoa_webhook::functions::Function::ALL.len(), "and every part is deployed");
    let properties = &function()["Properties"];
    assert_eq!(properties["Handler"], "webhook");
    // Chosen by `make memory-size` (docs/performance.md): I/O-bound, so 256 MB answers as
    // fast as 512 for half the GB-seconds, and a 6 MB change (98 MiB) fits.
    assert_eq!(properties["MemorySize"], 256);
    assert_eq!(template()["Parameters"]["Architecture"]["Default"], "arm64");
    assert_eq!(properties["FunctionUrlConfig"]["AuthType"], "NONE");
}

#[test]
fn the_reconcile_and_the_outbox_have_their_measured_memory() {
    // `make memory-size` (docs/performance.md): the reconcile holds a page at the answer
    // limit (105 MiB at its worst), so not 128 MB; the outbox at 128 MB takes twice as long
    // for the same GB-seconds.
    assert_eq!(resource("ReconcileFunction")["Properties"]["MemorySize"], 256);
    assert_eq!(resource("OutboxFunction")["Properties"]["MemorySize"], 256);
}

#[test]
fn the_console_form_groups_and_labels_every_parameter() {
    let interface = &template()["Metadata"]["AWS::CloudFormation::Interface"];
    let parameters: BTreeSet<&str> = template()["Parameters"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut grouped = Vec::new();
    for group in interface["ParameterGroups"].as_array().unwrap() {
        assert!(group["Label"]["default"].as_str().is_some_and(|label| !label.is_empty()));
        grouped.extend(group["Parameters"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()));
    }
    assert_eq!(grouped.len(), grouped.iter().collect::<BTreeSet<_>>().len(), "a parameter in two groups");
    assert_eq!(grouped.into_iter().collect::<BTreeSet<_>>(), parameters, "every parameter in a group");
    let labelled: BTreeSet<&str> =
        interface["ParameterLabels"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(labelled, parameters, "every parameter labelled");
}

#[test]
fn a_delete_keeps_what_holds_data_and_drops_what_copies_it() {
    for kept in
        ["EventsTable", "WebhookSecret", "SpoolQueue", "SpoolDeadLetterQueue", "SpoolBucket", "OutboxDeadLetterQueue"]
    {
        assert_eq!(resource(kept)["DeletionPolicy"], "Retain", "{kept}");
        assert_eq!(resource(kept)["UpdateReplacePolicy"], "Retain", "{kept}");
    }
    assert_eq!(resource("KadoaApiKeySecret")["DeletionPolicy"], "Delete", "a copy of the KadoaApiKey parameter");
}

#[test]
fn the_timeout_outlasts_the_sdk_and_the_alert_claim() {
    let timeout = function()["Properties"]["Timeout"].as_u64().unwrap();
    let sdk = kadoa_webhook::aws::timeout_config().operation_timeout().unwrap().as_secs();
    assert!(timeout > sdk + 2, "Timeout {timeout}s leaves no room after an {sdk}s AWS call");
    assert!(timeout > kadoa_webhook::store::health::CLAIM_LEASE.as_secs());
}

/// What CloudFormation fills in for `function`'s environment, as a lookup.
fn deployed_environment(function: &str) -> impl Fn(&str) -> Option<String> {
    let variables = resource(function)["Properties"]["Environment"]["Variables"].as_object().unwrap().clone();
    for name in variables.keys() {
        assert!(kadoa_webhook::config::VARIABLES.contains(&name.as_str()), "the code never reads {name}");
    }
    move |name: &str| {
        variables.get(name).map(|_| match name {
            "RETENTION_DAYS" | "ALERT_REPEAT_MINUTES" => "1".to_owned(),
            "AUTH_HEADER_NAME" => "authorization".to_owned(),
            _ => format!("value-of-{name}"),
        })
    }
}

#[test]
fn the_template_sets_every_variable_the_code_requires() {
    let reconcile = kadoa_webhook::Settings::for_reconcile(deployed_environment("ReconcileFunction")).unwrap();
    let kadoa =
        kadoa_webhook::config::KadoaApiSettings::from_lookup(deployed_environment("ReconcileFunction")).unwrap();
    assert!(kadoa.key_arn.is_some(), "the API key lives in Secrets Manager");
    assert_eq!(resource("ReconcileFunction")["Condition"], "HasKadoaApiKey", "deployed only with a key");
    assert_eq!(template()["Parameters"]["KadoaApiKey"]["NoEcho"], true);
    let settings = kadoa_webhook::Settings::from_lookup(deployed_environment("WebhookFunction")).unwrap();
    assert_eq!(reconcile.rules, settings.rules, "reconciliation applies events by the same rules");
    assert!(settings.secret_arn.is_some(), "the deployed secret lives in Secrets Manager");
    assert!(settings.spool.is_some(), "the deployed webhook spools what it cannot apply");
    let replay = kadoa_webhook::Settings::for_replay(deployed_environment("ReplayFunction")).unwrap();
    assert_eq!(replay.rules, settings.rules, "both functions apply events by the same rules");
    assert_eq!((replay.table_name, replay.alert_topic_arn), (settings.table_name, settings.alert_topic_arn));
}

#[test]
fn the_replay_function_consumes_the_spool_in_bounded_batches() {
    let replay = resource("ReplayFunction");
    let trigger = &replay["Properties"]["Events"]["Spool"]["Properties"];
    assert_eq!(trigger["FunctionResponseTypes"], json!(["ReportBatchItemFailures"]));
    assert_eq!(trigger["Queue"], json!({"Fn::GetAtt": ["SpoolQueue", "Arn"]}));
    assert!(trigger["BatchSize"].as_u64().unwrap() <= 10);
    assert!(trigger["ScalingConfig"]["MaximumConcurrency"].as_u64().unwrap() <= 2);
    // Each message of a batch is applied within the webhook's own time.
    let timeout = replay["Properties"]["Timeout"].as_u64().unwrap();
    let per_delivery = function()["Properties"]["Timeout"].as_u64().unwrap();
    assert!(timeout >= trigger["BatchSize"].as_u64().unwrap() * per_delivery);
    let queue = &resource("SpoolQueue")["Properties"];
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout, "as Lambda's SQS trigger advises");
    assert_eq!(queue["RedrivePolicy"]["maxReceiveCount"], 20, "the receive limit src/spool.rs counts on");
    assert_eq!(queue["SqsManagedSseEnabled"], true);
    let dead_letters = &resource("SpoolDeadLetterQueue")["Properties"];
    assert_eq!(
        (&dead_letters["SqsManagedSseEnabled"], &dead_letters["MessageRetentionPeriod"]),
        (&json!(true), &json!(1209600))
    );
    let bucket = &resource("SpoolBucket")["Properties"];
    assert_eq!(bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"], true);
    assert!(bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"].as_u64().unwrap() > 4 + 14);
    for (alarm, metric) in [
        ("SpoolDeadLettersAlarm", "ApproximateNumberOfMessagesVisible"),
        ("SpoolAgeAlarm", "ApproximateAgeOfOldestMessage"),
    ] {
        assert_eq!(resource(alarm)["Properties"]["MetricName"], metric);
        assert_eq!(resource(alarm)["Properties"]["AlarmActions"], json!([{"Ref": "AlertTopic"}]));
    }
    assert_eq!(resource("SpoolAgeAlarm")["Properties"]["Threshold"], 900);
}

#[test]
fn the_table_matches_the_items_the_code_writes() {
    let table = &resource("EventsTable")["Properties"];
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"},
               {"AttributeName": "createdAt", "AttributeType": "S"}, {"AttributeName": "eventKey", "AttributeType": "S"},
               {"AttributeName": "bucket", "AttributeType": "S"}, {"AttributeName": "position", "AttributeType": "S"}])
    );
    // Changes by time (the change item's partition and createdAt), and the event log
    // (event items and change items by eventKey); neither copies the differences.
    let indexes = table["GlobalSecondaryIndexes"].as_array().unwrap();
    let keys: Vec<(&str, &str)> = indexes
        .iter()
        .map(|index| (index["IndexName"].as_str().unwrap(), index["KeySchema"][1]["AttributeName"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, [("changesByTime", "createdAt"), ("eventsByTime", "eventKey"), ("timeline", "position")]);
    // The table-wide views' index: a day a partition (and the workflows' directory).
    assert_eq!(indexes[2]["KeySchema"][0], json!({"AttributeName": "bucket", "KeyType": "HASH"}));
    for index in indexes {
        if index["IndexName"] != "timeline" {
            assert_eq!(index["KeySchema"][0], json!({"AttributeName": "pk", "KeyType": "HASH"}));
        }
        assert_eq!(index["Projection"]["ProjectionType"], "INCLUDE", "ALL would copy every difference");
        let projected = index["Projection"]["NonKeyAttributes"].as_array().unwrap();
        assert!(!projected.contains(&json!("differences")) && !projected.contains(&json!("payload")));
    }
    assert_eq!(table["TimeToLiveSpecification"], json!({"AttributeName": "expiresAt", "Enabled": true}));
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(resource("EventsTable")["DeletionPolicy"], "Retain");
    assert_eq!(resource("EventsTable")["UpdateReplacePolicy"], "Retain");

    // What the code writes: string keys pk/sk and a numeric expiresAt.
    let body = r#"{"eventType":"workflow_finished","timestamp":"2025-01-15T10:30:00Z","data":{"id":"wf_1"}}"#;
    let envelope = kadoa_webhook::envelope::Envelope::parse(body.as_bytes(), None).unwrap();
    let now = kadoa_webhook::timestamp::Timestamp::now();
    let receipt = Receipt::new(now, 7, Arrival::Webhook);
    let item = EventRecord::with_payload(&envelope, Some("wf_1"), receipt, EventStatus::Stored).to_item().unwrap();
    assert!(matches!(item["pk"], Attr::S(_)));
    assert!(matches!(item["sk"], Attr::S(_)));
    assert!(matches!(item["expiresAt"], Attr::N(_)));
    // The timeline's keys, as the index defines them.
    assert_eq!(item["bucket"], Attr::s("EVENT#2025-01-15"));
    assert!(matches!(item["position"], Attr::S(_)));
    // Health items never update what the index projects (so their entry is written once).
    let projected = indexes[2]["Projection"]["NonKeyAttributes"].as_array().unwrap();
    for updated in [
        "state",
        "lastEventAt",
        "lastEventType",
        "lastAlertAt",
        "failingSince",
        "updatedAt",
        "workflowName",
        "claimId",
        "claimExpiresAt",
        "expiresAt",
    ] {
        assert!(!projected.contains(&json!(updated)), "{updated} would write the timeline on every health event");
    }
}

/// The IAM actions `function`'s policy grants, and the resources it grants them on.
/// The actions a function's role allows and on what: the `Policies` SAM puts in the role
/// it makes, or the inline policies of the function's own `Role`. A function with an SQS
/// trigger must have a role of its own (SAM would attach AWSLambdaSQSQueueExecutionRole,
/// which reaches every queue in the account), and no role here has a managed policy.
pub fn policy(function: &str) -> (BTreeSet<String>, Vec<Value>) {
    let properties = &resource(function)["Properties"];
    // A queue or stream trigger: SAM would attach a managed policy for it.
    let has_sqs_trigger = properties["Events"]
        .as_object()
        .into_iter()
        .flatten()
        .any(|(_, e)| e["Type"] == "SQS" || e["Type"] == "DynamoDB");
    let documents: Vec<&Value> = match properties["Role"]["Fn::GetAtt"][0].as_str() {
        Some(role) => {
            let role = &resource(role)["Properties"];
            assert!(role.get("ManagedPolicyArns").is_none(), "{function}'s role has managed policies");
            role["Policies"].as_array().unwrap().iter().map(|p| &p["PolicyDocument"]).collect()
        }
        None => {
            assert!(!has_sqs_trigger, "{function} has an SQS trigger: SAM would attach a managed policy");
            assert!(properties.get("ManagedPolicyArns").is_none());
            properties["Policies"].as_array().unwrap().iter().collect()
        }
    };
    let mut actions = BTreeSet::new();
    let mut resources = Vec::new();
    for policy in documents {
        for statement in policy["Statement"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow");
            match &statement["Action"] {
                Value::String(action) => {
                    actions.insert(action.clone());
                }
                Value::Array(list) => actions.extend(list.iter().map(|a| a.as_str().unwrap().to_owned())),
                other => panic!("unexpected Action {other}"),
            }
            resources.push(statement["Resource"].clone());
        }
    }
    (actions, resources)
}

/// The IAM actions of the AWS operations counted since the last reset.
pub fn actions_called(harness: &Harness) -> BTreeSet<String> {
    actions_of(harness.calls.snapshot().keys())
}

/// What the webhook function called, its start-up (the secret, the alert rules) included.
fn webhook_actions(harness: &Harness) -> BTreeSet<String> {
    actions_of(harness.calls.snapshot().keys().chain(harness.startup_calls.keys()))
}

fn actions_of<'a>(operations: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    let mut called = BTreeSet::new();
    for operation in operations {
        let actions: &[&str] = match operation.as_str() {
            "GetItem" => &["dynamodb:GetItem"],
            "PutItem" => &["dynamodb:PutItem"],
            "BatchWriteItem" => &["dynamodb:BatchWriteItem"],
            "UpdateItem" => &["dynamodb:UpdateItem"],
            "DeleteItem" => &["dynamodb:DeleteItem"],
            // IAM authorizes each item of a transaction by its own action.
            "TransactWriteItems" => &["dynamodb:PutItem", "dynamodb:UpdateItem"],
            "Publish" => &["sns:Publish"],
            "GetSecretValue" => &["secretsmanager:GetSecretValue"],
            "SendMessage" => &["sqs:SendMessage"],
            "ChangeMessageVisibility" => &["sqs:ChangeMessageVisibility"],
            "PutObject" => &["s3:PutObject"],
            "GetObject" => &["s3:GetObject"],
            "DeleteObject" => &["s3:DeleteObject"],
            "BatchGetItem" => &["dynamodb:BatchGetItem"],
            "Query" => &["dynamodb:Query"],
            "Scan" => &["dynamodb:Scan"],
            "PutEvents" => &["events:PutEvents"],
            other => panic!("the code calls {other}; map it to its IAM action here and in template.yaml"),
        };
        called.extend(actions.iter().map(|a| a.to_string()));
    }
    called
}

#[tokio::test]
async fn each_policy_allows_exactly_the_operations_its_function_calls() {
    // Every path that talks to AWS: secrets, a big and a small data change, a logged
    // event, alerts, a suppressed and a duplicate failure, failed publishes that spool
    // (one body large enough for S3), and their replay.
    let harness =
        Harness::builder().secrets_manager(support::SECRET.to_owned()).sns_through_proxy().spool().build().await;
    // 2000 differences of ~300 bytes: over 400 KB, so in parts.
    let change = |id: &str, n: usize| {
        let text = "x".repeat(300);
        let differences: Vec<Value> = (0..n)
            .map(|i| json!({"type": "added", "fields": [{"key": "i", "value": i}, {"key": "t", "value": text}]}))
            .collect();
        json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
            "data": {"id": id, "workflowId": "wf_1", "differences": differences}})
        .to_string()
    };
    let failed =
        |ts: &str| json!({"eventType": "workflow_failed", "timestamp": ts, "data": {"workflowId": "wf_1"}}).to_string();
    let credits = |ts: &str, message: &str| {
        json!({"eventType": "credits_low", "timestamp": ts, "data": {"message": message}}).to_string()
    };
    let proxy = harness.proxy.clone().unwrap();
    proxy.set_up(false);
    // Publishes fail, claims are released, the deliveries are spooled.
    assert_eq!(harness.deliver(&failed("2025-01-15T09:00:00Z")).await.0, 202);
    assert_eq!(harness.deliver(&credits("2025-01-15T09:00:00Z", "low")).await.0, 202);
    assert_eq!(harness.deliver(&credits("2025-01-15T09:05:00Z", &"x".repeat(300_000))).await.0, 202);
    proxy.set_up(true);
    for body in [
        change("small", 2),
        change("big", 2000),
        credits("2025-01-15T09:10:00Z", "lower"),
        support::fixture_body("workflow_finished.json"),
        failed("2025-01-15T10:00:00Z"),
        failed("2025-01-15T10:00:00Z"),
        failed("2025-01-15T10:10:00Z"),
    ] {
        assert_eq!(harness.deliver(&body).await.0, 200, "{body}");
    }
    // The hourly watch: is the table still empty?
    assert_eq!(harness.send_event(kadoa_webhook::http::WATCH_EVENT).await.0, 200);
    let (granted, resources) = policy("WebhookFunction");
    assert_eq!(granted, webhook_actions(&harness), "WebhookFunction's policy vs. what the webhook called");

    // A large change spooled while the table was down, as the webhook spools it.
    let spooled = json!({"receivedAt": "2025-01-15T10:30:01.000Z", "body": change("big-late", 2000)});
    let queue_url = &harness.spool.as_ref().unwrap().queue_url;
    harness.sqs.send_message().queue_url(queue_url).message_body(spooled.to_string()).send().await.unwrap();
    harness.calls.reset();
    proxy.set_up(false);
    let (_, failed_now) = harness.replay_once(30).await; // publishes fail: tried again later
    assert!(!failed_now.is_empty());
    proxy.set_up(true);
    harness.replay_all().await;
    // Lambda's SQS trigger receives and deletes with the function's role, and Lambda
    // writes the function's logs with it (a role of its own gets no SAM defaults).
    let mut replay_needs = actions_called(&harness);
    replay_needs.extend(
        [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ]
        .map(str::to_owned),
    );
    let (replay_granted, replay_resources) = policy("ReplayFunction");
    assert_eq!(replay_granted, replay_needs, "ReplayFunction's policy vs. what the replay called");

    // Reconciliation: a pending change to complete, a small and a large change and a
    // failure that never arrived.
    let mut pending = json!({"id": "pending", "workflowId": "wf_1", "dataPending": true, "createdAt": "2025-01-15T11:00:00Z",
        "differences": [{"type": "added", "fields": [{"key": "i", "value": 1}]}]});
    let webhook = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T11:00:00Z", "data": pending});
    assert_eq!(harness.deliver(&webhook.to_string()).await.0, 200);
    let fake = FakeKadoa::start("key").await;
    pending["dataPending"] = json!(false);
    fake.put_change(pending);
    for (id, count) in [("missing-small", 2), ("missing-large", 2000)] {
        let text = "x".repeat(300);
        let differences: Vec<Value> = (0..count)
            .map(|i| json!({"type": "added", "fields": [{"key": "i", "value": i}, {"key": "t", "value": text}]}))
            .collect();
        fake.put_change(
            json!({"id": id, "workflowId": "wf_1", "createdAt": "2025-01-15T12:00:00Z", "differences": differences}),
        );
    }
    fake.add_delivery(
        json!({"eventType": "workflow_failed", "timestamp": "2025-01-15T12:30:00Z", "data": {"workflowId": "wf_9"}}),
    );
    harness.calls.reset();
    let api = KadoaApi::new(&fake.url, "key".into(), ApiRetry::default()).unwrap();
    let receiver = harness.receiver();
    let from = kadoa_webhook::timestamp::Timestamp::parse_rfc3339("2025-01-15T00:00:00Z").unwrap();
    let report = Reconciler::new(&api, &receiver, &harness.store, 0)
        .run_scheduled(from.plus_days(1).unwrap(), &|_| {})
        .await
        .unwrap();
    assert!(report.is_clean() && report.pending_completed == 1 && report.stored_now == 2, "{report}");
    let mut reconcile_needs = actions_called(&harness);
    reconcile_needs.insert("secretsmanager:GetSecretValue".to_owned()); // the API key, read at start
    let (reconcile_granted, reconcile_resources) = policy("ReconcileFunction");
    assert_eq!(reconcile_granted, reconcile_needs, "ReconcileFunction's policy vs. what reconciliation called");

    // Only this stack's own table, topic, secrets, queue and bucket: no wildcards beyond it.
    let allowed_resources = [
        json!({"Fn::GetAtt": ["EventsTable", "Arn"]}),
        json!({"Ref": "AlertTopic"}),
        json!({"Ref": "WebhookSecret"}),
        json!({"Fn::GetAtt": ["SpoolQueue", "Arn"]}),
        json!({"Fn::Sub": "${SpoolBucket.Arn}/spool/*"}),
        json!({"Ref": "KadoaApiKeySecret"}),
        json!({"Fn::GetAtt": ["ReplayLogGroup", "Arn"]}),
    ];
    for resource in resources.into_iter().chain(replay_resources).chain(reconcile_resources) {
        assert!(allowed_resources.contains(&resource), "policy resource {resource} is broader than this stack");
    }
}

#[test]
fn sms_subscription_can_be_limited_to_failures() {
    let sms = &resource("AlertSmsSubscription");
    assert_eq!(sms["Condition"], "HasAlertPhone");
    assert_eq!(sms["Properties"]["Protocol"], "sms");
    let filter = &sms["Properties"]["FilterPolicy"]["Fn::If"];
    assert_eq!(filter[0], "FilterSms");
    // The attributes the code publishes: the channels, and the event types that mean a
    // failure or a rule's alert (tests/it/rules.rs sends messages through these policies).
    let failures_and_rules = [kadoa_webhook::events::FAILED, kadoa_webhook::alerts::change::CHANGE_MATCHED];
    assert_eq!(filter[1], json!({"notify": ["sms"], "eventType": failures_and_rules}));
    assert_eq!(filter[2], json!({"notify": [{"exists": false}, "sms"]}));
}

#[test]
fn the_webhook_secret_survives_stack_updates() {
    let secret = resource("WebhookSecret");
    assert_eq!((&secret["DeletionPolicy"], &secret["UpdateReplacePolicy"]), (&json!("Retain"), &json!("Retain")));
}

#[test]
fn answers_nobody_sees_raise_alarms_from_the_log_line() {
    // The metric filters read the fields of the one log line per request.
    for (filter, alarm, pattern) in [
        ("ServerErrorAnswersMetric", "ServerErrorAnswersAlarm", r#"{ $.message = "delivery" && $.status >= 500 }"#),
        ("UnauthorizedAnswersMetric", "UnauthorizedAnswersAlarm", r#"{ $.message = "delivery" && $.status = 401 }"#),
    ] {
        let properties = &resource(filter)["Properties"];
        assert_eq!(properties["FilterPattern"], pattern);
        assert_eq!(properties["LogGroupName"], json!({"Ref": "WebhookLogGroup"}));
        let metric = &properties["MetricTransformations"][0]["MetricName"];
        assert_eq!(&resource(alarm)["Properties"]["MetricName"], metric);
        assert_eq!(resource(alarm)["Properties"]["AlarmActions"], json!([{"Ref": "AlertTopic"}]));
    }
}

#[test]
fn parameters_are_bounded_as_the_code_requires() {
    let parameters = &template()["Parameters"];
    assert_eq!(parameters["RetentionDays"]["MaxValue"], kadoa_webhook::config::MAX_RETENTION_DAYS);
    assert_eq!(parameters["AlertRepeatMinutes"]["MaxValue"], kadoa_webhook::config::MAX_REPEAT_MINUTES);
    let default: BTreeSet<String> =
        parameters["AlertEventTypes"]["Default"].as_str().unwrap().split(',').map(str::to_owned).collect();
    assert_eq!(default, kadoa_webhook::config::default_alert_types());
}

#[test]
fn a_second_stack_deploys_and_a_failed_reconcile_runs_once() {
    let reconcile = &resource("ReconcileFunction")["Properties"];
    let schedule = &reconcile["Events"]["Schedule"]["Properties"];
    assert_eq!(schedule["OmitName"], true, "a fixed schedule name collides with a second stack's");
    assert!(schedule.get("Name").is_none());
    assert_eq!(schedule["RetryPolicy"]["MaximumRetryAttempts"], 0);
    assert_eq!(reconcile["EventInvokeConfig"]["MaximumRetryAttempts"], 0, "Lambda's async retries would add two runs");
    // Names fixed by the template carry the stack's name.
    for name in ["WebhookFunction", "ReplayFunction", "ReconcileFunction"] {
        let function_name = &resource(name)["Properties"]["FunctionName"]["Fn::Sub"];
        assert!(function_name.as_str().unwrap().starts_with("${AWS::StackName}"), "{name}: {function_name}");
    }
}

#[test]
fn deleting_the_stack_keeps_what_still_holds_deliveries() {
    for name in ["SpoolQueue", "SpoolDeadLetterQueue", "SpoolBucket", "EventsTable"] {
        let kept = resource(name);
        assert_eq!(
            (&kept["DeletionPolicy"], &kept["UpdateReplacePolicy"]),
            (&json!("Retain"), &json!("Retain")),
            "{name}"
        );
    }
}

#[test]
fn the_stack_outputs_name_what_the_kadoa_command_reads() {
    let outputs = template()["Outputs"].as_object().unwrap();
    for (variable, output) in kadoa_webhook::cli::target::SETTINGS {
        assert!(
            outputs.contains_key(*output),
            "the kadoa command reads {output} (or {variable}); the stack has no such output"
        );
    }
}
