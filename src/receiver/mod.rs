//! The one place an event is applied, whatever brought it (the webhook, a replay of the
//! spool): [`Receiver::apply`] matches on the kind of event and stores, logs and alerts it
//! with the same idempotency, ordering and exactly-once rules every time, against an
//! [`EventStore`] (DynamoDB as deployed, in memory in the unit tests).

#[cfg(test)]
mod memory;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use self::store::EventStore;

use crate::alerts::change::CHANGE_MATCHED;
use crate::alerts::health::next_state;
use crate::alerts::HealthRecord;
use crate::alerts::{decide, AlertMessage, Decision, Publisher};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::events::{DataChange, HealthEvent, KadoaEvent, Notice};
use crate::outcome::{Applied, Arrival, EventStatus, Outcome};
use crate::rules::RuleBook;
use crate::store::health::{Claim, HealthClaim, HealthUpdate, COMMIT_TRIES};
use crate::store::notices::EventClaim;
use crate::store::WriteOutcome;
use crate::table::change::ChangePlan;
use crate::table::change_alert::ChangeAlertRecord;
use crate::table::event_log::EventRecord;
use crate::table::{Item, Receipt};
use crate::timestamp::Timestamp;

/// How far ahead of the receiver's clock a health event may be dated. Health events are
/// ordered by their time, so one dated in the future would make every real event until
/// then look stale: beyond this allowance it is refused.
pub const FUTURE_ALLOWANCE: Duration = Duration::from_secs(15 * 60);

/// The event types that alert unless `ALERT_EVENT_TYPES` says otherwise.
pub const DEFAULT_ALERT_TYPES: &[&str] =
    &["workflow_failed", "workflow_recovered", "credits_low", "free_trial_ending", "service_degradation"];

/// The product's rules, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// 0 keeps items forever; otherwise items get `expiresAt` this many days after receipt.
    pub retention_days: u32,
    /// While a workflow stays failing, how long before another failure alerts again.
    pub alert_repeat: Duration,
    /// Event types that reach people (a finished run that ends a failure counts as
    /// `workflow_recovered`).
    pub alert_types: BTreeSet<String>,
}

impl Rules {
    fn alerts(&self, event_type: &str) -> bool {
        self.alert_types.contains(event_type)
    }
}

/// A delivery, parsed: its envelope and the event it carries.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// `{"eventType", "timestamp", "data"}`
    pub envelope: Envelope<'a>,
    /// `data`, understood.
    pub event: KadoaEvent<'a>,
}

impl<'a> Delivery<'a> {
    /// Parses a body; `header_event` is the `X-Kadoa-Event` header, if any.
    pub fn parse(body: &'a [u8], header_event: Option<&str>) -> Result<Self, Error> {
        let envelope = Envelope::parse(body, header_event)?;
        let event = KadoaEvent::parse(&envelope)?;
        Ok(Self { envelope, event })
    }
}

/// Applies events: the table, the alert topic, and the rules.
pub struct Receiver {
    store: Arc<dyn EventStore>,
    publisher: Arc<dyn Publisher>,
    rules: Rules,
    /// The alert rules on data changes, read from the store once a minute.
    change_rules: RuleBook,
}

impl Receiver {
    /// A receiver writing to `store` and alerting through `publisher`.
    pub fn new(store: Arc<dyn EventStore>, publisher: Arc<dyn Publisher>, rules: Rules) -> Self {
        let change_rules = RuleBook::new(store.clone());
        Self { store, publisher, rules, change_rules }
    }

    /// Reads the alert rules before the first change needs them (at init, beside the
    /// secret); if that fails, the first change reads them.
    pub async fn warm_up(&self) {
        if let Err(error) = self.change_rules.current().await {
            tracing::warn!(error = error.detail(), "alert rules not read at start-up; the first change reads them");
        }
    }

