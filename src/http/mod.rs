//! The webhook entry point: HTTP only. Method, authentication, envelope, the answer, and
//! one log line per request; the event itself is applied by [`Receiver::apply`].

pub mod auth;
pub mod event;

use std::time::{Duration, Instant};

use lambda_http::http::Method;
use lambda_http::{Body, Request};
use serde::Serialize;
use serde_json::json;

use self::event::{HttpEvent, Unreadable};
use crate::components::Components;
use crate::config::Settings;
use crate::envelope::{repair_lone_surrogates, Envelope};
use crate::error::Error;
use crate::events::KadoaEvent;
use crate::metrics::{self, Document, Function, MetricsSink};
use crate::outcome::{Applied, Arrival, Outcome};
use crate::receiver::{Delivery, Receiver};
use crate::secrets::{SecretPolicy, SecretStore};
use crate::spool::Spool;
use crate::store::Store;
use crate::timestamp::Timestamp;

/// What the function answers, in the shape API Gateway (REST and HTTP APIs) and function
/// URLs all take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The HTTP status.
    pub status_code: u16,
    /// Response headers.
    pub headers: std::collections::BTreeMap<&'static str, &'static str>,
    /// A JSON text.
    pub body: String,
    /// Always false: the body is text.
    pub is_base64_encoded: bool,
    /// Payload 2.0 answers only: none. Optional in AWS's format, but cargo-lambda's
    /// function URL (`make dev`) refuses an answer without it; a REST API refuses one with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookies: Option<Vec<String>>,
}

impl Answer {
    fn json(status_code: u16, body: serde_json::Value) -> Self {
        Self {
            status_code,
            headers: [("content-type", "application/json")].into(),
            body: body.to_string(),
            is_base64_encoded: false,
            cookies: None,
        }
    }

    fn accepted(outcome: Outcome, event_type: &str) -> Self {
        Self::json(outcome.status(), json!({"status": outcome.as_str(), "eventType": event_type}))
    }

    fn refused(error: &Error) -> Self {
        let mut answer = Self::json(error.status(), json!({"error": error.public_message()}));
        if let Error::MethodNotAllowed(_) = error {
            answer.headers.insert("allow", "POST, PUT, PATCH");
        }
        answer
    }

