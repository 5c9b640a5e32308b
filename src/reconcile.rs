//! Reconciliation: what Kadoa has that the table lacks, found through Kadoa's API and
//! applied through the same [`Receiver::apply`] as a webhook — changes that never reached
//! the receiver, changes Kadoa completed after sending them pending, and every other event
//! in Kadoa's delivery log. Checking costs reads only; only what is missing is written.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::events::DATA_CHANGE;
use crate::kadoa_api::{ChangesPage, KadoaApi, LogsPage};
use crate::metrics::{self, Document, Function};
use crate::outcome::{Applied, Arrival, Outcome};
use crate::receiver::{Delivery, Receiver};
use crate::store::reconcile::Key;
use crate::store::Store;
use crate::table::change::ChangePlan;
use crate::table::event_log::EventRecord;
use crate::table::{keys, Receipt};
use crate::timestamp::Timestamp;

/// A scheduled run checks again this far before the watermark: events Kadoa logged late.
pub const OVERLAP: std::time::Duration = std::time::Duration::from_secs(3600);
/// Tries after which a pending change that cannot be completed raises an alarm (a day of
/// hourly runs).
pub const OUTSTANDING_ALARM_TRIES: u32 = 24;
/// The first scheduled run, with no watermark yet, looks back this far.
pub const FIRST_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Changes Kadoa listed for the window.
    pub changes_seen: usize,
    /// Of those, already in the table.
    pub already_stored: usize,
    /// Of those, stored by this run.
    pub stored_now: usize,
    /// Pending changes Kadoa has completed since, brought up to date.
    pub pending_completed: usize,
    /// Pending changes Kadoa still has pending.
    pub still_pending: usize,
    /// Other events in Kadoa's delivery log for the window.
    pub events_seen: usize,
    /// Of those, already in the event log.
    pub events_logged: usize,
    /// Of those, applied by this run (alerted, if they alert).
    pub events_replayed: usize,
    /// Alerts this run handed to SNS.
    pub alerts_sent: usize,
    /// What could not be done now but may succeed on the next run (Kadoa or AWS
    /// unavailable, a wrong API key); the run is clean only without any.
    pub failures: Vec<String>,
    /// What will never succeed as Kadoa has it (an event the receiver refuses): reported,
    /// and no reason to check the same window again.
    pub skipped: Vec<String>,
    /// Pending changes that could not be completed now: recorded on their markers, tried
    /// again by every run, and no reason to hold the watermark.
    pub outstanding: Vec<String>,
}

impl Report {
    /// Whether everything was checked and nothing failed that a later run could do.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }

    /// The run's metrics line: missing found, applied, skipped, failures, alerts.
    pub fn metrics(&self, duration: std::time::Duration) -> Document {
        let missing = (self.changes_seen - self.already_stored.min(self.changes_seen))
            + (self.events_seen - self.events_logged.min(self.events_seen));
        let applied = self.stored_now + self.events_replayed + self.pending_completed;
        let mut document = Document::new(Function::Reconcile);
        document
            .record(metrics::RECONCILE_MISSING, missing as f64)
            .record(metrics::RECONCILE_APPLIED, applied as f64)
            .record(metrics::RECONCILE_SKIPPED, self.skipped.len() as f64)
            .record(metrics::RECONCILE_FAILURES, self.failures.len() as f64)
            .record(metrics::ALERTS_PUBLISHED, self.alerts_sent as f64)
            .record(metrics::DURATION, duration.as_secs_f64() * 1000.0);
        document
    }

    /// Files a failure of one item: transient ones fail the run, others are skipped.
    fn item_failed(&mut self, what: &str, error: &Error) {
        let line = crate::error::bounded(format!("{what}: {}", error.detail()));
        match error.is_transient() {
            true => self.failures.push(line),
            false => self.skipped.push(line),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "changes: {} seen, {} already stored, {} stored now",
            self.changes_seen, self.already_stored, self.stored_now
        )?;
        writeln!(
            f,
            "pending changes: {} completed, {} still pending at Kadoa",
            self.pending_completed, self.still_pending
        )?;
        writeln!(
            f,
            "other events: {} seen, {} already logged, {} replayed",
            self.events_seen, self.events_logged, self.events_replayed
        )?;
        write!(f, "failures: {}", self.failures.len())?;
        for failure in &self.failures {
            write!(f, "\n  {failure}")?;
        }
        write!(f, "\nskipped (refused as Kadoa has them): {}", self.skipped.len())?;
        for skipped in &self.skipped {
            write!(f, "\n  {skipped}")?;
        }
        write!(f, "\noutstanding (pending changes tried again next run): {}", self.outstanding.len())?;
        for outstanding in &self.outstanding {
            write!(f, "\n  {outstanding}")?;
        }
        Ok(())
    }
}

