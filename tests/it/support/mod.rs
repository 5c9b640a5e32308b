//! What the integration tests share: moto, a fault proxy, an app wired to them, and ways
//! to send deliveries and read back what was stored.

pub mod calls;
pub mod faults;
pub mod http_server;
pub mod kadoa;
pub mod moto;
pub mod openapi;
pub mod proxy;
pub mod reads;
pub mod resources;
pub mod sent;
pub mod stall;
pub mod template;

use kadoa_webhook::metrics::MetricsSink;
use kadoa_webhook::outbox::{BatchAnswer, Drain};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use kadoa_webhook::alerts::{Publisher, SnsPublisher};
use kadoa_webhook::receiver::{Receiver, Rules};
use kadoa_webhook::replay::Replayer;
use kadoa_webhook::secrets::SecretPolicy;
use kadoa_webhook::store::{Pacing, Store};
use kadoa_webhook::{App, AwsClients, Components, Settings};
use lambda_http::{Body, Request};
use serde_json::Value;

pub use calls::CallCounter;
pub use proxy::FaultProxy;

pub const SECRET: &str = "local-dev-secret";
pub const NEXT_SECRET: &str = "local-dev-secret-next";

pub type Item = HashMap<String, AttributeValue>;

/// How a test wants its app: `Harness::builder()`, a method per difference from the
/// deployed configuration, then `build()`.
#[derive(Default)]
pub struct HarnessBuilder {
    secrets_manager: Option<String>,
    through_proxy: bool,
    sns_through_proxy: bool,
    spool: bool,
    spool_through_proxy: bool,
    event_bus: bool,
    events_through_proxy: bool,
    retention_days: u32,
    auth_header: Option<&'static str>,
    alert_repeat_minutes: Option<u32>,
    alert_event_types: Option<&'static str>,
    unprocessed_responses: usize,
    lost_answers: Option<(&'static str, usize)>,
    refused_by_aws: &'static str,
    secret_policy: Option<SecretPolicy>,
    change_rules: Vec<kadoa_webhook::rules::Rule>,
    deployed_timeouts: bool,
}

impl HarnessBuilder {
    /// The secrets come from Secrets Manager (this value) instead of `WEBHOOK_SECRET`.
    pub fn secrets_manager(self, value: String) -> Self {
        Self { secrets_manager: Some(value), ..self }
    }
    /// The app's AWS calls go through a proxy the test can switch off.
    pub fn through_proxy(self) -> Self {
        Self { through_proxy: true, ..self }
    }
    /// Only the app's SNS calls go through that proxy.
    pub fn sns_through_proxy(self) -> Self {
        Self { sns_through_proxy: true, ..self }
    }
    /// A spool (queue, dead-letter queue, bucket) and the replay function, as the stack has.
    pub fn spool(self) -> Self {
        Self { spool: true, ..self }
    }
    /// The spool's calls go through the proxy too.
    pub fn spool_through_proxy(self) -> Self {
        Self { spool_through_proxy: true, ..self }
    }
    /// A table with its stream, an event bus with a queue per rule, and the outbox drain.
    pub fn event_bus(self) -> Self {
        Self { event_bus: true, ..self }
    }
    /// The drain's EventBridge calls through the fault proxy.
    pub fn events_through_proxy(self) -> Self {
        Self { event_bus: true, events_through_proxy: true, ..self }
    }
    pub fn retention_days(self, days: u32) -> Self {
        Self { retention_days: days, ..self }
    }
    pub fn auth_header(self, header: &'static str) -> Self {
        Self { auth_header: Some(header), ..self }
    }
    pub fn alert_repeat_minutes(self, minutes: u32) -> Self {
        Self { alert_repeat_minutes: Some(minutes), ..self }
    }
    /// `ALERT_EVENT_TYPES`.
    pub fn alert_event_types(self, types: &'static str) -> Self {
        Self { alert_event_types: Some(types), ..self }
    }
    /// This many BatchWriteItem answers come back with every item unprocessed.
    pub fn unprocessed_responses(self, responses: usize) -> Self {
        Self { unprocessed_responses: responses, ..self }
    }
    /// DynamoDB's first `answers` answers to `operation` are lost (a 500 after moto handled it).
    pub fn lost_answers(self, operation: &'static str, answers: usize) -> Self {
        Self { lost_answers: Some((operation, answers)), ..self }
    }
    /// DynamoDB refuses every `operation` as invalid (`ValidationException`).
    pub fn refused_by_aws(self, operation: &'static str) -> Self {
        Self { refused_by_aws: operation, ..self }
    }
    /// The alert path's call timeouts as deployed, instead of patient ones.
    pub fn deployed_timeouts(self) -> Self {
        Self { deployed_timeouts: true, ..self }
    }
    /// How the remote secret is refreshed (default: as deployed).
    /// Alert rules in the table before the app starts (it reads them at start-up).
    pub fn change_rules(self, change_rules: Vec<kadoa_webhook::rules::Rule>) -> Self {
        Self { change_rules, ..self }
    }
    pub fn secret_policy(self, policy: SecretPolicy) -> Self {
        Self { secret_policy: Some(policy), ..self }
    }

