//! An in-memory [`EventStore`] for the receiver's unit tests. It keeps the DynamoDB
//! store's rules (its conditions are written out here as code; the moto tests check the
//! expressions themselves against DynamoDB): one map of items by key, a health record and
//! a claim per workflow, and the failures a test asks for.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use futures::future::BoxFuture;
use futures::FutureExt;

use super::EventStore;
use crate::alerts::{HealthRecord, WorkflowState};
use crate::error::Error;
use crate::rules::{Rule, RuleSource};
use crate::store::health::{Claim, HealthClaim, HealthUpdate, CLAIM_LEASE};
use crate::store::notices::EventClaim;
use crate::store::{ChangeWrite, WriteOutcome};
use crate::table::change::{ChangePlan, MATCHED};
use crate::table::{Attr, Item};
use crate::timestamp::Timestamp;

/// A workflow's health item: the record and who holds it (claim id, expiry in ms).
#[derive(Debug, Default)]
struct Health {
    record: HealthRecord,
    claim: Option<(String, i64)>,
}

#[derive(Debug, Default)]
struct State {
    items: BTreeMap<(String, String), Item>,
    health: HashMap<String, Health>,
    failures: HashMap<&'static str, u32>,
    rules: Vec<Rule>,
    calls: Vec<&'static str>,
}

/// The table, in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(Attr::S(text)) => Some(text),
        _ => None,
    }
}

fn key(item: &Item) -> (String, String) {
    let part = |name| text(item, name).unwrap_or_default().to_owned();
    (part("pk"), part("sk"))
}

fn now_ms() -> i64 {
    Timestamp::now().unix_millis()
}

fn lease_end() -> i64 {
    now_ms() + CLAIM_LEASE.as_millis() as i64
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next `times` calls of `operation` fail as an outage would.
    pub fn fail(&self, operation: &'static str, times: u32) {
        self.lock().failures.insert(operation, times);
    }

    /// The alert rules are now `rules`.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.lock().rules = rules;
    }

    /// The operations called, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.lock().calls.clone()
    }

    /// `workflow_id`'s health.
    pub fn health(&self, workflow_id: &str) -> HealthRecord {
        self.lock().health.get(workflow_id).map(|health| health.record.clone()).unwrap_or_default()
    }

    /// Whether anyone holds `workflow_id`'s claim (expired or not).
    pub fn claimed(&self, workflow_id: &str) -> bool {
        self.lock().health.get(workflow_id).is_some_and(|health| health.claim.is_some())
    }

    /// Another delivery holds `workflow_id`'s claim; with `expired`, one whose lease ran out.
    pub fn hold_claim(&self, workflow_id: &str, expired: bool) {
        let expires = if expired { now_ms() - 1 } else { lease_end() };
        self.lock().health.entry(workflow_id.to_owned()).or_default().claim = Some(("other".to_owned(), expires));
    }

    /// Another delivery holds the claim on the event item (`pk`, `sk`).
    pub fn hold_event_claim(&self, pk: &str, sk: &str, expired: bool) {
        let expires = if expired { now_ms() - 1 } else { lease_end() };
        let item = Item::from([
            ("pk".to_owned(), Attr::s(pk)),
            ("sk".to_owned(), Attr::s(sk)),
            ("claimId".to_owned(), Attr::s("other")),
            ("claimExpiresAt".to_owned(), Attr::N(expires.to_string())),
        ]);
        self.lock().items.insert((pk.to_owned(), sk.to_owned()), item);
    }

    /// The items whose `entity` is `entity`, by key.
    pub fn items_of(&self, entity: &str) -> Vec<Item> {
        self.lock().items.values().filter(|item| text(item, "entity") == Some(entity)).cloned().collect()
    }

    /// Every item, by key.
    pub fn items(&self) -> Vec<Item> {
        self.lock().items.values().cloned().collect()
    }

    /// Counts the call and fails it when a test asked for that.
    fn call(&self, operation: &'static str) -> Result<MutexGuard<'_, State>, Error> {
        let mut state = self.lock();
        state.calls.push(operation);
        match state.failures.get_mut(operation) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(Error::unavailable(operation, "injected outage"))
            }
            _ => Ok(state),
        }
    }
}

