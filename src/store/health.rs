//! A workflow's `HEALTH` item as a lock: one delivery at a time claims it, decides,
//! publishes, and commits the new health together with its event-log item.
//!
//! 1. claim: a conditional UpdateItem that succeeds only for an event newer than any seen
//!    and while no other delivery holds an unexpired claim; it returns the health before;
//! 2. (the caller decides and publishes);
//! 3. commit: one transaction that moves the health on, releases the claim (only if still
//!    ours) and writes the event-log item; or release, after a failure.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::{key_of, new_claim_id, to_attribute_value, to_dynamodb, Store, WriteOutcome};
use crate::alerts::{HealthRecord, WorkflowState};
use crate::aws::{sdk_error, within};
use crate::error::Error;
use crate::table::{keys, timeline, Attr, Item, ENTITY_HEALTH};
use crate::timestamp::Timestamp;

/// How long one table call of an alert may take (claim, commit, record, release): the
/// alert's whole path is built from these.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a commit after a publish is tried: people were told, so the health must
/// follow.
pub const COMMIT_TRIES: u32 = 2;
/// The longest an alert can take, every call at its cap: the claim, the publish, every
/// commit try, and the event-log record written on its own after the commits failed.
/// 2 + 3 + 2 × 2 + 2 = 11 s, inside the webhook's 15 s timeout (the template test checks).
pub const ALERT_PATH: Duration = Duration::from_secs(
    CALL_TIMEOUT.as_secs()
        + crate::alerts::sns::PUBLISH_TIMEOUT.as_secs()
        + CALL_TIMEOUT.as_secs() * COMMIT_TRIES as u64
        + CALL_TIMEOUT.as_secs(),
);
/// How long a delivery may hold a workflow's claim: longer than its whole alert path, so a
/// slow delivery never loses its claim to another that would alert again.
pub const CLAIM_LEASE: Duration = Duration::from_secs(ALERT_PATH.as_secs() + 1);

/// One delivery's hold on a workflow's `HEALTH` item.
#[derive(Debug)]
pub struct HealthClaim {
    pk: String,
    id: String,
    /// The wall clock when the claim was taken: what the lease is measured in.
    now: Timestamp,
}

impl HealthClaim {
    /// A new claim on `workflow_id`'s health, taken at `now` (an id no other claim has).
    pub fn new(workflow_id: &str, now: Timestamp) -> Self {
        Self { pk: keys::workflow_pk(workflow_id), id: new_claim_id(now), now }
    }

    /// The claim's id: a commit or release holds only while the item still names it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When it was taken: the lease runs [`CLAIM_LEASE`] from here.
    pub fn taken_at(&self) -> Timestamp {
        self.now
    }
}

/// The answer to a claim.
#[derive(Debug)]
pub enum Claim {
    /// This delivery may decide; here is the health before it.
    Granted(HealthClaim, HealthRecord),
    /// The event is not newer than the last one, or another delivery holds the claim.
    Refused(HealthRecord),
}

/// The health after a decided event.
#[derive(Debug, Clone, Copy)]
pub struct HealthUpdate<'a> {
    /// The new state.
    pub state: WorkflowState,
    /// The event's time.
    pub at: Timestamp,
    /// The event's type.
    pub event_type: &'a str,
    /// Whether people were told (sets `lastAlertAt`).
    pub alerted: bool,
    /// The name people know the workflow by, when the event carried one.
    pub workflow_name: Option<&'a str>,
    /// TTL of the item, with retention.
    pub expires_at: Option<i64>,
}

fn n(value: i64) -> Attr {
    Attr::N(value.to_string())
}

/// The health an item records; attributes that do not read as what they should are
/// treated as absent (the item is ours, so that would be a bug, not an input).
fn read_record(item: Option<HashMap<String, AttributeValue>>) -> HealthRecord {
    let Some(item) = item else { return HealthRecord::default() };
    let text = |name: &str| item.get(name).and_then(|value| value.as_s().ok()).map(String::as_str);
    let time = |name: &str| text(name).and_then(Timestamp::parse_rfc3339);
    HealthRecord {
        state: text("state").and_then(WorkflowState::parse),
        last_event_at: time("lastEventAt"),
        last_event_type: text("lastEventType").map(str::to_owned),
        last_alert_at: time("lastAlertAt"),
        failing_since: time("failingSince"),
        workflow_name: text("workflowName").map(str::to_owned),
    }
}

