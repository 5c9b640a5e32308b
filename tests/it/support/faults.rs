//! DynamoDB's answers as they go wrong in production, made from moto's, which never do:
//! - throttling: BatchWriteItem answers list every item of the request under
//!   `UnprocessedItems` (moto has written them all the same, so re-sending them is
//!   harmless; what the test sees is whether the code re-sends);
//! - lost answers: moto has handled the request, and the SDK sees a 500
//!   InternalServerError, which it retries. Every attempt's body is kept, so a test sees
//!   what a retried attempt sends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// How many more BatchWriteItem answers to turn into "all unprocessed".
    unprocessed: Arc<AtomicUsize>,
    /// The operation whose answers are lost.
    lost_operation: &'static str,
    /// How many more of its answers to lose.
    lost: Arc<AtomicUsize>,
    /// The body of every attempt of `lost_operation`, in order.
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The operation DynamoDB refuses as invalid (a 400 `ValidationException`).
    pub refused_operation: &'static str,
}

impl Faults {
    pub fn new(unprocessed: usize, lost_answers: Option<(&'static str, usize)>) -> Self {
        let (lost_operation, lost) = lost_answers.unwrap_or(("", 0));
        Self {
            unprocessed: Arc::new(AtomicUsize::new(unprocessed)),
            lost_operation,
            lost: Arc::new(AtomicUsize::new(lost)),
            bodies: Arc::default(),
            refused_operation: "",
        }
    }

    /// The bodies of the lost operation's attempts so far.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().unwrap().clone()
    }
}

#[derive(Debug, Clone)]
struct RequestItems(serde_json::Value);

impl Storable for RequestItems {
    type Storer = StoreReplace<Self>;
}

/// The name of the operation an interceptor hook runs for.
pub fn operation(cfg: &ConfigBag) -> &str {
    cfg.load::<Metadata>().map_or("", |m| m.name())
}

/// Takes one from `counter` unless it is zero.
fn take_one(counter: &AtomicUsize) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "Faults"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().unwrap_or(b"{}");
        if operation(cfg) == self.lost_operation {
            self.bodies.lock().unwrap().push(body.to_vec());
        }
        if operation(cfg) == "BatchWriteItem" {
            let body: serde_json::Value = serde_json::from_slice(body)?;
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
        let (status, body) = if operation(cfg) == self.refused_operation {
            let message = "One or more parameter values were invalid: table kadoa-events-internal, key pk";
            (400, format!(r#"{{"__type":"com.amazon.coral.validate#ValidationException","message":"{message}"}}"#))
        } else if operation(cfg) == self.lost_operation && take_one(&self.lost) {
            (500, r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"lost"}"#.to_owned())
        } else if operation(cfg) == "BatchWriteItem" && take_one(&self.unprocessed) {
            let Some(RequestItems(items)) = cfg.load::<RequestItems>().cloned() else { return Ok(()) };
            (200, serde_json::json!({ "UnprocessedItems": items }).to_string())
        } else {
            return Ok(());
        };
        let response = context.response_mut();
        *response.status_mut() = StatusCode::try_from(status).unwrap();
        response.headers_mut().insert("content-length", body.len().to_string());
        *response.body_mut() = SdkBody::from(body);
        Ok(())
    }
}
