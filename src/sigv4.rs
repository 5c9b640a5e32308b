//! SigV4 for the function's own requests, with the signing key derived once a day instead
//! of once per request.
//!
//! The SDK's signer derives the signing key (four HMACs) for every request and builds the
//! canonical request through general-purpose machinery; under callgrind that was a third
//! of each call's cost beside the body hash. Every request the hot path makes is a `POST /`
//! with its body in memory (DynamoDB, SNS, SQS), so this signer handles exactly that case,
//! on the first attempt of a call, and hands everything else to the SDK's own signer:
//! other shapes, presigning, session-token overrides, every retry, and every request while
//! the clock is more than a minute off the service's (the `Date` of its last answer, read
//! by [`ClockWatch`]), which the SDK signs at its clock-skew-corrected time.
//! `tests/it/signing.rs` checks the `Authorization` of every request the function sends
//! against the one `aws-sigv4` computes from scratch; the unit tests below compare the two
//! signers on hand-made requests.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_lc_rs::hmac;
use aws_runtime::auth::sigv4::{SigV4Signer, SCHEME_ID};
use aws_runtime::auth::{
    HttpSignatureType, PayloadSigningOverride, SigV4OperationSigningConfig, SigV4SessionTokenNameOverride,
};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::auth::{AuthScheme, AuthSchemeEndpointConfig, AuthSchemeId, Sign};
use aws_smithy_runtime_api::client::identity::{Identity, SharedIdentityResolver};
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::{GetIdentityResolver, RuntimeComponents};
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::date_time::{DateTime, Format};
use aws_smithy_types::Document;
use aws_types::region::SigningRegion;
use aws_types::SigningName;

/// The `sigv4` auth scheme with our [`Signer`], and the interceptor that tells it how far
/// the clock is off: a client gets both (`push_auth_scheme` replaces the SDK's scheme).
pub fn scheme() -> (SigV4Scheme, ClockWatch) {
    let clock = Arc::new(Clock::default());
    let signer = Signer { sdk: SigV4Signer, key: Mutex::default(), clock: clock.clone() };
    (SigV4Scheme { signer }, ClockWatch(clock))
}

/// The `sigv4` auth scheme with [`Signer`] (see [`scheme`]).
#[derive(Debug)]
pub struct SigV4Scheme {
    signer: Signer,
}

impl AuthScheme for SigV4Scheme {
    fn scheme_id(&self) -> AuthSchemeId {
        SCHEME_ID
    }

    fn identity_resolver(&self, identity_resolvers: &dyn GetIdentityResolver) -> Option<SharedIdentityResolver> {
        identity_resolvers.identity_resolver(self.scheme_id())
    }

    fn signer(&self) -> &dyn Sign {
        &self.signer
    }
}

