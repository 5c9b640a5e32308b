//! The request path: HTTP in, one event applied, HTTP out, one log line.

use std::time::Instant;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;

use crate::alerts::Alerter;
use crate::auth;
use crate::config::Settings;
use crate::envelope::Envelope;
use crate::error::{json_response, RequestError};
use crate::events::event_log::EventRecord;
use crate::events::KadoaEvent;
use crate::secrets::SecretStore;
use crate::store::items::Receipt;
use crate::store::{Store, WriteOutcome};
use crate::timestamp::Timestamp;

/// What lives across requests: built once at init, borrowed by every request.
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub secrets: SecretStore,
    pub alerter: Alerter,
}

/// The AWS clients the function uses; tests build them against moto.
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub secrets_manager: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            secrets_manager: aws_sdk_secretsmanager::Client::new(config),
        }
    }
}

/// The `status` of a 200 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Duplicate,
    Alerted,
    Suppressed,
    Accepted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::Alerted => "alerted",
            Self::Suppressed => "suppressed",
            Self::Accepted => "accepted",
        }
    }
}

impl From<WriteOutcome> for Outcome {
    fn from(write: WriteOutcome) -> Self {
        match write {
            WriteOutcome::Written => Self::Stored,
            WriteOutcome::AlreadyThere => Self::Duplicate,
        }
    }
}

/// What the log line of a request says, filled in as the request is understood.
#[derive(Default)]
struct RequestSummary {
    event_type: Option<String>,
    workflow_id: Option<String>,
}

impl App {
    pub fn new(settings: Settings, clients: AwsClients) -> Self {
        let remote_secret = settings.secret_arn.clone().map(|arn| (clients.secrets_manager, arn));
        Self {
            secrets: SecretStore::new(settings.inline_secrets.clone(), remote_secret),
            store: Store::new(clients.dynamodb, settings.table_name.clone()),
            alerter: Alerter::new(clients.sns, settings.alert_topic_arn.clone(), settings.alert_repeat),
            settings,
        }
    }

    /// Handles one delivery. Never fails: every error is an HTTP answer.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let mut summary = RequestSummary::default();
        let result = self.process(&request, &mut summary).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let event_type = summary.event_type.as_deref().unwrap_or("-");
        let workflow_id = summary.workflow_id.as_deref().unwrap_or("-");
        match result {
            Ok(outcome) => {
                tracing::info!(
                    event_type,
                    workflow_id,
                    outcome = outcome.as_str(),
                    status = 200,
                    duration_ms,
                    "delivery"
                );
                json_response(StatusCode::OK, &json!({"status": outcome.as_str(), "eventType": event_type}))
            }
            Err(error) => {
                let status = error.status().as_u16();
                let detail = error.detail();
                if status >= 500 {
                    tracing::error!(
                        event_type,
                        workflow_id,
                        outcome = "error",
                        status,
                        duration_ms,
                        error = detail,
                        "delivery"
                    );
                } else {
                    tracing::warn!(
                        event_type,
                        workflow_id,
                        outcome = "rejected",
                        status,
                        duration_ms,
                        error = detail,
                        "delivery"
                    );
                }
                error.into_response()
            }
        }
    }

    async fn process(&self, request: &Request, summary: &mut RequestSummary) -> Result<Outcome, RequestError> {
        let method = request.method();
        if ![Method::POST, Method::PUT, Method::PATCH].contains(method) {
            return Err(RequestError::MethodNotAllowed(format!("method {method} is not allowed; use POST")));
        }
        // Authentication first: nothing of an unauthenticated body is even parsed.
        let secrets = self.secrets.current().await?;
        if !auth::is_authorized(request.headers(), &self.settings.auth_header, &secrets) {
            return Err(RequestError::Unauthorized);
        }

        let header_event = match request.headers().get("x-kadoa-event") {
            None => None,
            Some(value) => {
                Some(value.to_str().map_err(|_| RequestError::bad_request("X-Kadoa-Event header is not text"))?)
            }
        };
        let envelope = Envelope::parse(request.body().as_ref(), header_event)?;
        summary.event_type = Some(envelope.event_type.clone());
        let event = KadoaEvent::parse(&envelope)?;
        summary.workflow_id = event.workflow_id().map(str::to_owned);

        let receipt = Receipt::new(Timestamp::now(), self.settings.retention_days);
        match &event {
            KadoaEvent::DataChange(change) => {
                let plan = change.plan(&envelope, receipt)?;
                Ok(plan.apply(&self.store).await?.into())
            }
            KadoaEvent::Health(health) => self.alerter.handle(&self.store, &envelope, health, receipt).await,
            KadoaEvent::Logged { workflow_id } => {
                Ok(self.log_event(&envelope, Some(workflow_id), receipt, "stored").await?.into())
            }
            KadoaEvent::Unknown { workflow_id } => {
                tracing::debug!(event_type = envelope.event_type, "event type not known to this version; logged only");
                self.log_event(&envelope, workflow_id.as_deref(), receipt, "accepted").await?;
                Ok(Outcome::Accepted)
            }
        }
    }

    /// Records the event in the log once; a retried delivery finds it there.
    async fn log_event(
        &self,
        envelope: &Envelope,
        workflow_id: Option<&str>,
        receipt: Receipt,
        status: &str,
    ) -> Result<WriteOutcome, RequestError> {
        let item = EventRecord::with_payload(envelope, workflow_id, receipt, status).to_item()?;
        self.store.put_if_absent(item).await
    }
}
