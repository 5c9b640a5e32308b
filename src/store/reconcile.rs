//! What reconciliation asks of the table: which items exist (reads only), the changes
//! still pending at Kadoa, completing one of them, and the watermark of the last clean run.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;

use super::{key_of, s, Store, Write};
use crate::aws::sdk_error;
use crate::error::Error;
use crate::table::change::{ChangePlan, Layout, COMPLETED_AT};
use crate::table::{keys, Attr};
use crate::timestamp::Timestamp;

/// An item's key: partition and sort key.
pub type Key = (String, String);

impl Store {
    /// Which of `keys` have an item: one `BatchGetItem` per 100 keys (eventually
    /// consistent, keys only), unprocessed keys asked again with backoff.
    pub async fn existing(&self, keys: &[Key]) -> Result<HashSet<Key>, Error> {
        let keys = keys.iter().map(|(pk, sk)| key_of(pk, sk)).collect();
        let items = self.get_items(keys, Some("pk, sk")).await?;
        Ok(items
            .iter()
            .filter_map(|item| match (item.get("pk"), item.get("sk")) {
                (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => Some((pk.clone(), sk.clone())),
                _ => None,
            })
            .collect())
    }

    /// The changes stored while Kadoa still had them pending: (workflow id, change id).
    pub async fn pending_changes(&self) -> Result<Vec<(String, String)>, Error> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::PENDING_PK))
            .consistent_read(true);
        let text =
            |item: &HashMap<String, AttributeValue>, name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let markers = super::query_all(query).await?;
        Ok(markers.iter().filter_map(|item| Some((text(item, "workflowId")?, text(item, "changeId")?))).collect())
    }

    /// Replaces a stored change by Kadoa's final version: its parts (for a large change),
    /// then the change item with `completedAt`, then the parts of the version it replaced
    /// (`previous`, as [`Store::change_layout`] read it) are deleted, then the pending
    /// marker. Safe to repeat: a run that fails half-way leaves the marker, and the next
    /// run does it again.
    pub async fn complete_change(
        &self,
        plan: ChangePlan,
        previous: Option<Layout>,
        completed_at: Timestamp,
    ) -> Result<(), Error> {
        let layout = plan.layout();
        let ChangePlan { pk, change_sk, mut change, parts, .. } = plan;
        let text = |name: &str| match change.get(name) {
            Some(Attr::S(id)) => Ok(id.clone()),
            _ => Err(Error::internal("complete_change", format!("the change item has no {name}"))),
        };
        let marker = keys::pending_sk(&text("workflowId")?, &text("changeId")?);
        self.write_all(parts.into_iter().map(Write::Put).collect()).await?;
        change.insert(COMPLETED_AT.into(), Attr::s(completed_at.to_key_string()));
        self.put(change).await?;
        let replaced = previous.filter(|previous| *previous != layout).unwrap_or(Layout::Inline);
        let stale = replaced.part_keys(&change_sk).into_iter().map(|sk| Write::Delete(pk.clone(), sk));
        self.write_all(stale.collect()).await?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::PENDING_PK, &marker)))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(())
    }

    /// Records on the marker of a pending change that completing it failed with `error`;
    /// returns how many tries have failed so far. A marker cleared meanwhile stays gone.
    pub async fn note_pending_failure(&self, workflow_id: &str, change_id: &str, error: &str) -> Result<u32, Error> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::PENDING_PK, &keys::pending_sk(workflow_id, change_id))))
            .update_expression("ADD tries :one SET lastError = :error, lastTriedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":error", s(&crate::error::bounded(error.to_owned())))
            .expression_attribute_values(":now", s(&Timestamp::now().to_key_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match output {
            Ok(output) => Ok(output
                .attributes
                .and_then(|a| a.get("tries").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()))
                .unwrap_or(1)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(0),
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    /// How far the last clean reconciliation got.
    pub async fn watermark(&self) -> Result<Option<Timestamp>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::RECONCILE_PK, keys::WATERMARK_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(output
            .item
            .and_then(|item| item.get("through").and_then(|v| v.as_s().ok()).and_then(|t| Timestamp::parse_rfc3339(t))))
    }

    /// Records that everything up to `through` is reconciled.
    pub async fn set_watermark(&self, through: Timestamp) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::RECONCILE_PK))
            .item("sk", s(keys::WATERMARK_SK))
            .item("entity", s("watermark"))
            .item("through", s(&through.to_key_string()))
            .item("updatedAt", s(&Timestamp::now().to_key_string()))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }
}
