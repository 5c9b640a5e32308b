//! The AWS side shared by every adapter: the SDK configuration (region and credentials
//! from the Lambda environment, `AWS_ENDPOINT_URL` for a local emulator, retries and
//! timeouts that fit inside Kadoa's delivery rhythm), the clients, and how an SDK failure
//! becomes an [`Error`].

use std::future::Future;
use std::sync::{Arc, LazyLock};
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

/// Timeouts of every AWS call as deployed (some calls set a shorter one of their own).
pub fn timeout_config() -> TimeoutConfig {
    timeout_config_within(None)
}

/// Timeouts of every AWS call: as deployed, or each of them `patience` (see [`PATIENCE_VARIABLE`]).
pub fn timeout_config_within(patience: Option<Duration>) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(patience.unwrap_or(Duration::from_secs(1)))
        .operation_attempt_timeout(patience.unwrap_or(ATTEMPT_TIMEOUT))
        .operation_timeout(patience.unwrap_or(OPERATION_TIMEOUT))
        .build()
}

/// Widens every AWS time limit to this many seconds: the SDK's connect, attempt and call
/// timeouts and the alert path's own caps (claim, commit, release, publish). For tests on a
/// busy machine, where a starved emulator is slow and the test is not about time; the stack
/// never sets it.
pub const PATIENCE_VARIABLE: &str = "KADOA_AWS_TIMEOUT_SECS";

/// The widened time limit [`PATIENCE_VARIABLE`] asks for, if it is set to a whole number
/// of seconds above 0 (anything else is ignored, with a warning: the limits stay as deployed).
pub fn patience(lookup: impl Fn(&str) -> Option<String>) -> Option<Duration> {
    let text = lookup(PATIENCE_VARIABLE)?;
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Some(Duration::from_secs(secs)),
        _ => {
            tracing::warn!(value = %crate::error::bounded(text), "{PATIENCE_VARIABLE} is not a number of seconds above 0; ignored");
            None
        }
    }
}

/// [`patience`] from the process's environment.
pub fn patience_from_env() -> Option<Duration> {
    patience(|name| std::env::var(name).ok())
}

/// The root CAs of every AWS service endpoint: Amazon Root CA 1–4 and the Starfield
/// Services root that cross-signs them (AWS moved all service endpoints to Amazon Trust
/// Services certificates). Trusting these five instead of the system's ~150 saves reading
/// and parsing the system bundle at start-up: about half of a cold start's instructions.
const AMAZON_ROOTS: &[u8] = include_bytes!("amazon_roots.pem");

/// The SDK configuration of the deployed function. Only when `AWS_ENDPOINT_URL` points at
/// an HTTPS endpoint of your own (an emulator with its own CA) are the system's root CAs
/// trusted instead of Amazon's.
pub async fn load_sdk_config() -> SdkConfig {
    load_sdk_config_over(&SdkOverrides::default()).await
}

/// What the operator's command sets under the environment's SDK configuration: the local
/// stack's endpoint, region and credentials (src/cli/target.rs). Each is used only where
/// the environment has none of its own; nothing is written into the environment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SdkOverrides {
    /// Where every client sends its requests, for `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// The region, for `AWS_REGION`.
    pub region: Option<String>,
    /// The access key id and its secret, for `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    pub credentials: Option<(String, String)>,
}

/// Without the secret.
impl std::fmt::Debug for SdkOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkOverrides")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.credentials.as_ref().map(|(id, _)| id))
            .finish()
    }
}

/// [`load_sdk_config`], with `overrides` where the environment has no value of its own.
pub async fn load_sdk_config_over(overrides: &SdkOverrides) -> SdkConfig {
    let unset = |name: &str| std::env::var_os(name).is_none_or(|value| value.is_empty());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config_within(patience_from_env()))
        // It ends a transfer that makes no progress for 5 s; every attempt here ends at
        // ATTEMPT_TIMEOUT (3 s) anyway, so it would only watch every body for nothing.
        .stalled_stream_protection(aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled());
    // On Lambda the execution role's credentials are in the environment, always: the
    // default chain would also build its other providers (an STS client among them, a
    // tenth of a cold start) only to find them there first.
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    if on_lambda && std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    }
    let mut endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    if let (Some(url), true) = (&overrides.endpoint_url, unset("AWS_ENDPOINT_URL")) {
        loader = loader.endpoint_url(url);
        endpoint = Some(url.clone());
    }
    if let (Some(region), true) = (&overrides.region, unset("AWS_REGION") && unset("AWS_DEFAULT_REGION")) {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let (Some((id, secret)), true) = (&overrides.credentials, unset("AWS_ACCESS_KEY_ID")) {
        let credentials = aws_sdk_dynamodb::config::Credentials::new(id, secret, None, None, "the local stack");
        loader = loader.credentials_provider(credentials);
    }
    if !endpoint.is_some_and(|url| url.starts_with("https://")) {
        loader = loader.http_client(amazon_https_client());
    }
    loader.load().await
}

/// An HTTPS client (rustls on aws-lc, as the SDK's default) that trusts Amazon's roots only.
pub fn amazon_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext, TrustStore};
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(AMAZON_ROOTS);
    let builder = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Cannot happen with a fixed trust store; the default context still works.
        Err(_) => builder.build_https(),
    }
}

