//! The DynamoDB adapter: every call to the table and every expression it takes lives here
//! ([`health`] holds the workflow-health claim, [`notices`] the once-per-event claim).
//! A failure after the SDK's own retries becomes [`Error::Unavailable`]; every write is
//! safe to repeat.

pub mod health;
pub mod notices;
pub mod reconcile;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::client::customize::CustomizableOperation;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::{stream, StreamExt, TryStreamExt};

use self::wire::Write;
use crate::aws::sdk_error;
use crate::error::Error;
use crate::table::change::ChangePlan;
use crate::table::limits::item_size;
use crate::table::{Attr, Item};
use crate::timestamp::Timestamp;

/// The condition of a put that must not overwrite.
const IF_ABSENT: &str = "attribute_not_exists(pk)";
/// BatchWriteItem's limit.
pub const BATCH_SIZE: usize = 25;
/// Batches in flight at once: fast for thousands of differences, gentle on capacity.
pub const BATCHES_IN_FLIGHT: usize = 8;
/// TransactWriteItems' limits: 100 actions, 4 MB in all.
pub const TRANSACTION_ITEMS: usize = 100;
/// TransactWriteItems' aggregate size limit.
pub const TRANSACTION_BYTES: usize = 4_000_000;

/// Whether a conditional write found its item already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written now.
    Written,
    /// Already there: a retried delivery.
    AlreadyThere,
}

/// How the store paces itself; tests shorten the waits so that no test sleeps through
/// real backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// First wait before re-sending `UnprocessedItems`; it doubles each round, up to 32×.
    pub unprocessed_backoff: Duration,
    /// Rounds of re-sending `UnprocessedItems` (throttling) before giving up.
    pub unprocessed_rounds: u32,
    /// How long one call on a claim (claim, commit, release) may take; see
    /// [`health::CLAIM_LEASE`].
    pub claim_call_timeout: Duration,
}

impl Default for Pacing {
    /// 50 ms doubling to 1.6 s, 8 rounds: 50+100+200+400+800+1600+1600+1600 ms = 6.35 s
    /// at most, inside the function's timeout.
    fn default() -> Self {
        Self {
            unprocessed_backoff: Duration::from_millis(50),
            unprocessed_rounds: 8,
            claim_call_timeout: health::CALL_TIMEOUT,
        }
    }
}

impl Pacing {
    fn backoff(&self, round: u32) -> Duration {
        self.unprocessed_backoff * (1 << round.saturating_sub(1).min(5))
    }
}

/// The table.
#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
    pacing: Pacing,
}

