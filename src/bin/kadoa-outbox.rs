//! The outbox function: the table's stream → EventBridge. Deployed only when the stack has
//! an `EventBusName`; configuration and the client once at init, then one
//! [`Drain::handle`] per batch of stream records.

#![recursion_limit = "256"]

use kadoa_webhook::config::OutboxSettings;
use kadoa_webhook::metrics::MetricsSink;
use kadoa_webhook::outbox::{Drain, StreamEvent};
use kadoa_webhook::{aws, logging};
use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};

/// mimalloc, as the webhook (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time: one thread is enough.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = OutboxSettings::from_lookup(|name| std::env::var(name).ok()).inspect_err(|error| {
        tracing::error!(error = %error, "configuration is invalid; refusing to start");
    })?;
    let client = aws_sdk_eventbridge::Client::new(&aws::load_sdk_config().await);
    let drain = Drain::new(client, settings.bus, MetricsSink::stdout(settings.metrics_namespace));
    lambda_runtime::run(service_fn(|event: LambdaEvent<StreamEvent>| {
        let drain = &drain;
        async move { Ok::<_, Error>(drain.handle(event.payload).await) }
    }))
    .await
}
