//! The DynamoDB adapter: every call to the table and every expression it takes lives here
//! ([`health`] holds the workflow-health claim, [`notices`] the once-per-event claim),
//! written with the SDK's own builders from our items ([`to_dynamodb`] is the one
//! conversion). A failure after the SDK's own retries becomes [`Error::Unavailable`];
//! every write is safe to repeat.

pub mod browse;
pub mod health;
pub mod notices;
pub mod reconcile;
pub mod rules;
pub mod timeline;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::{stream, StreamExt, TryStreamExt};

use crate::aws::sdk_error;
use crate::error::Error;
use crate::table::change::{ChangePlan, Layout, MATCHED};
use crate::table::limits::item_size;
use crate::table::{Attr, Item};
use crate::timestamp::Timestamp;

/// The condition of a put that must not overwrite.
const IF_ABSENT: &str = "attribute_not_exists(pk)";
/// BatchWriteItem's limit.
pub const BATCH_SIZE: usize = 25;
/// A batch of large items (a large change's parts) is cut at this many bytes of items:
/// BatchWriteItem takes 16 MB per request, DynamoDB's JSON of an item can be a few times
/// its size, and smaller batches in flight together finish sooner than one large one
/// (each call also has to fit the SDK's 3 s per attempt).
pub const BATCH_ITEM_BYTES: usize = 1024 * 1024;
/// BatchGetItem's limit on keys a call.
pub const KEYS_PER_READ: usize = 100;
/// Batches in flight at once. The parts of one change share a partition, which takes
/// 1,000 write units a second: more calls at once would only be throttled.
pub const BATCHES_IN_FLIGHT: usize = 2;

/// Whether a conditional write found its item already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written now.
    Written,
    /// Already there: a retried delivery.
    AlreadyThere,
}

