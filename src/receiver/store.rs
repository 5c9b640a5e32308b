//! What the receiver needs of a store, in the domain's own types: a change written once,
//! an event-log record put once, a workflow's health claimed, committed or released, an
//! alerting event claimed, committed or released. [`Store`] (DynamoDB) is what the stack
//! deploys; the unit tests use an in-memory one (`memory.rs`).

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::error::Error;
use crate::rules::RuleSource;
use crate::store::health::{Claim, HealthClaim, HealthUpdate};
use crate::store::notices::EventClaim;
use crate::store::{ChangeWrite, Store, WriteOutcome};
use crate::table::change::ChangePlan;
use crate::table::Item;
use crate::timestamp::Timestamp;

/// The receiver's store. Every write is safe to repeat; see [`crate::store::health`] and
/// [`crate::store::notices`] for the claims' rules.
pub trait EventStore: RuleSource + Send + Sync {
    /// Writes a change so that no retry or concurrent delivery stores it twice, and says
    /// whether its rule alert is due.
    fn write_change(&self, plan: ChangePlan) -> BoxFuture<'_, Result<ChangeWrite, Error>>;

    /// Puts `item` only if no item has its key yet.
    fn put_if_absent(&self, item: Item) -> BoxFuture<'_, Result<WriteOutcome, Error>>;

    /// Claims `workflow_id`'s health for an event at `at` (a `failure` or not).
    fn claim_health<'a>(
        &'a self,
        workflow_id: &'a str,
        at: Timestamp,
        failure: bool,
    ) -> BoxFuture<'a, Result<Claim, Error>>;

    /// Moves the health on and writes the event-log item `event`, both or neither, only
    /// while `claim` holds.
    fn commit_health<'a>(
        &'a self,
        claim: &'a HealthClaim,
        update: HealthUpdate<'a>,
        event: Item,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Gives `claim` back (best effort: it also expires).
    fn release_health<'a>(&'a self, claim: &'a HealthClaim) -> BoxFuture<'a, ()>;

    /// Puts the event-log record of an alert whose commit failed (only if absent).
    fn record_alert(&self, item: Item) -> BoxFuture<'_, Result<WriteOutcome, Error>>;

    /// Claims the alert whose record has key (`pk`, `sk`): an event's log item, or a
    /// change's alert record.
    fn claim_event<'a>(
        &'a self,
        pk: &'a str,
        sk: &'a str,
        event_type: &'a str,
    ) -> BoxFuture<'a, Result<EventClaim, Error>>;

    /// Replaces the claim `claim_id` with the event-log item `event`.
    fn commit_event<'a>(&'a self, claim_id: &'a str, event: Item) -> BoxFuture<'a, Result<(), Error>>;

    /// Removes the claim `claim_id` (best effort: it also expires).
    fn release_event<'a>(&'a self, pk: &'a str, sk: &'a str, claim_id: &'a str) -> BoxFuture<'a, ()>;
}

impl EventStore for Store {
    fn write_change(&self, plan: ChangePlan) -> BoxFuture<'_, Result<ChangeWrite, Error>> {
        Store::write_change(self, plan).boxed()
    }

    fn put_if_absent(&self, item: Item) -> BoxFuture<'_, Result<WriteOutcome, Error>> {
        Store::put_if_absent(self, item).boxed()
    }

    fn claim_health<'a>(
        &'a self,
        workflow_id: &'a str,
        at: Timestamp,
        failure: bool,
    ) -> BoxFuture<'a, Result<Claim, Error>> {
        Store::claim_health(self, workflow_id, at, failure).boxed()
    }

    fn commit_health<'a>(
        &'a self,
        claim: &'a HealthClaim,
        update: HealthUpdate<'a>,
        event: Item,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Store::commit_health(self, claim, update, event).boxed()
    }

    fn release_health<'a>(&'a self, claim: &'a HealthClaim) -> BoxFuture<'a, ()> {
        Store::release_health(self, claim).boxed()
    }

    fn record_alert(&self, item: Item) -> BoxFuture<'_, Result<WriteOutcome, Error>> {
        Store::record_alert(self, item).boxed()
    }

    fn claim_event<'a>(
        &'a self,
        pk: &'a str,
        sk: &'a str,
        event_type: &'a str,
    ) -> BoxFuture<'a, Result<EventClaim, Error>> {
        Store::claim_event(self, pk, sk, event_type).boxed()
    }

    fn commit_event<'a>(&'a self, claim_id: &'a str, event: Item) -> BoxFuture<'a, Result<(), Error>> {
        Store::commit_event(self, claim_id, event).boxed()
    }

    fn release_event<'a>(&'a self, pk: &'a str, sk: &'a str, claim_id: &'a str) -> BoxFuture<'a, ()> {
        Store::release_event(self, pk, sk, claim_id).boxed()
    }
}
