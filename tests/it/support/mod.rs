//! What the integration tests share: moto, a fault proxy, an app wired to them, and ways
//! to send deliveries and read back what was stored.

pub mod calls;
pub mod faults;
pub mod kadoa;
pub mod moto;
pub mod proxy;
pub mod sent;
pub mod template;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use kadoa_webhook::alerts::Publisher;
use kadoa_webhook::receiver::{Receiver, Rules};
use kadoa_webhook::replay::{Replayer, SqsEvent, SqsRecord};
use kadoa_webhook::secrets::SecretPolicy;
use kadoa_webhook::spool::Spool;
use kadoa_webhook::store::{Pacing, Store};
use kadoa_webhook::{App, AwsClients, Settings};
use lambda_http::{Body, Request};
use serde_json::{json, Value};

pub use calls::CallCounter;
pub use proxy::FaultProxy;

pub const SECRET: &str = "local-dev-secret";
pub const NEXT_SECRET: &str = "local-dev-secret-next";

pub type Item = HashMap<String, AttributeValue>;

/// How a test wants its app.
#[derive(Default)]
pub struct Options {
    /// Secrets come from Secrets Manager (this value) instead of `WEBHOOK_SECRET`.
    pub secrets_manager_value: Option<String>,
    /// AWS calls of the app go through a proxy the test can switch off.
    pub through_proxy: bool,
    /// Only the app's SNS calls go through that proxy.
    pub sns_through_proxy: bool,
    pub retention_days: u32,
    pub auth_header: Option<&'static str>,
    pub alert_repeat_minutes: Option<u32>,
    /// This many BatchWriteItem responses come back with every item unprocessed.
    pub unprocessed_responses: usize,
    /// DynamoDB's first answers to this operation are lost (a 500 after moto handled it).
    pub lost_answers: Option<(&'static str, usize)>,
    /// `ALERT_EVENT_TYPES`, when not the default.
    pub alert_event_types: Option<&'static str>,
    /// How the remote secret is refreshed (default: as deployed).
    pub secret_policy: Option<SecretPolicy>,
    /// A spool (queue, dead-letter queue, bucket), as the stack has one.
    pub spool: bool,
    /// The spool's calls go through the proxy too.
    pub spool_through_proxy: bool,
}

/// The spool queue's receive limit in the tests (the stack's is 20).
pub const TEST_MAX_RECEIVES: usize = 3;

/// A test's spool: its queues and bucket, and the replay function wired to them.
pub struct TestSpool {
    pub queue_url: String,
    pub dead_letter_url: String,
    pub bucket: String,
    pub replayer: Replayer,
}

/// Tests that are not about time do not depend on the machine's speed: generous timeouts
/// (a busy machine can make moto slow) and no real backoff to sleep through.
pub const PATIENT: Duration = Duration::from_secs(60);

pub struct Harness {
    pub app: App,
    pub table: String,
    pub queue_url: String,
    /// Clients straight to moto, for setting up and reading back.
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// AWS operations the app made, by name.
    pub calls: CallCounter,
    /// Every DynamoDB request the app sent, as sent.
    pub sent: sent::SentRequests,
    /// The faults injected into DynamoDB's answers (and the attempts of the operation
    /// whose answers `Options::lost_answers` loses).
    pub faults: faults::Faults,
    pub proxy: Option<FaultProxy>,
    pub spool: Option<TestSpool>,
    pub s3: aws_sdk_s3::Client,
    /// What the app applies events with, for other entry points (reconciliation).
    pub store: Store,
    pub publisher: Publisher,
    pub rules: Rules,
    /// The topic, for a command run in another process.
    pub topic_arn: String,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A client already built, as the app's lazily built clients take it.
fn ready<T: Send + 'static>(client: T) -> kadoa_webhook::aws::Lazy<T> {
    kadoa_webhook::aws::lazy(move || client)
}

/// An SDK configuration against `endpoint`, with patient timeouts.
/// The tests' AWS credentials: with a session token, as the function has on Lambda.
pub fn credentials() -> Credentials {
    Credentials::new("testing", "testing", Some("session-token".to_owned()), None, "tests")
}

pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(PATIENT)
        .operation_timeout(PATIENT)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        // The SDK's standard retries, as in production, with a short first backoff.
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(kadoa_webhook::aws::MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(20)),
        )
        .timeout_config(timeouts)
        .load()
        .await
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
        let moto = moto::moto();
        let direct = sdk_config(&moto.endpoint).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&direct);
        let sns = aws_sdk_sns::Client::new(&direct);
        let sqs = aws_sdk_sqs::Client::new(&direct);
        let secrets_manager = aws_sdk_secretsmanager::Client::new(&direct);

        let id = format!("{}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::SeqCst));
        let table = format!("kadoa-events-{id}");
        create_table(&dynamodb, &table).await;
        let topic_arn = sns.create_topic().name(format!("kadoa-alerts-{id}")).send().await.unwrap().topic_arn.unwrap();
        let queue_url =
            sqs.create_queue().queue_name(format!("kadoa-alerts-{id}")).send().await.unwrap().queue_url.unwrap();
        let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:kadoa-alerts-{id}");
        sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(&queue_arn).send().await.unwrap();

        let mut env: HashMap<&str, String> = HashMap::from([
            ("TABLE_NAME", table.clone()),
            ("ALERT_TOPIC_ARN", topic_arn.clone()),
            ("RETENTION_DAYS", options.retention_days.to_string()),
        ]);
        match &options.secrets_manager_value {
            Some(value) => {
                let arn = secrets_manager
                    .create_secret()
                    .name(format!("kadoa-webhook-secret-{id}"))
                    .secret_string(value)
                    .send()
                    .await
                    .unwrap()
                    .arn
                    .unwrap();
                env.insert("WEBHOOK_SECRET_ARN", arn);
            }
            None => {
                env.insert("WEBHOOK_SECRET", format!("{SECRET}\n{NEXT_SECRET}\n"));
            }
        }
        if let Some(header) = options.auth_header {
            env.insert("AUTH_HEADER_NAME", header.to_owned());
        }
        if let Some(minutes) = options.alert_repeat_minutes {
            env.insert("ALERT_REPEAT_MINUTES", minutes.to_string());
        }
        if let Some(types) = options.alert_event_types {
            env.insert("ALERT_EVENT_TYPES", types.to_owned());
        }
        let s3 = kadoa_webhook::aws::s3_client(&direct);
        let spool_names = match options.spool {
            true => Some(create_spool(&sqs, &s3, &id).await),
            false => None,
        };
        if let Some((queue_url, _, bucket)) = &spool_names {
            env.insert("SPOOL_QUEUE_URL", queue_url.clone());
            env.insert("SPOOL_BUCKET", bucket.clone());
        }
        let settings = Settings::from_lookup(|name| env.get(name).cloned()).unwrap();

        let proxy = match options.through_proxy || options.sns_through_proxy || options.spool_through_proxy {
            true => Some(FaultProxy::start(moto.port).await),
            false => None,
        };
        let proxied = sdk_config(&proxy.as_ref().map_or(moto.endpoint.clone(), |p| p.endpoint.clone())).await;
        let unproxied = sdk_config(&moto.endpoint).await;
        let app_config = if options.through_proxy { &proxied } else { &unproxied };
        let sns_config = if options.sns_through_proxy { &proxied } else { app_config };
        let spool_config = if options.spool_through_proxy { &proxied } else { &unproxied };
        let calls = CallCounter::default();
        let faults = faults::Faults::new(options.unprocessed_responses, options.lost_answers);
        let sent = sent::SentRequests::default();
        // The app's own client configurations (src/aws.rs), with the tests' interceptors.
        let clients = AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(app_config)
                    .interceptor(calls.clone())
                    .interceptor(faults.clone())
                    .interceptor(sent.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(sns_config).interceptor(calls.clone()).build(),
            ),
            secrets_manager: ready(aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(app_config).interceptor(calls.clone()).build(),
            )),
            sqs: ready(aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(spool_config).interceptor(calls.clone()).build(),
            )),
            s3: ready(aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(spool_config)
                    .force_path_style(true)
                    .interceptor(calls.clone())
                    .build(),
            )),
        };
        let pacing =
            Pacing { unprocessed_backoff: Duration::from_millis(1), claim_call_timeout: PATIENT, ..Pacing::default() };
        let store = Store::new(clients.dynamodb.clone(), table.clone()).with_pacing(pacing);
        let publisher = Publisher::new(clients.sns.clone(), topic_arn.clone()).with_timeout(PATIENT);
        let spool = spool_names.map(|(queue_url, dead_letter_url, bucket)| {
            let receiver = Receiver::new(store.clone(), publisher.clone(), settings.rules.clone());
            let spool = Spool::new(clients.sqs.clone(), queue_url.clone(), clients.s3.clone(), bucket.clone());
            let replayer = Replayer::new(receiver, spool).with_first_retry_delay(Duration::ZERO);
            TestSpool { queue_url, dead_letter_url, bucket, replayer }
        });
        let rules = settings.rules.clone();
        let app =
            App::new(settings, clients, store.clone(), publisher.clone(), options.secret_policy.unwrap_or_default());
        app.warm_up().await;
        Self {
            app,
            table,
            queue_url,
            dynamodb,
            sqs,
            calls,
            faults,
            sent,
            proxy,
            spool,
            s3,
            store,
            publisher,
            rules,
            topic_arn,
        }
    }

    /// A receiver like the app's, for another entry point.
    pub fn receiver(&self) -> Receiver {
        Receiver::new(self.store.clone(), self.publisher.clone(), self.rules.clone())
    }

    fn test_spool(&self) -> &TestSpool {
        self.spool.as_ref().expect("a harness with a spool")
    }

    /// Does what Lambda's SQS trigger does, once: receives up to 10 spooled deliveries
    /// (hidden for `visibility` seconds), hands them to the replay function, deletes
    /// those it did not return. Returns how many it received and which failed.
    pub async fn replay_once(&self, visibility: i32) -> (usize, Vec<String>) {
        let spool = self.test_spool();
        let output = self
            .sqs
            .receive_message()
            .queue_url(&spool.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        let messages = output.messages.unwrap_or_default();
        let records: Vec<SqsRecord> = messages
            .iter()
            .map(|m| SqsRecord {
                message_id: m.message_id().unwrap().to_owned(),
                receipt_handle: m.receipt_handle().unwrap().to_owned(),
                body: m.body().unwrap().to_owned(),
                attributes: m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
                    .unwrap_or_default(),
            })
            .collect();
        let answer = spool.replayer.handle(SqsEvent { records: records.clone() }).await;
        let failed: Vec<String> = answer.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
        for record in records.iter().filter(|r| !failed.contains(&r.message_id)) {
            self.sqs
                .delete_message()
                .queue_url(&spool.queue_url)
                .receipt_handle(&record.receipt_handle)
                .send()
                .await
                .unwrap();
        }
        (records.len(), failed)
    }

    /// Replays until the spool is empty, as Lambda would; returns how many deliveries were
    /// applied. A message that fails comes back at once (the test replayer waits 0 s)
    /// and is tried again, at most 5 times.
    pub async fn replay_all(&self) -> usize {
        let mut replayed = 0;
        for _ in 0..5 * TEST_MAX_RECEIVES {
            let (received, failed) = self.replay_once(30).await;
            if received == 0 {
                return replayed;
            }
            replayed += received - failed.len();
        }
        panic!("the spool did not empty");
    }

    /// Messages visible in the spool queue and in its dead-letter queue.
    pub async fn spool_depths(&self) -> (usize, usize) {
        let spool = self.test_spool();
        let depth = |url: &str| {
            let url = url.to_owned();
            async move {
                let attributes = self
                    .sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                    .send()
                    .await
                    .unwrap()
                    .attributes
                    .unwrap_or_default();
                attributes[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
                    .parse::<usize>()
                    .unwrap()
            }
        };
        (depth(&spool.queue_url).await, depth(&spool.dead_letter_url).await)
    }

    /// Objects left in the spool's bucket.
    pub async fn spool_objects(&self) -> usize {
        let output = self.s3.list_objects_v2().bucket(&self.test_spool().bucket).send().await.unwrap();
        output.contents.unwrap_or_default().len()
    }

    /// Sends `body` as Kadoa would: POST, JSON, `X-Kadoa-Event`, the bearer secret.
    pub async fn deliver(&self, body: &str) -> (u16, Value) {
        let event_type = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["eventType"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://example.lambda-url.us-east-1.on.aws/")
            .header("content-type", "application/json")
            .header("x-kadoa-event", event_type)
            .header("authorization", format!("Bearer {SECRET}"))
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(request).await
    }

    /// Delivers `body` `times` times, as Kadoa's retries would; the `status` of each 200.
    pub async fn deliver_times(&self, body: &str, times: usize) -> Vec<String> {
        let mut statuses = Vec::new();
        for _ in 0..times {
            let (status, answer) = self.deliver(body).await;
            assert_eq!(status, 200, "{answer}");
            statuses.push(answer["status"].as_str().unwrap().to_owned());
        }
        statuses
    }

    pub async fn send(&self, request: Request) -> (u16, Value) {
        let answer = self.app.handle(request, None).await;
        (answer.status_code, answer.json_body())
    }

    /// Sends a Lambda event (function URL or API Gateway JSON) as the runtime hands it over.
    pub async fn send_event(&self, event: &str) -> (u16, Value) {
        let answer = self.app.handle_event(event, None).await;
        (answer.status_code, answer.json_body())
    }

    /// Every item in the table, sorted by key.
    pub async fn items(&self) -> Vec<Item> {
        let pages: Vec<_> =
            self.dynamodb.scan().table_name(&self.table).into_paginator().items().send().collect::<Vec<_>>().await;
        let mut items: Vec<Item> = pages.into_iter().map(|item| item.unwrap()).collect();
        items.sort_by_key(|item| (s(item, "pk"), s(item, "sk")));
        items
    }

    /// Every alert that reached the topic's SQS subscriber, as SNS wraps it, oldest first.
    pub async fn alerts(&self) -> Vec<Value> {
        let mut alerts = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .unwrap();
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return alerts;
            }
            for message in messages {
                alerts.push(serde_json::from_str(message.body().unwrap()).unwrap());
                let handle = message.receipt_handle().unwrap();
                self.sqs.delete_message().queue_url(&self.queue_url).receipt_handle(handle).send().await.unwrap();
            }
        }
    }

    /// Every stored difference as its change holds it (in the change item, or in the parts
    /// of the version the change item names), with its `changeId`; by change, in order.
    pub async fn differences(&self) -> Vec<Item> {
        let items = self.items().await;
        let mut differences = Vec::new();
        for change in items.iter().filter(|item| s(item, "entity") == "change") {
            let lists: Vec<&AttributeValue> = match change.get("partVersion") {
                None => change.get("differences").into_iter().collect(),
                Some(version) => {
                    let prefix = format!("{}PART#{}#", s(change, "sk"), version.as_s().unwrap());
                    let parts =
                        items.iter().filter(|i| s(i, "pk") == s(change, "pk") && s(i, "sk").starts_with(&prefix));
                    let lists: Vec<&AttributeValue> = parts.filter_map(|part| part.get("differences")).collect();
                    assert_eq!(lists.len() as i64, n(change, "partCount"), "every part is there");
                    lists
                }
            };
            for list in lists {
                for difference in list.as_l().unwrap() {
                    let mut difference = difference.as_m().unwrap().clone();
                    difference.insert("changeId".into(), AttributeValue::S(s(change, "changeId")));
                    differences.push(difference);
                }
            }
        }
        differences
    }

    pub async fn items_of(&self, entity: &str) -> Vec<Item> {
        self.items().await.into_iter().filter(|item| s(item, "entity") == entity).collect()
    }
}

