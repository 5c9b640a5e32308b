//! The outbox function: the table's stream → EventBridge. Deployed only when the stack has
//! an `EventBusName`; configuration and the client once at init, then one
//! [`Drain::handle`] per batch of stream records.

use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};

use super::refuse;
use crate::config::OutboxSettings;
use crate::outbox::StreamEvent;

pub(super) async fn run() -> Result<(), Error> {
    let settings = OutboxSettings::from_lookup(|name| std::env::var(name).ok()).map_err(refuse)?;
    let drain = crate::components::outbox_drain(settings).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<StreamEvent>| {
        let drain = &drain;
        async move { Ok::<_, Error>(drain.handle(event.payload).await) }
    }))
    .await
}