    /// Applies one delivery received at `received_at`. Safe to call again with the same
    /// delivery, from any entry point: nothing is stored twice, nobody is told twice.
    pub async fn apply(
        &self,
        delivery: &Delivery<'_>,
        received_at: Timestamp,
        arrival: Arrival,
    ) -> Result<Applied, Error> {
        let envelope = &delivery.envelope;
        let receipt = Receipt::new(received_at, self.rules.retention_days, arrival);
        match &delivery.event {
            KadoaEvent::DataChange(change) => self.apply_change(envelope, change, receipt).await,
            KadoaEvent::Health(event) => self.apply_health(envelope, event, receipt).await,
            KadoaEvent::Notice(notice) => self.apply_notice(envelope, notice, receipt).await,
        }
    }

    /// Stores a change once, and tells people once when it met their alert rules. Whether
    /// it did is decided when it is stored and written on its item (see
    /// [`crate::table::change::MATCHED`]): a retry, a replay or reconciliation of the same
    /// change finds the alert due until its record says it went, and a change stored
    /// before a rule existed is never alerted by a later re-send.
    async fn apply_change(
        &self,
        envelope: &Envelope<'_>,
        change: &DataChange<'_>,
        receipt: Receipt,
    ) -> Result<Applied, Error> {
        let rules = self.change_rules.current().await?;
        let matches = crate::rules::evaluate(&rules, change);
        let message =
            (!matches.is_empty()).then(|| AlertMessage::change_matched(change, &matches, receipt.arrival.is_late()));
        let matched = message.as_ref().map(|message| (matches.total, message.subject.as_str()));
        let plan = ChangePlan::new(change, envelope, receipt, matched)?;
        let differences = change.differences.len();
        let written = self.store.write_change(plan).await?;
        let applied = match written.outcome {
            WriteOutcome::Written => Applied { differences, ..Applied::answered(Outcome::Stored) },
            WriteOutcome::AlreadyThere => Applied::answered(Outcome::Duplicate),
        };
        // Due, but the rules as they are now may match nothing (a rule removed since).
        let Some(message) = message.filter(|_| written.alert_due) else { return Ok(applied) };
        let record = ChangeAlertRecord { change, matches: &matches, message: &message, receipt };
        match self.alert_once(&record).await? {
            Some(alerted_at) => Ok(Applied { outcome: Outcome::Alerted, alerted_at: Some(alerted_at), ..applied }),
            None => Ok(applied),
        }
    }

    /// Claims the change's alert record, publishes, and commits the record: sent once
    /// whatever retries and concurrent deliveries do. `None` when it was sent before.
    async fn alert_once(&self, record: &ChangeAlertRecord<'_>) -> Result<Option<Timestamp>, Error> {
        let (pk, sk) = record.key();
        let claim_id = match self.store.claim_event(&pk, &sk, CHANGE_MATCHED).await? {
            EventClaim::Recorded => return Ok(None),
            EventClaim::Busy => {
                return Err(Error::Unavailable(format!(
                    "change {} is being alerted by another delivery",
                    record.change.change_id
                )))
            }
            EventClaim::Granted(claim_id) => claim_id,
        };
        if let Err(error) = self.publisher.publish(record.message).await {
            self.store.release_event(&pk, &sk, &claim_id).await;
            return Err(error);
        }
        let alerted_at = Timestamp::now();
        if let Err(error) = self.store.commit_event(&claim_id, record.to_item(alerted_at)).await {
            // People were told: a 503 would tell them again on Kadoa's retry. The claim
            // expires, and until then a retry answers 503 instead of alerting twice.
            tracing::error!(
                error = error.detail(),
                change_id = record.change.change_id,
                "alert sent but its record failed"
            );
        }
        Ok(Some(alerted_at))
    }

