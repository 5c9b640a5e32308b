//! The AWS side shared by every adapter: the SDK configuration (region and credentials
//! from the Lambda environment, `AWS_ENDPOINT_URL` for a local emulator, retries and
//! timeouts that fit inside Kadoa's delivery rhythm), the clients, and how an SDK failure
//! becomes an [`Error`].

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::Error;

/// Attempts per AWS call, the first included (the SDK's standard mode, with backoff).
pub const MAX_ATTEMPTS: u32 = 3;
/// How long one attempt of an AWS call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an AWS call may take with its retries: well inside the function's 15 s.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// The SDK's retries: standard mode, [`MAX_ATTEMPTS`].
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// Timeouts of every AWS call (some calls set a shorter one of their own).
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The SDK configuration of the deployed function.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}

/// The AWS clients the function uses; tests build them against moto.
#[derive(Clone)]
pub struct AwsClients {
    /// The table.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The alert topic.
    pub sns: aws_sdk_sns::Client,
    /// The webhook secret.
    pub secrets_manager: aws_sdk_secretsmanager::Client,
    /// The spool queue.
    pub sqs: aws_sdk_sqs::Client,
    /// The spool's large bodies.
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    /// Every client from one SDK configuration.
    pub fn from_config(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            secrets_manager: aws_sdk_secretsmanager::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            s3: s3_client(config),
        }
    }
}

/// An S3 client; against a local emulator (`AWS_ENDPOINT_URL`), with path-style addresses.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let local = config.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(local).build())
}

/// AWS error codes that mean "this request is invalid": sending it again cannot succeed.
const REFUSAL_CODES: &[&str] =
    &["ValidationException", "SerializationException", "InvalidParameter", "InvalidParameterValue"];

/// What a failed AWS call means for the sender: the request refused as invalid (422), or
/// an outage that a later try can get past (503). `operation` names the call in the log.
pub fn sdk_error<E, R>(operation: &str, error: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let refused = error.code().is_some_and(|code| REFUSAL_CODES.contains(&code));
    let detail = DisplayErrorContext(&error).to_string();
    match refused {
        true => Error::Refused(crate::error::bounded(format!("AWS refused {operation}: {detail}"))),
        false => Error::unavailable(operation, detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn failed_put(code: &str, status: u16) -> SdkError<PutItemError, Response> {
        let error = PutItemError::generic(ErrorMetadata::builder().code(code).message("details").build());
        let response = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(error, response)
    }

    #[test]
    fn a_request_aws_refuses_as_invalid_is_never_a_503() {
        let error = sdk_error("PutItem", failed_put("ValidationException", 400));
        assert_eq!(error.status(), 422);
        assert!(!error.is_transient(), "retrying or spooling cannot help");
        assert!(error.detail().starts_with("AWS refused PutItem: "), "{}", error.detail());
    }

    #[test]
    fn throttling_and_outages_are_transient() {
        for (code, status) in [("ProvisionedThroughputExceededException", 400), ("InternalServerError", 500)] {
            let error = sdk_error("PutItem", failed_put(code, status));
            assert_eq!((error.status(), error.is_transient()), (503, true), "{code}");
        }
    }
}