/// Signs a first attempt of a `POST /` itself, everything else through the SDK's signer.
pub struct Signer {
    sdk: SigV4Signer,
    key: Mutex<Option<SigningKey>>,
    clock: Arc<Clock>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

/// How far (seconds) the service's clock was ahead of ours at its last answer.
#[derive(Debug, Default)]
struct Clock {
    skew: AtomicI64,
}

/// Beyond this skew the SDK signs, with its correction (SigV4 allows five minutes; an
/// answer's `Date` has whole seconds and the round trip in it).
const TRUSTED_SKEW: i64 = 60;

/// Reads the `Date` of every answer into the [`Signer`]'s clock, as the SDK's own
/// clock-skew interceptor does for its signer.
#[derive(Debug, Clone)]
pub struct ClockWatch(Arc<Clock>);

impl Intercept for ClockWatch {
    fn name(&self) -> &'static str {
        "ClockWatch"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.response().headers();
        // A cached answer's `Date` is old.
        if headers.get("age").is_none() {
            let now = runtime_components.time_source().unwrap_or_default().now();
            if let Some(skew) = headers.get("date").and_then(|date| skew_of(date, now)) {
                self.0.skew.store(skew, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// Seconds the HTTP date `date` is ahead of `now`.
fn skew_of(date: &str, now: SystemTime) -> Option<i64> {
    let server = DateTime::from_str(date, Format::HttpDate).ok()?;
    Some(server.secs() - DateTime::from(now).secs())
}

/// The key of one set of credentials, day, region and service.
struct SigningKey {
    credentials: Credentials,
    scope: String,
    key: hmac::Key,
}

/// What SigV4 signs of a request, from the request and its operation's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Signable<'a> {
    /// `scheme://authority`: where the request goes.
    pub uri: &'a str,
    /// Every header (name, value) the request has before signing.
    pub headers: &'a [(&'a str, &'a str)],
    /// The hex SHA-256 of the body.
    pub payload_hash: &'a str,
    /// The signing region.
    pub region: &'a str,
    /// The signing name of the service (`dynamodb`, `sns`, `sqs`).
    pub service: &'a str,
    /// When the request is signed.
    pub at: SystemTime,
}

/// Requests this process signed itself (not through the SDK's signer): for the tests that
/// check the fast path is taken.
static SIGNED_HERE: AtomicU64 = AtomicU64::new(0);

/// How many requests this process has signed itself.
pub fn signed_here() -> u64 {
    SIGNED_HERE.load(Ordering::Relaxed)
}

/// Headers the SDK never signs (proxies change them, or signing sets them).
const EXCLUDED: &[&str] = &["authorization", "user-agent", "x-amzn-trace-id", "transfer-encoding"];

impl Sign for Signer {
    fn sign_http_request(
        &self,
        request: &mut HttpRequest,
        identity: &Identity,
        auth_scheme_endpoint_config: AuthSchemeEndpointConfig<'_>,
        runtime_components: &RuntimeComponents,
        config_bag: &ConfigBag,
    ) -> Result<(), BoxError> {
        let signed = self.try_sign(request, identity, &auth_scheme_endpoint_config, runtime_components, config_bag);
        // A value that cannot be a header (a session token with a control character) is
        // left to the SDK's signer, which refuses it with an error.
        let headers = signed.and_then(|signed| {
            let header = |(name, value): (&'static str, String)| {
                let mut value = lambda_http::http::HeaderValue::try_from(value).ok()?;
                value.set_sensitive(name != "x-amz-date");
                Some((name, value))
            };
            signed.into_iter().map(header).collect::<Option<Vec<_>>>()
        });
        match headers {
            Some(headers) => {
                for (name, value) in headers {
                    request.headers_mut().try_insert(name, value)?;
                }
                SIGNED_HERE.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            None => self.sdk.sign_http_request(
                request,
                identity,
                auth_scheme_endpoint_config,
                runtime_components,
                config_bag,
            ),
        }
    }
}

impl Signer {
    /// The headers that sign `request`, or `None` when it is not a case this signer takes.
    fn try_sign(
        &self,
        request: &HttpRequest,
        identity: &Identity,
        endpoint_config: &AuthSchemeEndpointConfig<'_>,
        runtime_components: &RuntimeComponents,
        config_bag: &ConfigBag,
    ) -> Option<Vec<(&'static str, String)>> {
        let first_attempt = config_bag.load::<RequestAttempts>().is_none_or(|a| a.attempts() <= 1);
        let clock_trusted = self.clock.skew.load(Ordering::Relaxed).abs() <= TRUSTED_SKEW;
        let credentials = identity.data::<Credentials>()?;
        let operation = config_bag.load::<SigV4OperationSigningConfig>()?;
        let options = &operation.signing_options;
        let plain = first_attempt
            && clock_trusted
            && options.signature_type == HttpSignatureType::HttpRequestHeaders
            && !options.content_sha256_header
            && !options.omit_session_token
            && options.expires_in.is_none()
            && options.payload_override.is_none()
            && config_bag.load::<SigV4SessionTokenNameOverride>().is_none()
            && request.method() == "POST";
        if !plain {
            return None;
        }
        let payload_hash = match config_bag.load::<PayloadSigningOverride>() {
            Some(PayloadSigningOverride::Precomputed(hash)) => hash.clone(),
            Some(_) => return None,
            None => crate::aws::sha256_hex(request.body().bytes()?),
        };
        // The region and service as the SDK's signer takes them: named by the endpoint, else
        // the client's, else the operation's.
        let from_endpoint = |name: &str| match endpoint_config.get(name) {
            Some(Document::String(value)) => Some(Some(value.as_str())),
            Some(_) => None,
            None => Some(None),
        };
        let region = from_endpoint("signingRegion")?
            .or(config_bag.load::<SigningRegion>().map(|r| r.as_ref()))
            .or(operation.region.as_ref().map(|r| r.as_ref()))?;
        let service = from_endpoint("signingName")?
            .or(config_bag.load::<SigningName>().map(|n| n.as_ref()))
            .or(operation.name.as_ref().map(|n| n.as_ref()))?;
        let headers: Vec<(&str, &str)> = request.headers().iter().collect();
        let at = runtime_components.time_source().unwrap_or_default().now();
        let signable =
            Signable { uri: request.uri(), headers: &headers, payload_hash: &payload_hash, region, service, at };
        self.sign(&signable, credentials)
    }

    /// The `x-amz-date`, `x-amz-security-token` and `authorization` headers for
    /// `request`, or `None` when it is not a `POST /` without a query.
    pub fn sign(&self, request: &Signable<'_>, credentials: &Credentials) -> Option<Vec<(&'static str, String)>> {
        let uri: lambda_http::http::Uri = request.uri.parse().ok()?;
        if uri.path() != "/" || uri.query().is_some() {
            return None;
        }
        let default_port =
            matches!((uri.scheme_str(), uri.port_u16()), (Some("https"), Some(443)) | (Some("http"), Some(80)));
        let host = if default_port { uri.host()? } else { uri.authority()?.as_str() };
        let at = time::OffsetDateTime::from(request.at);
        let mut amz_date = String::with_capacity(16);
        let (date, clock) = (at.date(), at.time());
        let _ = write!(
            amz_date,
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            date.year(),
            u8::from(date.month()),
            date.day(),
            clock.hour(),
            clock.minute(),
            clock.second()
        );
        let scope = format!("{}/{}/{}/aws4_request", amz_date.get(..8)?, request.region, request.service);

        // Canonical headers: lowercase names in order, values trimmed of spaces (runs of
        // spaces made one), the values of a repeated name joined with commas.
        let mut headers: Vec<(String, String)> = Vec::with_capacity(request.headers.len() + 3);
        for (name, value) in request.headers {
            let name = name.to_ascii_lowercase();
            if name == "x-amz-date" || name == "x-amz-security-token" {
                return None;
            }
            if !EXCLUDED.contains(&name.as_str()) {
                headers.push((name, trim_all(value)));
            }
        }
        if !headers.iter().any(|(name, _)| name == "host") {
            headers.push(("host".to_owned(), host.to_owned()));
        }
        headers.push(("x-amz-date".to_owned(), amz_date.clone()));
        if let Some(token) = credentials.session_token() {
            headers.push(("x-amz-security-token".to_owned(), token.to_owned()));
        }
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut canonical = String::with_capacity(512);
        let mut signed_headers = String::with_capacity(128);
        canonical.push_str("POST\n/\n\n");
        for (index, (name, value)) in headers.iter().enumerate() {
            let repeated = index > 0 && headers.get(index - 1).is_some_and(|(previous, _)| previous == name);
            if repeated {
                canonical.pop();
                canonical.push(',');
            } else {
                if !signed_headers.is_empty() {
                    signed_headers.push(';');
                }
                signed_headers.push_str(name);
                canonical.push_str(name);
                canonical.push(':');
            }
            canonical.push_str(value);
            canonical.push('\n');
        }
        let _ = write!(canonical, "\n{signed_headers}\n{}", request.payload_hash);
        let string_to_sign =
            format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", crate::aws::sha256_hex(canonical.as_bytes()));
        let signature =
            hex::encode(self.with_key(credentials, &scope, |key| hmac::sign(key, string_to_sign.as_bytes())));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id()
        );
        let mut signed = vec![("x-amz-date", amz_date)];
        if let Some(token) = credentials.session_token() {
            signed.push(("x-amz-security-token", token.to_owned()));
        }
        signed.push(("authorization", authorization));
        Some(signed)
    }

    /// Runs `sign` with the signing key of `scope` (`date/region/service/aws4_request`),
    /// derived again when the credentials or the scope change.
    fn with_key<T>(&self, credentials: &Credentials, scope: &str, sign: impl FnOnce(&hmac::Key) -> T) -> T {
        // A poisoned lock only means another signing panicked; the key in it is whole.
        let mut cached = self.key.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = match cached.take() {
            Some(key) if key.scope == scope && key.credentials == *credentials => key,
            _ => SigningKey {
                credentials: credentials.clone(),
                scope: scope.to_owned(),
                key: derive_key(credentials.secret_access_key(), scope),
            },
        };
        let signed = sign(&key.key);
        *cached = Some(key);
        signed
    }
}

/// SigV4's signing key: `HMAC("AWS4" + secret, date)`, then the region, the service and
/// `aws4_request` in turn, each keyed with the one before (`scope` lists them with `/`).
fn derive_key(secret: &str, scope: &str) -> hmac::Key {
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes());
    for part in scope.split('/') {
        let tag = hmac::sign(&key, part.as_bytes());
        key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
    }
    key
}

/// A header value as SigV4 signs it: spaces trimmed at both ends, runs of spaces made one.
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.trim_matches(' ').chars() {
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningParams, SigningSettings};
    use std::time::Duration;

    /// The headers `aws-sigv4` (the SDK's signer) makes for the same request.
    fn sdk_headers(request: &Signable<'_>, credentials: &Credentials) -> Vec<(String, String)> {
        let identity = Identity::from(credentials.clone());
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(request.region)
            .name(request.service)
            .time(request.at)
            .settings(SigningSettings::default())
            .build()
            .unwrap();
        let signable = SignableRequest::new(
            "POST",
            request.uri,
            request.headers.iter().copied(),
            SignableBody::Precomputed(request.payload_hash.to_owned()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &SigningParams::V4(params)).unwrap().into_parts();
        let mut headers: Vec<(String, String)> =
            instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
        headers.sort();
        headers
    }

    fn ours(signer: &Signer, request: &Signable<'_>, credentials: &Credentials) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = signer
            .sign(request, credentials)
            .unwrap()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        headers.sort();
        headers
    }

    fn signer() -> Signer {
        scheme().0.signer
    }

    #[test]
    fn signs_as_the_sdks_signer_does() {
        let signer = signer();
        let plain = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "t");
        let session = Credentials::new("ASIAEXAMPLE", "secret", Some("a-session-token".into()), None, "t");
        let headers: &[(&str, &str)] = &[
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "DynamoDB_20120810.TransactWriteItems"),
            ("content-length", "2198"),
            ("user-agent", "aws-sdk-rust/1.7.0 os/linux"),
            ("x-amz-user-agent", "  aws-sdk-rust/1.7.0   api/dynamodb  "),
            ("X-Repeated", "one"),
            ("x-repeated", "two"),
            ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793"),
        ];
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_300_000);
        for uri in [
            "https://dynamodb.us-east-1.amazonaws.com/",
            "https://dynamodb.us-east-1.amazonaws.com:443/",
            "http://127.0.0.1:5000/",
            "https://sns.eu-west-1.amazonaws.com",
        ] {
            for credentials in [&plain, &session] {
                for at in [at, at + Duration::from_secs(86_400)] {
                    let request = Signable {
                        uri,
                        headers,
                        payload_hash: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                        region: "us-east-1",
                        service: "dynamodb",
                        at,
                    };
                    assert_eq!(ours(&signer, &request, credentials), sdk_headers(&request, credentials), "{uri}");
                }
            }
        }
    }

