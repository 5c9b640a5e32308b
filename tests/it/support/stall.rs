//! Slow answers, per operation: the SDK's own HTTP client, wrapped so that requests of the
//! operations a test names are held for a while (or for good) before they go out. A proxy
//! cannot tell one operation from another inside a kept-alive connection; the client can.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// Operation name (`UpdateItem`, `Publish`, …) → how long its requests are held, before
/// they are sent and after their answer came.
type Delays = Arc<Mutex<HashMap<String, (Duration, Duration)>>>;

#[derive(Debug, Clone)]
pub struct Stalls {
    inner: SharedHttpClient,
    delays: Delays,
}

impl Stalls {
    pub fn new(inner: SharedHttpClient) -> Self {
        Self { inner, delays: Delays::default() }
    }

    /// Every request of `operation` from now on waits `delay` before it is sent.
    pub fn hold(&self, operation: &str, delay: Duration) {
        self.delays.lock().unwrap().insert(operation.to_owned(), (delay, Duration::ZERO));
    }

    /// Every request of `operation` from now on is sent at once, and its answer held
    /// `delay` (the service has acted on it; the answer is late).
    pub fn hold_answer(&self, operation: &str, delay: Duration) {
        self.delays.lock().unwrap().insert(operation.to_owned(), (Duration::ZERO, delay));
    }
}

/// The operation a request is for: DynamoDB names it in `X-Amz-Target`, SNS (the query
/// protocol) as `Action=` in the body.
fn operation(request: &HttpRequest) -> String {
    if let Some(target) = request.headers().get("x-amz-target") {
        return target.rsplit('.').next().unwrap_or_default().to_owned();
    }
    let body = std::str::from_utf8(request.body().bytes().unwrap_or_default()).unwrap_or_default();
    body.split('&').find_map(|pair| pair.strip_prefix("Action=")).unwrap_or_default().to_owned()
}

impl HttpClient for Stalls {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        let inner = self.inner.http_connector(settings, components);
        SharedHttpConnector::new(Held { inner, delays: self.delays.clone() })
    }
}

#[derive(Debug)]
struct Held {
    inner: SharedHttpConnector,
    delays: Delays,
}

impl HttpConnector for Held {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (before, after) = self.delays.lock().unwrap().get(&operation(&request)).copied().unwrap_or_default();
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            tokio::time::sleep(before).await;
            let answer = inner.call(request).await;
            tokio::time::sleep(after).await;
            answer
        })
    }
}
