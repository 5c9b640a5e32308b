//! Reading the table back for people (the `kadoa` command): workflows and their health,
//! changes, the event log. Items come back as plain JSON ([`plain`]), numbers exact.
//!
//! A question about one workflow is a `Query` of its partition (through `changesByTime`
//! or `eventsByTime`, newest first). The table-wide views read the `timeline` index
//! ([`super::timeline`]); what is left here of a `Scan` with a filter is `export` of every
//! change (which reads the whole table anyway).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

use super::{s, Store};
use crate::aws::sdk_error;
use crate::error::Error;
use crate::table::{keys, ENTITY_CHANGE, ENTITY_EVENT};

/// An item as plain JSON.
pub type Row = Map<String, Value>;

/// Which items a listing wants.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// One workflow's, or every workflow's.
    pub workflow: Option<String>,
    /// At or after (a key-form timestamp or any prefix of one).
    pub since: Option<String>,
    /// At or before (both bounds are inclusive, as DynamoDB's `BETWEEN` is).
    pub until: Option<String>,
}

/// A page of rows, and where the next one starts.
pub struct Page {
    /// The rows.
    pub rows: Vec<Row>,
    /// Pass back to read the next page; `None` at the end.
    pub next: Option<HashMap<String, AttributeValue>>,
}

impl Store {
    /// The newest change of `workflow_id`, as the `changesByTime` index has it.
    pub async fn last_change(&self, workflow_id: &str) -> Result<Option<Row>, Error> {
        let window = Window { workflow: Some(workflow_id.to_owned()), ..Window::default() };
        Ok(self.changes_page(&window, None, Some(1)).await?.rows.into_iter().next())
    }

    /// The newest entry of `workflow_id`'s event log (`None`: the account's).
    pub async fn last_event(&self, workflow_id: Option<&str>) -> Result<Option<Row>, Error> {
        let window = Window { workflow: workflow_id.map(str::to_owned), ..Window::default() };
        Ok(self.events_page(&window, true, None, Some(1)).await?.rows.into_iter().next())
    }

    /// A page of changes, newest first for one workflow (`changesByTime`), in table order
    /// for all of them (a filtered `Scan`).
    pub async fn changes_page(
        &self,
        window: &Window,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<i32>,
    ) -> Result<Page, Error> {
        let Some(workflow) = &window.workflow else {
            return self.scan_entity(ENTITY_CHANGE, window, start, limit).await;
        };
        let partition = keys::workflow_pk(workflow.trim());
        self.newest_first("changesByTime", &partition, "#createdAt", window, start, limit).await
    }

    /// A page of the event log: one workflow's (or with `account`, the account's), newest
    /// first; without a workflow and not `account`, every event (a filtered `Scan`).
    pub async fn events_page(
        &self,
        window: &Window,
        account: bool,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<i32>,
    ) -> Result<Page, Error> {
        let pk = match (&window.workflow, account) {
            (Some(workflow), _) => keys::workflow_pk(workflow.trim()),
            (None, true) => keys::ACCOUNT_PK.to_owned(),
            (None, false) => return self.scan_entity(ENTITY_EVENT, window, start, None).await,
        };
        // Event keys are EVENT#<timestamp>#…: a time bound is a key bound.
        let bounds = Window {
            since: window.since.as_ref().map(|t| format!("EVENT#{t}")),
            // `$` sorts after `#`: every key of that instant is at or before the bound.
            until: window.until.as_ref().map(|t| format!("EVENT#{t}$")),
            ..Window::default()
        };
        self.newest_first("eventsByTime", &pk, "#eventKey", &bounds, start, limit).await
    }

    /// A page of one partition of `index`, newest first, its sort key (`#name`) within
    /// `bounds`.
    async fn newest_first(
        &self,
        index: &str,
        pk: &str,
        sort_key: &'static str,
        bounds: &Window,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<i32>,
    ) -> Result<Page, Error> {
        let (condition, values) = range_condition(sort_key, bounds);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression(format!("#pk = :pk{condition}"))
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .set_exclusive_start_key(start)
            .set_limit(limit);
        if !values.is_empty() {
            query = query.expression_attribute_names(sort_key, &sort_key[1..]);
        }
        for (name, value) in values {
            query = query.expression_attribute_values(name, value);
        }
        let output = query.send().await.map_err(|e| sdk_error("Query", e))?;
        Ok(Page { rows: output.items().iter().map(plain_item).collect(), next: output.last_evaluated_key })
    }

    /// One change item with its differences (read from its parts when it has them):
    /// `workflow` narrows the search to one partition, else the table is scanned for it.
    pub async fn change_with_differences(&self, change_id: &str, workflow: Option<&str>) -> Result<Option<Row>, Error> {
        let sk = keys::change_sk(change_id.trim());
        let item = match workflow {
            Some(workflow) => self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(super::key_of(&keys::workflow_pk(workflow.trim()), &sk)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| sdk_error("GetItem", e))?
                .item
                .map(|item| plain_item(&item)),
            None => {
                let scan = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("#sk = :sk")
                    .expression_attribute_names("#sk", "sk")
                    .expression_attribute_values(":sk", s(&sk));
                // The first item of any page: the paginator reads on past empty pages.
                let mut items = scan.into_paginator().items().send();
                items.next().await.transpose().map_err(|e| sdk_error("Scan", e))?.map(|item| plain_item(&item))
            }
        };
        let Some(mut change) = item else { return Ok(None) };
        change.remove(INCOMPLETE);
        if change.get("differences").is_none() {
            if let (Some(Value::String(pk)), Some(Value::String(version))) =
                (change.get("pk"), change.get("partVersion"))
            {
                let (differences, parts) = self.part_differences(pk, &format!("{sk}PART#{version}#")).await?;
                if let Some(incomplete) = incomplete(&change, &parts, differences.len()) {
                    change.insert(INCOMPLETE.into(), incomplete);
                }
                change.insert("differences".into(), Value::Array(differences));
            }
        }
        Ok(Some(change))
    }

