//! The replay function: applies the deliveries the webhook spooled, triggered by the spool
//! queue. Configuration and clients once at init, then one [`Replayer::handle`] per batch.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};

use super::refuse;
use crate::replay::Replayer;
use crate::{Components, Settings};

pub(super) async fn run() -> Result<(), Error> {
    let settings = Settings::for_replay(|name| std::env::var(name).ok()).map_err(refuse)?;
    let components = Components::load(settings).await;
    let spool = components.spool().ok_or_else(|| refuse("SPOOL_QUEUE_URL and SPOOL_BUCKET are required"))?;
    let replayer = Replayer::new(components.receiver(), spool, components.metrics.clone());
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let replayer = &replayer;
        async move { Ok::<_, Error>(replayer.handle(event.payload).await) }
    }))
    .await
}
