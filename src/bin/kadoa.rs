//! `kadoa`: the operator's command, and the scheduled reconciliation function.
//!
//! ```text
//! kadoa reconcile --from <RFC 3339> [--to <RFC 3339>]
//! ```
//!
//! Reads the function's environment (`TABLE_NAME`, `ALERT_TOPIC_ARN`, …) plus
//! `KADOA_API_KEY` or `KADOA_API_KEY_ARN`, and `KADOA_API_URL`. Run by Lambda (on the
//! schedule), it reconciles from the watermark of the last clean run (less an overlap) to
//! now, and moves the watermark only after a clean run.

#![recursion_limit = "256"]

use std::process::ExitCode;

use kadoa_webhook::config::KadoaApiSettings;
use kadoa_webhook::error::Error;
use kadoa_webhook::kadoa_api::{ApiRetry, KadoaApi};
use kadoa_webhook::metrics::MetricsSink;
use kadoa_webhook::receiver::Receiver;
use kadoa_webhook::reconcile::{Reconciler, Report};
use kadoa_webhook::store::Store;
use kadoa_webhook::timestamp::Timestamp;
use kadoa_webhook::{aws, logging, Components, Settings};
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};

const USAGE: &str = "usage: kadoa reconcile --from <RFC 3339> [--to <RFC 3339>]";

/// What a run needs, built once.
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
    let scheduled = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    match scheduled {
        true => logging::init(),
        // Standard output is the command's report.
        false => logging::init_on_stderr(),
    }
    let context = match build().await {
        Ok(context) => context,
        Err(error) => {
            eprintln!("kadoa: {error}");
            tracing::error!(error = %error, "configuration is invalid; refusing to start");
            return ExitCode::FAILURE;
        }
    };
    if scheduled {
        return match lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| scheduled_run(&context))).await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (from, to) = match window(&args) {
        Ok(window) => window,
        Err(message) => {
            eprintln!("kadoa: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    eprintln!("reconciling {} .. {}", from.to_key_string(), to.to_key_string());
    let report = reconciler(&context).run(from, to, &|line| eprintln!("  {line}")).await;
    // The command's output: what it did (progress went to standard error).
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    if report.is_clean() && report.skipped.is_empty() && report.outstanding.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
            read_key(&components.clients.secrets_manager, arn).await.map_err(|e| e.detail().to_owned())?
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

async fn read_key(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<String, Error> {
    let output =
        client.get_secret_value().secret_id(arn).send().await.map_err(|e| aws::sdk_error("GetSecretValue", e))?;
    output
        .secret_string()
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| Error::invalid("the secret in KADOA_API_KEY_ARN is empty"))
}

/// `--from <t> [--to <t>]`, to defaulting to now.
fn window(args: &[String]) -> Result<(Timestamp, Timestamp), String> {
    let mut args = args.iter();
    if args.next().map(String::as_str) != Some("reconcile") {
        return Err("the only command is `reconcile`".into());
    }
    let (mut from, mut to) = (None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let at = Timestamp::parse_rfc3339(value).ok_or_else(|| format!("{value:?} is not an RFC 3339 date-time"))?;
        match flag.as_str() {
            "--from" => from = Some(at),
            "--to" => to = Some(at),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let from = from.ok_or("--from is required")?;
    let to = to.unwrap_or_else(Timestamp::now);
    if to <= from {
        return Err("--to must be after --from".into());
    }
    Ok((from, to))
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
