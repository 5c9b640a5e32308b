//! Makes DynamoDB answer BatchWriteItem as it does when throttled: the response lists
//! every item of the request under `UnprocessedItems`. Moto has written them all the
//! same, so re-sending them is harmless; what the test sees is whether the code re-sends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

#[derive(Debug, Clone)]
pub struct Unprocessed {
    /// How many more BatchWriteItem responses to turn into "all unprocessed".
    remaining: Arc<AtomicUsize>,
}

impl Unprocessed {
    pub fn responses(count: usize) -> Self {
        Self { remaining: Arc::new(AtomicUsize::new(count)) }
    }
}

#[derive(Debug, Clone)]
struct RequestItems(serde_json::Value);

impl Storable for RequestItems {
    type Storer = StoreReplace<Self>;
}

fn is_batch_write(cfg: &ConfigBag) -> bool {
    cfg.load::<Metadata>().is_some_and(|m| m.name() == "BatchWriteItem")
}

impl Intercept for Unprocessed {
    fn name(&self) -> &'static str {
        "Unprocessed"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if is_batch_write(cfg) {
            let body: serde_json::Value = serde_json::from_slice(context.request().body().bytes().unwrap_or(b"{}"))?;
            cfg.interceptor_state().store_put(RequestItems(body["RequestItems"].clone()));
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !is_batch_write(cfg) || self.remaining.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        self.remaining.fetch_sub(1, Ordering::SeqCst);
        let Some(RequestItems(items)) = cfg.load::<RequestItems>().cloned() else { return Ok(()) };
        let body = serde_json::json!({ "UnprocessedItems": items }).to_string();
        let response = context.response_mut();
        response.headers_mut().insert("content-length", body.len().to_string());
        *response.body_mut() = SdkBody::from(body);
        Ok(())
    }
}
