//! CloudWatch metrics in the embedded metric format (EMF): one JSON log line per
//! invocation, which CloudWatch Logs turns into metrics. No API call, no added latency.
//!
//! Written here rather than through the `metrics` facade and `metrics_cloudwatch_embedded`:
//! the facade keeps one global recorder per process and flushes it from a Lambda layer,
//! while each of our entry points already knows where its invocation ends and what it
//! did. A document is a struct, serialised once: about a hundred lines, and tests capture
//! the lines of one harness without a process-wide recorder (see the README, Watching it).
//!
//! Dimensions stay few and bounded: the function, an outcome from a fixed set, and an
//! event type from the known list (anything else is `other`). A workflow id is a property
//! of the line, searchable in Logs Insights, never a dimension.
//!
//! Designed for the bill: CloudWatch charges each metric (name × dimension values) for
//! every hour it receives data. Every value is a field of the line, for Logs Insights, but
//! only a few are published as metrics (see [`Publish`]): what an alarm needs or only a
//! metric shows well, and what only happens when something is wrong, published in the
//! hours it happens. AWS's own metrics (Lambda, SQS, SNS) cover the rest for free.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::timestamp::Timestamp;

/// Which function an invocation belongs to: the `Function` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// The webhook, one line per request.
    Webhook,
    /// The spool's replay, one line per batch.
    Replay,
    /// Scheduled reconciliation, one line per run.
    Reconcile,
    /// The hourly silence watch (the webhook function, invoked by its schedule).
    Watch,
    /// The outbox drain (the table's stream → EventBridge), one line per batch.
    Outbox,
}

impl Function {
    /// The dimension's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Replay => "replay",
            Self::Reconcile => "reconcile",
            Self::Watch => "watch",
            Self::Outbox => "outbox",
        }
    }

    /// Every value, for the tests that check the dashboard.
    pub const ALL: [Function; 5] = [Self::Webhook, Self::Replay, Self::Reconcile, Self::Watch, Self::Outbox];
}

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `Count`
    Count,
    /// `Milliseconds`
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// When a recorded value is published as a CloudWatch metric (it is on the line, for Logs
/// Insights, in any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// On every line that records it: billed every hour the function runs.
    Always,
    /// Only when the value is not zero: failures and finds, billed only in the hours they
    /// happen (an alarm on it treats a missing hour as not breaching).
    WhenNonZero,
    /// Never: a field for Logs Insights (the dashboard's log widgets and saved queries), or
    /// for the metric filters of the template's `DetailedMetrics` parameter. AWS publishes
    /// durations, and the outcome and event type are breakdowns of a count.
    Never,
}

/// One metric: its name, unit, the dimension sets it is published under, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The metric's name.
    pub name: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Each set is one CloudWatch metric; every set names the function.
    pub dimensions: &'static [&'static [&'static str]],
    /// When the line publishes it.
    pub publish: Publish,
}

const BY_FUNCTION: &[&[&str]] = &[&["Function"]];

const fn metric(name: &'static str, unit: Unit, publish: Publish) -> Metric {
    Metric { name, unit, dimensions: BY_FUNCTION, publish }
}

