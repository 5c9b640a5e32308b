//! The SDK configuration shared by every client: region and credentials from the Lambda
//! environment, `AWS_ENDPOINT_URL` for a local emulator, and retries/timeouts that fit
//! inside Kadoa's delivery rhythm (it retries after 1 s, 2 s and 4 s).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Attempts per AWS call, the first included (the SDK's standard mode, with backoff).
pub const MAX_ATTEMPTS: u32 = 3;

pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}
