//! Failure and recovery alerts through SNS: one per distinct event, whatever Kadoa retries.
//!
//! An alert is three AWS calls:
//! 1. claim: a conditional UpdateItem on the workflow's `HEALTH` item that only succeeds for
//!    an event newer than any seen and while no other delivery holds the claim; it returns
//!    the previous health, from which `health::decide` rules (pure);
//! 2. publish to SNS (skipped when the decision is to stay quiet);
//! 3. commit: one transaction that moves the health on, releases the claim, and writes the
//!    event-log item.
//!
//! A failed publish releases the claim and answers 503, so Kadoa's retry sends the alert.
//! A concurrent delivery of the same event finds the claim held and gets 503; its retry
//! then finds the event committed and answers `duplicate`. A claim left by a process that
//! died expires after `CLAIM_LEASE`, inside Kadoa's retry rhythm.

pub mod health;
pub mod message;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_sns::types::MessageAttributeValue;

use crate::app::Outcome;
use crate::envelope::Envelope;
use crate::error::RequestError;
use crate::events::event_log::EventRecord;
use crate::events::HealthEvent;
use crate::store::dynamodb::unavailable;
use crate::store::items::{self, Receipt, ENTITY_HEALTH, HEALTH_SK};
use crate::store::{Item, Store};
use crate::timestamp::Timestamp;
use health::{Decision, HealthRecord, WorkflowState};
use message::{AlertMessage, AlertReason};

/// How long a delivery may hold a workflow's claim. Longer than a publish can take (its
/// timeout is `PUBLISH_TIMEOUT`), shorter than Kadoa's retries span (1 + 2 + 4 s).
pub const CLAIM_LEASE: Duration = Duration::from_secs(6);
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Alerter {
    sns: aws_sdk_sns::Client,
    topic_arn: String,
    repeat_after: Duration,
}

enum Claim {
    /// This delivery may decide; here is the health before it.
    Granted(HealthRecord),
    /// The event is not newer than the last one, or another delivery is deciding.
    Refused(HealthRecord),
}

impl Alerter {
    pub fn new(sns: aws_sdk_sns::Client, topic_arn: String, repeat_after: Duration) -> Self {
        Self { sns, topic_arn, repeat_after }
    }

    pub async fn handle(
        &self,
        store: &Store,
        envelope: &Envelope,
        event: &HealthEvent,
        receipt: Receipt,
    ) -> Result<Outcome, RequestError> {
        let at = envelope.timestamp;
        let claim = HealthClaim::new(store, event, at);
        let previous = match claim.acquire().await? {
            Claim::Granted(previous) => previous,
            Claim::Refused(previous) => {
                let decision = health::decide(&previous, event.kind, at, self.repeat_after);
                if matches!(decision, Decision::Alert { .. } | Decision::Suppress) {
                    // Newer than the last event, but another delivery holds the claim.
                    return Err(RequestError::Unavailable(format!(
                        "workflow {} is being alerted by another delivery; Kadoa will retry",
                        event.workflow_id
                    )));
                }
                let record = EventRecord::with_payload(envelope, Some(&event.workflow_id), receipt, decision.status());
                // A retry of a decided event finds its own record there and leaves it be.
                store.put_if_absent(record.to_item()?).await?;
                return Ok(match decision {
                    Decision::Duplicate => Outcome::Duplicate,
                    _ => Outcome::Suppressed,
                });
            }
        };

        let decision = health::decide(&previous, event.kind, at, self.repeat_after);
        let message = match decision {
            Decision::Alert { still_failing_since } => {
                let reason = match still_failing_since {
                    Some(since) => AlertReason::StillFailing { since },
                    None => AlertReason::Changed,
                };
                let message = AlertMessage::new(event, at, reason);
                if let Err(error) = self.publish(&message, envelope, event).await {
                    claim.release().await;
                    return Err(error);
                }
                Some(message)
            }
            _ => None,
        };

        let record = EventRecord {
            alert: message.as_ref(),
            ..EventRecord::with_payload(envelope, Some(&event.workflow_id), receipt, decision.status())
        };
        let committed = claim.commit(message.is_some(), record.to_item()?, receipt).await;
        match (committed, message) {
            (Ok(()), Some(_)) => Ok(Outcome::Alerted),
            (Ok(()), None) => Ok(Outcome::Suppressed),
            // People were told; answering 503 now would tell them twice on the retry.
            (Err(error), Some(_)) => {
                tracing::error!(
                    error = error.detail(),
                    workflow_id = event.workflow_id,
                    "alert sent but its record failed"
                );
                Ok(Outcome::Alerted)
            }
            (Err(error), None) => {
                claim.release().await;
                Err(error)
            }
        }
    }

