//! The replay function: applies the deliveries the webhook spooled, triggered by the spool
//! queue. Configuration and clients once at init, then one [`Replayer::handle`] per batch.

#![recursion_limit = "256"]

use kadoa_webhook::alerts::Publisher;
use kadoa_webhook::replay::{Replayer, SqsEvent};
use kadoa_webhook::spool::Spool;
use kadoa_webhook::store::Store;
use kadoa_webhook::{aws, logging, receiver::Receiver, AwsClients, Settings};
use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};

/// mimalloc, as the webhook (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time: one thread is enough.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = Settings::for_replay(|name| std::env::var(name).ok()).inspect_err(|error| {
        tracing::error!(error = %error, "configuration is invalid; refusing to start");
    })?;
    let clients = AwsClients::from_config(&aws::load_sdk_config().await);
    let Some(spool) = settings.spool.clone() else {
        return Err("SPOOL_QUEUE_URL and SPOOL_BUCKET are required".into());
    };
    let receiver = Receiver::new(
        Store::new(clients.dynamodb.clone(), settings.table_name.clone()),
        Publisher::new(clients.sns.clone(), settings.alert_topic_arn.clone()),
        settings.rules.clone(),
    );
    let replayer = Replayer::new(receiver, Spool::new(clients.sqs, spool.queue_url, clients.s3, spool.bucket));
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let replayer = &replayer;
        async move { Ok::<_, Error>(replayer.handle(event.payload).await) }
    }))
    .await
}