impl Store {
    /// The table `table`, paced for production.
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table, pacing: Pacing::default() }
    }

    /// The same store, paced as given.
    pub fn with_pacing(self, pacing: Pacing) -> Self {
        Self { pacing, ..self }
    }

    /// Puts `item` only if no item has its key yet.
    pub async fn put_if_absent(&self, item: Item) -> Result<WriteOutcome, Error> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_dynamodb(item)))
            .condition_expression(IF_ABSENT)
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(WriteOutcome::AlreadyThere)
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    /// Writes a data change so that no retry, replay or concurrent delivery stores it twice
    /// or mixes two versions of it:
    /// - a change that fits one transaction (up to 98 differences, 4 MB) is written in one
    ///   `TransactWriteItems`, all or nothing, only if its change item is absent;
    /// - a larger one is checked first (one consistent read answers a retry of a stored
    ///   change), then its differences and event go in batches, and the change item last,
    ///   only if absent. A delivery that failed half-way has no change item yet, so its
    ///   retry completes it.
    pub async fn write_change(&self, plan: ChangePlan) -> Result<WriteOutcome, Error> {
        let ChangePlan { pk, change_sk, mut differences, event, change, pending } = plan;
        // The pending marker goes with the differences: before the commit marker.
        differences.extend(pending);
        let fits_transaction = differences.len() + 2 <= TRANSACTION_ITEMS
            && differences.iter().chain([&event, &change]).map(item_size).sum::<usize>() < TRANSACTION_BYTES;
        if fits_transaction {
            differences.push(event);
            return self.put_all_if_absent(change, differences).await;
        }
        if self.stored_difference_count(&pk, &change_sk).await?.is_some() {
            return Ok(WriteOutcome::AlreadyThere);
        }
        differences.push(event);
        self.put_all(differences).await?;
        self.put_if_absent(change).await
    }

    /// In one transaction: `first` only if no item has its key, and every item of `rest`.
    async fn put_all_if_absent(&self, first: Item, rest: Vec<Item>) -> Result<WriteOutcome, Error> {
        let transaction =
            self.transaction(|token| wire::Body::transact_puts(&self.table, &first, IF_ABSENT, &rest, token));
        drop((first, rest));
        let result = transaction.send().await;
        match result {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(e) if first_condition_failed(e.as_service_error()) => Ok(WriteOutcome::AlreadyThere),
            Err(e) => Err(sdk_error("TransactWriteItems", e)),
        }
    }

    /// A `TransactWriteItems` with the body `write` makes for a fresh idempotency token (the
    /// SDK's retries re-send both).
    fn transaction(
        &self,
        write: impl FnOnce(&str) -> wire::Body,
    ) -> CustomizableOperation<TransactWriteItemsOutput, TransactWriteItemsError, TransactWriteItemsFluentBuilder> {
        let token = wire::request_token();
        let body = write(&token);
        let call = self.client.transact_write_items().client_request_token(token);
        call.customize().mutate_request(move |request| body.replace(request))
    }

    /// Puts every item, 25 per BatchWriteItem, several batches at once. Items DynamoDB
    /// leaves unprocessed are sent again with backoff; what is still unprocessed after that
    /// fails the whole call.
    pub async fn put_all(&self, items: Vec<Item>) -> Result<(), Error> {
        self.write_all(items.into_iter().map(Write::Put)).await
    }

    /// Sends `writes` 25 per BatchWriteItem, several batches at once. Each batch is
    /// written out only when it is sent, so memory stays linear in the delivery.
    async fn write_all(&self, writes: impl Iterator<Item = Write>) -> Result<(), Error> {
        in_batches(writes, |batch| self.write_batch(batch)).await
    }

    async fn write_batch(&self, writes: Vec<Write>) -> Result<(), Error> {
        let body = wire::Body::batch(&self.table, &writes);
        drop(writes);
        let output = self
            .client
            .batch_write_item()
            .customize()
            .mutate_request(move |request| body.replace(request))
            .send()
            .await
            .map_err(|e| sdk_error("BatchWriteItem", e))?;
        self.resend_unprocessed(output).await
    }

    /// Sends again, with backoff, what a BatchWriteItem left unprocessed (throttling).
    async fn resend_unprocessed(&self, output: BatchWriteItemOutput) -> Result<(), Error> {
        let unprocessed = |output: BatchWriteItemOutput| {
            output.unprocessed_items.and_then(|mut unprocessed| unprocessed.remove(&self.table)).unwrap_or_default()
        };
        let mut batch = unprocessed(output);
        for round in 1..=self.pacing.unprocessed_rounds {
            if batch.is_empty() {
                return Ok(());
            }
            tracing::debug!(unprocessed = batch.len(), round, "BatchWriteItem left items unprocessed");
            tokio::time::sleep(self.pacing.backoff(round)).await;
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(|e| sdk_error("BatchWriteItem", e))?;
            batch = unprocessed(output);
        }
        if batch.is_empty() {
            return Ok(());
        }
        Err(Error::Unavailable(format!(
            "BatchWriteItem: {} items still unprocessed after {} retries",
            batch.len(),
            self.pacing.unprocessed_rounds
        )))
    }
}

/// Runs `write` on every [`BATCH_SIZE`] elements of `elements`, [`BATCHES_IN_FLIGHT`] at
/// once; a batch is taken from `elements` only when it is about to be sent.
async fn in_batches<T, F, Fut>(mut elements: impl Iterator<Item = T>, write: F) -> Result<(), Error>
where
    F: Fn(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let batches = std::iter::from_fn(move || {
        let batch: Vec<T> = elements.by_ref().take(BATCH_SIZE).collect();
        (!batch.is_empty()).then_some(batch)
    });
    stream::iter(batches).map(write).buffer_unordered(BATCHES_IN_FLIGHT).try_collect().await
}

/// Whether a transaction was cancelled because its first action's condition failed.
fn first_condition_failed(error: Option<&TransactWriteItemsError>) -> bool {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error else {
        return false;
    };
    cancelled.cancellation_reasons().first().and_then(|reason| reason.code()) == Some("ConditionalCheckFailed")
}

/// A string attribute value.
pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// The key of the item (`pk`, `sk`).
pub(crate) fn key_of(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// An id for one claim (of a workflow's health, or of an event): unique in this process
/// even for two claims in the same millisecond, and across processes by the pid.
pub(crate) fn new_claim_id(now: Timestamp) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}-{}", now.unix_millis(), std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed))
}

/// An item as the SDK takes it.
pub fn to_dynamodb(item: Item) -> HashMap<String, AttributeValue> {
    item.into_iter().map(|(name, value)| (name, to_attribute_value(value))).collect()
}

fn to_attribute_value(value: Attr) -> AttributeValue {
    match value {
        Attr::S(s) => AttributeValue::S(s),
        Attr::N(n) => AttributeValue::N(n),
        Attr::Bool(b) => AttributeValue::Bool(b),
        Attr::Null => AttributeValue::Null(true),
        Attr::L(list) => AttributeValue::L(list.into_iter().map(to_attribute_value).collect()),
        Attr::M(map) => AttributeValue::M(map.into_iter().map(|(k, v)| (k, to_attribute_value(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps_and_totals_as_documented() {
        let pacing = Pacing::default();
        let rounds: Vec<u64> = (1..=8).map(|r| pacing.backoff(r).as_millis() as u64).collect();
        assert_eq!(rounds, [50, 100, 200, 400, 800, 1600, 1600, 1600]);
        assert_eq!(rounds.iter().sum::<u64>(), 6350);
    }
}