    async fn publish(
        &self,
        message: &AlertMessage,
        envelope: &Envelope,
        event: &HealthEvent,
    ) -> Result<(), RequestError> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| RequestError::unavailable("Publish", e))
        };
        self.sns
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&message.subject)
            .message_structure("json")
            .message(message.to_sns_json())
            // Subscriptions filter on these (e.g. SMS for failures only).
            .message_attributes("eventType", attribute(&envelope.event_type)?)
            .message_attributes("workflowId", attribute(&event.workflow_id)?)
            .customize()
            .config_override(aws_sdk_sns::config::Builder::default().timeout_config(
                aws_sdk_sns::config::timeout::TimeoutConfig::builder().operation_timeout(PUBLISH_TIMEOUT).build(),
            ))
            .send()
            .await
            .map_err(|e| unavailable("Publish", e))?;
        Ok(())
    }
}

fn new_claim_id(now: Timestamp) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}-{}", now.unix_millis(), std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed))
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn read_record(item: Option<Item>) -> Result<HealthRecord, RequestError> {
    match item {
        None => Ok(HealthRecord::default()),
        Some(item) => serde_dynamo::from_item(item)
            .map_err(|e| RequestError::Unavailable(format!("the HEALTH item cannot be read: {e}"))),
    }
}

/// One delivery's hold on a workflow's `HEALTH` item, from the claim to its commit.
struct HealthClaim<'a> {
    store: &'a Store,
    event: &'a HealthEvent,
    /// The event's time (the envelope timestamp): what health decisions compare.
    at: Timestamp,
    /// The wall clock: what the claim's lease is measured in.
    now: Timestamp,
    id: String,
}

impl<'a> HealthClaim<'a> {
    fn new(store: &'a Store, event: &'a HealthEvent, at: Timestamp) -> Self {
        let now = Timestamp::now();
        Self { store, event, at, now, id: new_claim_id(now) }
    }

    fn key(&self) -> Item {
        Item::from([
            ("pk".to_owned(), s(&items::workflow_pk(&self.event.workflow_id))),
            ("sk".to_owned(), s(HEALTH_SK)),
        ])
    }

