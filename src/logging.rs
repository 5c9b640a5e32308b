//! Structured JSON logs, one object per line, as CloudWatch and Lambda's JSON log format
//! expect. Our own level comes from `LOG_LEVEL` (the template's `LogLevel`; Lambda itself is
//! told to pass every line, since it would drop the metrics line, which has no level, above
//! INFO), else `AWS_LAMBDA_LOG_LEVEL`,
//! or from `RUST_LOG` directives (`target=level`, comma-separated: [`Targets`]' syntax;
//! `EnvFilter`'s span and field filters would link a regex engine into every function for
//! nothing we use; one that does not parse is ignored for the default); `info` by default. Whatever is chosen, the crates that
//! would log raw requests at debug or trace level (the Lambda runtime logs whole events,
//! credential included; the SDK logs signed requests) stay at `info` or quieter.

use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Directives that always apply last: the quieter defaults for these crates. A more
/// specific user directive (`lambda_runtime::layers=trace`) would still beat them inside
/// one filter, which is why [`capped_crates`] filters again, separately.
const CAPS: &str = "lambda_runtime=info,lambda_runtime_api_client=info,lambda_http=info,\
                    aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,aws_smithy_http_client=warn,\
                    aws_config=warn,aws_sigv4=warn,hyper=info,hyper_util=info,h2=info,rustls=info";

/// Target prefixes (matched as plain prefixes, so `hyper` also covers `hyper_util` and
/// `aws_sdk_` every service client) of the crates that log events, requests, headers or
/// payloads below INFO.
const CAPPED_PREFIXES: &[&str] = &[
    "lambda_runtime",
    "lambda_http",
    "aws_smithy_",
    "aws_sdk_",
    "aws_config",
    "aws_sigv4",
    "aws_runtime",
    "aws_credential_types",
    "aws_types",
    "hyper",
    "h2",
    "http",
    "rustls",
    "reqwest",
    "tower",
    "tokio_rustls",
];

/// A filter of its own, layered beside the user's: an event passes only if both let it,
/// so no directive, however specific, lifts these crates above INFO.
fn capped_crates() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED_PREFIXES.iter().map(|prefix| (*prefix, LevelFilter::INFO)))
}

/// The filter directives for a Lambda log level (`TRACE` … `FATAL`) and/or `RUST_LOG`.
pub fn directives(lambda_level: Option<&str>, rust_log: Option<&str>) -> String {
    let ours = match lambda_level.map(str::to_ascii_lowercase).as_deref() {
        Some(level @ ("trace" | "debug" | "info" | "warn" | "error")) => level.to_owned(),
        Some("fatal") => "error".to_owned(),
        _ => "info".to_owned(),
    };
    // Other crates never log below info, whatever our own level.
    let others = if matches!(ours.as_str(), "trace" | "debug") { "info" } else { ours.as_str() };
    let chosen = match rust_log.map(str::trim).filter(|d| !d.is_empty()) {
        Some(rust_log) => rust_log.to_owned(),
        None => format!("{others},kadoa_webhook={ours}"),
    };
    format!("{chosen},{CAPS}")
}

/// The JSON subscriber: the user's `filter`, then the fixed cap, then one line per event
/// to `writer`. `init`, `init_for_command` and the tests all build it here.
fn subscriber<W>(filter: Targets, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_target(false)
        .with_writer(writer);
    tracing_subscriber::registry().with(filter).with(capped_crates()).with(lines)
}

/// `directives` as a filter; `None` if they do not parse.
fn parsed(directives: &str) -> Option<Targets> {
    directives.parse().ok()
}

