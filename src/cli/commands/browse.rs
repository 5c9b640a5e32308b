//! `kadoa changes list|show`, `kadoa export`, `kadoa events`: reading the table back.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::{print_exact, Context};
use crate::cli::render::{self, Format, Listing};
use crate::cli::{EventsArgs, ExportArgs, ShowArgs, WindowArgs};
use crate::error::Error;
use crate::store::browse::{Row, Window, INCOMPLETE};
use crate::store::timeline::TimelineQuery;
use crate::store::Store;
use crate::table::timeline;
use crate::timestamp::Timestamp;

/// How often `events --follow` looks for new events.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);
/// How far back in event time `events --follow` looks each time: an event stored late
/// (replayed from the spool, found by reconciliation) is dated when Kadoa sent it.
const FOLLOW_LOOK_BACK_MS: i64 = 24 * 3600 * 1000;

fn window(args: &WindowArgs) -> Result<Window, Error> {
    if let (Some(since), Some(until)) = (&args.since, &args.until) {
        if since > until {
            return Err(Error::invalid(format!("--since {since} is after --until {until}")));
        }
    }
    Ok(Window { workflow: args.workflow.clone(), since: args.since.clone(), until: args.until.clone() })
}

/// Where a table-wide listing starts without `--since`: the last week.
const RECENT_DAYS: i64 = 7;
/// How far back `changes show` looks for a change without `--workflow` or `--since`.
const SHOW_DAYS: i64 = 30;
/// How much earlier than the last poll `events --follow` asks again: what the index may
/// show late (it is updated a moment after the table), and a clock a little off AWS's.
const FOLLOW_MARGIN_MS: i64 = 5_000;
/// Change items a page of a `Scan` of the table (an export of everything) holds at most.
const SCAN_PAGE: i32 = 100;
/// A page of the table's keys.
type Key = HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// The key-form time `days` days ago (negative: ahead).
pub(super) fn days_back(days: i64) -> Option<String> {
    Timestamp::now().plus_millis(-days * 86_400_000).map(Timestamp::to_key_string)
}

/// The timeline buckets of `window` (`prefix` and a day, newest first) and its lower bound:
/// `--since`, or `default_days` before `--until` or now; up to `--until`, or tomorrow (a clock ahead of AWS's).
fn window_buckets(window: &Window, prefix: &str, default_days: i64) -> Result<(String, Vec<String>), Error> {
    // `--until` alone: the `default_days` before it.
    let end = window.until.as_deref().and_then(Timestamp::parse_rfc3339).unwrap_or_else(Timestamp::now);
    let since =
        window.since.clone().or_else(|| end.plus_millis(-default_days * 86_400_000).map(Timestamp::to_key_string));
    let until = window.until.clone().or_else(|| days_back(-1));
    let (Some(since), Some(until)) = (since, until) else { return Err(Error::invalid("a time out of range")) };
    let days =
        timeline::days(&since, &until).ok_or_else(|| Error::invalid(format!("no days from {since} to {until}")))?;
    Ok((since, days.into_iter().map(|day| format!("{prefix}{day}")).collect()))
}

/// Changes, a page at a time: one workflow's (`changesByTime`), the days of a window
/// (the `timeline` index), or every change in the table (a `Scan`, for `export` only).
pub(super) struct ChangePages<'a> {
    store: &'a Store,
    window: Window,
    /// The timeline's buckets left, newest first; `None`: not the timeline.
    buckets: Option<Vec<String>>,
    start: Option<Key>,
    done: bool,
}

impl<'a> ChangePages<'a> {
    /// The changes of `window`: without a workflow, its days (`--since`, or
    /// `default_days` back), or with `default_days` `None` every change in the table.
    pub(super) fn new(store: &'a Store, window: &Window, default_days: Option<i64>) -> Result<Self, Error> {
        let mut window = window.clone();
        let buckets = match (&window.workflow, &window.since, default_days) {
            (Some(_), _, _) | (None, None, None) => None,
            (None, _, days) => {
                let (since, mut buckets) = window_buckets(&window, timeline::CHANGE_PREFIX, days.unwrap_or(0))?;
                window.since = Some(since);
                buckets.reverse(); // popped from the end: newest first
                Some(buckets)
            }
        };
        Ok(Self { store, window, buckets, start: None, done: false })
    }