    /// An UpdateItem on this workflow's `HEALTH` item, with the claim's attribute names.
    fn update_health(&self) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.store
            .client()
            .update_item()
            .table_name(self.store.table())
            .set_key(Some(self.key()))
            .expression_attribute_names("#claimId", "claimId")
            .expression_attribute_names("#claimExpiresAt", "claimExpiresAt")
    }

    /// Takes the claim if the event is newer than any seen and nobody else holds it.
    /// Either way, returns the health as it was.
    async fn acquire(&self) -> Result<Claim, RequestError> {
        let result = self
            .update_health()
            .update_expression(
                "SET #entity = :entity, #workflowId = :workflowId, #claimId = :claim, #claimExpiresAt = :expires",
            )
            .condition_expression(
                "(attribute_not_exists(#claimId) OR #claimExpiresAt < :now) \
                 AND (attribute_not_exists(#lastEventAt) OR #lastEventAt < :at)",
            )
            .expression_attribute_names("#entity", "entity")
            .expression_attribute_names("#workflowId", "workflowId")
            .expression_attribute_names("#lastEventAt", "lastEventAt")
            .expression_attribute_values(":entity", s(ENTITY_HEALTH))
            .expression_attribute_values(":workflowId", s(&self.event.workflow_id))
            .expression_attribute_values(":claim", s(&self.id))
            .expression_attribute_values(":expires", n(self.now.unix_millis() + CLAIM_LEASE.as_millis() as i64))
            .expression_attribute_values(":now", n(self.now.unix_millis()))
            .expression_attribute_values(":at", s(&self.at.to_key_string()))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Claim::Granted(read_record(output.attributes)?)),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let previous = match e.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => failed.item,
                    _ => None,
                };
                Ok(Claim::Refused(read_record(previous)?))
            }
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }

    /// In one transaction: moves the health on, releases the claim (only if still ours),
    /// and writes the event-log item.
    async fn commit(&self, alerted: bool, event_item: Item, receipt: Receipt) -> Result<(), RequestError> {
        let state = health::next_state(self.event.kind);
        let mut set = vec!["#state = :state", "#lastEventAt = :at", "#lastEventType = :type", "#updatedAt = :now"];
        let mut remove = vec!["#claimId", "#claimExpiresAt"];
        let mut update = Update::builder()
            .table_name(self.store.table())
            .set_key(Some(self.key()))
            .condition_expression("#claimId = :claim")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lastEventAt", "lastEventAt")
            .expression_attribute_names("#lastEventType", "lastEventType")
            .expression_attribute_names("#updatedAt", "updatedAt")
            .expression_attribute_names("#claimId", "claimId")
            .expression_attribute_names("#claimExpiresAt", "claimExpiresAt")
            .expression_attribute_names("#failingSince", "failingSince")
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":at", s(&self.at.to_key_string()))
            .expression_attribute_values(":type", s(self.event.kind.event_type()))
            .expression_attribute_values(":now", s(&self.now.to_key_string()))
            .expression_attribute_values(":claim", s(&self.id));
        if alerted {
            set.push("#lastAlertAt = :at");
            update = update.expression_attribute_names("#lastAlertAt", "lastAlertAt");
        }
        match state {
            WorkflowState::Failing => set.push("#failingSince = if_not_exists(#failingSince, :at)"),
            WorkflowState::Healthy => remove.push("#failingSince"),
        }
        if let Some(name) = self.event.workflow_name.as_deref().or(self.event.source.as_deref()) {
            set.push("#workflowName = :name");
            update = update
                .expression_attribute_names("#workflowName", "workflowName")
                .expression_attribute_values(":name", s(name));
        }
        if let Some(expires_at) = receipt.expires_at {
            set.push("#expiresAt = :expires");
            update = update
                .expression_attribute_names("#expiresAt", "expiresAt")
                .expression_attribute_values(":expires", n(expires_at));
        }
        let update = update
            .update_expression(format!("SET {} REMOVE {}", set.join(", "), remove.join(", ")))
            .build()
            .map_err(|e| RequestError::unavailable("TransactWriteItems", e))?;
        let put = Put::builder()
            .table_name(self.store.table())
            .set_item(Some(event_item))
            .build()
            .map_err(|e| RequestError::unavailable("TransactWriteItems", e))?;
        self.store
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map_err(|e| unavailable("TransactWriteItems", e))?;
        Ok(())
    }

    /// Gives the claim back after a failure, so Kadoa's retry can decide at once. Best
    /// effort: if this fails too, the claim expires after `CLAIM_LEASE`.
    async fn release(&self) {
        let result = self
            .update_health()
            .update_expression("REMOVE #claimId, #claimExpiresAt")
            .condition_expression("#claimId = :claim")
            .expression_attribute_values(":claim", s(&self.id))
            .send()
            .await;
        if let Err(error) = result {
            tracing::warn!(
                error = %aws_sdk_dynamodb::error::DisplayErrorContext(error),
                "claim not released; it expires by itself"
            );
        }
    }
}
