//! `kadoa status`: is everything well, and if not, what needs attention.

use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;
use serde_json::Value;

use super::Context;
use crate::cli::render::{self, Listing};
use crate::cli::report::{self, emit, Block, Report};
use crate::error::Error;
use crate::reconcile::OUTSTANDING_ALARM_TRIES;
use crate::store::browse::{Row, Window};
use crate::store::Store;
use crate::timestamp::Timestamp;

/// A spooled delivery older than this needs attention (the stack's spool-age alarm too).
const SPOOL_AGE_ATTENTION_SECS: i64 = 15 * 60;
/// Account events shown: the last week's.
const ACCOUNT_DAYS: u32 = 7;

/// A queue's depth (waiting and in flight), from its attributes: nothing is received, so
/// no delivery's receive count (what the replay's backoff and the dead-letter limit count)
/// moves.
async fn queue_depth(context: &Context, url: &str) -> Result<i64, Error> {
    let attributes = context
        .sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| crate::aws::sdk_error("GetQueueAttributes", e))?;
    let count = |name| {
        attributes.attributes().and_then(|a| a.get(&name)).and_then(|v| v.parse::<i64>().ok()).unwrap_or_default()
    };
    Ok(count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// The age of a queue's oldest message, in seconds: SQS's own metric of the last 15
/// minutes (CloudWatch), `None` when it has no data (an idle queue, or a local stack).
async fn oldest_age(context: &Context, url: &str) -> Result<Option<i64>, Error> {
    let queue = url.rsplit('/').next().unwrap_or_default();
    let now = std::time::SystemTime::now();
    let output = context
        .clients
        .cloudwatch
        .get_metric_statistics()
        .namespace("AWS/SQS")
        .metric_name("ApproximateAgeOfOldestMessage")
        .dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name("QueueName").value(queue).build())
        .start_time((now - std::time::Duration::from_secs(15 * 60)).into())
        .end_time(now.into())
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
        .send()
        .await
        .map_err(|e| crate::aws::sdk_error("GetMetricStatistics", e))?;
    let newest =
        output.datapoints().iter().filter(|d| d.timestamp().is_some()).max_by_key(|d| d.timestamp().map(|t| t.secs()));
    Ok(newest.and_then(|d| d.maximum()).map(|age| age as i64))
}

/// What `kadoa status` found: its JSON is this, its text the tables and lines
/// [`Report::blocks`] draws, its CSV the workflows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// Each workflow's health and latest activity.
    pub workflows: Vec<WorkflowStatus>,
    /// The account's events of the last [`ACCOUNT_DAYS`] days, as stored.
    pub account_events: Vec<Row>,
    /// The spool's queues.
    pub spool: Spool,
    /// Reconciliation's progress.
    pub reconcile: Reconciliation,
    /// What needs attention, in words (empty: all well).
    pub attention: Vec<String>,
}

/// One workflow's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// Its id.
    pub workflow_id: String,
    /// Its name, when Kadoa sent one.
    pub workflow_name: Option<String>,
    /// Failing or healthy.
    pub health: Health,
    /// Since when it fails.
    pub failing_since: Option<String>,
    /// Its newest event: type and time.
    pub last_event: Option<String>,
    /// Its newest change: id and creation time.
    pub last_change: Option<String>,
}

/// A workflow's health as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not failing.
    Healthy,
    /// Its last run failed.
    Failing,
}

/// The spool's queues; each part present only when the stack has that queue.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spool {
    /// The spool queue.
    #[serde(flatten)]
    pub queue: Option<SpoolQueue>,
    /// Messages in the dead-letter queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<i64>,
}

/// The spool queue's depth and age.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoolQueue {
    /// Deliveries waiting or in flight.
    pub waiting: i64,
    /// Seconds the oldest has waited, when CloudWatch knows.
    pub oldest_seconds: Option<i64>,
}

/// Reconciliation's progress.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconciliation {
    /// Everything up to this time is reconciled.
    pub watermark: Option<String>,
    /// When the watermark last moved.
    pub last_clean_run: Option<String>,
    /// Changes waiting to be fetched from Kadoa's API.
    pub pending_changes: usize,
    /// Of those, the ones tried for a day of runs.
    pub outstanding: usize,
}