/// The ids a listed change carries.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
/// (A change Kadoa still has pending is stored with a marker, and completed by a later run.)
struct ChangeIds {
    id: String,
    workflow_id: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    data_pending: Option<bool>,
}

/// Finds and applies what the table lacks.
pub struct Reconciler<'a> {
    api: &'a KadoaApi,
    receiver: &'a Receiver,
    store: &'a Store,
    retention_days: u32,
}

/// A webhook body for an event found in Kadoa's API (strings escaped as JSON).
fn envelope_body(event_type: &str, timestamp: &str, data: &RawValue) -> String {
    let event_type = serde_json::Value::String(event_type.to_owned());
    let timestamp = serde_json::Value::String(timestamp.to_owned());
    format!(r#"{{"eventType":{event_type},"timestamp":{timestamp},"data":{}}}"#, data.get())
}

impl<'a> Reconciler<'a> {
    /// A reconciler reading `api`, applying with `receiver`, checking `store`.
    pub fn new(api: &'a KadoaApi, receiver: &'a Receiver, store: &'a Store, retention_days: u32) -> Self {
        Self { api, receiver, store, retention_days }
    }

    /// One scheduled run, up to `now`: from the watermark of the last clean run less
    /// [`OVERLAP`] (or [`FIRST_WINDOW`] back), moving the watermark to `now` only when the
    /// run is clean. The report says what was done, clean or not.
    pub async fn run_scheduled(&self, now: Timestamp, progress: &(dyn Fn(&str) + Sync)) -> Result<Report, Error> {
        let from = match self.store.watermark().await? {
            Some(through) => through.plus_millis(-(OVERLAP.as_millis() as i64)),
            None => now.plus_millis(-(FIRST_WINDOW.as_millis() as i64)),
        }
        .ok_or_else(|| Error::internal("reconcile", "no window before the watermark"))?;
        let report = self.run(from, now, progress).await;
        if report.is_clean() {
            self.store.set_watermark(now).await?;
        }
        Ok(report)
    }

    /// Reconciles `[from, to)`; `progress` hears about each page.
    pub async fn run(&self, from: Timestamp, to: Timestamp, progress: &(dyn Fn(&str) + Sync)) -> Report {
        let mut report = Report::default();
        let fail = |report: &mut Report, section: &str, error: Error| {
            report.failures.push(crate::error::bounded(format!("{section}: {}", error.detail())));
        };
        // A section that cannot be read at all (Kadoa down, a wrong key, the table down)
        // fails the run, whatever the error: the window must be checked again.
        let changes = read_pages(
            async |skip| self.api.changes(from, to, skip).await,
            async |page: ChangesPage| self.changes_page(&page, &mut report).await,
            |read| progress(&format!("changes: {read} checked")),
        );
        if let Err(error) = changes.await {
            fail(&mut report, "change list", error);
        }
        if let Err(error) = self.pending(&mut report, progress).await {
            fail(&mut report, "pending changes", error);
        }
        let deliveries = read_pages(
            async |offset| self.api.deliveries(from, to, offset).await,
            async |page: LogsPage| self.deliveries_page(&page, &mut report).await,
            |read| progress(&format!("delivery log: {read} checked")),
        );
        if let Err(error) = deliveries.await {
            fail(&mut report, "delivery log", error);
        }
        report
    }

    /// Stores the changes of one page of the change list that the table lacks.
    async fn changes_page(&self, page: &ChangesPage, report: &mut Report) -> Result<(), Error> {
        let mut listed = Vec::with_capacity(page.changes.len());
        for raw in page.changes.iter().map(|change| &change.0) {
            match serde_json::from_str::<ChangeIds>(raw.get()) {
                Ok(ids) => listed.push((ids, raw)),
                Err(e) => report.item_failed("a listed change", &Error::invalid(format!("no id or workflowId: {e}"))),
            }
        }
        // Keys as the receiver makes them: of the ids trimmed.
        let keys: Vec<Key> = listed
            .iter()
            .map(|(ids, _)| (keys::workflow_pk(ids.workflow_id.trim()), keys::change_sk(ids.id.trim())))
            .collect();
        let existing = self.store.existing(&keys).await?;
        for ((ids, raw), key) in listed.into_iter().zip(&keys) {
            report.changes_seen += 1;
            if existing.contains(key) {
                report.already_stored += 1;
                continue;
            }
            let timestamp = ids.created_at.clone().unwrap_or_else(|| Timestamp::now().to_key_string());
            let body = envelope_body(DATA_CHANGE, &timestamp, raw);
            match self.apply(&body).await {
                Ok(Applied { outcome: Outcome::Stored, .. }) => report.stored_now += 1,
                Ok(_) => report.already_stored += 1,
                Err(error) => report.item_failed(&format!("change {}", ids.id), &error),
            }
        }
        Ok(())
    }

    async fn pending(&self, report: &mut Report, progress: &(dyn Fn(&str) + Sync)) -> Result<(), Error> {
        for (workflow_id, change_id) in self.store.pending_changes().await? {
            let raw = match self.api.change(&change_id).await {
                Ok(raw) => raw,
                Err(error) => {
                    self.outstanding(report, &workflow_id, &change_id, &error).await;
                    continue;
                }
            };
            let ids: ChangeIds = match serde_json::from_str(raw.get()) {
                Ok(ids) => ids,
                Err(e) => {
                    report.item_failed(&format!("pending change {change_id}"), &Error::invalid(e.to_string()));
                    continue;
                }
            };
            if ids.data_pending == Some(true) {
                report.still_pending += 1;
                continue;
            }
            match self.complete(&workflow_id, &ids, &raw).await {
                Ok(()) => report.pending_completed += 1,
                Err(error) => self.outstanding(report, &workflow_id, &change_id, &error).await,
            }
        }
        progress(&format!("pending changes: {} completed", report.pending_completed));
        Ok(())
    }

    /// A pending change that could not be completed now: recorded on its marker (tries,
    /// the error) and tried again by every run, without holding the watermark, which
    /// would widen every later run's window. After [`OUTSTANDING_ALARM_TRIES`] tries it is
    /// logged as an error, which raises `ReconcileOutstandingAlarm`.
    async fn outstanding(&self, report: &mut Report, workflow_id: &str, change_id: &str, error: &Error) {
        if !error.is_transient() {
            report.item_failed(&format!("pending change {change_id}"), error);
            return;
        }
        match self.store.note_pending_failure(workflow_id, change_id, error.detail()).await {
            Ok(tries) => {
                if tries >= OUTSTANDING_ALARM_TRIES {
                    tracing::error!(
                        change_id,
                        workflow_id,
                        tries,
                        error = error.detail(),
                        "pending change outstanding"
                    );
                }
                let line = format!("pending change {change_id}, try {tries}: {}", error.detail());
                report.outstanding.push(crate::error::bounded(line));
            }
            Err(noted) => report.item_failed(&format!("pending change {change_id}"), &noted),
        }
    }

    async fn complete(&self, workflow_id: &str, ids: &ChangeIds, raw: &RawValue) -> Result<(), Error> {
        let timestamp = ids.created_at.clone().unwrap_or_else(|| Timestamp::now().to_key_string());
        let body = envelope_body(DATA_CHANGE, &timestamp, raw);
        let delivery = Delivery::parse(body.as_bytes(), None)?;
        let crate::events::KadoaEvent::DataChange(change) = &delivery.event else {
            return Err(Error::internal("complete", "not a data change"));
        };
        if change.workflow_id != workflow_id {
            return Err(Error::invalid(format!("Kadoa lists change {} under another workflow", ids.id)));
        }
        let now = Timestamp::now();
        let receipt = Receipt::new(now, self.retention_days, Arrival::Reconcile);
        let plan = ChangePlan::new(change, &delivery.envelope, receipt, None)?;
        let previous = self.store.change_layout(&plan.pk, &plan.change_sk).await?;
        self.store.complete_change(plan, previous, now).await
    }

    /// Applies the deliveries of one page of Kadoa's log that the table has no record of.
    async fn deliveries_page(&self, page: &LogsPage, report: &mut Report) -> Result<(), Error> {
        // Data changes are reconciled from the change list, by id.
        let bodies: Vec<String> = page
            .events
            .iter()
            .filter(|logged| logged.event_type != DATA_CHANGE)
            .map(|logged| {
                let payload = logged.payload.get();
                let is_envelope = serde_json::from_str::<EnvelopeShape>(payload).is_ok_and(|e| e.is_envelope());
                match is_envelope {
                    true => payload.to_owned(),
                    false => {
                        let at = logged.created_at.clone().unwrap_or_else(|| Timestamp::now().to_key_string());
                        envelope_body(&logged.event_type, &at, &logged.payload)
                    }
                }
            })
            .collect();
        let mut parsed = Vec::new();
        for body in &bodies {
            match Delivery::parse(body.as_bytes(), None) {
                Ok(delivery) => parsed.push(delivery),
                Err(error) => report.item_failed("a logged delivery", &error),
            }
        }
        let receipt = Receipt::new(Timestamp::now(), self.retention_days, Arrival::Reconcile);
        let keys: Vec<Key> = parsed
            .iter()
            .map(|d| {
                EventRecord::new(&d.envelope, d.event.workflow_id(), receipt, crate::outcome::EventStatus::Stored).key()
            })
            .collect();
        let existing: HashSet<Key> = self.store.existing(&keys).await?;
        for (delivery, key) in parsed.iter().zip(&keys) {
            report.events_seen += 1;
            if existing.contains(key) {
                report.events_logged += 1;
                continue;
            }
            match self.receiver.apply(delivery, Timestamp::now(), Arrival::Reconcile).await {
                Ok(applied) => {
                    report.events_replayed += 1;
                    report.alerts_sent += usize::from(applied.alerted_at.is_some());
                }
                Err(error) => {
                    let what =
                        format!("{} at {}", delivery.envelope.event_type, delivery.envelope.timestamp.to_key_string());
                    report.item_failed(&what, &error);
                }
            }
        }
        Ok(())
    }

    async fn apply(&self, body: &str) -> Result<Applied, Error> {
        let delivery = Delivery::parse(body.as_bytes(), None)?;
        self.receiver.apply(&delivery, Timestamp::now(), Arrival::Reconcile).await
    }
}

/// One page of a source Kadoa's API serves page by page.
trait Paged {
    /// Its items as raw JSON: what a repeated page is known by.
    fn items(&self) -> impl Iterator<Item = &str>;
    /// How many items it has: where the next page starts.
    fn len(&self) -> usize;
    /// Whether no page follows.
    fn is_last(&self) -> bool;
}

impl Paged for ChangesPage {
    fn items(&self) -> impl Iterator<Item = &str> {
        self.changes.iter().map(|change| change.0.get())
    }

    fn len(&self) -> usize {
        self.changes.len()
    }

    /// Without a pagination block, a full page means there may be more.
    fn is_last(&self) -> bool {
        let pagination = self.pagination.as_ref().and_then(|p| Some(p.page? >= p.total_pages?));
        pagination.unwrap_or(self.len() < crate::kadoa_api::CHANGES_PAGE_SIZE as usize)
    }
}

impl Paged for LogsPage {
    fn items(&self) -> impl Iterator<Item = &str> {
        self.events.iter().map(|logged| logged.payload.get())
    }

    fn len(&self) -> usize {
        self.events.len()
    }

    fn is_last(&self) -> bool {
        !self.has_more
    }
}

/// Reads a paged source from its start: `fetch(read)` gives the page after the first
/// `read` items, `handle` takes each, until an empty or last page; `progress` hears how
/// many items were read. [`Pages`] guards it.
async fn read_pages<P: Paged>(
    mut fetch: impl AsyncFnMut(u64) -> Result<P, Error>,
    mut handle: impl AsyncFnMut(P) -> Result<(), Error>,
    progress: impl Fn(u64),
) -> Result<(), Error> {
    let (mut read, mut pages) = (0u64, Pages::default());
    loop {
        let page = fetch(read).await?;
        pages.next(page.items())?;
        let (count, last) = (page.len(), page.is_last());
        handle(page).await?;
        read += count as u64;
        progress(read);
        if count == 0 || last {
            return Ok(());
        }
    }
}

/// Guards a paginated read: more than [`MAX_PAGES`](crate::kadoa_api::MAX_PAGES) pages,
/// or a page that repeats the one before it (a cursor that does not move), end it with an
/// error instead of at the function's timeout.
#[derive(Default)]
struct Pages {
    read: u64,
    last: Option<String>,
}

impl Pages {
    fn next<'p>(&mut self, items: impl Iterator<Item = &'p str>) -> Result<(), Error> {
        self.read += 1;
        if self.read > crate::kadoa_api::MAX_PAGES {
            return Err(Error::unavailable(
                "Kadoa API",
                format!(
                    "more than {} pages: a narrower window, or pagination that does not end",
                    crate::kadoa_api::MAX_PAGES
                ),
            ));
        }
        let mut hasher = crate::digest::ShortHasher::new();
        let mut empty = true;
        for item in items {
            hasher.update(item.as_bytes());
            empty = false;
        }
        let signature = hasher.finish();
        if !empty && self.last.as_ref() == Some(&signature) {
            return Err(Error::unavailable("Kadoa API", "the same page twice: its pagination does not move"));
        }
        self.last = Some(signature);
        Ok(())
    }
}

/// Whether a logged payload is the webhook body itself or only its `data`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeShape {
    event_type: Option<Box<RawValue>>,
    timestamp: Option<Box<RawValue>>,
    data: Option<Box<RawValue>>,
}

impl EnvelopeShape {
    fn is_envelope(&self) -> bool {
        self.event_type.is_some() && self.timestamp.is_some() && self.data.is_some()
    }
}