impl State {
    /// `put_if_absent` on the state (the DynamoDB store's rule for its own lost answer: an
    /// item with this delivery's `receivedAt` and `arrival` counts as written by it).
    fn put_if_absent(&mut self, item: Item) -> WriteOutcome {
        let stamp = |item: &Item| (item.get("receivedAt").cloned(), item.get("arrival").cloned());
        match self.items.get(&key(&item)) {
            None => {
                self.items.insert(key(&item), item);
                WriteOutcome::Written
            }
            Some(stored) if stamp(&item).0.is_some() && stamp(stored) == stamp(&item) => WriteOutcome::Written,
            Some(_) => WriteOutcome::AlreadyThere,
        }
    }

    fn health_claimed_by(&mut self, claim: &HealthClaim) -> Option<&mut Health> {
        self.health.values_mut().find(|health| health.claim.as_ref().is_some_and(|(id, _)| id == claim.id()))
    }
}

/// The claim's condition: nobody holds it (or the lease ran out), and the event is newer
/// than the last (or, for a failure, as new as a last event that was not one).
fn may_claim(health: &Health, at: Timestamp, failure: bool) -> bool {
    let free = health.claim.as_ref().is_none_or(|(_, expires)| *expires < now_ms());
    let record = &health.record;
    let newer = match record.last_event_at {
        None => true,
        Some(last) => {
            last < at || (failure && last == at && record.last_event_type.as_deref() != Some(crate::events::FAILED))
        }
    };
    free && newer
}

fn commit(health: &mut Health, update: &HealthUpdate<'_>) {
    let record = &mut health.record;
    record.state = Some(update.state);
    record.last_event_at = Some(update.at);
    record.last_event_type = Some(update.event_type.to_owned());
    if update.alerted {
        record.last_alert_at = Some(update.at);
    }
    match update.state {
        WorkflowState::Failing => record.failing_since = record.failing_since.or(Some(update.at)),
        WorkflowState::Healthy => record.failing_since = None,
    }
    if let Some(name) = update.workflow_name {
        record.workflow_name = Some(name.to_owned());
    }
    health.claim = None;
}

impl RuleSource for MemoryStore {
    fn load_rules(&self) -> BoxFuture<'_, Result<Vec<Rule>, Error>> {
        let rules = self.call("load_rules").map(|state| state.rules.clone());
        async move { rules }.boxed()
    }
}