/// The filter for the Lambda functions, from the process environment: the default one if
/// `RUST_LOG` does not parse (and if even that failed, INFO for all: still capped).
fn lambda_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> Targets {
    parsed(&directives(lambda_level, rust_log))
        .or_else(|| parsed(&directives(None, None)))
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the JSON subscriber for the process, writing to standard output (where
/// Lambda collects it).
pub fn init() {
    let lambda_level = std::env::var("LOG_LEVEL").or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL")).ok();
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = lambda_filter(lambda_level.as_deref(), rust_log.as_deref());
    // Fails only if a subscriber is already installed; the first one stays.
    let _ = tracing::subscriber::set_global_default(subscriber(filter, std::io::stdout));
}

/// For the `kadoa` command: to standard error, and silent unless asked (`-v` info, `-vv`
/// debug), with the same caps on other crates.
pub fn init_for_command(verbosity: u8) {
    let _ = tracing::subscriber::set_global_default(subscriber(command_filter(verbosity), std::io::stderr));
}

fn command_filter(verbosity: u8) -> Targets {
    let ours = match verbosity {
        0 => return Targets::new().with_default(LevelFilter::OFF),
        1 => "info",
        _ => "debug",
    };
    parsed(&format!("warn,kadoa_webhook={ours},{CAPS}"))
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::OFF))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What is logged at `level` / `rust_log` when the runtime, the SDK, the HTTP stack
    /// and we log at every level, through the subscriber `init` installs.
    fn logged(level: Option<&str>, rust_log: Option<&str>) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = subscriber(lambda_filter(level, rust_log), move || writer.clone());
        tracing::subscriber::with_default(subscriber, emit_from_every_crate);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn emit_from_every_crate() {
        tracing::trace!(target: "lambda_runtime", "event: Authorization: Bearer s3cret");
        tracing::trace!(target: "lambda_runtime::layers::trace", "raw event: authorization: Bearer s3cret");
        tracing::debug!(target: "lambda_runtime::layers::api_client", "payload {{\"data\": 1}}");
        tracing::trace!(target: "lambda_http::request", "payload of the request");
        tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "request body");
        tracing::debug!(target: "aws_smithy_http_client::hyper", "request body over the wire");
        tracing::debug!(target: "aws_sdk_dynamodb::operation", "request body to dynamodb");
        tracing::trace!(target: "hyper_util::client::legacy", "payload bytes");
        tracing::trace!(target: "reqwest::connect", "payload to kadoa");
        tracing::info!(target: "lambda_runtime::layers::api_client", "runtime info line");
        tracing::trace!(target: "kadoa_webhook::receiver", "our own trace line");
    }

    fn leaks(lines: &str) -> bool {
        ["s3cret", "payload", "request body"].iter().any(|secret| lines.contains(secret))
    }

    #[test]
    fn no_offered_level_logs_the_credential_or_a_payload() {
        for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] {
            let lines = logged(Some(level), None);
            assert!(!leaks(&lines), "{level}: {lines}");
        }
        assert!(logged(Some("TRACE"), None).contains("our own trace line"), "our trace still works");
    }

    #[test]
    fn no_rust_log_directive_lifts_a_capped_crate_past_info() {
        for rust_log in [
            "trace",
            "info,lambda_runtime::layers=trace",
            "info,lambda_runtime::layers::trace=trace",
            "aws_smithy_runtime::client=trace",
            "info,aws_smithy_runtime::client::orchestrator=trace,aws_sdk_dynamodb=trace",
            "hyper_util=trace,reqwest=trace,lambda_http=trace",
            "[{x}]=trace,trace",
        ] {
            let lines = logged(Some("TRACE"), Some(rust_log));
            assert!(!leaks(&lines), "RUST_LOG={rust_log}: {lines}");
            assert!(lines.contains("runtime info line"), "RUST_LOG={rust_log}: INFO still passes: {lines}");
        }
        assert!(logged(None, Some("trace")).contains("our own trace line"), "RUST_LOG=trace still lifts ours");
        assert!(logged(None, Some("info,kadoa_webhook=trace")).contains("our own trace line"));
    }

    #[test]
    fn rust_log_targets_a_module_and_an_unreadable_one_falls_back_to_the_default() {
        assert!(logged(None, Some("warn,kadoa_webhook::receiver=trace")).contains("our own trace line"));
        assert!(!logged(None, Some("warn,kadoa_webhook::store=trace")).contains("our own trace line"));
        // A value that does not parse (an unknown level) is ignored as a whole: the default
        // (INFO, ours included) applies, not the `trace` beside it.
        let lines = logged(None, Some("trace,kadoa_webhook=loud"));
        assert!(!lines.contains("our own trace line") && lines.contains("runtime info line"), "{lines}");
    }

    #[test]
    fn the_command_subscriber_is_capped_too() {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing::subscriber::with_default(subscriber(command_filter(2), move || writer.clone()), || {
            emit_from_every_crate();
            tracing::debug!(target: "kadoa_webhook::cli", "our own debug line");
        });
        let lines = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!leaks(&lines) && lines.contains("our own debug line"), "{lines}");
    }

    #[test]
    fn levels_map_to_directives() {
        assert_eq!(directives(None, None), format!("info,kadoa_webhook=info,{CAPS}"));
        assert_eq!(directives(Some("DEBUG"), None), format!("info,kadoa_webhook=debug,{CAPS}"));
        assert_eq!(directives(Some("FATAL"), None), format!("error,kadoa_webhook=error,{CAPS}"));
    }
}