    /// Moves the workflow's health on and tells people when that is news, in the steps
    /// of [`crate::store::health`]: claim, decide, publish, commit (or release).
    async fn apply_health(
        &self,
        envelope: &Envelope<'_>,
        event: &HealthEvent,
        receipt: Receipt,
    ) -> Result<Applied, Error> {
        refuse_far_future(envelope.timestamp, receipt)?;
        let step = HealthStep { envelope, event, receipt };
        let (claim, previous) = match self.claim(&step).await? {
            Ok(granted) => granted,
            Err(recorded) => return Ok(recorded),
        };
        let (status, message) = self.decide(&step, previous);
        // Every item is built before anything is published.
        let item = match step.record(status).with_alert(message.as_ref()).to_item() {
            Ok(item) => item,
            Err(error) => return Err(self.release(&claim, error).await),
        };
        let alerted_at = match &message {
            Some(message) => match self.publisher.publish(message).await {
                Ok(()) => Some(Timestamp::now()),
                Err(error) => return Err(self.release(&claim, error).await),
            },
            None => None,
        };
        self.commit(&step, &claim, message.is_some(), item).await?;
        Ok(Applied { alerted_at, ..Applied::recorded(status) })
    }

    /// Claim: `Ok` the claim and the health before it, or `Err` the answer to an event
    /// that is not news (recorded as such) — unless another delivery holds a claim that
    /// this event would need.
    async fn claim(&self, step: &HealthStep<'_>) -> Result<Result<(HealthClaim, HealthRecord), Applied>, Error> {
        let (event, at) = (step.event, step.envelope.timestamp);
        let failure = event.kind == crate::events::HealthEventKind::Failed;
        let previous = match self.store.claim_health(&event.workflow_id, at, failure).await? {
            Claim::Granted(claim, previous) => return Ok(Ok((claim, previous))),
            Claim::Refused(previous) => previous,
        };
        let decision = decide(&previous, event.kind, at, self.rules.alert_repeat);
        if decision.moves_health() {
            // Newer than the last event, but another delivery holds the claim.
            return Err(Error::Unavailable(format!(
                "workflow {} is being applied by another delivery",
                event.workflow_id
            )));
        }
        let status = decision.status(event.kind);
        // A retry of a decided event finds its own record there and leaves it be.
        self.store.put_if_absent(step.record(status).to_item()?).await?;
        Ok(Err(Applied::recorded(status)))
    }

    /// Decide: the event's status and, when people are to be told, what.
    fn decide(&self, step: &HealthStep<'_>, previous: HealthRecord) -> (EventStatus, Option<AlertMessage>) {
        let (event, at) = (step.event, step.envelope.timestamp);
        let decision = decide(&previous, event.kind, at, self.rules.alert_repeat);
        // A finished run names no workflow: people read the name its failure had.
        let named =
            HealthEvent { workflow_name: event.workflow_name.clone().or(previous.workflow_name), ..event.clone() };
        let message = match decision {
            Decision::Alert(reason) if self.rules.alerts(reason.event_type()) => {
                Some(AlertMessage::health(&named, at, reason, step.receipt.arrival.is_late()))
            }
            _ => None,
        };
        let status = match (decision, &message) {
            (_, Some(_)) => EventStatus::Alerted,
            // News, but this kind of alert is turned off.
            (Decision::Alert(_), None) => EventStatus::Suppressed,
            (decision, None) => decision.status(event.kind),
        };
        (status, message)
    }

    /// Commit: the health and the event-log record `item` together. After a publish the
    /// health must follow, or the next event would alert again: it is tried again, and if
    /// it still fails, people were told, so a 503 (which would tell them twice on the
    /// retry) is not answered; the record is still worth a try on its own, since
    /// reconciliation and replays look for it.
    async fn commit(&self, step: &HealthStep<'_>, claim: &HealthClaim, alerted: bool, item: Item) -> Result<(), Error> {
        let (event, receipt) = (step.event, step.receipt);
        let update = HealthUpdate {
            state: next_state(event.kind),
            at: step.envelope.timestamp,
            event_type: event.kind.event_type(),
            alerted,
            workflow_name: event.workflow_name.as_deref().or(event.source.as_deref()),
            expires_at: receipt.expires_at,
        };
        let tries = if alerted { COMMIT_TRIES } else { 1 };
        let mut committed = Ok(());
        for _ in 0..tries {
            committed = self.store.commit_health(claim, update, item.clone()).await;
            if committed.is_ok() {
                return Ok(());
            }
        }
        let Err(error) = committed else { return Ok(()) };
        if !alerted {
            return Err(self.release(claim, error).await);
        }
        tracing::error!(error = error.detail(), workflow_id = event.workflow_id, "alert sent but its commit failed");
        if let Err(error) = self.store.record_alert(item).await {
            tracing::error!(error = error.detail(), "alert sent but its record failed");
        }
        Ok(())
    }

