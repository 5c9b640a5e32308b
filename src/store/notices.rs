//! Once per event: an account or service event that alerts claims its own event-log item
//! before the publish, so Kadoa's retries and simultaneous deliveries send it once.
//!
//! 1. claim: a conditional PutItem of a claim at the event's key, refused when the event is
//!    recorded already or another delivery holds an unexpired claim;
//! 2. (the caller publishes);
//! 3. commit: the event-log item replaces the claim (only if still ours); or release.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::health::CLAIM_LEASE;
use super::{item_found, key_of, new_claim_id, s, to_dynamodb, Store};
use crate::aws::sdk_error;
use crate::error::Error;
use crate::table::Item;
use crate::timestamp::Timestamp;

/// The answer to a claim on an event.
#[derive(Debug)]
pub enum EventClaim {
    /// This delivery alerts; commit or release with this id.
    Granted(String),
    /// The event is recorded already: a retry.
    Recorded,
    /// Another delivery is alerting it right now.
    Busy,
}

impl Store {
    /// Claims the alert whose record will have key (`pk`, `sk`) (an event's log item, or a
    /// change's alert record).
    pub async fn claim_event(&self, pk: &str, sk: &str, event_type: &str) -> Result<EventClaim, Error> {
        let now = Timestamp::now();
        let id = new_claim_id(now);
        let expires = now.unix_millis() + CLAIM_LEASE.as_millis() as i64;
        let claim = HashMap::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            // Its own entity: a claim left behind is no event or change for the views.
            ("entity".to_owned(), s(crate::table::ENTITY_CLAIM)),
            ("eventType".to_owned(), s(event_type)),
            ("claimId".to_owned(), s(&id)),
            ("claimExpiresAt".to_owned(), AttributeValue::N(expires.to_string())),
        ]);
        let claim = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(claim))
            .condition_expression("attribute_not_exists(pk) OR #claimExpiresAt < :now")
            .expression_attribute_names("#claimExpiresAt", "claimExpiresAt")
            .expression_attribute_values(":now", AttributeValue::N(now.unix_millis().to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match self.on_claim("PutItem", claim.send()).await? {
            Ok(_) => Ok(EventClaim::Granted(id)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                let existing = item_found(e.into_service_error());
                let claimed = existing.is_some_and(|item| item.contains_key("claimId"));
                Ok(if claimed { EventClaim::Busy } else { EventClaim::Recorded })
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    /// Replaces the claim `claim_id` with the event-log item `event`.
    pub async fn commit_event(&self, claim_id: &str, event: Item) -> Result<(), Error> {
        let commit = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_dynamodb(event)))
            .condition_expression("#claimId = :claim")
            .expression_attribute_names("#claimId", "claimId")
            .expression_attribute_values(":claim", s(claim_id));
        self.on_claim("PutItem", commit.send()).await?.map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }

    /// Removes the claim `claim_id` after a failed publish. Best effort: it also expires.
    pub async fn release_event(&self, pk: &str, sk: &str, claim_id: &str) {
        let release = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(pk, sk)))
            .condition_expression("#claimId = :claim")
            .expression_attribute_names("#claimId", "claimId")
            .expression_attribute_values(":claim", s(claim_id));
        let result = self.on_claim("DeleteItem", release.send()).await;
        if let Err(error) = result.and_then(|sent| sent.map_err(|e| sdk_error("DeleteItem", e))) {
            tracing::warn!(error = error.detail(), "event claim not released; it expires by itself");
        }
    }
}
