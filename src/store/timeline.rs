//! Reading the `timeline` index ([`crate::table::timeline`]): the table-wide views, each
//! a `Query` of the days of its window (or of the workflows' directory), never a `Scan`;
//! and `kadoa backfill`, which puts items written before the index into it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::browse::{plain_item, Page, Row};
use super::{key_of, s, Store};
use crate::aws::sdk_error;
use crate::error::Error;
use crate::table::{timeline, ENTITY_CHANGE, ENTITY_EVENT, ENTITY_HEALTH};
use crate::timestamp::Timestamp;

/// One question to one partition of the index.
#[derive(Debug, Clone, Default)]
pub struct TimelineQuery<'a> {
    /// The partition: a day's changes or events, or the workflows' directory.
    pub bucket: &'a str,
    /// Only entries written after this position (or a time: any prefix of one).
    pub after: Option<&'a str>,
    /// Only rows whose `time.0` (`createdAt`, `timestamp`) is at or after `time.1` and at
    /// or before `time.2`: a filter, for the ends of a window inside its first and last day.
    pub time: Option<(&'static str, Option<&'a str>, Option<&'a str>)>,
    /// Only this change.
    pub change_id: Option<&'a str>,
}

impl Store {
    /// A page of one partition of the index, oldest written first.
    pub async fn timeline_page(
        &self,
        question: &TimelineQuery<'_>,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<Page, Error> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(timeline::INDEX)
            .expression_attribute_names("#bucket", timeline::BUCKET)
            .expression_attribute_values(":bucket", s(question.bucket))
            .set_exclusive_start_key(start);
        query = match question.after {
            Some(after) => query
                .key_condition_expression("#bucket = :bucket AND #position > :after")
                .expression_attribute_names("#position", timeline::POSITION)
                .expression_attribute_values(":after", s(after)),
            None => query.key_condition_expression("#bucket = :bucket"),
        };
        let mut filters = Vec::new();
        if let Some((name, since, until)) = question.time {
            query = query.expression_attribute_names("#time", name);
            if let Some(since) = since {
                filters.push("#time >= :since");
                query = query.expression_attribute_values(":since", s(since));
            }
            if let Some(until) = until {
                filters.push("#time <= :until");
                query = query.expression_attribute_values(":until", s(until));
            }
            if filters.is_empty() {
                filters.push("attribute_exists(#time)");
            }
        }
        if let Some(change_id) = question.change_id {
            filters.push("#changeId = :changeId");
            query = query
                .expression_attribute_names("#changeId", "changeId")
                .expression_attribute_values(":changeId", s(change_id));
        }
        if !filters.is_empty() {
            query = query.filter_expression(filters.join(" AND "));
        }
        let output = query.send().await.map_err(|e| sdk_error("Query", e))?;
        Ok(Page { rows: output.items().iter().map(plain_item).collect(), next: output.last_evaluated_key })
    }

    /// Every row of one partition of the index, page by page, to `each`.
    pub async fn each_in_timeline(
        &self,
        question: &TimelineQuery<'_>,
        mut each: impl FnMut(Row) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut start = None;
        loop {
            let page = self.timeline_page(question, start).await?;
            page.rows.into_iter().try_for_each(&mut each)?;
            match page.next {
                Some(next) => start = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Every workflow's health item: the directory's keys, then the items themselves (the
    /// index projects none of what changes, so that health updates do not write it).
    pub async fn workflow_health(&self) -> Result<Vec<Row>, Error> {
        let mut keys = Vec::new();
        let directory = TimelineQuery { bucket: timeline::HEALTH_BUCKET, ..TimelineQuery::default() };
        self.each_in_timeline(&directory, |row| {
            if let (Some(pk), Some(sk)) =
                (row.get("pk").and_then(|v| v.as_str()), row.get("sk").and_then(|v| v.as_str()))
            {
                keys.push(key_of(pk, sk));
            }
            Ok(())
        })
        .await?;
        let mut rows: Vec<Row> = self.get_items(keys, None).await?.iter().map(plain_item).collect();
        rows.sort_by(|a, b| text(a, "workflowId").cmp(text(b, "workflowId")));
        Ok(rows)
    }

    /// A page of the table for `kadoa backfill`: items of the kinds the index holds that are
    /// not in it yet (`limit` items looked at).
    pub async fn backfill_page(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
        limit: i32,
    ) -> Result<(Vec<Row>, usize, Option<HashMap<String, AttributeValue>>), Error> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("attribute_not_exists(#bucket) AND #entity IN (:change, :event, :health)")
            .expression_attribute_names("#bucket", timeline::BUCKET)
            .expression_attribute_names("#entity", "entity")
            .expression_attribute_values(":change", s(ENTITY_CHANGE))
            .expression_attribute_values(":event", s(ENTITY_EVENT))
            .expression_attribute_values(":health", s(ENTITY_HEALTH))
            // What the entry needs, not the differences.
            .projection_expression("pk, sk, #entity, createdAt, #timestamp, receivedAt, #alert.subject")
            .expression_attribute_names("#timestamp", "timestamp")
            .expression_attribute_names("#alert", "alert")
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("Scan", e))?;
        let looked_at = usize::try_from(output.scanned_count).unwrap_or_default();
        Ok((output.items().iter().map(plain_item).collect(), looked_at, output.last_evaluated_key))
    }

    /// Puts one item read by [`Self::backfill_page`] into the index, unless it is there
    /// already (a concurrent write, or a second run): `Ok(true)` when written now.
    pub async fn backfill_item(&self, row: &Row) -> Result<bool, Error> {
        let (Some(pk), Some(sk)) = (row.get("pk").and_then(|v| v.as_str()), row.get("sk").and_then(|v| v.as_str()))
        else {
            return Ok(false);
        };
        let Some((bucket, position)) = backfill_entry(row) else { return Ok(false) };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(pk, sk)))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#bucket)")
            .expression_attribute_names("#bucket", timeline::BUCKET)
            .expression_attribute_names("#position", timeline::POSITION)
            .expression_attribute_values(":bucket", s(&bucket))
            .expression_attribute_values(":position", s(&position));
        let subject = row.get("alert").and_then(|a| a.get("subject")).and_then(|v| v.as_str());
        update = match subject {
            Some(subject) => update
                .update_expression("SET #bucket = :bucket, #position = :position, #subject = :subject")
                .expression_attribute_names("#subject", timeline::ALERT_SUBJECT)
                .expression_attribute_values(":subject", s(subject)),
            None => update.update_expression("SET #bucket = :bucket, #position = :position"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }
}

/// The entry an old item takes: its day as a new one's, and as its position the time it
/// was received (when it was written is not known).
fn backfill_entry(row: &Row) -> Option<(String, String)> {
    let (pk, sk) = (text(row, "pk"), text(row, "sk"));
    if text(row, "entity") == ENTITY_HEALTH {
        return Some((timeline::HEALTH_BUCKET.to_owned(), pk.to_owned()));
    }
    let bucket = match text(row, "entity") {
        ENTITY_CHANGE => timeline::bucket_of(timeline::CHANGE_PREFIX, text(row, "createdAt"))?,
        ENTITY_EVENT => timeline::bucket_of(timeline::EVENT_PREFIX, text(row, "timestamp"))?,
        _ => return None,
    };
    let received = Timestamp::parse_rfc3339(text(row, "receivedAt")).or_else(|| Timestamp::from_unix_millis(0))?;
    Some((bucket, timeline::position(received, pk, sk)))
}

fn text<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name).and_then(|v| v.as_str()).unwrap_or_default()
}
