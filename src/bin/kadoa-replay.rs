//! The replay function: applies the deliveries the webhook spooled, triggered by the spool
//! queue. Configuration and clients once at init, then one [`Replayer::handle`] per batch.

#![recursion_limit = "256"]

use aws_lambda_events::event::sqs::SqsEvent;
use kadoa_webhook::replay::Replayer;
use kadoa_webhook::{logging, Components, Settings};
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
    let components = Components::load(settings).await;
    let Some(spool) = components.spool() else {
        return Err("SPOOL_QUEUE_URL and SPOOL_BUCKET are required".into());
    };
    let replayer = Replayer::new(components.receiver(), spool, components.metrics.clone());
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let replayer = &replayer;
        async move { Ok::<_, Error>(replayer.handle(event.payload).await) }
    }))
    .await
}