    /// The function's environment, as the stack would set it.
    fn environment(&self, resources: &resources::Resources) -> HashMap<&'static str, String> {
        let mut env = HashMap::from([
            ("TABLE_NAME", resources.table.clone()),
            ("ALERT_TOPIC_ARN", resources.topic_arn.clone()),
            ("RETENTION_DAYS", self.retention_days.to_string()),
        ]);
        match &resources.secret_arn {
            Some(arn) => env.insert("WEBHOOK_SECRET_ARN", arn.clone()),
            None => env.insert("WEBHOOK_SECRET", format!("{SECRET}\n{NEXT_SECRET}\n")),
        };
        let optional = [
            ("AUTH_HEADER_NAME", self.auth_header.map(str::to_owned)),
            ("ALERT_REPEAT_MINUTES", self.alert_repeat_minutes.map(|m| m.to_string())),
            ("ALERT_EVENT_TYPES", self.alert_event_types.map(str::to_owned)),
            ("SPOOL_QUEUE_URL", resources.spool_url.clone()),
            ("SPOOL_BUCKET", resources.bucket.clone()),
        ];
        env.extend(optional.into_iter().filter_map(|(name, value)| Some((name, value?))));
        env
    }

    pub async fn build(self) -> Harness {
        let moto = moto::moto();
        let id = format!("{}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::SeqCst));
        let created =
            resources::create(&id, self.spool, TEST_MAX_RECEIVES, self.secrets_manager.as_deref(), self.event_bus)
                .await;
        let env = self.environment(&created);
        let settings = Settings::from_lookup(|name| env.get(name).cloned()).unwrap();

        let proxy =
            match self.through_proxy || self.sns_through_proxy || self.spool_through_proxy || self.events_through_proxy
            {
                true => Some(FaultProxy::start(moto.port).await),
                false => None,
            };
        // The app's requests go through a client that can hold an operation's requests.
        let direct = sdk_config(&moto.endpoint).await;
        let stalls = stall::Stalls::new(aws_smithy_http_client::Builder::new().build_http());
        let held = |config: SdkConfig| config.to_builder().http_client(stalls.clone()).build();
        let proxied = held(sdk_config(&proxy.as_ref().map_or(moto.endpoint.clone(), |p| p.endpoint.clone())).await);
        let unproxied = held(direct.clone());
        let app_config = if self.through_proxy { &proxied } else { &unproxied };
        let sns_config = if self.sns_through_proxy { &proxied } else { app_config };
        let spool_config = if self.spool_through_proxy { &proxied } else { &unproxied };
        let calls = CallCounter::default();
        let mut faults = faults::Faults::new(self.unprocessed_responses, self.lost_answers);
        faults.refused_operation = self.refused_by_aws;
        let sent = sent::SentRequests::default();
        // The SDK's clients, as the app builds them, with the tests' interceptors.
        let clients = AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(app_config)
                    .interceptor(calls.clone())
                    .interceptor(faults.clone())
                    .interceptor(sent.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                kadoa_webhook::aws::sns_config(sns_config)
                    .interceptor(calls.clone())
                    .interceptor(faults.clone())
                    .build(),
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
        // The app's own composition root, paced for tests that are not about time.
        let mut components = Components::new(settings, clients);
        let call_timeout = if self.deployed_timeouts { Pacing::default().claim_call_timeout } else { PATIENT };
        let pacing = Pacing {
            unprocessed_backoff: Duration::from_millis(1),
            claim_call_timeout: call_timeout,
            ..Pacing::default()
        };
        components.store = components.store.clone().with_pacing(pacing);
        // Each harness's metric lines, kept apart from the others' in this process.
        components.metrics = MetricsSink::captured(components.settings.metrics_namespace.clone());
        let metrics = components.metrics.clone();
        if !self.deployed_timeouts {
            let sns = components.clients.sns.clone();
            components.publisher = Arc::new(SnsPublisher::new(sns, created.topic_arn.clone()).with_timeout(PATIENT));
        }
        let spool = components.spool().map(|spool| TestSpool {
            queue_url: created.spool_url.clone().unwrap(),
            dead_letter_url: created.dead_letter_url.clone().unwrap(),
            bucket: created.bucket.clone().unwrap(),
            replayer: Replayer::new(components.receiver(), spool, components.metrics.clone())
                .with_first_retry_delay(Duration::ZERO),
        });
        let outbox = created.bus_arn.clone().map(|bus| {
            let config = if self.events_through_proxy { &proxied } else { &unproxied };
            let client = aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(config).interceptor(calls.clone()).build(),
            );
            TestOutbox {
                drain: Drain::new(client, bus, components.metrics.clone()),
                stream_arn: created.stream_arn.clone().unwrap(),
                queues: created.bus_queues.clone().unwrap(),
            }
        });
        let (store, publisher, rules) =
            (components.store.clone(), components.publisher.clone(), components.settings.rules.clone());
        for rule in &self.change_rules {
            store.add_rule(rule).await.unwrap();
        }
        let app = Arc::new(App::new(components, self.secret_policy.unwrap_or_default()));
        app.warm_up().await;
        // What a test counts starts with its first request, as a warm function's would;
        // what start-up called is kept apart.
        let startup_calls = calls.snapshot();
        calls.reset();
        sent.take();
        Harness {
            app,
            startup_calls,
            table: created.table,
            queue_url: created.inbox_url,
            dynamodb: aws_sdk_dynamodb::Client::new(&direct),
            sqs: aws_sdk_sqs::Client::new(&direct),
            s3: kadoa_webhook::aws::s3_client(&direct),
            calls,
            faults,
            sent,
            stalls,
            proxy,
            spool,
            store,
            publisher,
            rules,
            metrics,
            outbox,
            secret_arn: created.secret_arn,
            topic_arn: created.topic_arn,
        }
    }
}

/// A test's event bus: the outbox drain publishing to it, the table's stream, and a queue
/// per rule (`all`, `price`, `failures`).
pub struct TestOutbox {
    pub drain: Drain,
    pub stream_arn: String,
    pub queues: std::collections::BTreeMap<String, String>,
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
    pub app: Arc<App>,
    pub table: String,
    pub queue_url: String,
    /// Clients straight to moto, for setting up and reading back.
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// AWS operations the app made, by name, from its first request on.
    pub calls: CallCounter,
    /// AWS operations the app made while starting (the secret, the alert rules).
    pub startup_calls: std::collections::HashMap<String, usize>,
    /// Every DynamoDB request the app sent, as sent.
    pub sent: sent::SentRequests,
    /// Holds the app's requests of the operations a test names.
    pub stalls: stall::Stalls,
    /// The faults injected into DynamoDB's answers (and the attempts of the operation
    /// whose answers `HarnessBuilder::lost_answers` loses).
    pub faults: faults::Faults,
    pub proxy: Option<FaultProxy>,
    pub spool: Option<TestSpool>,
    pub s3: aws_sdk_s3::Client,
    /// What the app applies events with, for other entry points (reconciliation).
    pub store: Store,
    pub publisher: Arc<dyn Publisher>,
    pub rules: Rules,
    /// The metric lines the entry points wrote.
    pub metrics: MetricsSink,
    /// With `HarnessBuilder::event_bus`: the outbox drain and the bus's rule queues.
    pub outbox: Option<TestOutbox>,
    /// The webhook secret, with `HarnessBuilder::secrets_manager`.
    pub secret_arn: Option<String>,
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
    /// The app as deployed, against fresh resources on moto.
    pub async fn new() -> Self {
        Self::builder().build().await
    }

