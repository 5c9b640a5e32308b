//! Records every request the app's clients sign, as sent, and checks each `Authorization`
//! against the one the SDK's signer (`aws-sigv4`) computes from scratch over the same
//! request (its headers before signing, its body, the region and service it must go to):
//! moto accepts any signature, so this is what proves that the body hash the app hands the
//! signer (`kadoa_webhook::aws::BodyHash`) is the hash of the body that goes out.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_sdk_dynamodb::config::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningParams, SigningSettings};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// A request as it left the client: after signing, before transmission.
#[derive(Debug, Clone)]
pub struct SentRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct SignedRequests {
    sent: Arc<Mutex<Vec<SentRequest>>>,
}

impl SignedRequests {
    pub fn take(&self) -> Vec<SentRequest> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

impl Intercept for SignedRequests {
    fn name(&self) -> &'static str {
        "SignedRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let sent = SentRequest {
            method: request.method().to_owned(),
            uri: request.uri().to_owned(),
            headers: request.headers().iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
            body: request.body().bytes().expect("the app's request bodies are in memory").to_vec(),
        };
        self.sent.lock().unwrap().push(sent);
        Ok(())
    }
}

impl SentRequest {
    fn header(&self, name: &str) -> &str {
        let found = self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        found.unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    /// Which attempt of its call this was (`amz-sdk-request: attempt=2; max=3`).
    pub fn attempt(&self) -> u32 {
        let header = self.header("amz-sdk-request");
        header.strip_prefix("attempt=").and_then(|rest| rest.split(';').next()).unwrap().parse().unwrap()
    }

    /// The `x-amz-target` or `Action` that names the operation, for messages.
    pub fn operation(&self) -> String {
        match self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("x-amz-target")) {
            Some((_, target)) => target.clone(),
            None => String::from_utf8_lossy(&self.body).split('&').next().unwrap_or_default().to_owned(),
        }
    }

    /// The `Authorization` header the SDK's signer (`aws-sigv4`, hashing the body itself)
    /// makes for this request with `credentials`, at the time the request carries; and the
    /// one the request carries.
    pub fn authorizations(&self, credentials: &Credentials) -> (String, String) {
        // The headers the request had before it was signed: not the ones signing adds, nor
        // the two the SDK adds after signing.
        const ADDED: &[&str] =
            &["authorization", "x-amz-date", "x-amz-security-token", "amz-sdk-request", "amz-sdk-invocation-id"];
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .filter(|(name, _)| !ADDED.contains(&name.to_ascii_lowercase().as_str()))
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let at: SystemTime = self.signed_at().into();
        let identity = Identity::from(credentials.clone());
        let (region, service) = self.expected_scope();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap();
        let request =
            SignableRequest::new(&self.method, &self.uri, headers.into_iter(), SignableBody::Bytes(&self.body))
                .unwrap();
        let (instructions, _) = sign(request, &SigningParams::V4(params)).unwrap().into_parts();
        let expected = instructions.headers().find(|(name, _)| *name == "authorization").unwrap().1.to_owned();
        (expected, self.header("authorization").to_owned())
    }

    /// The region and service this request must be signed for (the tests' clients are all
    /// in us-east-1).
    fn expected_scope(&self) -> (&'static str, &'static str) {
        let operation = self.operation();
        let service = match () {
            _ if operation.starts_with("DynamoDB_") => "dynamodb",
            _ if operation.starts_with("AmazonSQS.") => "sqs",
            _ if operation == "Action=Publish" => "sns",
            _ => panic!("no service known for {operation}"),
        };
        ("us-east-1", service)
    }

    /// When the request was signed (its `x-amz-date`).
    fn signed_at(&self) -> time::OffsetDateTime {
        let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        time::PrimitiveDateTime::parse(self.header("x-amz-date"), &format).unwrap().assume_utc()
    }

    /// Seconds between the time the request was signed at and now.
    pub fn signed_seconds_ago(&self) -> i64 {
        (time::OffsetDateTime::now_utc() - self.signed_at()).whole_seconds()
    }
}
