//! The replay entry point: an SQS-triggered Lambda that applies spooled deliveries through
//! the same [`Receiver::apply`] as the webhook, and reports each failed message on its own
//! (`ReportBatchItemFailures`), so one bad message never holds back the rest.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use crate::error::Error;
use crate::metrics::{self, Document, Function, MetricsSink};
use crate::outcome::{Applied, Arrival, Outcome};
use crate::receiver::{Delivery, Receiver};
use crate::spool::{retry_delay, Spool, SpooledDelivery, FIRST_RETRY_DELAY};
use crate::timestamp::Timestamp;

/// How far a spooled delivery's receipt time may be ahead of the replay's clock (the two
/// functions' clocks differ a little).
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(60);

/// Applies spooled deliveries.
pub struct Replayer {
    receiver: Receiver,
    spool: Spool,
    metrics: MetricsSink,
    first_retry_delay: std::time::Duration,
}

/// A replayed delivery: what applying it did, its event type and its timestamp (when its
/// body was still there to read).
type Replayed = (Applied, String, Option<Timestamp>);

impl Replayer {
    /// A replayer applying with `receiver` what `spool` holds, one metrics line per batch
    /// to `metrics`.
    pub fn new(receiver: Receiver, spool: Spool, metrics: MetricsSink) -> Self {
        Self { receiver, spool, metrics, first_retry_delay: FIRST_RETRY_DELAY }
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
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut answer = SqsBatchResponse::default();
        if event.records.is_empty() {
            // Lambda never sends an empty batch; a caller that does gets no metrics line.
            return answer;
        }
        let batch_started = std::time::Instant::now();
        let mut document = Document::new(Function::Replay);
        let (mut applied_count, mut failed_count) = (0u32, 0u32);
        for record in &event.records {
            let started = std::time::Instant::now();
            let result = self.replay(record).await;
            let duration_ms = started.elapsed().as_millis() as u64;
            let tries: u32 = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
            let receipt_handle = record.receipt_handle.as_deref().unwrap_or_default();
            match result {
                Ok((applied, event_type, sent_at)) => {
                    applied_count += 1;
                    if applied.differences > 0 {
                        document.record(metrics::DIFFERENCES_STORED, applied.differences as f64);
                    }
                    if let Some(alerted_at) = applied.alerted_at {
                        document.record(metrics::ALERTS_PUBLISHED, 1.0);
                        if let Some(sent_at) = sent_at {
                            document.record(metrics::ALERT_DELAY, metrics::millis_between(sent_at, alerted_at));
                        }
                    }
                    let outcome = applied.outcome.as_str();
                    tracing::info!(event_type, outcome, tries, duration_ms, "replay");
                }
                Err(error) => {
                    failed_count += 1;
                    let transient = error.is_transient();
                    if transient {
                        self.spool.retry_after(receipt_handle, retry_delay(self.first_retry_delay, tries)).await;
                        tracing::warn!(tries, duration_ms, error = error.detail(), "replay failed; will try again");
                    } else {
                        tracing::error!(tries, duration_ms, error = error.detail(), "replay refused; will dead-letter");
                    }
                    answer.add_failure(record.message_id.clone().unwrap_or_default());
                }
            }
        }
        document
            .record(metrics::REPLAY_APPLIED, f64::from(applied_count))
            .record(metrics::REPLAY_FAILED, f64::from(failed_count))
            .record(metrics::DURATION, batch_started.elapsed().as_secs_f64() * 1000.0);
        self.metrics.emit(&document);
        answer
    }

    async fn replay(&self, record: &SqsMessage) -> Result<Replayed, Error> {
        let body = record.body.as_deref().unwrap_or_default();
        let message: SpooledDelivery =
            serde_json::from_str(body).map_err(|e| Error::invalid(format!("not a spooled delivery: {e}")))?;
        let received_at = Timestamp::parse_rfc3339(&message.received_at)
            .ok_or_else(|| Error::invalid("spooled delivery has no receipt time"))?;
        // The spool is written by the webhook alone; a receipt time after this clock (give
        // or take its skew) did not come from there.
        if received_at.plus_millis(-(MAX_CLOCK_SKEW.as_millis() as i64)).is_some_and(|t| t > Timestamp::now()) {
            return Err(Error::invalid(format!(
                "spooled delivery received at {} is ahead of this clock",
                received_at.to_key_string()
            )));
        }
        let Some(body) = self.spool.body(&message).await? else {
            // Its body was deleted after an earlier copy of this message was applied.
            tracing::info!(object = message.body_object, "spooled body already applied and deleted");
            return Ok((Applied::answered(Outcome::Duplicate), message.header_event.unwrap_or_default(), None));
        };
        let body = crate::envelope::repair_lone_surrogates(body.as_bytes());
        let delivery = Delivery::parse(&body, message.header_event.as_deref())?;
        let applied = self.receiver.apply(&delivery, received_at, Arrival::Replay).await?;
        self.spool.forget(&message).await;
        Ok((applied, delivery.envelope.event_type.clone(), Some(delivery.envelope.timestamp)))
    }
}