    /// The body as JSON (tests read it).
    pub fn json_body(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What lives across requests: built once at init, borrowed by every request.
pub struct App {
    settings: Settings,
    secrets: SecretStore,
    receiver: Receiver,
    spool: Option<Spool>,
    store: Store,
    metrics: MetricsSink,
}

/// Time kept back from the function's deadline to spool a delivery that is still being
/// applied.
pub const SPOOL_MARGIN: Duration = Duration::from_secs(3);

/// What the log line of a request says, filled in as the request is understood.
#[derive(Default)]
struct RequestSummary {
    event_type: Option<String>,
    workflow_id: Option<String>,
    /// Why a delivery was spooled.
    spooled_because: Option<String>,
    /// Whether the request carried a valid secret.
    authenticated: bool,
    /// The event's `timestamp`, and when it was received: the delivery's delay.
    sent_at: Option<Timestamp>,
    received_at: Option<Timestamp>,
}

impl RequestSummary {
    /// The request's metrics line.
    fn metrics(&self, result: &Result<Applied, Error>, duration: Duration) -> Document {
        let mut document = Document::new(Function::Webhook);
        let outcome = match result {
            Ok(applied) => applied.metric_outcome(),
            Err(error) => metrics::refusal_outcome(error.status()),
        };
        document
            .dimension("Outcome", outcome)
            .dimension("EventType", metrics::event_type_dimension(self.event_type.as_deref()))
            .record(metrics::DELIVERIES, 1.0)
            .record(metrics::AUTHENTICATED_DELIVERIES, if self.authenticated { 1.0 } else { 0.0 })
            .record(metrics::DURATION, duration.as_secs_f64() * 1000.0);
        if let (Some(sent_at), Some(received_at)) = (self.sent_at, self.received_at) {
            document.record(metrics::DELIVERY_DELAY, metrics::millis_between(sent_at, received_at));
        }
        if let Ok(applied) = result {
            if applied.differences > 0 {
                document.record(metrics::DIFFERENCES_STORED, applied.differences as f64);
            }
            if let Some(alerted_at) = applied.alerted_at {
                document.record(metrics::ALERTS_PUBLISHED, 1.0);
                if let Some(sent_at) = self.sent_at {
                    document.record(metrics::ALERT_DELAY, metrics::millis_between(sent_at, alerted_at));
                }
            }
            if applied.outcome == Outcome::Queued {
                document.record(metrics::SPOOLED, 1.0);
            }
        }
        if let Some(workflow_id) = &self.workflow_id {
            document.property("workflowId", workflow_id.as_str());
        }
        let status = match result {
            Ok(applied) => applied.outcome.status(),
            Err(error) => error.status(),
        };
        document.property("status", status);
        document
    }
}

/// The payload the template's hourly schedule invokes the webhook function with: not a
/// request, a check that the stack is connected (see [`App::watch`]).
pub const WATCH_EVENT: &str = r#"{"kadoaWebhook":"watch"}"#;

impl App {
    /// The app of `components`, with the secret refreshed as `secret_policy` says (tests
    /// that are not about time shorten the waits).
    pub fn new(components: Components, secret_policy: SecretPolicy) -> Self {
        let Components { settings, clients, .. } = &components;
        let remote_secret = settings.secret_arn.clone().map(|arn| ((*clients.secrets_manager).clone(), arn));
        Self {
            secrets: SecretStore::new(settings.inline_secrets.clone(), remote_secret, secret_policy),
            receiver: components.receiver(),
            spool: components.spool(),
            store: components.store.clone(),
            metrics: components.metrics.clone(),
            settings: components.settings,
        }
    }

    /// Work worth doing before the first request, together: reading the remote secret and
    /// the alert rules.
    pub async fn warm_up(&self) {
        futures::join!(self.secrets.prefetch(), self.receiver.warm_up());
    }

    /// The receiver every entry point applies events with.
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    /// Handles one Lambda event from a function URL or API Gateway, as JSON text, to be
    /// answered before `deadline`. An event that is not a readable HTTP request (a header
    /// value with control characters, say) gets a 400 from here rather than failing the
    /// invocation.
    pub async fn handle_event(&self, event: &str, deadline: Option<Instant>) -> Answer {
        // Every HTTP event is far longer than the schedule's payload: one comparison.
        if event.len() < 64
            && serde_json::from_str::<serde_json::Value>(event).ok() == serde_json::from_str(WATCH_EVENT).ok()
        {
            return self.watch().await;
        }
        let event = serde_json::from_str::<HttpEvent>(event).map_err(|_| Unreadable);
        let v2 = event.as_ref().is_ok_and(HttpEvent::is_payload_v2);
        let mut answer = match event.and_then(HttpEvent::into_request) {
            Ok(request) => self.handle(request, deadline).await,
            Err(Unreadable) => self.unreadable(),
        };
        if v2 {
            answer.cookies = Some(Vec::new());
        }
        answer
    }

    /// Handles one delivery, to be answered before `deadline`. Never fails: every error is
    /// an answer.
    pub async fn handle(&self, request: Request, deadline: Option<Instant>) -> Answer {
        let started = Instant::now();
        let mut summary = RequestSummary::default();
        let result = self.process(&request, deadline, &mut summary).await;
        let duration = started.elapsed();
        let duration_ms = duration.as_millis() as u64;
        self.metrics.emit(&summary.metrics(&result, duration));
        let event_type = summary.event_type.as_deref().unwrap_or("-");
        let workflow_id = summary.workflow_id.as_deref().unwrap_or("-");
        match result {
            Ok(Applied { outcome, .. }) => {
                let (status, outcome_name) = (outcome.status(), outcome.as_str());
                match &summary.spooled_because {
                    // Spooled: why, so the log says what failed.
                    Some(why) => tracing::warn!(
                        event_type,
                        workflow_id,
                        outcome = outcome_name,
                        status,
                        duration_ms,
                        error = why.as_str(),
                        "delivery"
                    ),
                    None => {
                        tracing::info!(event_type, workflow_id, outcome = outcome_name, status, duration_ms, "delivery")
                    }
                }
                Answer::accepted(outcome, event_type)
            }
            Err(error) => {
                let (status, detail) = (error.status(), error.detail());
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
                Answer::refused(&error)
            }
        }
    }

    async fn process(
        &self,
        request: &Request,
        deadline: Option<Instant>,
        summary: &mut RequestSummary,
    ) -> Result<Applied, Error> {
        let method = request.method();
        if ![Method::POST, Method::PUT, Method::PATCH].contains(method) {
            return Err(Error::MethodNotAllowed(crate::error::bounded(format!(
                "method {method} is not allowed; use POST"
            ))));
        }
        // Authentication first: nothing of an unauthenticated body is even parsed.
        let secrets = self.secrets.current().await?;
        if !auth::is_authorized(request.headers(), &self.settings.auth_header, &secrets) {
            return Err(Error::Unauthorized);
        }
        summary.authenticated = true;

        let header_event = match request.headers().get("x-kadoa-event") {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| Error::invalid("X-Kadoa-Event header is not text"))?),
        };
        let body = repair_lone_surrogates(body_bytes(request.body()));
        let envelope = Envelope::parse(&body, header_event)?;
        summary.event_type = Some(envelope.event_type.clone());
        summary.sent_at = Some(envelope.timestamp);
        let event = KadoaEvent::parse(&envelope)?;
        summary.workflow_id = event.workflow_id().map(str::to_owned);

        let received_at = Timestamp::now();
        summary.received_at = Some(received_at);
        let delivery = Delivery { envelope, event };
        // Boxed: the future is large (every AWS call it may make), and is moved from here on.
        let applying = Box::pin(self.receiver.apply(&delivery, received_at, Arrival::Webhook));
        let out_of_time = || Err(Error::Unavailable("the function is about to run out of time".into()));
        // Only a data change may be cut off half-way (its retry or replay completes it); an
        // alert is never cut off between its publish and its commit: its calls are bounded
        // (`store::health::CLAIM_LEASE`) and end inside the function's timeout anyway.
        let cancellable = matches!(delivery.event, KadoaEvent::DataChange(_));
        let applied = match deadline.and_then(|deadline| deadline.checked_sub(SPOOL_MARGIN)) {
            // No time to apply it at all: not even started.
            Some(until) if until <= Instant::now() => out_of_time(),
            Some(until) if cancellable => {
                tokio::time::timeout_at(until.into(), applying).await.unwrap_or_else(|_| out_of_time())
            }
            _ => applying.await,
        };
        // An authenticated, valid delivery that cannot be applied now waits in the spool.
        match (applied, &self.spool) {
            (Err(error), Some(spool)) if error.is_transient() => {
                // The envelope parsed, so the body is UTF-8.
                let text = std::str::from_utf8(&body).map_err(|_| Error::invalid("body is not UTF-8"))?;
                if let Err(spool_error) = spool.put(text, header_event, received_at).await {
                    tracing::error!(error = spool_error.detail(), "the spool cannot take the delivery either");
                    return Err(error);
                }
                summary.spooled_because = Some(error.detail().to_owned());
                Ok(Applied::answered(Outcome::Queued))
            }
            (applied, _) => applied,
        }
    }
}

