//! The replay entry point: an SQS-triggered Lambda that applies spooled deliveries through
//! the same [`Receiver::apply`] as the webhook, and reports each failed message on its own
//! (`ReportBatchItemFailures`), so one bad message never holds back the rest.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::outcome::{Arrival, Outcome};
use crate::receiver::{Delivery, Receiver};
use crate::spool::{retry_delay, Spool, SpooledDelivery, FIRST_RETRY_DELAY};
use crate::timestamp::Timestamp;

/// The SQS event Lambda hands over (the fields used here).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SqsEvent {
    /// The messages of this batch.
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsRecord>,
}

/// One message of an SQS event.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    /// Identifies the message in the batch answer.
    pub message_id: String,
    /// For changing its visibility.
    #[serde(default)]
    pub receipt_handle: String,
    /// The spooled delivery, as JSON.
    #[serde(default)]
    pub body: String,
    /// SQS attributes; `ApproximateReceiveCount` counts the tries.
    #[serde(default)]
    pub attributes: std::collections::HashMap<String, String>,
}

/// The answer: the messages to try again (all others are deleted by Lambda).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// One entry per failed message.
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// A message to try again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// Its `messageId`.
    pub item_identifier: String,
}

/// Applies spooled deliveries.
pub struct Replayer {
    receiver: Receiver,
    spool: Spool,
    first_retry_delay: std::time::Duration,
}

impl Replayer {
    /// A replayer applying with `receiver` what `spool` holds.
    pub fn new(receiver: Receiver, spool: Spool) -> Self {
        Self { receiver, spool, first_retry_delay: FIRST_RETRY_DELAY }
    }

    /// The same replayer, trying failed messages again sooner (tests that are not about
    /// time).
    pub fn with_first_retry_delay(self, first_retry_delay: std::time::Duration) -> Self {
        Self { first_retry_delay, ..self }
    }

    /// Applies every message of `event`, one after the other; returns those to try again.
    /// A failed message that can succeed later is hidden for a delay that grows with its
    /// tries ([`retry_delay`]); one that cannot is returned at once and reaches the
    /// dead-letter queue after the queue's receive limit.
    pub async fn handle(&self, event: SqsEvent) -> BatchResponse {
        let mut failures = Vec::new();
        for record in &event.records {
            let started = std::time::Instant::now();
            let result = self.replay(record).await;
            let duration_ms = started.elapsed().as_millis() as u64;
            let tries: u32 = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
            match result {
                Ok((outcome, event_type)) => {
                    tracing::info!(event_type, outcome = outcome.as_str(), tries, duration_ms, "replay");
                }
                Err(error) => {
                    let transient = error.is_transient();
                    if transient {
                        self.spool
                            .retry_after(&record.receipt_handle, retry_delay(self.first_retry_delay, tries))
                            .await;
                        tracing::warn!(tries, duration_ms, error = error.detail(), "replay failed; will try again");
                    } else {
                        tracing::error!(tries, duration_ms, error = error.detail(), "replay refused; will dead-letter");
                    }
                    failures.push(BatchItemFailure { item_identifier: record.message_id.clone() });
                }
            }
        }
        BatchResponse { batch_item_failures: failures }
    }

    async fn replay(&self, record: &SqsRecord) -> Result<(Outcome, String), Error> {
        let message: SpooledDelivery =
            serde_json::from_str(&record.body).map_err(|e| Error::invalid(format!("not a spooled delivery: {e}")))?;
        let received_at = Timestamp::parse_rfc3339(&message.received_at)
            .ok_or_else(|| Error::invalid("spooled delivery has no receipt time"))?;
        let body = self.spool.body(&message).await?;
        let delivery = Delivery::parse(body.as_bytes(), message.header_event.as_deref())?;
        let outcome = self.receiver.apply(&delivery, received_at, Arrival::Replay).await?;
        self.spool.forget(&message).await;
        Ok((outcome, delivery.envelope.event_type.clone()))
    }
}
