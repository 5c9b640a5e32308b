//! The webhook function: configuration, AWS clients and the secret once at init, then
//! one [`App::handle_event`] per invocation.

#![recursion_limit = "256"]
use kadoa_webhook::secrets::SecretPolicy;
use kadoa_webhook::{logging, App, Components, Settings};
use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;
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
    let app = App::new(Components::load(settings).await, SecretPolicy::default());
    app.warm_up().await;
    // The event is taken raw and read by our own code (src/http/event.rs), so that one we
    // cannot read still gets an answer (a 400) instead of failing the invocation, and the
    // runtime never logs a parse error that could quote a header (the credential, even).
    lambda_runtime::run(service_fn(|event: LambdaEvent<Box<RawValue>>| {
        let app = &app;
        async move {
            let deadline =
                event.context.deadline().duration_since(SystemTime::now()).ok().map(|left| Instant::now() + left);
            Ok::<_, Error>(app.handle_event(event.payload.get(), deadline).await)
        }
    }))
    .await
}