impl App {
    /// The answer to an event that is not a readable request. What made it unreadable may
    /// quote a header (the credential, even): not logged.
    fn unreadable(&self) -> Answer {
        let error = Error::invalid("the request could not be read (malformed headers or body)");
        tracing::warn!(outcome = "rejected", status = 400, error = error.detail(), "delivery");
        let answer = Answer::refused(&error);
        self.metrics.emit(&RequestSummary::default().metrics(&Err(error), Duration::ZERO));
        answer
    }

    /// The hourly watch: whether Kadoa ever delivered to this stack, as the `Connected` metric.
    /// The silence alarm counts an hour without authenticated deliveries only on a stack
    /// that has been connected, so a stack that never was cannot raise it.
    pub async fn watch(&self) -> Answer {
        let started = Instant::now();
        let mut document = Document::new(Function::Watch);
        let connected = self.store.ever_delivered().await;
        match &connected {
            Ok(connected) => {
                document.record(metrics::CONNECTED, if *connected { 1.0 } else { 0.0 });
            }
            // No value: the alarm treats the missing hour as breaching.
            Err(error) => tracing::error!(error = error.detail(), "watch: the table could not be read"),
        }
        document.record(metrics::DURATION, started.elapsed().as_secs_f64() * 1000.0);
        self.metrics.emit(&document);
        match connected {
            Ok(connected) => Answer::json(200, json!({"status": "watched", "connected": connected})),
            Err(error) => Answer::refused(&error),
        }
    }
}

fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_answer_json_naming_the_problem() {
        let answer = Answer::refused(&Error::invalid("data.workflowId is required"));
        assert_eq!((answer.status_code, answer.json_body()), (400, json!({"error": "data.workflowId is required"})));
        let answer = Answer::refused(&Error::unavailable("PutItem", "connection refused"));
        assert_eq!((answer.status_code, answer.json_body()), (503, json!({"error": "temporarily unavailable"})));
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_methods() {
        let answer = Answer::refused(&Error::MethodNotAllowed("GET is not allowed".into()));
        assert_eq!(answer.status_code, 405);
        assert_eq!(answer.headers["allow"], "POST, PUT, PATCH");
    }

    #[test]
    fn accepted_answers_name_the_event_type() {
        let answer = Answer::accepted(Outcome::Stored, "workflow_data_change");
        assert_eq!(answer.json_body(), json!({"status": "stored", "eventType": "workflow_data_change"}));
        assert_eq!(serde_json::to_value(&answer).unwrap()["statusCode"], 200);
        let answer = Answer::accepted(Outcome::Queued, "workflow_failed");
        assert_eq!(
            (answer.status_code, answer.json_body()),
            (202, json!({"status": "queued", "eventType": "workflow_failed"}))
        );
    }
}
