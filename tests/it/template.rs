//! template.yaml against the code: when one changes without the other, these fail.

use std::collections::BTreeSet;

use kadoa_webhook::outcome::{Arrival, EventStatus};
use kadoa_webhook::table::event_log::EventRecord;
use kadoa_webhook::table::{Attr, Receipt};
use serde_json::{json, Value};

use crate::support;
use crate::support::template::{resource, template};
use crate::support::{Harness, Options};

fn function() -> &'static Value {
    resource("WebhookFunction")
}

#[test]
fn the_function_is_the_kadoa_webhook_binary_on_provided_al2023() {
    let properties = &function()["Properties"];
    assert_eq!(function()["Metadata"]["BuildMethod"], "rust-cargolambda");
    // The binary this test suite was built with is called kadoa-webhook.
    let _ = env!("CARGO_BIN_EXE_kadoa-webhook");
    assert_eq!(function()["Metadata"]["BuildProperties"]["Binary"], "kadoa-webhook");
    assert_eq!(properties["Handler"], "bootstrap");
    assert_eq!(properties["Runtime"], "provided.al2023");
    assert_eq!(properties["MemorySize"], 256);
    assert_eq!(properties["Architectures"], json!([{"Ref": "Architecture"}]));
    assert_eq!(template()["Parameters"]["Architecture"]["Default"], "arm64");
    assert_eq!(properties["FunctionUrlConfig"]["AuthType"], "NONE");
    assert_eq!(properties["LoggingConfig"]["LogFormat"], "JSON");
}

#[test]
fn the_timeout_outlasts_the_sdk_and_the_alert_claim() {
    let timeout = function()["Properties"]["Timeout"].as_u64().unwrap();
    let sdk = kadoa_webhook::aws::timeout_config().operation_timeout().unwrap().as_secs();
    assert!(timeout > sdk + 2, "Timeout {timeout}s leaves no room after an {sdk}s AWS call");
    assert!(timeout > kadoa_webhook::store::health::CLAIM_LEASE.as_secs());
}

#[test]
fn the_template_sets_every_variable_the_code_requires() {
    let variables = function()["Properties"]["Environment"]["Variables"].as_object().unwrap();
    for name in variables.keys() {
        assert!(kadoa_webhook::config::VARIABLES.contains(&name.as_str()), "the code never reads {name}");
    }
    // With the values CloudFormation will fill in, the function starts.
    let placeholder = |name: &str| variables.get(name).map(|_| format!("value-of-{name}"));
    let numbers = |name: &str| match name {
        "RETENTION_DAYS" | "ALERT_REPEAT_MINUTES" => variables.get(name).map(|_| "1".to_owned()),
        "AUTH_HEADER_NAME" => variables.get(name).map(|_| "authorization".to_owned()),
        _ => placeholder(name),
    };
    let settings = kadoa_webhook::Settings::from_lookup(numbers);
    assert!(settings.is_ok(), "{settings:?}");
    assert!(variables.contains_key("WEBHOOK_SECRET_ARN"), "the deployed secret lives in Secrets Manager");
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
               {"AttributeName": "createdAt", "AttributeType": "S"}])
    );
    // Changes by time: the change item's partition and its createdAt.
    assert_eq!(
        table["GlobalSecondaryIndexes"],
        json!([{"IndexName": "changesByTime", "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "createdAt", "KeyType": "RANGE"}]}])
    );
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
}

/// The IAM actions the policy grants, and the resources it grants them on.
fn policy() -> (BTreeSet<String>, Vec<Value>) {
    let mut actions = BTreeSet::new();
    let mut resources = Vec::new();
    for policy in function()["Properties"]["Policies"].as_array().unwrap() {
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

#[tokio::test]
async fn the_policy_allows_exactly_the_operations_the_code_calls() {
    // Every path that talks to AWS: secrets, a big and a small data change, a logged
    // event, an alert, a suppressed and a duplicate failure, a failed publish.
    let harness = Harness::with(Options {
        secrets_manager_value: Some(support::SECRET.to_owned()),
        sns_through_proxy: true,
        ..Options::default()
    })
    .await;
    let change = |id: &str, n: usize| {
        let differences: Vec<Value> =
            (0..n).map(|i| json!({"type": "added", "fields": [{"key": "i", "value": i}]})).collect();
        json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
            "data": {"id": id, "workflowId": "wf_1", "differences": differences}})
        .to_string()
    };
    let failed =
        |ts: &str| json!({"eventType": "workflow_failed", "timestamp": ts, "data": {"workflowId": "wf_1"}}).to_string();
    let proxy = harness.proxy.clone().unwrap();
    let credits = |ts: &str| json!({"eventType": "credits_low", "timestamp": ts, "data": {}}).to_string();
    proxy.set_up(false);
    // Publishes fail, claims are released.
    assert_eq!(harness.deliver(&failed("2025-01-15T09:00:00Z")).await.0, 503);
    assert_eq!(harness.deliver(&credits("2025-01-15T09:00:00Z")).await.0, 503);
    proxy.set_up(true);
    for body in [
        change("small", 2),
        change("big", 120),
        credits("2025-01-15T09:00:00Z"),
        support::fixture_body("workflow_finished.json"),
        failed("2025-01-15T10:00:00Z"),
        failed("2025-01-15T10:00:00Z"),
        failed("2025-01-15T10:10:00Z"),
    ] {
        assert_eq!(harness.deliver(&body).await.0, 200, "{body}");
    }

    let mut called = BTreeSet::new();
    for operation in harness.calls.snapshot().keys() {
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
            other => panic!("the code calls {other}; map it to its IAM action here and in template.yaml"),
        };
        called.extend(actions.iter().map(|a| a.to_string()));
    }
    let (granted, resources) = policy();
    assert_eq!(granted, called, "template.yaml's policy vs. what the code called");

    // Only this stack's own table, topic and secret: no wildcards.
    let allowed_resources =
        [json!({"Fn::GetAtt": ["EventsTable", "Arn"]}), json!({"Ref": "AlertTopic"}), json!({"Ref": "WebhookSecret"})];
    for resource in resources {
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
    // The attribute the code publishes, with the event type that means failure.
    assert_eq!(filter[1], json!({"eventType": [kadoa_webhook::events::FAILED]}));
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