/// Webhook requests (with `Outcome` and `EventType` on the line): a breakdown for Logs
/// Insights, and for `DetailedMetrics`' metric filters.
pub const DELIVERIES: Metric = metric("Deliveries", Unit::Count, Publish::Never);
/// Requests that passed authentication: what the silence alarm watches.
pub const AUTHENTICATED_DELIVERIES: Metric = metric("AuthenticatedDeliveries", Unit::Count, Publish::Always);
/// Differences in the changes stored (a duplicate stores none).
pub const DIFFERENCES_STORED: Metric = metric("DifferencesStored", Unit::Count, Publish::Never);
/// Alerts handed to SNS (AWS/SNS counts what was delivered).
pub const ALERTS_PUBLISHED: Metric = metric("AlertsPublished", Unit::Count, Publish::WhenNonZero);
/// From the event's timestamp to the alert's publish, per alert (recorded only then).
pub const ALERT_DELAY: Metric = metric("AlertDelay", Unit::Milliseconds, Publish::Always);
/// From the event's timestamp to its receipt by the webhook: Kadoa's side of the latency,
/// which no AWS metric shows.
pub const DELIVERY_DELAY: Metric = metric("DeliveryDelay", Unit::Milliseconds, Publish::Always);
/// Deliveries put in the spool (answered 202).
pub const SPOOLED: Metric = metric("Spooled", Unit::Count, Publish::WhenNonZero);
/// Spooled deliveries applied by the replay.
pub const REPLAY_APPLIED: Metric = metric("ReplayApplied", Unit::Count, Publish::WhenNonZero);
/// Spooled deliveries the replay failed (tried again, or dead-lettered).
pub const REPLAY_FAILED: Metric = metric("ReplayFailed", Unit::Count, Publish::WhenNonZero);
/// Changes and events reconciliation found missing from the table.
pub const RECONCILE_MISSING: Metric = metric("ReconcileMissing", Unit::Count, Publish::WhenNonZero);
/// Of those (and pending changes completed), applied by the run.
pub const RECONCILE_APPLIED: Metric = metric("ReconcileApplied", Unit::Count, Publish::WhenNonZero);
/// Events reconciliation skipped (the receiver refuses them as Kadoa has them).
pub const RECONCILE_SKIPPED: Metric = metric("ReconcileSkipped", Unit::Count, Publish::WhenNonZero);
/// Items a reconciliation run could not do now (retried by the next run).
pub const RECONCILE_FAILURES: Metric = metric("ReconcileFailures", Unit::Count, Publish::WhenNonZero);
/// 1 once Kadoa delivered to the stack (a change or event that arrived by the webhook),
/// 0 before: the silence alarm stays quiet on a stack that never received a delivery.
pub const CONNECTED: Metric = metric("Connected", Unit::Count, Publish::Always);
/// Events the outbox drain put on the bus.
pub const EVENTS_PUBLISHED: Metric = metric("EventsPublished", Unit::Count, Publish::Always);
/// The record a batch stopped at (0 or 1): not published, and sent again by Lambda with
/// the records after it.
pub const EVENTS_FAILED: Metric = metric("EventsFailed", Unit::Count, Publish::WhenNonZero);
/// Stream records the outbox drain skipped: unreadable, or not published, and without the
/// `SequenceNumber` that would let Lambda send them again. DynamoDB does not produce them;
/// any is worth a look (the log line says why).
pub const RECORDS_SKIPPED: Metric = metric("RecordsSkipped", Unit::Count, Publish::WhenNonZero);
/// The invocation's own duration (AWS/Lambda's Duration is the metric).
pub const DURATION: Metric = metric("Duration", Unit::Milliseconds, Publish::Never);

/// Every metric the functions emit.
pub const CATALOGUE: &[Metric] = &[
    DELIVERIES,
    AUTHENTICATED_DELIVERIES,
    DIFFERENCES_STORED,
    ALERTS_PUBLISHED,
    ALERT_DELAY,
    DELIVERY_DELAY,
    SPOOLED,
    REPLAY_APPLIED,
    REPLAY_FAILED,
    RECONCILE_MISSING,
    RECONCILE_APPLIED,
    RECONCILE_SKIPPED,
    RECONCILE_FAILURES,
    CONNECTED,
    EVENTS_PUBLISHED,
    EVENTS_FAILED,
    RECORDS_SKIPPED,
    DURATION,
];

/// The values of the `Outcome` dimension: a webhook request's outcome, `stale` apart from
/// `suppressed`, refusals by class.
pub const OUTCOMES: &[&str] = &[
    "stored",
    "duplicate",
    "alerted",
    "suppressed",
    "stale",
    "accepted",
    "queued",
    "unauthorized",
    "rejected",
    "failed",
];

/// The `Outcome` of a refused request: 401, the other 4xx, 5xx.
pub fn refusal_outcome(status: u16) -> &'static str {
    match status {
        401 => "unauthorized",
        400..=499 => "rejected",
        _ => "failed",
    }
}

/// The `EventType` dimension of an event type: known types as they are, anything else
/// `other` (an authenticated sender could otherwise mint metrics), `none` when the
/// request never got that far.
pub fn event_type_dimension(event_type: Option<&str>) -> &'static str {
    let Some(event_type) = event_type else { return "none" };
    crate::events::KNOWN_TYPES.iter().find(|known| **known == event_type).copied().unwrap_or("other")
}

