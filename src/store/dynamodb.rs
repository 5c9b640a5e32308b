//! Writes to the table. Every failure after the SDK's own retries becomes a 503, so Kadoa
//! delivers again; every write is safe to repeat.

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::{stream, StreamExt, TryStreamExt};
use std::time::Duration;

use super::Item;
use crate::error::RequestError;

/// BatchWriteItem's limit.
pub const BATCH_SIZE: usize = 25;
/// Batches in flight at once: fast for thousands of differences, gentle on capacity.
pub const BATCHES_IN_FLIGHT: usize = 8;
/// Rounds of re-sending `UnprocessedItems` (throttling) before giving up with a 503.
const UNPROCESSED_ROUNDS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// A conditional write found its item already there: a retried delivery.
    AlreadyThere,
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Puts `item` only if no item has its key yet.
    pub async fn put_if_absent(&self, item: Item) -> Result<WriteOutcome, RequestError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(WriteOutcome::AlreadyThere)
            }
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    /// Whether an item with this key exists (strongly consistent).
    pub async fn exists(&self, pk: &str, sk: &str) -> Result<bool, RequestError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .projection_expression("pk")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(output.item.is_some())
    }

    /// Puts every item, 25 per BatchWriteItem, several batches at once. Items DynamoDB
    /// leaves unprocessed are sent again with backoff; what is still unprocessed after that
    /// fails the whole call (and the delivery, which Kadoa then retries).
    pub async fn put_all(&self, items: Vec<Item>) -> Result<(), RequestError> {
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let put =
                PutRequest::builder().set_item(Some(item)).build().map_err(|e| unavailable("BatchWriteItem", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let mut batches = Vec::with_capacity(requests.len().div_ceil(BATCH_SIZE));
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(BATCH_SIZE));
            batches.push(std::mem::replace(&mut requests, rest));
        }
        stream::iter(batches)
            .map(|batch| self.write_batch(batch))
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .try_collect()
            .await
    }

    async fn write_batch(&self, mut batch: Vec<WriteRequest>) -> Result<(), RequestError> {
        for round in 0..=UNPROCESSED_ROUNDS {
            if round > 0 {
                tokio::time::sleep(unprocessed_backoff(round)).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(|e| unavailable("BatchWriteItem", e))?;
            batch = output
                .unprocessed_items
                .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok(());
            }
            tracing::debug!(unprocessed = batch.len(), round, "BatchWriteItem left items unprocessed");
        }
        Err(RequestError::Unavailable(format!(
            "BatchWriteItem: {} items still unprocessed after {UNPROCESSED_ROUNDS} retries",
            batch.len()
        )))
    }
}

/// 50 ms, 100 ms, 200 ms … capped at 1.6 s: about 5 s in all, inside Kadoa's patience.
fn unprocessed_backoff(round: u32) -> Duration {
    Duration::from_millis(50 << round.saturating_sub(1).min(5))
}

pub(crate) fn unavailable(operation: &str, error: impl std::error::Error) -> RequestError {
    RequestError::unavailable(operation, DisplayErrorContext(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps() {
        let rounds: Vec<u64> = (1..=8).map(|r| unprocessed_backoff(r).as_millis() as u64).collect();
        assert_eq!(rounds, [50, 100, 200, 400, 800, 1600, 1600, 1600]);
    }
}
