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
//!
//! The batch is read leniently, each record on its own: a record that cannot be read (a
//! lone surrogate, a `NewImage` that is not a map) is reported like a refused entry
//! rather than failing the whole batch, so the records before it are published and it is
//! kept, not dropped: Lambda sends it again until its retries or age run out, then it goes
//! to the outbox's dead-letter queue; a fix deployed meanwhile publishes it. A record
//! without a `SequenceNumber` cannot be reported: it is published if it can be, else
//! logged and counted (`RecordsSkipped`), and the batch goes on.

pub mod entry;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::{Deserialize, Serialize};

use serde_json::value::RawValue;

use aws_lambda_events::event::dynamodb::EventRecord;

use self::entry::{entry_of, BusEntry, SOURCE};
use crate::aws::sdk_error;
use crate::error::Error;
use crate::metrics::{self, Document, Function, MetricsSink};

/// A batch of stream records, as Lambda hands it over: each record kept as its JSON text
/// and read on its own ([`read_record`]) as `aws_lambda_events`' record, so one record
/// cannot fail the batch (that crate's `Event` would refuse the whole batch for one).
#[derive(Debug, Default, Deserialize)]
pub struct StreamEvent {
    /// The records, in shard order.
    #[serde(rename = "Records", default)]
    pub records: Vec<Box<RawValue>>,
}

/// Only a record's position, read apart from the rest: what a failure is reported by,
/// even when the rest of the record cannot be read.
#[derive(Deserialize)]
struct Position {
    dynamodb: PositionOf,
}

#[derive(Deserialize)]
struct PositionOf {
    #[serde(rename = "SequenceNumber")]
    sequence_number: String,
}

/// One record of a batch, as read.
#[derive(Debug)]
pub struct ReadRecord {
    /// Its sequence number, when it has one that can be read.
    pub sequence: Option<String>,
    /// The entry it announces (`Ok(None)`: nothing), or why it cannot be read.
    pub entry: Result<Option<BusEntry>, String>,
}

