//! `kadoa`: the operator's command (see [`kadoa_webhook::cli`]), and the scheduled
//! reconciliation function.
//!
//! Run by Lambda (on the schedule), it reconciles from the watermark of the last clean run
//! (less an overlap) to now, and moves the watermark only after a clean run. It reads the
//! function's environment (`TABLE_NAME`, `ALERT_TOPIC_ARN`, …) plus `KADOA_API_KEY_ARN`.

#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::Parser;
use kadoa_webhook::cli::Cli;
use kadoa_webhook::config::KadoaApiSettings;
use kadoa_webhook::kadoa_api::{ApiRetry, KadoaApi};
use kadoa_webhook::metrics::MetricsSink;
use kadoa_webhook::receiver::Receiver;
use kadoa_webhook::reconcile::{Reconciler, Report};
use kadoa_webhook::store::Store;
use kadoa_webhook::timestamp::Timestamp;
use kadoa_webhook::{cli, logging, Components, Settings};
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};

/// What a scheduled run needs, built once.
struct Context {
    api: KadoaApi,
    metrics: MetricsSink,
    receiver: Receiver,
    store: Store,
    retention_days: u32,
}

/// mimalloc, as the webhook (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time: one thread is enough.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        // The command: usage errors exit 2 and `--help` 0, from clap, before anything else.
        let cli = Cli::parse();
        logging::init_for_command(cli.verbose);
        return cli::run(cli).await;
    }
    logging::init();
    let context = match build().await {
        Ok(context) => context,
        Err(error) => {
            tracing::error!(error = %error, "configuration is invalid; refusing to start");
            return ExitCode::FAILURE;
        }
    };
    match lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| scheduled_run(&context))).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn reconciler(context: &Context) -> Reconciler<'_> {
    Reconciler::new(&context.api, &context.receiver, &context.store, context.retention_days)
}

async fn build() -> Result<Context, String> {
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = Settings::for_reconcile(lookup).map_err(|e| e.to_string())?;
    let api_settings = KadoaApiSettings::from_lookup(lookup).map_err(|e| e.to_string())?;
    let components = Components::load(settings).await;
    let key = match (&api_settings.key, &api_settings.key_arn) {
        (Some(key), _) => key.clone(),
        (None, Some(arn)) => {
            cli::read_key(&components.clients.secrets_manager, arn).await.map_err(|e| e.detail().to_owned())?
        }
        (None, None) => return Err("KADOA_API_KEY or KADOA_API_KEY_ARN is required".into()),
    };
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
async fn scheduled_run(context: &Context) -> Result<Report, lambda_runtime::Error> {
    let progress = |line: &str| tracing::info!(progress = line, "reconcile");
    let started = std::time::Instant::now();
    // A run that could not start (the watermark unreadable) is a failed run too: one
    // metrics line either way.
    let report = match reconciler(context).run_scheduled(Timestamp::now(), &progress).await {
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