impl Store {
    /// Puts the event-log record of an alert whose commit failed, within the claim's call
    /// timeout (only if absent: a retry may have written it).
    pub async fn record_alert(&self, item: Item) -> Result<WriteOutcome, Error> {
        self.on_claim("PutItem", self.put_if_absent(item)).await?
    }

    /// Runs one claim, commit or release call within its timeout.
    pub(super) fn on_claim<F: Future>(
        &self,
        operation: &'static str,
        send: F,
    ) -> impl Future<Output = Result<F::Output, Error>> {
        within(self.pacing.claim_call_timeout, operation, send)
    }

    /// An `UpdateItem` of the health item of `pk` by `expressions`.
    fn update_health(&self, pk: &str, expressions: Expressions) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(pk, keys::HEALTH_SK)))
            .update_expression(expressions.update)
            .condition_expression(expressions.condition)
            .set_expression_attribute_names(expressions.names)
            .set_expression_attribute_values(expressions.values)
    }

    /// Claims `workflow_id`'s health for an event at `at`, if that is newer than any seen
    /// (or, for a failure, as new as a finished run or a recovery: see
    /// [`crate::alerts::health::wins_tie`]) and nobody else holds the claim. Either way,
    /// returns the health as it was.
    pub async fn claim_health(&self, workflow_id: &str, at: Timestamp, failure: bool) -> Result<Claim, Error> {
        let claim = HealthClaim::new(workflow_id, Timestamp::now());
        let request = self
            .update_health(&claim.pk, claim_expressions(workflow_id, &claim.id, claim.now, at, failure))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match self.on_claim("UpdateItem", request.send()).await? {
            Ok(output) => Ok(Claim::Granted(claim, read_record(output.attributes))),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                let previous = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => failed.item,
                    _ => None,
                };
                Ok(Claim::Refused(read_record(previous)))
            }
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    /// In one transaction: moves the health on, releases the claim (only if still ours),
    /// and writes the event-log item.
    pub async fn commit_health(&self, claim: &HealthClaim, update: HealthUpdate<'_>, event: Item) -> Result<(), Error> {
        let expressions = commit_expressions(claim, &update);
        let health = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&claim.pk, keys::HEALTH_SK)))
            .update_expression(expressions.update)
            .condition_expression(expressions.condition)
            .set_expression_attribute_names(expressions.names)
            .set_expression_attribute_values(expressions.values)
            .build()
            .map_err(|e| Error::internal("Update", e))?;
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_dynamodb(event)))
            .build()
            .map_err(|e| Error::internal("Put", e))?;
        let commit = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(health).build())
            .transact_items(TransactWriteItem::builder().put(record).build());
        self.on_claim("TransactWriteItems", commit.send()).await?.map_err(|e| sdk_error("TransactWriteItems", e))?;
        Ok(())
    }

    /// Gives the claim back after a failure, so Kadoa's retry can decide at once. Best
    /// effort: if this fails too, the claim expires after [`CLAIM_LEASE`].
    pub async fn release_health(&self, claim: &HealthClaim) {
        let release = self.update_health(&claim.pk, release_expressions(claim));
        let result = self.on_claim("UpdateItem", release.send()).await;
        if let Err(error) = result.and_then(|sent| sent.map_err(|e| sdk_error("UpdateItem", e))) {
            tracing::warn!(error = error.detail(), "claim not released; it expires by itself");
        }
    }
}

/// An update of a `HEALTH` item: its expressions and the names and values they use
/// (DynamoDB refuses a name or value that is listed and not used, and moto does not:
/// each is listed only with its use, and the tests check every combination).
#[derive(Debug)]
struct Expressions {
    update: String,
    condition: &'static str,
    names: Option<HashMap<String, String>>,
    values: Option<HashMap<String, AttributeValue>>,
}

