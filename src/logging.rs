//! Structured JSON logs, one object per line, as CloudWatch and Lambda's JSON log format
//! expect. Our own level comes from `LOG_LEVEL` (the template's `LogLevel`; Lambda itself is
//! told to pass every line, since it would drop the metrics line, which has no level, above
//! INFO), else `AWS_LAMBDA_LOG_LEVEL`,
//! or from `RUST_LOG` directives; `info` by default. Whatever is chosen, the crates that
//! would log raw requests at debug or trace level (the Lambda runtime logs whole events,
//! credential included; the SDK logs signed requests) stay at `info` or quieter.

use tracing_subscriber::EnvFilter;

/// Directives that always apply last: no level a user picks lets these crates log
/// requests, headers or payloads.
const CAPS: &str = "lambda_runtime=info,lambda_runtime_api_client=info,lambda_http=info,\
                    aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,aws_smithy_http_client=warn,\
                    aws_config=warn,aws_sigv4=warn,hyper=info,hyper_util=info,h2=info,rustls=info";

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

/// Installs the JSON subscriber for the process, writing to standard output (where
/// Lambda collects it).
pub fn init() {
    let lambda_level = std::env::var("LOG_LEVEL").or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL")).ok();
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(directives(lambda_level.as_deref(), rust_log.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(directives(None, None)));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .init();
}

/// For the `kadoa` command: to standard error, and silent unless asked (`-v` info, `-vv`
/// debug), with the same caps on other crates.
pub fn init_for_command(verbosity: u8) {
    let ours = match verbosity {
        0 => "off",
        1 => "info",
        _ => "debug",
    };
    let filter = match verbosity {
        0 => EnvFilter::new("off"),
        _ => EnvFilter::try_new(format!("warn,kadoa_webhook={ours},{CAPS}")).unwrap_or_else(|_| EnvFilter::new("off")),
    };
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
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

    /// What is logged at `level` / `rust_log` when the runtime, the SDK and we log at trace.
    fn logged(level: Option<&str>, rust_log: Option<&str>) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(EnvFilter::new(directives(level, rust_log)))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime", "event: Authorization: Bearer s3cret");
            tracing::debug!(target: "lambda_runtime::layers::api_client", "payload {{\"data\": 1}}");
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "request body");
            tracing::trace!(target: "kadoa_webhook::receiver", "our own trace line");
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn no_offered_level_logs_the_credential_or_a_payload() {
        for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] {
            let lines = logged(Some(level), None);
            assert!(
                !lines.contains("s3cret") && !lines.contains("payload") && !lines.contains("request body"),
                "{level}: {lines}"
            );
        }
        assert!(logged(Some("TRACE"), None).contains("our own trace line"), "our trace still works");
        let lines = logged(None, Some("trace"));
        assert!(!lines.contains("s3cret") && !lines.contains("payload"), "RUST_LOG=trace: {lines}");
    }

    #[test]
    fn levels_map_to_directives() {
        assert_eq!(directives(None, None), format!("info,kadoa_webhook=info,{CAPS}"));
        assert_eq!(directives(Some("DEBUG"), None), format!("info,kadoa_webhook=debug,{CAPS}"));
        assert_eq!(directives(Some("FATAL"), None), format!("error,kadoa_webhook=error,{CAPS}"));
    }
}
