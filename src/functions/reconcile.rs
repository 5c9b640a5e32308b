//! The scheduled reconciliation: from the watermark of the last clean run (less an
//! overlap) to now; the watermark moves only after a clean run. Reads the function's
//! environment (`TABLE_NAME`, `ALERT_TOPIC_ARN`, …) plus `KADOA_API_KEY_ARN`.

use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};

use super::refuse;
use crate::config::KadoaApiSettings;
use crate::kadoa_api::{ApiRetry, KadoaApi};
use crate::metrics::MetricsSink;
use crate::receiver::Receiver;
use crate::reconcile::{Reconciler, Report};
use crate::store::Store;
use crate::timestamp::Timestamp;
use crate::{secrets, Components, Settings};

/// What a scheduled run needs, built once.
struct Context {
    api: KadoaApi,
    metrics: MetricsSink,
    receiver: Receiver,
    store: Store,
    retention_days: u32,
}

pub(super) async fn run() -> Result<(), Error> {
    let context = build().await.map_err(refuse)?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| scheduled_run(&context))).await
}

async fn build() -> Result<Context, String> {
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = Settings::for_reconcile(lookup).map_err(|e| e.to_string())?;
    let api_settings = KadoaApiSettings::from_lookup(lookup).map_err(|e| e.to_string())?;
    let components = Components::load(settings).await;
    let key = secrets::kadoa_api_key(&api_settings, &components.clients.secrets_manager)
        .await
        .map_err(|e| e.detail().to_owned())?;
    let api = KadoaApi::new(&api_settings.url, key, ApiRetry::default()).map_err(|e| e.detail().to_owned())?;
    Ok(Context {
        api,
        metrics: components.metrics.clone(),
        receiver: components.receiver(),
        store: components.store.clone(),
        retention_days: components.settings.rules.retention_days,
    })
}

/// One scheduled run (see [`Reconciler::run_scheduled`]); a run that is not clean fails,
/// so the function's error alarm sees it.
async fn scheduled_run(context: &Context) -> Result<Report, Error> {
    let progress = |line: &str| tracing::info!(progress = line, "reconcile");
    let started = std::time::Instant::now();
    let reconciler = Reconciler::new(&context.api, &context.receiver, &context.store, context.retention_days);
    // A run that could not start (the watermark unreadable) is a failed run too: one
    // metrics line either way.
    let report = match reconciler.run_scheduled(Timestamp::now(), &progress).await {
        Ok(report) => report,
        Err(error) => Report { failures: vec![error.detail().to_owned()], ..Report::default() },
    };
    context.metrics.emit(&report.metrics(started.elapsed()));
    tracing::info!(
        stored = report.stored_now,
        completed = report.pending_completed,
        replayed = report.events_replayed,
        failures = report.failures.len(),
        "reconcile"
    );
    if !report.is_clean() {
        let shown: Vec<&str> = report.failures.iter().take(20).map(String::as_str).collect();
        return Err(format!("reconciliation failed ({} failures): {}", report.failures.len(), shown.join("; ")).into());
    }
    Ok(report)
}