/// A client built the first time it is used. Building one costs about 0.6 M instructions
/// at start-up (mostly its copy of the partitions table), and most invocations use two of
/// the five: the spool's clients are only needed when AWS stumbles, Secrets Manager's only
/// with `WEBHOOK_SECRET_ARN`.
pub type Lazy<T> = Arc<LazyLock<T, Box<dyn FnOnce() -> T + Send>>>;

/// A [`Lazy`] client that is built by `make` on first use.
pub fn lazy<T>(make: impl FnOnce() -> T + Send + 'static) -> Lazy<T> {
    Arc::new(LazyLock::new(Box::new(make)))
}

/// The AWS clients the function uses; tests build them against moto.
#[derive(Clone)]
pub struct AwsClients {
    /// The table.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The alert topic.
    pub sns: aws_sdk_sns::Client,
    /// The webhook secret.
    pub secrets_manager: Lazy<aws_sdk_secretsmanager::Client>,
    /// The spool queue.
    pub sqs: Lazy<aws_sdk_sqs::Client>,
    /// The spool's large bodies.
    pub s3: Lazy<aws_sdk_s3::Client>,
}

impl AwsClients {
    /// Every client from one SDK configuration; the ones not every invocation needs are
    /// built on first use.
    pub fn from_config(config: &SdkConfig) -> Self {
        let (secrets, sqs, s3) = (config.clone(), config.clone(), config.clone());
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sns: aws_sdk_sns::Client::from_conf(sns_config(config).build()),
            secrets_manager: lazy(move || aws_sdk_secretsmanager::Client::new(&secrets)),
            sqs: lazy(move || aws_sdk_sqs::Client::new(&sqs)),
            s3: lazy(move || s3_client(&s3)),
        }
    }
}

/// The SNS client's configuration: the SDK's, but a publish is sent once. SNS does not
/// de-duplicate a standard topic's messages, so an attempt whose answer was lost may have
/// told people already; trying again inside the call would tell them again at once. A
/// failed publish is tried again by the delivery's retry instead (README, Alerts: at
/// most one extra copy, and only when SNS's answer was lost or later than 3 s).
pub fn sns_config(config: &SdkConfig) -> aws_sdk_sns::config::Builder {
    aws_sdk_sns::config::Builder::from(config).retry_config(RetryConfig::standard().with_max_attempts(1))
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

/// Runs one AWS call (`send`) within `limit`, retries included. The SDK's own per-call
/// timeout (`customize().config_override(…)`) rebuilds the client's configuration on every
/// call; this costs nothing until the limit is reached, and then drops the call as the
/// SDK would. It can only shorten a call: the client's [`OPERATION_TIMEOUT`] still holds.
/// The call is boxed here: an SDK call's future is tens of kilobytes, and every future that
/// awaits it inline would carry (and copy) that much.
pub fn within<F: Future>(
    limit: Duration,
    operation: &'static str,
    send: F,
) -> impl Future<Output = Result<F::Output, Error>> {
    let send = Box::pin(send);
    let on_time_out = move |_| Error::unavailable(operation, format!("no answer within {} ms", limit.as_millis()));
    async move { tokio::time::timeout(limit, send).await.map_err(on_time_out) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;

    #[test]
    fn a_lazy_client_is_built_once_and_only_when_used() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let built = Arc::new(AtomicUsize::new(0));
        let counter = built.clone();
        let client = lazy(move || counter.fetch_add(1, Ordering::SeqCst) + 7);
        let shared = client.clone();
        assert_eq!(built.load(Ordering::SeqCst), 0);
        assert_eq!((**client, **shared), (7, 7));
        assert_eq!(built.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_call_past_its_limit_is_dropped_as_unavailable() {
        let error = within(Duration::from_millis(1), "Publish", std::future::pending::<()>()).await.unwrap_err();
        assert!(error.is_transient());
        assert_eq!(error.detail(), "Publish: no answer within 1 ms");
        assert_eq!(within(Duration::from_secs(60), "Publish", async { 7 }).await.unwrap(), 7);
    }

    #[test]
    fn patience_widens_every_limit_and_only_when_it_is_a_number() {
        let lookup = |value: &'static str| move |name: &str| (name == PATIENCE_VARIABLE).then(|| value.to_owned());
        assert_eq!(patience(lookup("60")), Some(Duration::from_secs(60)));
        assert_eq!(patience(lookup("0")), None);
        assert_eq!(patience(lookup("soon")), None);
        assert_eq!(patience(|_| None), None);
        let widened = timeout_config_within(Some(Duration::from_secs(60)));
        assert_eq!(widened.operation_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(widened.operation_attempt_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(widened.connect_timeout(), Some(Duration::from_secs(60)));
        let deployed = timeout_config();
        assert_eq!(deployed.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert_eq!(deployed.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
    }

    #[test]
    fn the_amazon_roots_are_five_certificates() {
        let text = std::str::from_utf8(AMAZON_ROOTS).unwrap();
        assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        let _client = amazon_https_client();
    }
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