    /// Release: gives the claim back after `error`, so Kadoa's retry can decide at once.
    async fn release(&self, claim: &HealthClaim, error: Error) -> Error {
        self.store.release_health(claim).await;
        error
    }

    /// Logs an account, service or other workflow event; alerts it once when its type is
    /// configured to alert.
    async fn apply_notice(&self, envelope: &Envelope<'_>, notice: &Notice, receipt: Receipt) -> Result<Applied, Error> {
        let workflow_id = notice.workflow_id.as_deref();
        if !self.rules.alerts(&envelope.event_type) {
            let status = if notice.known { EventStatus::Stored } else { EventStatus::Accepted };
            let written =
                self.store.put_if_absent(EventRecord::with_payload(envelope, workflow_id, receipt, status).to_item()?);
            return Ok(Applied::answered(match (written.await?, notice.known) {
                (_, false) => Outcome::Accepted,
                (WriteOutcome::Written, true) => Outcome::Stored,
                (WriteOutcome::AlreadyThere, true) => Outcome::Duplicate,
            }));
        }

        let late = receipt.arrival.is_late();
        let message = AlertMessage::notice(&envelope.event_type, workflow_id, envelope.timestamp, envelope.data, late);
        let record =
            EventRecord::with_payload(envelope, workflow_id, receipt, EventStatus::Alerted).with_alert(Some(&message));
        let item = record.to_item()?;
        let (pk, sk) = record.key();
        match self.store.claim_event(&pk, &sk, &envelope.event_type).await? {
            EventClaim::Recorded => Ok(Applied::answered(Outcome::Duplicate)),
            EventClaim::Busy => {
                Err(Error::Unavailable(format!("{} is being alerted by another delivery", envelope.event_type)))
            }
            EventClaim::Granted(claim_id) => {
                if let Err(error) = self.publisher.publish(&message).await {
                    self.store.release_event(&pk, &sk, &claim_id).await;
                    return Err(error);
                }
                let alerted_at = Some(Timestamp::now());
                if let Err(error) = self.store.commit_event(&claim_id, item).await {
                    tracing::error!(
                        error = error.detail(),
                        event_type = envelope.event_type,
                        "alert sent but its record failed"
                    );
                }
                Ok(Applied { alerted_at, ..Applied::answered(Outcome::Alerted) })
            }
        }
    }
}

/// One health event on its way through [`Receiver::apply_health`].
struct HealthStep<'a> {
    envelope: &'a Envelope<'a>,
    event: &'a HealthEvent,
    receipt: Receipt,
}

impl HealthStep<'_> {
    /// Its event-log record, with `status`.
    fn record(&self, status: EventStatus) -> EventRecord<'_> {
        EventRecord::with_payload(self.envelope, Some(self.event.workflow_id.as_str()), self.receipt, status)
    }
}

/// Health events are ordered by their time: one dated beyond [`FUTURE_ALLOWANCE`] ahead
/// of the earlier of the receipt and this process's own clock (a receipt time from the
/// spool is not trusted to move the bound) is refused.
fn refuse_far_future(at: Timestamp, receipt: Receipt) -> Result<(), Error> {
    let clock = receipt.received_at.min(Timestamp::now());
    let latest = clock.plus_millis(FUTURE_ALLOWANCE.as_millis() as i64);
    if latest.is_some_and(|latest| at > latest) {
        return Err(Error::invalid(format!(
            "timestamp {} is more than {} minutes ahead of the receiver's clock",
            at.to_key_string(),
            FUTURE_ALLOWANCE.as_secs() / 60
        )));
    }
    Ok(())
}