    /// The next page; `None` after the last.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<Row>>, Error> {
        if self.done {
            return Ok(None);
        }
        let page = match &mut self.buckets {
            // A scan's page holds whole changes with their differences: 100 at a time keeps
            // memory and each call small.
            None => self.store.changes_page(&self.window, self.start.take(), Some(SCAN_PAGE)).await?,
            Some(buckets) => {
                let Some(bucket) = buckets.last() else { return Ok(None) };
                let question = TimelineQuery {
                    bucket,
                    time: Some(("createdAt", self.window.since.as_deref(), self.window.until.as_deref())),
                    ..TimelineQuery::default()
                };
                self.store.timeline_page(&question, self.start.take()).await?
            }
        };
        self.start = page.next;
        if self.start.is_none() {
            match &mut self.buckets {
                Some(buckets) => {
                    buckets.pop();
                    self.done = buckets.is_empty();
                }
                None => self.done = true,
            }
        }
        Ok(Some(page.rows))
    }
}

/// The index's own keys, which a listing does not print.
pub(super) fn without_index_keys(mut row: Row) -> Row {
    row.remove(timeline::BUCKET);
    row.remove(timeline::POSITION);
    row
}

fn counts(row: &Row) -> String {
    let n = |name: &str| row.get(name).and_then(Value::as_u64).unwrap_or_default();
    format!("{} (+{} ~{} -{})", n("differenceCount"), n("addedCount"), n("changedCount"), n("removedCount"))
}

/// `kadoa changes list`
pub async fn list_changes(context: &Context, args: &WindowArgs) -> Result<bool, Error> {
    let store = context.store()?;
    let mut rows = Vec::new();
    let mut pages = ChangePages::new(&store, &window(args)?, Some(RECENT_DAYS))?;
    while let Some(page) = pages.next().await? {
        for row in page {
            let mut row = without_index_keys(row);
            if context.format.is_none() {
                row.insert("differences".into(), json!(counts(&row)));
            } else {
                row.remove("differences");
            }
            rows.push(row);
        }
    }
    // Days newest first, each in the order written: newest first, as one workflow's query.
    rows.sort_by_key(|row| std::cmp::Reverse(render::cell(row.get("createdAt"))));
    let listing = Listing {
        columns: vec![
            ("created", "createdAt"),
            ("workflow", "workflowId"),
            ("change", "changeId"),
            ("differences", if context.format.is_none() { "differences" } else { "differenceCount" }),
            ("arrival", "arrival"),
            ("url", "url"),
            // A change that met alert rules: what people were told (`kadoa rules`).
            ("rule alert", "alertSubject"),
        ],
        rows,
        colour: None,
    };
    render::print(&listing, context.format, None)?;
    Ok(true)
}

/// Whether `change` was read whole; if not, a warning on standard error says what it lacks.
fn whole(change: &Row) -> bool {
    let Some(incomplete) = change.get(INCOMPLETE) else { return true };
    let n = |name: &str| incomplete.get(name).and_then(Value::as_u64).unwrap_or_default();
    let parts = incomplete.get("missingParts").and_then(Value::as_array).into_iter().flatten();
    let parts: Vec<String> = parts.map(Value::to_string).collect();
    render::warn(&format!(
        "change {} of workflow {} is incomplete: part {} of its {} parts (numbered from 0) missing, \
         {} of its {} differences not shown (expired or deleted)",
        render::cell(change.get("changeId")),
        render::cell(change.get("workflowId")),
        parts.join(", "),
        n("partCount"),
        n("missingDifferences"),
        render::cell(change.get("differenceCount")),
    ));
    false
}

