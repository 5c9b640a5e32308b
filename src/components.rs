//! The composition root: settings → SDK configuration → clients → the store, the
//! publisher, the receiver and the spool. Written once here for every entry point (the
//! webhook, the replay, the `kadoa` command and the scheduled reconciliation); the tests
//! build the same from clients of their own, pointed at moto.

use std::sync::Arc;

use crate::alerts::{Publisher, SnsPublisher};
use crate::aws::{self, AwsClients};
use crate::config::Settings;
use crate::metrics::MetricsSink;
use crate::receiver::Receiver;
use crate::spool::Spool;
use crate::store::Store;

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
    /// role's credentials, or `AWS_ENDPOINT_URL` for a local stand-in).
    pub async fn load(settings: Settings) -> Self {
        let clients = AwsClients::from_config(&aws::load_sdk_config().await);
        Self::new(settings, clients)
    }

    /// The components talking to AWS through `clients`.
    pub fn new(settings: Settings, clients: AwsClients) -> Self {
        let store = Store::new(clients.dynamodb.clone(), settings.table_name.clone());
        let publisher = Arc::new(SnsPublisher::new(clients.sns.clone(), settings.alert_topic_arn.clone()));
        let metrics = MetricsSink::stdout(settings.metrics_namespace.clone());
        Self { settings, clients, store, publisher, metrics }
    }

    /// A receiver: the one place an event is applied.
    pub fn receiver(&self) -> Receiver {
        Receiver::new(self.store.clone(), self.publisher.clone(), self.settings.rules.clone())
    }

    /// The spool, when the configuration has one.
    pub fn spool(&self) -> Option<Spool> {
        let spool = self.settings.spool.clone()?;
        Some(Spool::new(self.clients.sqs.clone(), spool.queue_url, self.clients.s3.clone(), spool.bucket))
    }
}
