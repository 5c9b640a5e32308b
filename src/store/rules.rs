//! Alert rules in the table (`RULES` / `RULE#<name>`, the rule as JSON in `definition`),
//! and the record of a change's rule alert.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::browse::{plain_item, Row};
use super::{key_of, s, Store};
use crate::aws::sdk_error;
use crate::error::Error;
use crate::rules::{Rule, RuleSource};
use crate::table::{keys, ENTITY_RULE};
use crate::timestamp::Timestamp;

/// The attribute holding a rule's JSON.
const DEFINITION: &str = "definition";

/// Whether a rule was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleWrite {
    /// Added.
    Added,
    /// A rule of that name exists already.
    NameTaken,
}

impl Store {
    /// Every rule. An item that does not read as a rule (written by hand) is skipped and
    /// logged: no delivery fails because of it.
    pub async fn rules(&self) -> Result<Vec<Rule>, Error> {
        Ok(self.partition(keys::RULES_PK).await?.iter().filter_map(rule_of).collect())
    }

    /// Adds `rule`, unless one of its name exists.
    pub async fn add_rule(&self, rule: &Rule) -> Result<RuleWrite, Error> {
        let definition = serde_json::to_string(rule).map_err(|e| Error::internal("rule", e))?;
        let item = HashMap::from([
            ("pk".to_owned(), s(keys::RULES_PK)),
            ("sk".to_owned(), s(&keys::rule_sk(&rule.name))),
            ("entity".to_owned(), s(ENTITY_RULE)),
            ("name".to_owned(), s(&rule.name)),
            (DEFINITION.to_owned(), s(&definition)),
            ("createdAt".to_owned(), s(&Timestamp::now().to_key_string())),
        ]);
        let put = self.client.put_item().table_name(&self.table).set_item(Some(item));
        match put.condition_expression(super::IF_ABSENT).send().await {
            Ok(_) => Ok(RuleWrite::Added),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(RuleWrite::NameTaken)
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    /// The record of the rule alert of change `change_id` of `workflow_id`, if one was sent.
    pub async fn change_alert(&self, workflow_id: &str, change_id: &str) -> Result<Option<Row>, Error> {
        let sk = keys::change_alert_sk(&keys::change_sk(change_id));
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&keys::workflow_pk(workflow_id), &sk)))
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let sent =
            output.item.filter(|item| item.get("status").and_then(|v| v.as_s().ok()).is_some_and(|s| s == "sent"));
        Ok(sent.map(|item| plain_item(&item)))
    }

    /// Removes the rule `name`; `None` when there was none.
    pub async fn remove_rule(&self, name: &str) -> Result<Option<Rule>, Error> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::RULES_PK, &keys::rule_sk(name))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(output.attributes.as_ref().and_then(rule_of))
    }
}

fn rule_of(item: &HashMap<String, AttributeValue>) -> Option<Rule> {
    let definition = item.get(DEFINITION).and_then(|value| value.as_s().ok())?;
    match serde_json::from_str::<Rule>(definition) {
        Ok(rule) if rule.check().is_ok() => Some(rule),
        _ => {
            let key = item.get("sk").and_then(|value| value.as_s().ok()).map(String::as_str).unwrap_or("?");
            tracing::warn!(rule = key, "an item under RULES is not a rule kadoa would write; skipped");
            None
        }
    }
}

impl RuleSource for Store {
    fn load_rules(&self) -> BoxFuture<'_, Result<Vec<Rule>, Error>> {
        self.rules().boxed()
    }
}
