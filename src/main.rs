//! The Lambda binary: configuration and AWS clients once at init, then one `App::handle`
//! per request.

use kadoa_webhook::{aws, logging, App, AwsClients, Settings};
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = Settings::from_env().inspect_err(|error| {
        // Fail closed: the function does not start half-configured.
        tracing::error!(error = %error, "configuration is invalid; refusing to start");
    })?;
    let clients = AwsClients::from_config(&aws::load_sdk_config().await);
    let app = App::new(settings, clients);
    run(service_fn(|request: Request| async { Ok::<_, Error>(app.handle(request).await) })).await
}