impl StatusReport {
    /// The report, with what needs attention read from its parts.
    pub fn new(
        workflows: Vec<WorkflowStatus>,
        account_events: Vec<Row>,
        spool: Spool,
        reconcile: Reconciliation,
    ) -> Self {
        let attention = attention(&workflows, &spool, &reconcile);
        Self { workflows, account_events, spool, reconcile, attention }
    }

    fn workflows_listing(&self) -> Result<Listing, Error> {
        Ok(Listing {
            columns: vec![
                ("workflow", "workflowId"),
                ("name", "workflowName"),
                ("health", "health"),
                ("failing since", "failingSince"),
                ("last event", "lastEvent"),
                ("last change", "lastChange"),
            ],
            rows: report::rows(&self.workflows)?,
            colour: Some(("health", |health| if health == "failing" { 31 } else { 32 })),
        })
    }
}

/// What needs attention: failing workflows, a spooled delivery older than the alarm's
/// age, dead letters, pending changes outstanding.
fn attention(workflows: &[WorkflowStatus], spool: &Spool, reconcile: &Reconciliation) -> Vec<String> {
    let failing = workflows.iter().filter(|w| w.health == Health::Failing);
    let mut attention: Vec<String> = failing.map(|w| format!("workflow {} is failing", w.workflow_id)).collect();
    if let Some(age) = spool.queue.as_ref().and_then(|q| q.oldest_seconds).filter(|age| *age > SPOOL_AGE_ATTENTION_SECS)
    {
        attention.push(format!("a spooled delivery has waited {} minutes", age / 60));
    }
    if let Some(depth) = spool.dead_letters.filter(|depth| *depth > 0) {
        attention.push(format!("{depth} dead letters: see `kadoa dlq list`"));
    }
    if reconcile.outstanding > 0 {
        let outstanding = reconcile.outstanding;
        attention.push(format!("{outstanding} pending changes outstanding for a day of reconciliation runs"));
    }
    attention
}

/// `value`, or `-` when there is none.
fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl Report for StatusReport {
    fn blocks(&self) -> Result<Vec<Block>, Error> {
        let events = Listing {
            columns: vec![("time", "timestamp"), ("event", "eventType"), ("status", "status"), ("arrival", "arrival")],
            rows: self.account_events.clone(),
            colour: None,
        };
        let (spool, reconcile) = (&self.spool, &self.reconcile);
        let mut blocks = vec![
            Block::Table { title: "Workflows".to_owned(), listing: self.workflows_listing()? },
            Block::Table { title: format!("Account events, last {ACCOUNT_DAYS} days"), listing: events },
            Block::led("Spool", 1, ""),
            Block::text(format!(
                "  waiting: {}, oldest: {}, dead letters: {}",
                or_dash(spool.queue.as_ref().map(|q| q.waiting)),
                or_dash(spool.queue.as_ref().and_then(|q| q.oldest_seconds).map(|s| format!("{s} s"))),
                or_dash(spool.dead_letters),
            )),
            Block::led("Reconciliation", 1, ""),
            Block::text(format!(
                "  last clean run: {}, watermark: {}, pending changes: {}, outstanding: {}",
                or_dash(reconcile.last_clean_run.as_ref()),
                or_dash(reconcile.watermark.as_ref()),
                reconcile.pending_changes,
                reconcile.outstanding,
            )),
        ];
        match self.attention.is_empty() {
            true => blocks.push(Block::led("All well.", 32, "")),
            false => blocks.extend(self.attention.iter().map(|line| Block::led("Needs attention:", 31, line.as_str()))),
        }
        Ok(blocks)
    }

    fn listing(&self) -> Result<Listing, Error> {
        self.workflows_listing()
    }
}

/// Runs `kadoa status`: all well (`true`), or something needs attention.
pub async fn run(context: &Context) -> Result<bool, Error> {
    let store = context.store()?;
    let workflows = workflows(&store).await?;
    let account_events = account_events(&store).await?;
    let spool = spool(context).await?;
    let reconcile = reconciliation(&store).await?;
    let report = StatusReport::new(workflows, account_events, spool, reconcile);
    emit(&report, context.format)?;
    Ok(report.attention.is_empty())
}