/// What writing a change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeWrite {
    /// Written now, or there already.
    pub outcome: WriteOutcome,
    /// The change as stored met alert rules ([`MATCHED`] on its item): its alert is due,
    /// unless its record says it was sent.
    pub alert_due: bool,
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

    /// How the store paces itself.
    pub fn pacing(&self) -> Pacing {
        self.pacing
    }

    /// The same store, paced as given.
    pub fn with_pacing(self, pacing: Pacing) -> Self {
        Self { pacing, ..self }
    }

    /// Whether Kadoa ever delivered to this table: a change or event item that arrived by
    /// the webhook (or its replay), not one reconciliation or a test wrote. Reads a page of
    /// keys at a time and stops at the first such item: one page on a table in use.
    pub async fn ever_delivered(&self) -> Result<bool, Error> {
        const PAGES: usize = 10;
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(100)
            .projection_expression("pk")
            .filter_expression("#arrival IN (:webhook, :replay)")
            .expression_attribute_names("#arrival", "arrival")
            .expression_attribute_values(":webhook", s(crate::outcome::Arrival::Webhook.as_str()))
            .expression_attribute_values(":replay", s(crate::outcome::Arrival::Replay.as_str()));
        let mut pages = scan.into_paginator().send();
        for _ in 0..PAGES {
            match pages.next().await.transpose().map_err(|e| sdk_error("Scan", e))? {
                Some(page) if !page.items().is_empty() => return Ok(true),
                Some(_) => {}
                None => return Ok(false),
            }
        }
        // Ten pages of nothing Kadoa delivered (a large reconciled backfill): not yet.
        Ok(false)
    }

    /// Puts `item` only if no item has its key yet.
    ///
    /// When the SDK retried the put after an answer that was lost, the retry finds the
    /// item the first attempt wrote: an item with this delivery's `receivedAt` and
    /// `arrival` is taken as written by it.
    pub async fn put_if_absent(&self, item: Item) -> Result<WriteOutcome, Error> {
        Ok(self.put_if_absent_seeing(item).await?.0)
    }

    /// [`Store::put_if_absent`], with the item found in the way when it was there already.
    async fn put_if_absent_seeing(
        &self,
        item: Item,
    ) -> Result<(WriteOutcome, Option<HashMap<String, AttributeValue>>), Error> {
        let stamp =
            |item: &HashMap<String, AttributeValue>| (item.get("receivedAt").cloned(), item.get("arrival").cloned());
        let item = to_dynamodb(item);
        let ours = stamp(&item);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(IF_ABSENT)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok((WriteOutcome::Written, None)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                let stored = item_found(e.into_service_error());
                let written_by_us = ours.0.is_some() && stored.as_ref().is_some_and(|stored| stamp(stored) == ours);
                Ok(match written_by_us {
                    true => (WriteOutcome::Written, stored),
                    false => (WriteOutcome::AlreadyThere, stored),
                })
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    /// Puts `item`, whatever is there.
    pub async fn put(&self, item: Item) -> Result<(), Error> {
        let put = self.client.put_item().table_name(&self.table).set_item(Some(to_dynamodb(item)));
        put.send().await.map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }

    /// Writes a data change so that no retry, replay or concurrent delivery stores it twice
    /// or mixes two versions of it:
    /// - a change that fits one item is one conditional `PutItem`: atomic, and a second
    ///   delivery finds it there;
    /// - a larger one is checked first (one consistent read answers a retry of a stored
    ///   change), then its parts go in batches, and the change item last, only if absent.
    ///   A delivery that failed half-way has no change item yet, so its retry completes it;
    ///   the parts of another version have other keys, and the change item names its own.
    ///
    /// A pending change's marker is written before the change item, so a failure between
    /// the two leaves reconciliation something to finish, never a change it forgets.
    ///
    /// The answer also says whether the change's rule alert is due: it is when the change
    /// as stored carries [`MATCHED`], whichever delivery wrote it (a retry learns it from
    /// the item its put found in the way, at no extra cost).
    pub async fn write_change(&self, plan: ChangePlan) -> Result<ChangeWrite, Error> {
        let ChangePlan { pk, change_sk, change, parts, pending } = plan;
        let matched_now = change.contains_key(MATCHED);
        let due =
            |stored: Option<HashMap<String, AttributeValue>>| stored.is_some_and(|item| item.contains_key(MATCHED));
        if let Some(marker) = pending {
            self.put(marker).await?;
        }
        if !parts.is_empty() {
            if let Some(stored) = self.stored_change(&pk, &change_sk).await? {
                return Ok(ChangeWrite { outcome: WriteOutcome::AlreadyThere, alert_due: stored.alert_due });
            }
            self.write_all(parts.into_iter().map(Write::Put).collect()).await?;
        }
        Ok(match self.put_if_absent_seeing(change).await? {
            (WriteOutcome::Written, _) => ChangeWrite { outcome: WriteOutcome::Written, alert_due: matched_now },
            (WriteOutcome::AlreadyThere, stored) => {
                ChangeWrite { outcome: WriteOutcome::AlreadyThere, alert_due: due(stored) }
            }
        })
    }

    /// How the stored change (`pk`, `change_sk`) keeps its differences, if it is stored:
    /// one strongly consistent read of three attributes.
    pub async fn change_layout(&self, pk: &str, change_sk: &str) -> Result<Option<Layout>, Error> {
        Ok(self.stored_change(pk, change_sk).await?.map(|stored| stored.layout))
    }

    async fn stored_change(&self, pk: &str, change_sk: &str) -> Result<Option<StoredChange>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(pk, change_sk)))
            .projection_expression("pk, partVersion, partCount, #matched")
            .expression_attribute_names("#matched", MATCHED)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(output.item.map(|item| {
            let version = item.get("partVersion").and_then(|v| v.as_s().ok());
            let count = item.get("partCount").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
            let layout = match (version, count) {
                (Some(version), Some(count)) => Layout::Parts { version: version.clone(), count },
                _ => Layout::Inline,
            };
            StoredChange { layout, alert_due: item.contains_key(MATCHED) }
        }))
    }

    /// Sends `writes` in `BatchWriteItem`s of at most 25 requests and [`BATCH_ITEM_BYTES`],
    /// several batches at once. Items DynamoDB leaves unprocessed are sent again with
    /// backoff; what is still unprocessed after that fails the whole call. Each batch
    /// becomes the SDK's types only when it is sent, so memory stays linear in the delivery.
    pub async fn write_all(&self, writes: Vec<Write>) -> Result<(), Error> {
        let mut batches: Vec<Vec<Write>> = Vec::new();
        let mut bytes = 0;
        for write in writes {
            let size = write.size();
            match batches.last_mut() {
                Some(batch) if batch.len() < BATCH_SIZE && bytes + size <= BATCH_ITEM_BYTES => batch.push(write),
                _ => {
                    batches.push(vec![write]);
                    bytes = 0;
                }
            }
            bytes += size;
        }
        stream::iter(batches)
            .map(|batch| self.write_batch(batch))
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .try_collect()
            .await
    }

    async fn write_batch(&self, writes: Vec<Write>) -> Result<(), Error> {
        let requests = writes.into_iter().map(Write::into_request).collect::<Result<Vec<_>, Error>>()?;
        let send = |batch: Vec<WriteRequest>| async move {
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(|e| sdk_error("BatchWriteItem", e))?;
            let unprocessed = output.unprocessed_items.and_then(|mut u| u.remove(&self.table));
            Ok((Vec::<()>::new(), unprocessed.filter(|batch| !batch.is_empty())))
        };
        self.until_processed("BatchWriteItem", requests, send).await.map(drop)
    }

    /// The items of `keys` that exist, one `BatchGetItem` per [`KEYS_PER_READ`] keys
    /// (eventually consistent; only `projection`'s attributes when given).
    pub(crate) async fn get_items(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
        projection: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, Error> {
        let send = |request: KeysAndAttributes| async move {
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            let found = output.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default();
            Ok((found, output.unprocessed_keys.and_then(|mut u| u.remove(&self.table))))
        };
        let mut items = Vec::new();
        for chunk in keys.chunks(KEYS_PER_READ) {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .set_projection_expression(projection.map(str::to_owned))
                .build()
                .map_err(|e| Error::internal("BatchGetItem", e))?;
            items.extend(self.until_processed("BatchGetItem", request, send).await?);
        }
        Ok(items)
    }

    /// Sends `request` with `send`, then, with backoff, what DynamoDB left unprocessed
    /// (throttling), up to the pacing's rounds; what is still unprocessed then fails the
    /// call. `send` answers what it found and what is left.
    async fn until_processed<R, T, F, Fut>(&self, operation: &str, request: R, send: F) -> Result<Vec<T>, Error>
    where
        F: Fn(R) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<T>, Option<R>), Error>>,
    {
        let mut found = Vec::new();
        let mut wanted = Some(request);
        let mut round = 0;
        while let Some(request) = wanted.take() {
            if round > self.pacing.unprocessed_rounds {
                return Err(Error::Unavailable(format!(
                    "{operation}: still unprocessed after {} retries",
                    self.pacing.unprocessed_rounds
                )));
            }
            if round > 0 {
                tracing::debug!(operation, round, "DynamoDB left part of a batch unprocessed");
                tokio::time::sleep(self.pacing.backoff(round)).await;
            }
            let (items, unprocessed) = send(request).await?;
            found.extend(items);
            wanted = unprocessed;
            round += 1;
        }
        Ok(found)
    }
}

