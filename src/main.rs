//! The webhook function: configuration, AWS clients and the secret once at init, then
//! one [`App::handle_event`] per invocation.

#![recursion_limit = "256"]
use kadoa_webhook::{aws, logging, App, AwsClients, HttpEvent, Settings};
use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};
use std::time::{Instant, SystemTime};

/// mimalloc: fewer instructions per allocation than glibc's malloc (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time: one thread is enough (fewer instructions, less memory).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = Settings::from_env().inspect_err(|error| {
        // Fail closed: the function does not start half-configured.
        tracing::error!(error = %error, "configuration is invalid; refusing to start");
    })?;
    let clients = AwsClients::from_config(&aws::load_sdk_config().await);
    let app = App::from_clients(settings, clients);
    app.warm_up().await;
    // Read in one pass by our own struct (see src/http/event.rs); a request it cannot turn
    // into HTTP still gets an answer from our code (a 400), not an invocation error.
    lambda_runtime::run(service_fn(|event: LambdaEvent<HttpEvent>| {
        let app = &app;
        async move {
            let deadline =
                event.context.deadline().duration_since(SystemTime::now()).ok().map(|left| Instant::now() + left);
            Ok::<_, Error>(app.handle_http_event(event.payload, deadline).await)
        }
    }))
    .await
}