/// Creates a spool as the stack does: a dead-letter queue, the spool queue redriving to it,
/// and a bucket. Returns (queue URL, dead-letter URL, bucket).
async fn create_spool(sqs: &aws_sdk_sqs::Client, s3: &aws_sdk_s3::Client, id: &str) -> (String, String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dead_letter_url =
        sqs.create_queue().queue_name(format!("kadoa-spool-dlq-{id}")).send().await.unwrap().queue_url.unwrap();
    let dead_letter_arn = format!("arn:aws:sqs:us-east-1:123456789012:kadoa-spool-dlq-{id}");
    let redrive = json!({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": TEST_MAX_RECEIVES.to_string()});
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("kadoa-spool-{id}"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let bucket = format!("kadoa-spool-{id}");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    (queue_url, dead_letter_url, bucket)
}

/// Creates a table with the key schema of template.yaml's `EventsTable`.
pub async fn create_table(dynamodb: &aws_sdk_dynamodb::Client, table: &str) {
    let properties = &template::resource("EventsTable")["Properties"];
    let mut request = dynamodb.create_table().table_name(table).billing_mode(BillingMode::PayPerRequest);
    for key in properties["KeySchema"].as_array().unwrap() {
        let kind = KeyType::from(key["KeyType"].as_str().unwrap());
        request = request.key_schema(
            KeySchemaElement::builder()
                .attribute_name(key["AttributeName"].as_str().unwrap())
                .key_type(kind)
                .build()
                .unwrap(),
        );
    }
    for attribute in properties["AttributeDefinitions"].as_array().unwrap() {
        let kind = ScalarAttributeType::from(attribute["AttributeType"].as_str().unwrap());
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute["AttributeName"].as_str().unwrap())
                .attribute_type(kind)
                .build()
                .unwrap(),
        );
    }
    for index in properties["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
        let projection = &index["Projection"];
        let non_key = projection["NonKeyAttributes"].as_array().into_iter().flatten();
        let mut gsi = GlobalSecondaryIndex::builder().index_name(index["IndexName"].as_str().unwrap()).projection(
            Projection::builder()
                .projection_type(ProjectionType::from(projection["ProjectionType"].as_str().unwrap()))
                .set_non_key_attributes(Some(non_key.map(|name| name.as_str().unwrap().to_owned()).collect()))
                .build(),
        );
        for key in index["KeySchema"].as_array().unwrap() {
            gsi = gsi.key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key["AttributeName"].as_str().unwrap())
                    .key_type(KeyType::from(key["KeyType"].as_str().unwrap()))
                    .build()
                    .unwrap(),
            );
        }
        request = request.global_secondary_indexes(gsi.build().unwrap());
    }
    request.send().await.unwrap();
    let ttl = &properties["TimeToLiveSpecification"];
    dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .attribute_name(ttl["AttributeName"].as_str().unwrap())
                .enabled(ttl["Enabled"].as_bool().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// A string attribute, or "" when absent.
pub fn s(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(text)) => text.clone(),
        _ => String::new(),
    }
}

pub fn n(item: &Item, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(number)) => number.parse().unwrap(),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

/// A fixture from `events/`: the Lambda event, as the runtime hands it over.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The body of a fixture, for tests that vary it.
pub fn fixture_body(name: &str) -> String {
    let event: Value = serde_json::from_str(&fixture(name)).unwrap();
    event["body"].as_str().unwrap().to_owned()
}