/// Each workflow's health, with its newest event and change.
async fn workflows(store: &Store) -> Result<Vec<WorkflowStatus>, Error> {
    let mut workflows = Vec::new();
    for health in store.workflow_health().await? {
        let text = |field: &str| health.get(field).and_then(Value::as_str).map(str::to_owned);
        let Some(workflow_id) = text("workflowId") else { continue };
        let last_event = store.last_event(Some(&workflow_id)).await?;
        let last_change = store.last_change(&workflow_id).await?;
        let both = |row: &Row, first: &str, second: &str| {
            format!("{} {}", render::cell(row.get(first)), render::cell(row.get(second)))
        };
        workflows.push(WorkflowStatus {
            health: if text("state").as_deref() == Some("failing") { Health::Failing } else { Health::Healthy },
            workflow_name: text("workflowName"),
            failing_since: text("failingSince"),
            last_event: last_event.as_ref().map(|e| both(e, "eventType", "timestamp")),
            last_change: last_change.as_ref().map(|c| both(c, "changeId", "createdAt")),
            workflow_id,
        });
    }
    Ok(workflows)
}

/// The account's events of the last [`ACCOUNT_DAYS`] days (50 at most), newest first.
async fn account_events(store: &Store) -> Result<Vec<Row>, Error> {
    let since = Timestamp::now().plus_days(0).and_then(|now| now.plus_millis(-i64::from(ACCOUNT_DAYS) * 86_400_000));
    let window = Window { since: since.map(Timestamp::to_key_string), ..Window::default() };
    Ok(store.events_page(&window, true, None, Some(50)).await?.rows)
}

/// The spool's queues, those the stack has.
async fn spool(context: &Context) -> Result<Spool, Error> {
    let mut spool = Spool::default();
    if let Some(url) = &context.target.spool_url {
        let waiting = queue_depth(context, url).await?;
        let oldest_seconds = if waiting > 0 { oldest_age(context, url).await? } else { None };
        spool.queue = Some(SpoolQueue { waiting, oldest_seconds });
    }
    if let Some(url) = &context.target.dead_letter_url {
        spool.dead_letters = Some(queue_depth(context, url).await?);
    }
    Ok(spool)
}