impl Expressions {
    fn new(
        update: String,
        condition: &'static str,
        names: Vec<(&'static str, &'static str)>,
        values: Vec<(&'static str, Attr)>,
    ) -> Self {
        // DynamoDB refuses an empty map: none is sent.
        let names: HashMap<String, String> = names.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let values: HashMap<String, AttributeValue> =
            values.into_iter().map(|(k, v)| (k.to_owned(), to_attribute_value(v))).collect();
        Self {
            update,
            condition,
            names: (!names.is_empty()).then_some(names),
            values: (!values.is_empty()).then_some(values),
        }
    }
}

/// The claim (see the module's comment): `id` until `now` + [`CLAIM_LEASE`], for an event
/// at `at` (a `failure` also when the last event, not a failure, was at the same instant).
fn claim_expressions(workflow_id: &str, id: &str, now: Timestamp, at: Timestamp, failure: bool) -> Expressions {
    let mut names = vec![
        ("#entity", "entity"),
        ("#workflowId", "workflowId"),
        ("#claimId", "claimId"),
        ("#claimExpiresAt", "claimExpiresAt"),
        ("#lastEventAt", "lastEventAt"),
    ];
    let mut values = vec![
        (":entity", Attr::s(ENTITY_HEALTH)),
        (":workflowId", Attr::s(workflow_id)),
        (":claim", Attr::s(id)),
        (":expires", n(now.unix_millis() + CLAIM_LEASE.as_millis() as i64)),
        (":now", n(now.unix_millis())),
        (":at", Attr::s(at.to_key_string())),
        // Its entry in the `timeline` index's directory of workflows: the same every time,
        // so only the first claim writes the index.
        (":bucket", Attr::s(timeline::HEALTH_BUCKET)),
        (":position", Attr::s(keys::workflow_pk(workflow_id))),
    ];
    names.extend([("#bucket", timeline::BUCKET), ("#position", timeline::POSITION)]);
    let condition = match failure {
        false => {
            "(attribute_not_exists(#claimId) OR #claimExpiresAt < :now) \
             AND (attribute_not_exists(#lastEventAt) OR #lastEventAt < :at)"
        }
        true => {
            names.push(("#lastEventType", "lastEventType"));
            values.push((":failed", Attr::s(crate::events::FAILED)));
            "(attribute_not_exists(#claimId) OR #claimExpiresAt < :now) \
             AND (attribute_not_exists(#lastEventAt) OR #lastEventAt < :at \
                  OR (#lastEventAt = :at AND #lastEventType <> :failed))"
        }
    };
    let update = "SET #entity = :entity, #workflowId = :workflowId, #claimId = :claim, #claimExpiresAt = :expires, \
                  #bucket = :bucket, #position = :position";
    Expressions::new(update.to_owned(), condition, names, values)
}

/// The health after `update`, with the claim released (only if still `claim`).
fn commit_expressions(claim: &HealthClaim, update: &HealthUpdate<'_>) -> Expressions {
    let mut set = vec!["#state = :state", "#lastEventAt = :at", "#lastEventType = :type", "#updatedAt = :now"];
    let mut remove = vec!["#claimId", "#claimExpiresAt"];
    let mut names = vec![
        ("#state", "state"),
        ("#lastEventAt", "lastEventAt"),
        ("#lastEventType", "lastEventType"),
        ("#updatedAt", "updatedAt"),
        ("#claimId", "claimId"),
        ("#claimExpiresAt", "claimExpiresAt"),
        ("#failingSince", "failingSince"),
    ];
    let mut values = vec![
        (":state", Attr::s(update.state.as_str())),
        (":at", Attr::s(update.at.to_key_string())),
        (":type", Attr::s(update.event_type)),
        (":now", Attr::s(claim.now.to_key_string())),
        (":claim", Attr::s(&claim.id)),
    ];
    if update.alerted {
        set.push("#lastAlertAt = :at");
        names.push(("#lastAlertAt", "lastAlertAt"));
    }
    match update.state {
        WorkflowState::Failing => set.push("#failingSince = if_not_exists(#failingSince, :at)"),
        WorkflowState::Healthy => remove.push("#failingSince"),
    }
    if let Some(name) = update.workflow_name {
        set.push("#workflowName = :name");
        names.push(("#workflowName", "workflowName"));
        values.push((":name", Attr::s(crate::error::bounded(name.to_owned()))));
    }
    if let Some(expires_at) = update.expires_at {
        set.push("#expiresAt = :expires");
        names.push(("#expiresAt", "expiresAt"));
        values.push((":expires", n(expires_at)));
    }
    Expressions::new(format!("SET {} REMOVE {}", set.join(", "), remove.join(", ")), "#claimId = :claim", names, values)
}

/// The claim given back (only if still `claim`).
fn release_expressions(claim: &HealthClaim) -> Expressions {
    Expressions::new(
        "REMOVE #claimId, #claimExpiresAt".to_owned(),
        "#claimId = :claim",
        vec![("#claimId", "claimId"), ("#claimExpiresAt", "claimExpiresAt")],
        vec![(":claim", Attr::s(&claim.id))],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::s;

    #[test]
    fn the_lease_outlasts_every_call_it_protects() {
        let protected = CALL_TIMEOUT + crate::alerts::sns::PUBLISH_TIMEOUT + CALL_TIMEOUT * COMMIT_TRIES + CALL_TIMEOUT;
        assert_eq!(ALERT_PATH, protected);
        assert!(CLAIM_LEASE > protected, "{CLAIM_LEASE:?} <= {protected:?}");
    }

    #[test]
    fn every_name_and_value_an_update_lists_is_used_and_every_one_used_is_listed() {
        let at = Timestamp::parse_rfc3339("2025-01-15T10:00:00Z").unwrap();
        let claim = HealthClaim { pk: "WORKFLOW#wf".into(), id: "c1".into(), now: at };
        let mut updates = vec![
            claim_expressions("wf", "c1", at, at, false),
            claim_expressions("wf", "c1", at, at, true),
            release_expressions(&claim),
        ];
        for state in [WorkflowState::Failing, WorkflowState::Healthy] {
            for alerted in [false, true] {
                for workflow_name in [None, Some("Product Monitor")] {
                    for expires_at in [None, Some(1_800_000_000)] {
                        let update = HealthUpdate {
                            state,
                            at,
                            event_type: "workflow_failed",
                            alerted,
                            workflow_name,
                            expires_at,
                        };
                        updates.push(commit_expressions(&claim, &update));
                    }
                }
            }
        }
        for expressions in &updates {
            assert_eq!(unmatched_placeholders(expressions), Vec::<String>::new(), "{expressions:?}");
        }
        let spare = Expressions::new("REMOVE #a".into(), "#b = :c", vec![("#a", "a"), ("#x", "x")], vec![]);
        assert_eq!(unmatched_placeholders(&spare), ["#b", "#x", ":c"], "the check finds both kinds");
    }

    /// The placeholders used in the expressions and not listed, or listed and not used.
    fn unmatched_placeholders(expressions: &Expressions) -> Vec<String> {
        use std::collections::BTreeSet;
        let mut used = BTreeSet::new();
        for text in [expressions.update.as_str(), expressions.condition] {
            let mut rest = text;
            while let Some(start) = rest.find(['#', ':']) {
                let tail = &rest[start + 1..];
                let end = tail.find(|c: char| !c.is_ascii_alphanumeric() && c != '_').unwrap_or(tail.len());
                used.insert(rest[start..start + 1 + end].to_owned());
                rest = &tail[end..];
            }
        }
        let names = expressions.names.iter().flatten().map(|(k, _)| k.clone());
        let values = expressions.values.iter().flatten().map(|(k, _)| k.clone());
        let listed: BTreeSet<String> = names.chain(values).collect();
        used.symmetric_difference(&listed).cloned().collect()
    }

    #[test]
    fn health_is_read_once_into_timestamps() {
        let item = HashMap::from([
            ("state".to_owned(), s("failing")),
            ("lastEventAt".to_owned(), s("2025-01-15T10:00:00.000Z")),
            ("lastEventType".to_owned(), s("workflow_failed")),
            ("failingSince".to_owned(), s("2025-01-15T09:00:00.000Z")),
        ]);
        let record = read_record(Some(item));
        assert_eq!(record.state, Some(WorkflowState::Failing));
        assert_eq!(record.last_event_at, Timestamp::parse_rfc3339("2025-01-15T10:00:00Z"));
        assert_eq!(record.failing_since, Timestamp::parse_rfc3339("2025-01-15T09:00:00Z"));
        assert_eq!(record.last_alert_at, None);
        assert_eq!(read_record(None), HealthRecord::default());
    }
}
