//! The webhook function: configuration, AWS clients and the secret once at init, then
//! one [`App::handle_event`] per invocation.

use std::time::{Instant, SystemTime};

use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

use super::refuse;
use crate::secrets::SecretPolicy;
use crate::{App, Components, Settings};

pub(super) async fn run() -> Result<(), Error> {
    let settings = Settings::from_env().map_err(refuse)?;
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