    /// The differences of a change's parts, in order, and the numbers of the parts read.
    async fn part_differences(&self, pk: &str, prefix: &str) -> Result<(Vec<Value>, Vec<u64>), Error> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true);
        let (mut differences, mut parts) = (Vec::new(), Vec::new());
        for part in super::query_all(query).await? {
            let mut part = plain_item(&part);
            parts.extend(part.get("part").and_then(Value::as_u64));
            if let Some(Value::Array(list)) = part.remove("differences") {
                differences.extend(list);
            }
        }
        Ok((differences, parts))
    }

    /// The reconciliation watermark item, if a run ever finished clean.
    pub async fn watermark_item(&self) -> Result<Option<Row>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(super::key_of(keys::RECONCILE_PK, keys::WATERMARK_SK)))
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(output.item.map(|item| plain_item(&item)))
    }

    /// Every pending-change marker.
    pub async fn pending_markers(&self) -> Result<Vec<Row>, Error> {
        Ok(self.partition(keys::PENDING_PK).await?.iter().map(plain_item).collect())
    }

    async fn scan_entity(
        &self,
        entity: &str,
        window: &Window,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<i32>,
    ) -> Result<Page, Error> {
        let scan = self.entity_scan(entity, window).set_exclusive_start_key(start).set_limit(limit);
        let output = scan.send().await.map_err(|e| sdk_error("Scan", e))?;
        Ok(Page { rows: output.items().iter().map(plain_item).collect(), next: output.last_evaluated_key })
    }

    /// A scan of the items of `entity` in `window` (by their time).
    fn entity_scan(&self, entity: &str, window: &Window) -> ScanFluentBuilder {
        let time = if entity == ENTITY_EVENT { "#timestamp" } else { "#createdAt" };
        let (condition, values) = range_condition(time, window);
        let mut scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression(format!("#entity = :entity{condition}"))
            .expression_attribute_names("#entity", "entity")
            .expression_attribute_values(":entity", s(entity));
        if !values.is_empty() {
            scan = scan.expression_attribute_names(time, &time[1..]);
        }
        for (name, value) in values {
            scan = scan.expression_attribute_values(name, value);
        }
        scan
    }
}

/// The field of a change read back that says what it lacks: parts deleted by a person, or
/// expired (TTL deletes each item on its own). Absent when the change is whole.
pub const INCOMPLETE: &str = "incomplete";

/// `{partCount, missingParts, missingDifferences}` for a change in parts of which only
/// `parts` (their numbers, from 0) and `read` differences were found; `None` when whole.
fn incomplete(change: &Row, parts: &[u64], read: usize) -> Option<Value> {
    let count = change.get("partCount").and_then(Value::as_u64).unwrap_or_default();
    let total = change.get("differenceCount").and_then(Value::as_u64).unwrap_or_default();
    let missing: Vec<u64> = (0..count).filter(|n| !parts.contains(n)).collect();
    let missing_differences = total.saturating_sub(read as u64);
    if missing.is_empty() && missing_differences == 0 {
        return None;
    }
    Some(serde_json::json!({"partCount": count, "missingParts": missing, "missingDifferences": missing_differences}))
}

/// ` AND <name> >= :since …` for the window's bounds, and their values.
fn range_condition(name: &str, window: &Window) -> (String, Vec<(&'static str, AttributeValue)>) {
    match (&window.since, &window.until) {
        (Some(since), Some(until)) => {
            (format!(" AND {name} BETWEEN :since AND :until"), vec![(":since", s(since)), (":until", s(until))])
        }
        (Some(since), None) => (format!(" AND {name} >= :since"), vec![(":since", s(since))]),
        (None, Some(until)) => (format!(" AND {name} <= :until"), vec![(":until", s(until))]),
        (None, None) => (String::new(), Vec::new()),
    }
}

/// An item as plain JSON.
pub fn plain_item(item: &HashMap<String, AttributeValue>) -> Row {
    item.iter().map(|(name, value)| (name.clone(), plain(value))).collect()
}

/// A value as plain JSON: a number is a JSON number with the exact text it was stored
/// with (a DynamoDB number, or the string set of an [`crate::table::Attr::NumberText`]).
pub fn plain(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(text) => Value::String(text.clone()),
        AttributeValue::N(number) => crate::table::attr::json_number(number),
        AttributeValue::Bool(flag) => Value::Bool(*flag),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(list) => Value::Array(list.iter().map(plain).collect()),
        AttributeValue::M(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), plain(v))).collect()),
        AttributeValue::Ss(list) => crate::table::attr::json_of_string_set(list),
        AttributeValue::Ns(list) => Value::Array(list.iter().map(|n| crate::table::attr::json_number(n)).collect()),
        _ => Value::Null,
    }
}