/// Reads one record of a batch.
pub fn read_record(raw: &RawValue) -> ReadRecord {
    let sequence = serde_json::from_str::<Position>(raw.get()).ok().map(|p| p.dynamodb.sequence_number);
    let entry = serde_json::from_str::<EventRecord>(raw.get())
        .map(|record| entry_of(&record))
        // Where and what kind, never the record's text (serde names a wrong value).
        .map_err(|e| format!("unreadable stream record ({:?} error at column {})", e.classify(), e.column()));
    ReadRecord { sequence, entry }
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

/// What became of a batch's records.
#[derive(Default)]
struct Tally {
    announced: usize,
    published: usize,
    skipped: usize,
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

    /// Publishes the entries `event`'s records announce, in order, up to the first that
    /// fails (see the module's comment).
    pub async fn handle(&self, event: StreamEvent) -> BatchAnswer {
        let started = std::time::Instant::now();
        let mut tally = Tally::default();
        let mut answer = BatchAnswer::default();
        // One entry a call, in stream order: EventBridge accepts or refuses the entries of
        // a call each on its own, so a refused entry in a call of several could be followed
        // by accepted ones that Lambda's resend would publish again. (PutEvents is billed
        // per entry, not per call.)
        for raw in &event.records {
            let ReadRecord { sequence, entry } = read_record(raw);
            let failure = match entry {
                Ok(None) => continue,
                Ok(Some(entry)) => {
                    tally.announced += 1;
                    match self.put(&entry).await {
                        Ok(()) => {
                            tally.published += 1;
                            continue;
                        }
                        Err(error) => error.detail().to_owned(),
                    }
                }
                Err(unreadable) => unreadable,
            };
            match sequence {
                Some(sequence) => {
                    tracing::warn!(error = failure, sequence, "record not published; Lambda sends it again");
                    answer.failures.push(ItemFailure { item_identifier: sequence });
                    break;
                }
                None => {
                    tracing::error!(error = failure, "record without a SequenceNumber not published: skipped");
                    tally.skipped += 1;
                }
            }
        }
        tracing::info!(
            records = event.records.len(),
            announced = tally.announced,
            published = tally.published,
            skipped = tally.skipped,
            failed = !answer.failures.is_empty(),
            "outbox"
        );
        let mut document = Document::new(Function::Outbox);
        document
            .record(metrics::EVENTS_PUBLISHED, tally.published as f64)
            .record(metrics::EVENTS_FAILED, answer.failures.len() as f64)
            .record(metrics::RECORDS_SKIPPED, tally.skipped as f64)
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

#[cfg(test)]
mod tests {
    use super::*;

    const CHANGE: &str = r#"{"pk": {"S": "WORKFLOW#wf"}, "sk": {"S": "CHANGE#c1#"}, "entity": {"S": "change"},
        "changeId": {"S": "c1"}, "workflowId": {"S": "wf"}, "createdAt": {"S": "2025-01-15T10:30:00.000Z"}}"#;

    /// A record as Lambda sends it, around `dynamodb` (which has no `SizeBytes` of its own).
    fn record(dynamodb: &str) -> String {
        let dynamodb = dynamodb.replacen('{', r#"{"SizeBytes": 100, "#, 1);
        format!(r#"{{"eventName": "INSERT", "eventID": "e1", "awsRegion": "us-east-1", "dynamodb": {dynamodb}}}"#)
    }

    fn read(text: &str) -> ReadRecord {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        read_record(&raw)
    }

    #[test]
    fn a_well_formed_record_announces_its_entry() {
        let read = read(&record(&format!(r#"{{"NewImage": {CHANGE}, "SequenceNumber": "7"}}"#)));
        assert_eq!(read.sequence.as_deref(), Some("7"));
        assert_eq!(read.entry.unwrap().unwrap().detail_type, entry::DATA_CHANGE);
    }

    #[test]
    fn each_malformed_shape_is_unreadable_on_its_own_and_keeps_its_position() {
        let lone_surrogate = CHANGE.replace(r#"{"S": "c1"}"#, r#"{"S": "c\ud800"}"#);
        for dynamodb in [
            format!(r#"{{"NewImage": {lone_surrogate}, "SequenceNumber": "7"}}"#),
            r#"{"NewImage": "not a map", "SequenceNumber": "7"}"#.to_owned(),
            r#"{"NewImage": [1, 2], "SequenceNumber": "7"}"#.to_owned(),
            format!(r#"{{"NewImage": {CHANGE}, "OldImage": 5, "SequenceNumber": "7"}}"#),
        ] {
            let read = read(&record(&dynamodb));
            assert_eq!(read.sequence.as_deref(), Some("7"), "{dynamodb}");
            let error = read.entry.unwrap_err();
            assert!(error.starts_with("unreadable stream record (") && !error.contains("not a map"), "{error}");
        }
        // Not even a record: nothing to report it by.
        for text in ["42", r#""text""#, r#"{"dynamodb": "x"}"#, &record(r#"{"SequenceNumber": 7}"#)] {
            assert_eq!(read(text).sequence, None, "{text}");
        }
    }

    #[test]
    fn a_record_without_a_sequence_number_is_still_read() {
        let read = read(&record(&format!(r#"{{"NewImage": {CHANGE}}}"#)));
        assert_eq!(read.sequence, None);
        assert!(read.entry.unwrap().is_some(), "published if it can be, though it cannot be reported");
    }

    #[test]
    fn one_malformed_record_does_not_fail_the_batch() {
        let good = record(&format!(r#"{{"NewImage": {CHANGE}, "SequenceNumber": "1"}}"#));
        let bad = record(r#"{"NewImage": "\ud800", "SequenceNumber": "2"}"#);
        let batch: StreamEvent = serde_json::from_str(&format!(r#"{{"Records": [{good}, {bad}, 17]}}"#)).unwrap();
        let read: Vec<ReadRecord> = batch.records.iter().map(|raw| read_record(raw)).collect();
        assert_eq!(read.len(), 3);
        assert!(read[0].entry.is_ok() && read[1].entry.is_err() && read[2].entry.is_err());
    }
}
