//! The outbox drain: the table's stream → EventBridge. Every path that stores (the
//! webhook, the replay, reconciliation) writes the table once per change and once per
//! alerted incident; the stream carries each of those writes once, and this drain turns
//! them into bus events ([`entry::entry_of`]). Nothing on the webhook's path waits for
//! EventBridge, and the table is the only record of what was announced.
//!
//! Failures: a batch is sent in order; the first entry EventBridge refuses (or a call that
//! fails) is reported by its record's sequence number (`ReportBatchItemFailures`), so
//! Lambda sends that record and the ones after it again, and none before it.

pub mod entry;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::{Deserialize, Serialize};

use self::entry::{entry_of, entry_size, BusEntry, StreamRecord, MAX_ENTRY_BYTES, SOURCE};
use crate::aws::sdk_error;
use crate::error::Error;
use crate::metrics::{self, Document, Function, MetricsSink};

/// PutEvents takes at most 10 entries, 256 KB in all.
const ENTRIES_PER_CALL: usize = 10;

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
        for chunk in chunks(&pending) {
            match self.put(chunk).await {
                Ok(sent) if sent == chunk.len() => published += sent,
                Ok(sent) => {
                    published += sent;
                    let first_failed = chunk.get(sent).map(|(sequence, _)| sequence.clone()).unwrap_or_default();
                    answer.failures.push(ItemFailure { item_identifier: first_failed });
                    break;
                }
                Err(error) => {
                    tracing::warn!(error = error.detail(), "events not published; Lambda sends them again");
                    let first = chunk.first().map(|(sequence, _)| sequence.clone()).unwrap_or_default();
                    answer.failures.push(ItemFailure { item_identifier: first });
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

    /// Sends `chunk`; how many entries from its start were accepted before the first one
    /// refused.
    async fn put(&self, chunk: &[(String, BusEntry)]) -> Result<usize, Error> {
        let entries: Vec<PutEventsRequestEntry> = chunk
            .iter()
            .map(|(_, entry)| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(entry.detail_type)
                    .detail(&entry.detail)
                    .set_time(entry.time.as_deref().and_then(|t| {
                        aws_smithy_types::DateTime::from_str(t, aws_smithy_types::date_time::Format::DateTime).ok()
                    }))
                    .build()
            })
            .collect();
        let output =
            self.client.put_events().set_entries(Some(entries)).send().await.map_err(|e| sdk_error("PutEvents", e))?;
        let results = output.entries();
        let accepted = results.iter().take_while(|result| result.error_code().is_none()).count();
        if let Some(refused) = results.get(accepted) {
            tracing::warn!(
                code = refused.error_code().unwrap_or_default(),
                message = refused.error_message().unwrap_or_default(),
                "EventBridge refused an event"
            );
        }
        Ok(accepted.min(chunk.len()))
    }
}

/// `pending` in calls of at most 10 entries and 256 KB.
fn chunks(pending: &[(String, BusEntry)]) -> Vec<&[(String, BusEntry)]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, entry)) in pending.iter().enumerate() {
        let size = entry_size(entry);
        if i > start && (i - start == ENTRIES_PER_CALL || bytes + size > MAX_ENTRY_BYTES) {
            chunks.extend(pending.get(start..i));
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < pending.len() {
        chunks.extend(pending.get(start..));
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize) -> (String, BusEntry) {
        ("1".into(), BusEntry { detail_type: entry::DATA_CHANGE, detail: "x".repeat(bytes), time: None })
    }

    #[test]
    fn calls_hold_at_most_ten_entries_and_256_kb() {
        let small: Vec<_> = (0..23).map(|_| entry(100)).collect();
        assert_eq!(chunks(&small).iter().map(|c| c.len()).collect::<Vec<_>>(), [10, 10, 3]);
        let large: Vec<_> = (0..3).map(|_| entry(150 * 1024)).collect();
        assert_eq!(chunks(&large).iter().map(|c| c.len()).collect::<Vec<_>>(), [1, 1, 1]);
        assert!(chunks(&[]).is_empty());
    }
}
