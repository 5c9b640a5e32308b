//! Structured JSON logs, one object per line, as CloudWatch and Lambda's JSON log format
//! expect. The level comes from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else `info`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|level| level.to_lowercase()))
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        // The SDK's own info-level chatter is not worth a line per request.
        .unwrap_or_else(|| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"));
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