/// `kadoa changes show`: exits 1 when a part of the change is missing.
pub async fn show_change(context: &Context, args: &ShowArgs) -> Result<bool, Error> {
    let store = context.store()?;
    let workflow = match &args.workflow {
        Some(workflow) => Some(workflow.clone()),
        None => find_workflow(&store, args).await?,
    };
    let found = match &workflow {
        Some(workflow) => store.change_with_differences(&args.id, Some(workflow)).await?,
        None => None,
    };
    let Some(change) = found else {
        let id = crate::error::bounded(args.id.clone());
        return Err(Error::invalid(match (&args.workflow, &args.since) {
            (Some(_), _) => format!("no change {id:?} is stored for that workflow"),
            (None, Some(since)) => format!("no change {id:?} created since {since}"),
            (None, None) => format!(
                "no change {id:?} created in the last {SHOW_DAYS} days (--since looks further back, \
                 --workflow reads it directly)"
            ),
        }));
    };
    let whole = whole(&change);
    let change = with_rule_alert(&store, change).await?;
    match context.format {
        Some(Format::Json) => {
            print_exact(&serde_json::to_string_pretty(&change).map_err(|e| Error::internal("json", e))?)?
        }
        Some(Format::Jsonl) => print_exact(&Value::Object(change).to_string())?,
        Some(Format::Csv) => {
            write_rows(&mut csv::Writer::from_writer(std::io::stdout().lock()), &[change], true, false)?
        }
        None => {
            let field = |name: &str| render::cell(change.get(name));
            render::say(Some(("change", 1)), &field("changeId"))?;
            render::say(None, &format!("  workflow:    {} {}", field("workflowId"), field("workflowName")))?;
            render::say(
                None,
                &format!(
                    "  created:     {} (received {} by {})",
                    field("createdAt"),
                    field("receivedAt"),
                    field("arrival")
                ),
            )?;
            render::say(None, &format!("  url:         {}", field("url")))?;
            render::say(None, &format!("  differences: {}", counts(&change)))?;
            if let Some(alert) = change.get(RULE_ALERT) {
                render::say(None, &format!("  rule alert:  {}", rule_alert_line(alert)))?;
            }
            render::print_differences(&change)?;
        }
    }
    Ok(whole)
}

/// Where `changes show` puts a change's rule alert: what was sent, when, to whom.
const RULE_ALERT: &str = "ruleAlert";

/// `change` with its rule alert, when it met alert rules: the record of what was sent, or
/// `{"status": "due"}` while it has not gone yet.
async fn with_rule_alert(store: &Store, mut change: Row) -> Result<Row, Error> {
    if change.get(crate::table::change::MATCHED).is_none() {
        return Ok(change);
    }
    let (workflow, id) = (render::cell(change.get("workflowId")), render::cell(change.get("changeId")));
    let alert = match store.change_alert(&workflow, &id).await? {
        Some(mut record) => {
            for key in ["pk", "sk", "entity", "workflowId", "changeId", "createdAt", "workflowName", "url", "expiresAt"]
            {
                record.remove(key);
            }
            Value::Object(record)
        }
        None => json!({"status": "due"}),
    };
    change.insert(RULE_ALERT.into(), alert);
    Ok(change)
}

/// `sent 2025-01-15T10:31:02.000Z to email: Product Monitor: price 24.99 -> 19.99 (below 20)`
fn rule_alert_line(alert: &Value) -> String {
    let field = |name: &str| render::cell(alert.get(name));
    match field("status").as_str() {
        "sent" => format!("sent {} to {}: {}", field("alertedAt"), field("notify"), field("subject")),
        _ => "due, not sent yet (the next delivery, replay or reconciliation of this change sends it)".to_owned(),
    }
}