/// Where metric lines go: standard output in Lambda, a list in the tests.
#[derive(Clone)]
pub struct MetricsSink {
    namespace: String,
    lines: Option<Arc<Mutex<Vec<String>>>>,
}

impl MetricsSink {
    /// Lines to standard output, under `namespace`.
    pub fn stdout(namespace: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), lines: None }
    }

    /// Lines kept in memory (tests read them with [`MetricsSink::lines`]).
    pub fn captured(namespace: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), lines: Some(Arc::default()) }
    }

    /// The lines written so far (empty for standard output).
    pub fn lines(&self) -> Vec<String> {
        self.lines.as_ref().map(|lines| lines.lock().map(|l| l.clone()).unwrap_or_default()).unwrap_or_default()
    }

    /// Writes one invocation's document.
    pub fn emit(&self, document: &Document) {
        let line = document.to_line(&self.namespace, Timestamp::now());
        match &self.lines {
            Some(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
            // Lambda collects standard output; a write that fails loses the line, never
            // the invocation.
            None => {
                use std::io::Write;
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
    }
}

/// What one invocation measured, written as one EMF line at its end.
#[derive(Debug, Clone)]
pub struct Document {
    function: Function,
    values: BTreeMap<&'static str, (Metric, Vec<f64>)>,
    dimensions: BTreeMap<&'static str, String>,
    properties: Map<String, Value>,
}

impl Document {
    /// An empty document of `function`'s invocation.
    pub fn new(function: Function) -> Self {
        Self { function, values: BTreeMap::new(), dimensions: BTreeMap::new(), properties: Map::new() }
    }

    /// Records `value` of `metric` (several values of one metric are one list, as EMF
    /// allows: alert delays of a batch, say).
    pub fn record(&mut self, metric: Metric, value: f64) -> &mut Self {
        self.values.entry(metric.name).or_insert_with(|| (metric, Vec::new())).1.push(value);
        self
    }

    /// Sets a dimension's value (`Outcome`, `EventType`).
    pub fn dimension(&mut self, name: &'static str, value: &str) -> &mut Self {
        self.dimensions.insert(name, value.to_owned());
        self
    }

    /// Adds a property: on the line for Logs Insights, not a dimension.
    pub fn property(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.properties.insert(name.to_owned(), value.into());
        self
    }

    /// The EMF line: the metrics, grouped by dimension sets, then their values,
    /// dimensions and properties at the top level.
    pub fn to_line(&self, namespace: &str, at: Timestamp) -> String {
        let mut directives: Vec<(&[&[&str]], Vec<Value>)> = Vec::new();
        let mut root = self.properties.clone();
        for (metric, values) in self.values.values() {
            let value = match values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            root.insert(metric.name.to_owned(), value);
            let published = match metric.publish {
                Publish::Always => true,
                Publish::WhenNonZero => values.iter().any(|v| *v != 0.0),
                Publish::Never => false,
            };
            // A metric whose dimensions this line lacks is left out, not half-published.
            if !published
                || !metric
                    .dimensions
                    .iter()
                    .flat_map(|set| set.iter())
                    .all(|d| *d == "Function" || self.dimensions.contains_key(d))
            {
                continue;
            }
            let definition = json!({"Name": metric.name, "Unit": metric.unit.as_str()});
            match directives.iter_mut().find(|(sets, _)| *sets == metric.dimensions) {
                Some((_, metrics)) => metrics.push(definition),
                None => directives.push((metric.dimensions, vec![definition])),
            }
        }
        root.insert("Function".into(), self.function.as_str().into());
        for (name, value) in &self.dimensions {
            root.insert((*name).to_owned(), value.clone().into());
        }
        let directives: Vec<Value> = directives
            .into_iter()
            .map(|(sets, metrics)| json!({"Namespace": namespace, "Dimensions": sets, "Metrics": metrics}))
            .collect();
        root.insert("message".into(), "metrics".into());
        root.insert("_aws".into(), json!({"Timestamp": at.unix_millis(), "CloudWatchMetrics": directives}));
        Value::Object(root).to_string()
    }
}

/// Milliseconds from `from` to `to`, never negative (a clock ahead of ours is no delay).
pub fn millis_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.unix_millis() - from.unix_millis()).max(0) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(document: &Document) -> Value {
        let at = Timestamp::parse_rfc3339("2026-12-03T10:00:00Z").unwrap();
        serde_json::from_str(&document.to_line("stack/KadoaWebhook", at)).unwrap()
    }

    #[test]
    fn a_line_is_emf_publishing_only_what_is_worth_a_metric() {
        let mut document = Document::new(Function::Webhook);
        document
            .record(DELIVERIES, 1.0)
            .record(AUTHENTICATED_DELIVERIES, 1.0)
            .record(DELIVERY_DELAY, 800.0)
            .record(DIFFERENCES_STORED, 10.0)
            .record(DURATION, 12.5)
            .dimension("Outcome", "stored")
            .dimension("EventType", "workflow_data_change")
            .property("workflowId", "wf-1");
        let line = parsed(&document);
        assert_eq!(line["_aws"]["Timestamp"], 1_796_292_000_000i64);
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        assert_eq!(directives[0]["Namespace"], "stack/KadoaWebhook");
        assert_eq!(directives[0]["Dimensions"], json!([["Function"]]));
        assert_eq!(
            directives[0]["Metrics"],
            json!([{"Name": "AuthenticatedDeliveries", "Unit": "Count"}, {"Name": "DeliveryDelay", "Unit": "Milliseconds"}])
        );
        // What is not published is still on the line, for Logs Insights.
        assert_eq!((line["Deliveries"].clone(), line["Duration"].clone()), (json!(1.0), json!(12.5)));
        assert_eq!(line["DifferencesStored"], json!(10.0));
        assert_eq!((line["Function"].as_str(), line["Outcome"].as_str()), (Some("webhook"), Some("stored")));
        assert_eq!(
            (line["EventType"].as_str(), line["workflowId"].as_str()),
            (Some("workflow_data_change"), Some("wf-1"))
        );
    }

    #[test]
    fn failures_are_published_only_when_they_happen() {
        let mut quiet = Document::new(Function::Reconcile);
        quiet.record(RECONCILE_MISSING, 0.0).record(RECONCILE_FAILURES, 0.0).record(DURATION, 900.0);
        let line = parsed(&quiet);
        assert_eq!(line["_aws"]["CloudWatchMetrics"], json!([]), "a clean run costs no metric");
        assert_eq!(line["ReconcileMissing"], json!(0.0));
        let mut found = Document::new(Function::Reconcile);
        found.record(RECONCILE_MISSING, 2.0).record(RECONCILE_FAILURES, 0.0);
        let directives = parsed(&found)["_aws"]["CloudWatchMetrics"].clone();
        assert_eq!(directives[0]["Metrics"], json!([{"Name": "ReconcileMissing", "Unit": "Count"}]));
    }

    #[test]
    fn several_values_are_a_list_and_a_metric_without_its_dimensions_is_left_out() {
        const BY_OUTCOME: Metric = Metric { dimensions: &[&["Function", "Outcome"]], ..AUTHENTICATED_DELIVERIES };
        let mut document = Document::new(Function::Replay);
        document.record(ALERT_DELAY, 5.0).record(ALERT_DELAY, 7.0).record(BY_OUTCOME, 1.0);
        let line = parsed(&document);
        assert_eq!(line["AlertDelay"], json!([5.0, 7.0]));
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "no Outcome dimension: {line}");
        assert_eq!(directives[0]["Metrics"], json!([{"Name": "AlertDelay", "Unit": "Milliseconds"}]));
    }

    #[test]
    fn dimensions_stay_bounded() {
        assert_eq!(event_type_dimension(Some("workflow_failed")), "workflow_failed");
        assert_eq!(event_type_dimension(Some("made_up_by_a_sender_12345")), "other");
        assert_eq!(event_type_dimension(None), "none");
        assert_eq!(
            (refusal_outcome(401), refusal_outcome(413), refusal_outcome(503)),
            ("unauthorized", "rejected", "failed")
        );
        for metric in CATALOGUE {
            assert!(metric.dimensions.iter().all(|set| set.first() == Some(&"Function")), "{}", metric.name);
            assert!(!metric.dimensions.iter().flat_map(|s| s.iter()).any(|d| d.contains("orkflow")));
        }
    }
}