impl EventStore for MemoryStore {
    fn write_change(&self, plan: ChangePlan) -> BoxFuture<'_, Result<ChangeWrite, Error>> {
        let written = self.call("write_change").map(|mut state| {
            if let Some(marker) = plan.pending {
                state.items.insert(key(&marker), marker);
            }
            let matched_now = plan.change.contains_key(MATCHED);
            if let Some(stored) = state.items.get(&(plan.pk.clone(), plan.change_sk.clone())) {
                return ChangeWrite { outcome: WriteOutcome::AlreadyThere, alert_due: stored.contains_key(MATCHED) };
            }
            for part in plan.parts {
                state.items.insert(key(&part), part);
            }
            ChangeWrite { outcome: state.put_if_absent(plan.change), alert_due: matched_now }
        });
        async move { written }.boxed()
    }

    fn put_if_absent(&self, item: Item) -> BoxFuture<'_, Result<WriteOutcome, Error>> {
        let written = self.call("put_if_absent").map(|mut state| state.put_if_absent(item));
        async move { written }.boxed()
    }

    fn claim_health<'a>(
        &'a self,
        workflow_id: &'a str,
        at: Timestamp,
        failure: bool,
    ) -> BoxFuture<'a, Result<Claim, Error>> {
        let claimed = self.call("claim_health").map(|mut state| {
            let health = state.health.entry(workflow_id.to_owned()).or_default();
            let previous = health.record.clone();
            if !may_claim(health, at, failure) {
                return Claim::Refused(previous);
            }
            let claim = HealthClaim::new(workflow_id, Timestamp::now());
            health.claim = Some((claim.id().to_owned(), lease_end()));
            Claim::Granted(claim, previous)
        });
        async move { claimed }.boxed()
    }

    fn commit_health<'a>(
        &'a self,
        claim: &'a HealthClaim,
        update: HealthUpdate<'a>,
        event: Item,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let committed = self.call("commit_health").and_then(|mut state| {
            let health = state.health_claimed_by(claim).ok_or_else(|| Error::unavailable("commit", "claim lost"))?;
            commit(health, &update);
            state.items.insert(key(&event), event);
            Ok(())
        });
        async move { committed }.boxed()
    }

    fn release_health<'a>(&'a self, claim: &'a HealthClaim) -> BoxFuture<'a, ()> {
        if let Ok(mut state) = self.call("release_health") {
            if let Some(health) = state.health_claimed_by(claim) {
                health.claim = None;
            }
        }
        async {}.boxed()
    }

    fn record_alert(&self, item: Item) -> BoxFuture<'_, Result<WriteOutcome, Error>> {
        let written = self.call("record_alert").map(|mut state| state.put_if_absent(item));
        async move { written }.boxed()
    }

    fn claim_event<'a>(
        &'a self,
        pk: &'a str,
        sk: &'a str,
        event_type: &'a str,
    ) -> BoxFuture<'a, Result<EventClaim, Error>> {
        let claimed = self.call("claim_event").map(|mut state| {
            let key = (pk.to_owned(), sk.to_owned());
            let expired = |item: &Item| match item.get("claimExpiresAt") {
                Some(Attr::N(expires)) => expires.parse::<i64>().is_ok_and(|expires| expires < now_ms()),
                _ => false,
            };
            match state.items.get(&key) {
                Some(item) if !expired(item) && item.contains_key("claimId") => return EventClaim::Busy,
                Some(item) if !expired(item) => return EventClaim::Recorded,
                _ => {}
            }
            let id = crate::store::new_claim_id(Timestamp::now());
            let claim = Item::from([
                ("pk".to_owned(), Attr::s(pk)),
                ("sk".to_owned(), Attr::s(sk)),
                ("entity".to_owned(), Attr::s(crate::table::ENTITY_CLAIM)),
                ("eventType".to_owned(), Attr::s(event_type)),
                ("claimId".to_owned(), Attr::s(&id)),
                ("claimExpiresAt".to_owned(), Attr::N(lease_end().to_string())),
            ]);
            state.items.insert(key, claim);
            EventClaim::Granted(id)
        });
        async move { claimed }.boxed()
    }

    fn commit_event<'a>(&'a self, claim_id: &'a str, event: Item) -> BoxFuture<'a, Result<(), Error>> {
        let committed = self.call("commit_event").and_then(|mut state| {
            let ours = state.items.get(&key(&event)).is_some_and(|item| text(item, "claimId") == Some(claim_id));
            if !ours {
                return Err(Error::unavailable("commit_event", "claim lost"));
            }
            state.items.insert(key(&event), event);
            Ok(())
        });
        async move { committed }.boxed()
    }

    fn release_event<'a>(&'a self, pk: &'a str, sk: &'a str, claim_id: &'a str) -> BoxFuture<'a, ()> {
        if let Ok(mut state) = self.call("release_event") {
            let key = (pk.to_owned(), sk.to_owned());
            if state.items.get(&key).is_some_and(|item| text(item, "claimId") == Some(claim_id)) {
                state.items.remove(&key);
            }
        }
        async {}.boxed()
    }
}
