//! The outbox drain: the table's stream → EventBridge. Every path that stores (the
//! webhook, the replay, reconciliation) writes the table once per change and once per
//! alerted incident; the stream carries each of those writes once, and this drain turns
//! them into bus events ([`entry::entry_of`]). Nothing on the webhook's path waits for
//! EventBridge, and the table is the only record of what was announced.
//!
//! Failures: a batch is sent in order, one entry a call; the first entry EventBridge
//! refuses (or a call that fails) is reported by its record's sequence number
//! (`ReportBatchItemFailures`), so Lambda sends that record and the ones after it again,
//! and none before it.

pub mod entry;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::{Deserialize, Serialize};

use self::entry::{entry_of, BusEntry, StreamRecord, SOURCE};
use crate::aws::sdk_error;
use crate::error::Error;
use crate::metrics::{self, Document, Function, MetricsSink};

/// A batch of stream records, as Lambda hands it over.
#[derive(Debug, Default, Deserialize)]
pub struct StreamEvent {
    /// The records, in shard order.
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

/// The answer: the first record to send again, if any.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchAnswer {
    /// At most one: the first record not published.
    #[serde(rename = "batchItemFailures")]
    pub failures: Vec<ItemFailure>,
}

/// A record to send again.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    /// Its sequence number.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// Publishes what the stream announces to one bus.
pub struct Drain {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    metrics: MetricsSink,
}

impl Drain {
    /// A drain publishing to `bus` (a name or an ARN).
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String, metrics: MetricsSink) -> Self {
        Self { client, bus, metrics }
    }

    /// Publishes the entries `event`'s records announce, in order.
    pub async fn handle(&self, event: StreamEvent) -> BatchAnswer {
        let started = std::time::Instant::now();
        let pending: Vec<(String, BusEntry)> = event
            .records
            .iter()
            .filter_map(|record| Some((record.dynamodb.sequence_number.clone()?, entry_of(record)?)))
            .collect();
        let mut published = 0usize;
        let mut answer = BatchAnswer::default();
        // One entry a call, in stream order: EventBridge accepts or refuses the entries of
        // a call each on its own, so a refused entry in a call of several could be followed
        // by accepted ones that Lambda's resend would publish again. (PutEvents is billed
        // per entry, not per call.)
        for (sequence, entry) in &pending {
            match self.put(entry).await {
                Ok(()) => published += 1,
                Err(error) => {
                    tracing::warn!(error = error.detail(), "event not published; Lambda sends it again");
                    answer.failures.push(ItemFailure { item_identifier: sequence.clone() });
                    break;
                }
            }
        }
        tracing::info!(
            records = event.records.len(),
            announced = pending.len(),
            published,
            failed = !answer.failures.is_empty(),
            "outbox"
        );
        let mut document = Document::new(Function::Outbox);
        document
            .record(metrics::EVENTS_PUBLISHED, published as f64)
            .record(metrics::EVENTS_FAILED, (pending.len() - published) as f64)
            .record(metrics::DURATION, started.elapsed().as_secs_f64() * 1000.0);
        self.metrics.emit(&document);
        answer
    }

    /// Sends one entry.
    async fn put(&self, entry: &BusEntry) -> Result<(), Error> {
        let time = entry
            .time
            .as_deref()
            .and_then(|t| aws_smithy_types::DateTime::from_str(t, aws_smithy_types::date_time::Format::DateTime).ok());
        let request = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(entry.detail_type)
            .detail(&entry.detail)
            .set_time(time)
            .build();
        let output = self.client.put_events().entries(request).send().await.map_err(|e| sdk_error("PutEvents", e))?;
        match output.entries().first() {
            Some(result) if result.error_code().is_none() => Ok(()),
            refused => Err(Error::Unavailable(crate::error::bounded(format!(
                "EventBridge refused the event: {} {}",
                refused.and_then(|r| r.error_code()).unwrap_or("(no answer)"),
                refused.and_then(|r| r.error_message()).unwrap_or_default()
            )))),
        }
    }
}
