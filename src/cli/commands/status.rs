//! `kadoa status`: is everything well, and if not, what needs attention.

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Map, Value};

use super::{print_exact, Context};
use crate::cli::render::{self, Format, Listing};
use crate::error::Error;
use crate::reconcile::OUTSTANDING_ALARM_TRIES;
use crate::store::browse::Window;
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

/// Runs `kadoa status`.
pub async fn run(context: &Context) -> Result<bool, Error> {
    let store = context.store()?;
    let mut attention: Vec<String> = Vec::new();

    let mut workflows = Vec::new();
    for health in store.workflow_health().await? {
        let Some(workflow_id) = health.get("workflowId").and_then(Value::as_str).map(str::to_owned) else { continue };
        let last_event = store.last_event(Some(&workflow_id)).await?;
        let last_change = store.last_change(&workflow_id).await?;
        let failing = health.get("state").and_then(Value::as_str) == Some("failing");
        if failing {
            attention.push(format!("workflow {workflow_id} is failing"));
        }
        let mut row = Map::new();
        row.insert("workflowId".into(), json!(workflow_id));
        row.insert("workflowName".into(), health.get("workflowName").cloned().unwrap_or(Value::Null));
        row.insert("health".into(), json!(if failing { "failing" } else { "healthy" }));
        row.insert("failingSince".into(), health.get("failingSince").cloned().unwrap_or(Value::Null));
        row.insert(
            "lastEvent".into(),
            last_event.as_ref().map_or(Value::Null, |e| {
                json!(format!("{} {}", render::cell(e.get("eventType")), render::cell(e.get("timestamp"))))
            }),
        );
        row.insert(
            "lastChange".into(),
            last_change.as_ref().map_or(Value::Null, |c| {
                json!(format!("{} {}", render::cell(c.get("changeId")), render::cell(c.get("createdAt"))))
            }),
        );
        workflows.push(row);
    }

    let since = Timestamp::now().plus_days(0).and_then(|now| now.plus_millis(-i64::from(ACCOUNT_DAYS) * 86_400_000));
    let window = Window { since: since.map(Timestamp::to_key_string), ..Window::default() };
    let account: Vec<Map<String, Value>> = store.events_page(&window, true, None, Some(50)).await?.rows;

    let mut spool = Map::new();
    if let Some(url) = &context.target.spool_url {
        let depth = queue_depth(context, url).await?;
        let oldest = if depth > 0 { oldest_age(context, url).await? } else { None };
        if oldest.is_some_and(|age| age > SPOOL_AGE_ATTENTION_SECS) {
            attention.push(format!("a spooled delivery has waited {} minutes", oldest.unwrap_or_default() / 60));
        }
        spool.insert("waiting".into(), json!(depth));
        spool.insert("oldestSeconds".into(), json!(oldest));
    }
    if let Some(url) = &context.target.dead_letter_url {
        let depth = queue_depth(context, url).await?;
        if depth > 0 {
            attention.push(format!("{depth} dead letters: see `kadoa dlq list`"));
        }
        spool.insert("deadLetters".into(), json!(depth));
    }

    let watermark = store.watermark_item().await?;
    let markers = store.pending_markers().await?;
    let outstanding = markers
        .iter()
        .filter(|m| m.get("tries").and_then(Value::as_u64).is_some_and(|t| t >= u64::from(OUTSTANDING_ALARM_TRIES)))
        .count();
    if outstanding > 0 {
        attention.push(format!("{outstanding} pending changes outstanding for a day of reconciliation runs"));
    }
    let reconcile = json!({
        "watermark": watermark.as_ref().and_then(|w| w.get("through")).cloned(),
        "lastCleanRun": watermark.as_ref().and_then(|w| w.get("updatedAt")).cloned(),
        "pendingChanges": markers.len(),
        "outstanding": outstanding,
    });

    match context.format {
        Some(Format::Json | Format::Jsonl) => {
            let answer = json!({"workflows": workflows, "accountEvents": account, "spool": spool,
                "reconcile": reconcile, "attention": attention});
            let text = match context.format {
                Some(Format::Json) => serde_json::to_string_pretty(&answer),
                _ => serde_json::to_string(&answer),
            };
            print_exact(&text.map_err(|e| Error::internal("json", e))?)?;
        }
        format => {
            let listing = Listing {
                columns: vec![
                    ("workflow", "workflowId"),
                    ("name", "workflowName"),
                    ("health", "health"),
                    ("failing since", "failingSince"),
                    ("last event", "lastEvent"),
                    ("last change", "lastChange"),
                ],
                rows: workflows,
                colour: Some(("health", |health| if health == "failing" { 31 } else { 32 })),
            };
            render::print(&listing, format, Some("Workflows"))?;
            if format.is_none() {
                let events = Listing {
                    columns: vec![
                        ("time", "timestamp"),
                        ("event", "eventType"),
                        ("status", "status"),
                        ("arrival", "arrival"),
                    ],
                    rows: account,
                    colour: None,
                };
                render::print(&events, None, Some(&format!("Account events, last {ACCOUNT_DAYS} days")))?;
                render::say(Some(("Spool", 1)), "")?;
                render::say(
                    None,
                    &format!(
                        "  waiting: {}, oldest: {}, dead letters: {}",
                        render::cell(spool.get("waiting")),
                        spool.get("oldestSeconds").and_then(Value::as_i64).map_or("-".to_owned(), |s| format!("{s} s")),
                        render::cell(spool.get("deadLetters"))
                    ),
                )?;
                render::say(Some(("Reconciliation", 1)), "")?;
                render::say(
                    None,
                    &format!(
                        "  last clean run: {}, watermark: {}, pending changes: {}, outstanding: {}",
                        render::cell(reconcile.get("lastCleanRun")),
                        render::cell(reconcile.get("watermark")),
                        render::cell(reconcile.get("pendingChanges")),
                        render::cell(reconcile.get("outstanding"))
                    ),
                )?;
                match attention.is_empty() {
                    true => render::say(Some(("All well.", 32)), "")?,
                    false => {
                        for line in &attention {
                            render::say(Some(("Needs attention:", 31)), line)?;
                        }
                    }
                }
            }
        }
    }
    Ok(attention.is_empty())
}