    #[test]
    fn other_shapes_are_left_to_the_sdk() {
        let signer = signer();
        let credentials = Credentials::new("AKID", "secret", None, None, "t");
        let request = |uri| Signable {
            uri,
            headers: &[],
            payload_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            region: "us-east-1",
            service: "s3",
            at: SystemTime::UNIX_EPOCH,
        };
        for uri in ["https://bucket.s3.amazonaws.com/key", "https://sqs.amazonaws.com/?Action=x", "not a uri"] {
            assert!(signer.sign(&request(uri), &credentials).is_none(), "{uri}");
        }
        let presigned = [("x-amz-date", "20260101T000000Z")];
        let with_date = Signable { headers: &presigned, ..request("https://sns.amazonaws.com/") };
        assert!(signer.sign(&with_date, &credentials).is_none());
    }

    #[test]
    fn the_clock_watch_reads_how_far_the_service_is_ahead() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_324_000); // 2025-11-28T10:00:00Z
        assert_eq!(skew_of("Fri, 28 Nov 2025 10:00:00 GMT", now), Some(0));
        assert_eq!(skew_of("Fri, 28 Nov 2025 10:07:00 GMT", now), Some(420));
        assert_eq!(skew_of("Fri, 28 Nov 2025 09:59:30 GMT", now), Some(-30));
        assert_eq!(skew_of("yesterday", now), None);
    }

    #[test]
    fn the_signing_key_follows_the_credentials_and_the_scope() {
        let signer = signer();
        let scope = "20251128/us-east-1/dynamodb/aws4_request";
        let tag = |credentials: &Credentials, scope: &str| {
            signer.with_key(credentials, scope, |key| hmac::sign(key, b"x").as_ref().to_vec())
        };
        let first = Credentials::new("AKID", "secret", None, None, "t");
        let rotated = Credentials::new("AKID", "another secret", None, None, "t");
        let a = tag(&first, scope);
        assert_eq!(tag(&first, scope), a);
        assert_ne!(tag(&rotated, scope), a);
        assert_ne!(tag(&first, "20251129/us-east-1/dynamodb/aws4_request"), a);
        assert_eq!(tag(&first, scope), a);
    }

    #[test]
    fn header_values_are_trimmed_as_sigv4_says() {
        assert_eq!(trim_all("  a  b   c "), "a b c");
        assert_eq!(trim_all("plain"), "plain");
        assert_eq!(trim_all(""), "");
        assert_eq!(trim_all("tab\t\tkept"), "tab\t\tkept");
    }
}