    pub fn builder() -> HarnessBuilder {
        HarnessBuilder::default()
    }

    /// A receiver like the app's, for another entry point.
    pub fn receiver(&self) -> Receiver {
        Receiver::new(Arc::new(self.store.clone()), self.publisher.clone(), self.rules.clone())
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
        // The event as Lambda's SQS trigger hands it over.
        let records: Vec<SqsMessage> = messages
            .iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id.clone();
                record.receipt_handle = m.receipt_handle.clone();
                record.body = m.body.clone();
                record.attributes = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
                    .unwrap_or_default();
                record
            })
            .collect();
        let mut event = SqsEvent::default();
        event.records = records.clone();
        let answer = spool.replayer.handle(event).await;
        let failed: Vec<Option<String>> =
            answer.batch_item_failures.into_iter().map(|f| Some(f.item_identifier)).collect();
        for record in records.iter().filter(|r| !failed.contains(&r.message_id)) {
            self.sqs
                .delete_message()
                .queue_url(&spool.queue_url)
                .receipt_handle(record.receipt_handle.as_deref().unwrap())
                .send()
                .await
                .unwrap();
        }
        (records.len(), failed.into_iter().flatten().collect())
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

    /// Runs the outbox drain over what the table's stream holds since the last drain.
    pub async fn drain_outbox(&self) -> BatchAnswer {
        let outbox = self.outbox.as_ref().expect("built with .event_bus()");
        let event = resources::stream_event(&outbox.stream_arn).await;
        self.drain_records(event).await
    }

