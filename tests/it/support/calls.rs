//! Counts the AWS operations an app makes, through an SDK interceptor, and can trip the
//! fault proxy after a given number of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::FaultProxy;

#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    by_operation: HashMap<String, usize>,
    total: usize,
    /// After this many operations in all, switch the proxy off.
    trip: Option<(usize, FaultProxyHandle)>,
}

#[derive(Clone)]
struct FaultProxyHandle(FaultProxy);

impl std::fmt::Debug for FaultProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultProxy")
    }
}

impl CallCounter {
    /// Operations named `operation` (e.g. `BatchWriteItem`) since the last reset.
    pub fn count(&self, operation: &str) -> usize {
        self.inner.lock().unwrap().by_operation.get(operation).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.inner.lock().unwrap().total
    }

    pub fn reset(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.by_operation.clear();
        inner.total = 0;
    }

    pub fn snapshot(&self) -> HashMap<String, usize> {
        self.inner.lock().unwrap().by_operation.clone()
    }

    /// Takes the proxy down once `calls` more operations have started.
    pub fn trip_after(&self, calls: usize, proxy: &FaultProxy) {
        let mut inner = self.inner.lock().unwrap();
        inner.trip = Some((inner.total + calls, FaultProxyHandle(proxy.clone())));
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    // Once per operation, after the operation's own configuration (its name) is loaded.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned()).unwrap_or_default();
        let mut inner = self.inner.lock().unwrap();
        *inner.by_operation.entry(operation).or_default() += 1;
        inner.total += 1;
        if inner.trip.as_ref().is_some_and(|(limit, _)| inner.total > *limit) {
            if let Some((_, proxy)) = inner.trip.take() {
                proxy.0.set_up(false);
            }
        }
        Ok(())
    }
}