/// The watermark and the pending changes.
async fn reconciliation(store: &Store) -> Result<Reconciliation, Error> {
    let watermark = store.watermark_item().await?;
    let watermark_text =
        |field: &str| watermark.as_ref().and_then(|w| w.get(field)).and_then(Value::as_str).map(str::to_owned);
    let markers = store.pending_markers().await?;
    let outstanding = markers
        .iter()
        .filter(|m| m.get("tries").and_then(Value::as_u64).is_some_and(|t| t >= u64::from(OUTSTANDING_ALARM_TRIES)))
        .count();
    Ok(Reconciliation {
        watermark: watermark_text("through"),
        last_clean_run: watermark_text("updatedAt"),
        pending_changes: markers.len(),
        outstanding,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cli::render::Format;
    use crate::cli::report::written;

    /// What a page could name a workflow: a clipboard write and a bidi override.
    const HOSTILE: &str = "Shop\u{1b}]52;c;ZXZpbA==\u{7}\u{202e}";

    fn workflow(id: &str, health: Health) -> WorkflowStatus {
        WorkflowStatus {
            workflow_id: id.to_owned(),
            workflow_name: Some(HOSTILE.to_owned()),
            health,
            failing_since: (health == Health::Failing).then(|| "2025-01-15T10:05:00.000Z".to_owned()),
            last_event: Some("workflow_failed 2025-01-15T10:05:00.000Z".to_owned()),
            last_change: None,
        }
    }

    fn report() -> StatusReport {
        let event = json!({"timestamp": "2025-01-15T09:00:00.000Z", "eventType": "credits_low", "status": "alerted",
            "arrival": "webhook", "message": "10 credits left"});
        StatusReport::new(
            vec![workflow("wf_2", Health::Failing)],
            vec![event.as_object().cloned().unwrap()],
            Spool { queue: Some(SpoolQueue { waiting: 3, oldest_seconds: Some(1200) }), dead_letters: Some(2) },
            Reconciliation {
                watermark: Some("2025-01-15T08:00:00.000Z".to_owned()),
                last_clean_run: Some("2025-01-15T08:10:00.000Z".to_owned()),
                pending_changes: 4,
                outstanding: 1,
            },
        )
    }

    #[test]
    fn everything_that_needs_attention_is_named_in_order() {
        assert_eq!(
            report().attention,
            [
                "workflow wf_2 is failing",
                "a spooled delivery has waited 20 minutes",
                "2 dead letters: see `kadoa dlq list`",
                "1 pending changes outstanding for a day of reconciliation runs",
            ]
        );
        let calm = StatusReport::new(
            vec![workflow("wf_1", Health::Healthy)],
            vec![],
            Spool { queue: Some(SpoolQueue { waiting: 1, oldest_seconds: Some(900) }), dead_letters: Some(0) },
            Reconciliation::default(),
        );
        assert_eq!(calm.attention, Vec::<String>::new(), "15 minutes is not yet too old");
    }

    #[test]
    fn the_report_serialises_every_field() {
        let expected = json!({
            "workflows": [{"workflowId": "wf_2", "workflowName": HOSTILE, "health": "failing",
                "failingSince": "2025-01-15T10:05:00.000Z", "lastEvent": "workflow_failed 2025-01-15T10:05:00.000Z",
                "lastChange": null}],
            "accountEvents": [{"timestamp": "2025-01-15T09:00:00.000Z", "eventType": "credits_low",
                "status": "alerted", "arrival": "webhook", "message": "10 credits left"}],
            "spool": {"waiting": 3, "oldestSeconds": 1200, "deadLetters": 2},
            "reconcile": {"watermark": "2025-01-15T08:00:00.000Z", "lastCleanRun": "2025-01-15T08:10:00.000Z",
                "pendingChanges": 4, "outstanding": 1},
            "attention": report().attention,
        });
        for format in [Format::Json, Format::Jsonl] {
            let text = written(&report(), Some(format));
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected, "{format:?}: {text}");
        }
    }

    #[test]
    fn a_stack_without_queues_reports_no_spool_fields() {
        let bare = StatusReport::new(vec![], vec![], Spool::default(), Reconciliation::default());
        let answer: Value = serde_json::from_str(&written(&bare, Some(Format::Json))).unwrap();
        assert_eq!(answer["spool"], json!({}));
        assert_eq!(
            answer["reconcile"],
            json!({"watermark": null, "lastCleanRun": null, "pendingChanges": 0, "outstanding": 0})
        );
        let text = written(&bare, None);
        assert!(text.contains("Workflows\n  (none)\n") && text.ends_with("All well.\n"), "{text}");
        assert!(text.contains("  waiting: -, oldest: -, dead letters: -\n"), "{text}");
    }

    #[test]
    fn the_text_shows_every_part_with_scraped_text_escaped() {
        let expected = [
            "Workflows",
            "| workflow | name                               | health  | failing since            | last event                               | last change |",
            "|----------|------------------------------------|---------|--------------------------|------------------------------------------|-------------|",
            "| wf_2     | Shop\\x1b]52;c;ZXZpbA==\\x07\\u{202e} | failing | 2025-01-15T10:05:00.000Z | workflow_failed 2025-01-15T10:05:00.000Z | -           |",
            "Account events, last 7 days",
            "| time                     | event       | status  | arrival |",
            "|--------------------------|-------------|---------|---------|",
            "| 2025-01-15T09:00:00.000Z | credits_low | alerted | webhook |",
            "Spool",
            "  waiting: 3, oldest: 1200 s, dead letters: 2",
            "Reconciliation",
            "  last clean run: 2025-01-15T08:10:00.000Z, watermark: 2025-01-15T08:00:00.000Z, pending changes: 4, \
             outstanding: 1",
            "Needs attention: workflow wf_2 is failing",
            "Needs attention: a spooled delivery has waited 20 minutes",
            "Needs attention: 2 dead letters: see `kadoa dlq list`",
            "Needs attention: 1 pending changes outstanding for a day of reconciliation runs",
        ];
        assert_eq!(written(&report(), None).lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn csv_is_the_workflows_table() {
        let text = written(&report(), Some(Format::Csv));
        assert_eq!(
            text,
            "workflowId,workflowName,health,failingSince,lastEvent,lastChange\n\
             wf_2,Shop\\x1b]52;c;ZXZpbA==\\x07\\u{202e},failing,2025-01-15T10:05:00.000Z,\
             workflow_failed 2025-01-15T10:05:00.000Z,'-\n"
        );
    }
}