/// What a change's item says of it.
struct StoredChange {
    layout: Layout,
    alert_due: bool,
}

impl Store {
    /// Every item of the partition `pk`, page after page.
    pub(crate) async fn partition(&self, pk: &str) -> Result<Vec<HashMap<String, AttributeValue>>, Error> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":pk", s(pk));
        query_all(query).await
    }
}

/// Every item `query` finds, page after page (the SDK's paginator).
pub(crate) async fn query_all(query: QueryFluentBuilder) -> Result<Vec<HashMap<String, AttributeValue>>, Error> {
    query.into_paginator().items().send().try_collect().await.map_err(|e| sdk_error("Query", e))
}

/// The item a conditional `PutItem` found in its way (asked for with
/// `ReturnValuesOnConditionCheckFailure::AllOld`).
pub(crate) fn item_found(error: PutItemError) -> Option<HashMap<String, AttributeValue>> {
    match error {
        PutItemError::ConditionalCheckFailedException(failed) => failed.item,
        _ => None,
    }
}

/// One request of a `BatchWriteItem`.
#[derive(Debug)]
pub enum Write {
    /// Put this item.
    Put(Item),
    /// Delete the item with this key (`pk`, `sk`).
    Delete(String, String),
}

impl Write {
    /// About how many bytes of items it sends.
    fn size(&self) -> usize {
        match self {
            Self::Put(item) => item_size(item),
            Self::Delete(pk, sk) => pk.len() + sk.len(),
        }
    }

    fn into_request(self) -> Result<WriteRequest, Error> {
        let request = match self {
            Self::Put(item) => WriteRequest::builder().put_request(
                PutRequest::builder()
                    .set_item(Some(to_dynamodb(item)))
                    .build()
                    .map_err(|e| Error::internal("PutRequest", e))?,
            ),
            Self::Delete(pk, sk) => WriteRequest::builder().delete_request(
                DeleteRequest::builder()
                    .set_key(Some(key_of(&pk, &sk)))
                    .build()
                    .map_err(|e| Error::internal("DeleteRequest", e))?,
            ),
        };
        Ok(request.build())
    }
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

pub(crate) fn to_attribute_value(value: Attr) -> AttributeValue {
    match value {
        Attr::S(s) => AttributeValue::S(s),
        Attr::N(n) => AttributeValue::N(n),
        Attr::NumberText(text) => AttributeValue::Ss(vec![text]),
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