    /// Runs the outbox drain over `event` (a stream trigger's event, as JSON).
    pub async fn drain_records(&self, event: Value) -> BatchAnswer {
        self.drain_text(&event.to_string()).await
    }

    /// Runs the outbox drain over a stream trigger's event as Lambda hands it over (JSON
    /// text, which may hold what a `Value` cannot, such as a lone surrogate).
    pub async fn drain_text(&self, event: &str) -> BatchAnswer {
        let outbox = self.outbox.as_ref().expect("built with .event_bus()");
        outbox.drain.handle(serde_json::from_str(event).unwrap()).await
    }

    /// The bus events the rule `rule` (`all`, `price`, `failures`) delivered so far, each
    /// received once (and deleted).
    pub async fn bus_events(&self, rule: &str) -> Vec<Value> {
        let url = &self.outbox.as_ref().expect("built with .event_bus()").queues[rule];
        let mut events = Vec::new();
        loop {
            let output = self.sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return events;
            }
            for message in messages {
                events.push(serde_json::from_str(message.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Objects left in the spool's bucket.
    pub async fn spool_objects(&self) -> usize {
        let output = self.s3.list_objects_v2().bucket(&self.test_spool().bucket).send().await.unwrap();
        output.contents.unwrap_or_default().len()
    }

    /// Sends `body` as Kadoa would: POST, JSON, `X-Kadoa-Event`, the bearer secret.
    pub async fn deliver(&self, body: &str) -> (u16, Value) {
        let readable = kadoa_webhook::envelope::repair_lone_surrogates(body.as_bytes());
        let event_type = serde_json::from_slice::<Value>(&readable)
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
