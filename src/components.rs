//! The composition root: settings → SDK configuration → clients → the store, the
//! publisher, the receiver and the spool. Written once here for every entry point (the
//! webhook, the replay, the outbox, the `kadoa` command and the scheduled
//! reconciliation): no entry point builds an AWS client of its own. The tests build the
//! same from clients of their own, pointed at moto.

use std::sync::Arc;
use std::time::Duration;

use crate::alerts::{Publisher, SnsPublisher};
use crate::aws::{self, AwsClients};
use crate::config::{OutboxSettings, Settings};
use crate::metrics::MetricsSink;
use crate::outbox::Drain;
use crate::receiver::Receiver;
use crate::spool::Spool;
use crate::store::{Pacing, Store};

/// Everything an entry point applies events with.
pub struct Components {
    /// The configuration.
    pub settings: Settings,
    /// The AWS clients (the ones few invocations need are built on first use).
    pub clients: AwsClients,
    /// The table.
    pub store: Store,
    /// Where alerts go.
    pub publisher: Arc<dyn Publisher>,
    /// Where each invocation's metrics line goes.
    pub metrics: MetricsSink,
}

impl Components {
    /// The deployed components: the SDK configuration of the environment (the Lambda
    /// role's credentials, or `AWS_ENDPOINT_URL` for a local stand-in); every time limit
    /// widened when [`aws::PATIENCE_VARIABLE`] says so.
    pub async fn load(settings: Settings) -> Self {
        let clients = AwsClients::from_config(&aws::load_sdk_config().await);
        Self::new(settings, clients).within(aws::patience_from_env())
    }

    /// The components talking to AWS through `clients`.
    pub fn new(settings: Settings, clients: AwsClients) -> Self {
        let store = Store::new(clients.dynamodb.clone(), settings.table_name.clone());
        let publisher = Arc::new(SnsPublisher::new(clients.sns.clone(), settings.alert_topic_arn.clone()));
        let metrics = MetricsSink::stdout(settings.metrics_namespace.clone());
        Self { settings, clients, store, publisher, metrics }
    }

    /// The same components with the alert path's caps (each claim, commit, release and
    /// publish) widened to `patience`, when given.
    pub fn within(mut self, patience: Option<Duration>) -> Self {
        if let Some(limit) = patience {
            let pacing = Pacing { claim_call_timeout: limit, ..self.store.pacing() };
            self.store = self.store.with_pacing(pacing);
            let publisher = SnsPublisher::new(self.clients.sns.clone(), self.settings.alert_topic_arn.clone());
            self.publisher = Arc::new(publisher.with_timeout(limit));
        }
        self
    }

    /// A receiver: the one place an event is applied.
    pub fn receiver(&self) -> Receiver {
        Receiver::new(Arc::new(self.store.clone()), self.publisher.clone(), self.settings.rules.clone())
    }

    /// The spool, when the configuration has one.
    pub fn spool(&self) -> Option<Spool> {
        let spool = self.settings.spool.clone()?;
        Some(Spool::new(self.clients.sqs.clone(), spool.queue_url, self.clients.s3.clone(), spool.bucket))
    }
}

/// What the operator's command (`kadoa`) works with: the functions' clients, the two only
/// it reads (the stack's outputs, the queues' metrics), and the widened time limit, if any.
/// Only with the `cli` feature: the functions are built without those two SDK crates.
#[cfg(feature = "cli")]
pub struct OperatorClients {
    /// The clients the functions use.
    pub aws: AwsClients,
    /// The stack's outputs.
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// The queues' metrics.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Every time limit, when [`aws::PATIENCE_VARIABLE`] widens them.
    pub patience: Option<Duration>,
}

#[cfg(feature = "cli")]
impl OperatorClients {
    /// The caller's credentials (or `AWS_ENDPOINT_URL` for a local stand-in), as the
    /// functions load theirs, with `overrides` (the local stack's) where the environment
    /// has none.
    pub async fn load(overrides: &aws::SdkOverrides) -> Self {
        let config = aws::load_sdk_config_over(overrides).await;
        Self {
            aws: AwsClients::from_config(&config),
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            patience: aws::patience_from_env(),
        }
    }

    /// The components for `settings`, on these clients.
    pub fn components(&self, settings: Settings) -> Components {
        Components::new(settings, self.aws.clone()).within(self.patience)
    }
}

/// The outbox's drain: the stream's batches to `settings`' bus, through the SDK
/// configuration of the environment.
pub async fn outbox_drain(settings: OutboxSettings) -> Drain {
    let config = aws::load_sdk_config().await;
    let client = aws_sdk_eventbridge::Client::new(&config);
    Drain::new(client, settings.bus, MetricsSink::stdout(settings.metrics_namespace))
}