/// The workflow of change `args.id`, found in the `timeline` index's days since `--since`
/// (or the last [`SHOW_DAYS`]): the rows of those days are read, not the table.
async fn find_workflow(store: &Store, args: &ShowArgs) -> Result<Option<String>, Error> {
    let window = Window { since: args.since.clone(), ..Window::default() };
    let (since, buckets) = window_buckets(&window, timeline::CHANGE_PREFIX, SHOW_DAYS)?;
    let id = args.id.trim();
    for bucket in &buckets {
        let question = TimelineQuery {
            bucket,
            time: Some(("createdAt", Some(&since), None)),
            change_id: Some(id),
            ..TimelineQuery::default()
        };
        let mut found = None;
        store
            .each_in_timeline(&question, |row| {
                found = found.take().or_else(|| row.get("workflowId").and_then(Value::as_str).map(str::to_owned));
                Ok(())
            })
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// The CSV of `changes`: one row per difference field, each cell safe to open in a
/// spreadsheet ([`render::csv_cell`]) unless `exact`.
fn write_rows<W: std::io::Write>(
    writer: &mut csv::Writer<W>,
    changes: &[Row],
    header: bool,
    exact: bool,
) -> Result<(), Error> {
    const HEADER: [&str; 8] = ["workflowId", "changeId", "createdAt", "index", "type", "key", "value", "previousValue"];
    let text = |value: Option<&Value>| match value {
        None => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    if header {
        writer.write_record(HEADER).map_err(|e| Error::internal("csv", e))?;
    }
    for change in changes {
        for difference in change.get("differences").and_then(Value::as_array).into_iter().flatten() {
            for field in difference["fields"].as_array().into_iter().flatten() {
                let record = [
                    text(change.get("workflowId")),
                    text(change.get("changeId")),
                    text(change.get("createdAt")),
                    text(difference.get("index")),
                    text(difference.get("type")),
                    text(field.get("key")),
                    text(field.get("value")),
                    text(field.get("previousValue")),
                ];
                let record = record.iter().map(|cell| if exact { cell.into() } else { render::csv_cell(cell) });
                writer.write_record(record.map(|cell| cell.into_owned())).map_err(|e| Error::internal("csv", e))?;
            }
        }
    }
    writer.flush()?;
    Ok(())
}

/// `kadoa export`: every change of the window with its differences, streamed; exits 1 when
/// a part of one is missing.
pub async fn export(context: &Context, args: &ExportArgs) -> Result<bool, Error> {
    let store = context.store()?;
    let format = context.format.unwrap_or(Format::Jsonl);
    if args.csv_exact && format != Format::Csv {
        return Err(Error::invalid("--csv-exact is for --output csv"));
    }
    // Each page written as it arrives: memory holds one page, whatever the table's size.
    let bar = render::progress(None, "changes exported");
    let mut pages = ChangePages::new(&store, &window(&args.window)?, None)?;
    let mut writer = csv::Writer::from_writer(std::io::stdout().lock());
    let (mut first, mut all_whole) = (true, true);
    if format == Format::Json {
        print_exact("[")?;
    }
    while let Some(page) = pages.next().await? {
        for row in page {
            let change = whole_change(&store, without_index_keys(row)).await?;
            all_whole &= whole(&change);
            match format {
                Format::Csv => write_rows(&mut writer, std::slice::from_ref(&change), first, args.csv_exact)?,
                // One array, still written a change at a time.
                Format::Json => print_exact(&format!("{}{}", if first { "" } else { "," }, Value::Object(change)))?,
                Format::Jsonl => print_exact(&Value::Object(change).to_string())?,
            }
            first = false;
            bar.inc(1);
        }
    }
    if first && format == Format::Csv {
        write_rows(&mut writer, &[], true, args.csv_exact)?;
    }
    if format == Format::Json {
        print_exact("]")?;
    }
    bar.finish_and_clear();
    Ok(all_whole)
}

/// A listed change with its differences: as read (a change item read whole), or read now
/// (an index row, or a change in parts).
pub(super) async fn whole_change(store: &Store, mut row: Row) -> Result<Row, Error> {
    if row.get("differences").is_some() {
        // Said only by the reading of parts, never by what was stored.
        row.remove(INCOMPLETE);
        return Ok(row);
    }
    let id = render::cell(row.get("changeId"));
    let workflow = render::cell(row.get("workflowId"));
    Ok(store.change_with_differences(&id, Some(&workflow)).await?.unwrap_or(row))
}

fn event_listing(rows: Vec<Row>) -> Listing {
    let rows = rows
        .into_iter()
        .map(|mut row| {
            if let Some(subject) = row.get("alert").and_then(|a| a.get("subject")).cloned() {
                // An item read whole; an index row has `alertSubject` already.
                row.insert("alertSubject".into(), subject);
            }
            row
        })
        .collect();
    Listing {
        columns: vec![
            ("time", "timestamp"),
            ("workflow", "workflowId"),
            ("event", "eventType"),
            ("status", "status"),
            ("arrival", "arrival"),
            ("alert", "alertSubject"),
        ],
        rows,
        colour: None,
    }
}

/// `kadoa events`
pub async fn events(context: &Context, args: &EventsArgs) -> Result<bool, Error> {
    let store = context.store()?;
    let window = Window { workflow: args.workflow.clone(), since: args.since.clone(), until: None };
    let mut follow = Follow { last_poll: Timestamp::now(), newest: None, seen: HashMap::new() };
    let mut rows = read_events(&store, &window).await?;
    rows.sort_by_key(|row| std::cmp::Reverse(render::cell(row.get("timestamp"))));
    if !args.follow {
        render::print(&event_listing(rows.into_iter().map(without_index_keys).collect()), context.format, None)?;
        return Ok(true);
    }
    // Oldest first while following, each new event a line as it is stored.
    rows.reverse();
    let format = context.format.unwrap_or(Format::Jsonl);
    loop {
        for row in rows {
            if !follow.is_new(&row) {
                continue;
            }
            let row = without_index_keys(row);
            match (format, context.format) {
                (_, None) => render::say(
                    None,
                    &format!(
                        "{}  {:<28} {:<12} {}  {}",
                        render::cell(row.get("timestamp")),
                        render::cell(row.get("eventType")),
                        render::cell(row.get("status")),
                        render::cell(row.get("workflowId")),
                        render::cell(
                            row.get("alert").and_then(|a| a.get("subject")).or(row.get(timeline::ALERT_SUBJECT))
                        )
                    ),
                )?,
                _ => print_exact(&Value::Object(row).to_string())?,
            }
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
        rows = match &args.workflow {
            Some(_) => {
                // One workflow's partition: the last day of event time, read again (what was
                // printed is skipped).
                let mut window = window.clone();
                let look_back = Timestamp::now().plus_millis(-FOLLOW_LOOK_BACK_MS).map(Timestamp::to_key_string);
                window.since = match (&args.since, look_back) {
                    (Some(since), Some(back)) => Some(since.clone().max(back)),
                    (since, back) => since.clone().or(back),
                };
                let mut rows = read_events(&store, &window).await?;
                rows.sort_by_key(|row| render::cell(row.get("timestamp")));
                rows
            }
            None => follow.poll(&store, args.since.as_deref()).await?,
        };
    }
}

/// What `events --follow` has seen, so that each poll reads only what was written since.
struct Follow {
    /// When the last poll started (this machine's clock).
    last_poll: Timestamp,
    /// The newest position read (AWS's clock).
    newest: Option<String>,
    /// The events printed, by key, and their positions.
    seen: HashMap<String, String>,
}

impl Follow {
    /// Whether `row` was not printed yet (and now counts as printed).
    fn is_new(&mut self, row: &Row) -> bool {
        let position = render::cell(row.get(timeline::POSITION));
        if self.newest.as_ref().is_none_or(|newest| *newest < position) && row.contains_key(timeline::POSITION) {
            self.newest = Some(position.clone());
        }
        let key = format!("{}|{}", render::cell(row.get("pk")), render::cell(row.get("sk")));
        self.seen.insert(key, position).is_none()
    }

    /// Every event written since the last poll (less [`FOLLOW_MARGIN_MS`], and never after
    /// the newest already read), dated within a day of now: the days' partitions of the
    /// `timeline` index, from that position on. Nothing older is read.
    async fn poll(&mut self, store: &Store, since: Option<&str>) -> Result<Vec<Row>, Error> {
        let now = Timestamp::now();
        let margin = self.last_poll.plus_millis(-FOLLOW_MARGIN_MS).map(Timestamp::to_key_string).unwrap_or_default();
        let after = match &self.newest {
            Some(newest) => newest.clone().min(margin),
            None => margin,
        };
        self.last_poll = now;
        self.seen.retain(|_, position| *position >= after);
        let window = Window { since: Some(days_back(1).unwrap_or_default()), ..Window::default() };
        let (_, buckets) = window_buckets(&window, timeline::EVENT_PREFIX, 1)?;
        let mut rows = Vec::new();
        for bucket in &buckets {
            let question = TimelineQuery {
                bucket,
                after: Some(&after),
                time: since.map(|since| ("timestamp", Some(since), None)),
                ..TimelineQuery::default()
            };
            store
                .each_in_timeline(&question, |row| {
                    rows.push(row);
                    Ok(())
                })
                .await?;
        }
        rows.sort_by_key(|row| render::cell(row.get(timeline::POSITION)));
        Ok(rows)
    }
}

/// The events of `window`: one workflow's (`eventsByTime`), or every event of its days
/// (`--since`, or the last [`RECENT_DAYS`]) in the `timeline` index.
async fn read_events(store: &Store, window: &Window) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
    if window.workflow.is_none() {
        let (since, buckets) = window_buckets(window, timeline::EVENT_PREFIX, RECENT_DAYS)?;
        for bucket in &buckets {
            let question =
                TimelineQuery { bucket, time: Some(("timestamp", Some(&since), None)), ..TimelineQuery::default() };
            store
                .each_in_timeline(&question, |row| {
                    rows.push(row);
                    Ok(())
                })
                .await?;
        }
        return Ok(rows);
    }
    let mut start = None;
    loop {
        let page = store.events_page(window, false, start, None).await?;
        rows.extend(page.rows.into_iter().filter(|r| r.get("entity").and_then(Value::as_str) != Some("change")));
        match page.next {
            Some(next) => start = Some(next),
            None => return Ok(rows),
        }
    }
}
