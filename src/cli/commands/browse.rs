//! `kadoa changes list|show`, `kadoa export`, `kadoa events`: reading the table back.

use std::time::Duration;

use serde_json::{json, Value};

use super::{print_exact, Context};
use crate::cli::render::{self, Format, Listing};
use crate::cli::{EventsArgs, ExportArgs, ShowArgs, WindowArgs};
use crate::error::Error;
use crate::store::browse::{Row, Window, INCOMPLETE};
use crate::store::Store;

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

/// Every change in `window`, page by page, to `each`.
async fn each_change(
    store: &Store,
    window: &Window,
    mut each: impl FnMut(Row) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut start = None;
    loop {
        let page = store.changes_page(window, start, None).await?;
        for row in page.rows {
            each(row)?;
        }
        match page.next {
            Some(next) => start = Some(next),
            None => return Ok(()),
        }
    }
}

fn counts(row: &Row) -> String {
    let n = |name: &str| row.get(name).and_then(Value::as_u64).unwrap_or_default();
    format!("{} (+{} ~{} -{})", n("differenceCount"), n("addedCount"), n("changedCount"), n("removedCount"))
}

/// `kadoa changes list`
pub async fn list_changes(context: &Context, args: &WindowArgs) -> Result<bool, Error> {
    let store = context.store()?;
    let mut rows = Vec::new();
    each_change(&store, &window(args)?, |mut row| {
        if context.format.is_none() {
            row.insert("differences".into(), json!(counts(&row)));
        } else {
            row.remove("differences");
        }
        rows.push(row);
        Ok(())
    })
    .await?;
    // A scan comes in table order: newest first, as one workflow's query does.
    rows.sort_by_key(|row| std::cmp::Reverse(render::cell(row.get("createdAt"))));
    let listing = Listing {
        columns: vec![
            ("created", "createdAt"),
            ("workflow", "workflowId"),
            ("change", "changeId"),
            ("differences", if context.format.is_none() { "differences" } else { "differenceCount" }),
            ("arrival", "arrival"),
            ("url", "url"),
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
    let Some(change) = store.change_with_differences(&args.id, args.workflow.as_deref()).await? else {
        return Err(Error::invalid(format!("no change {:?} is stored", crate::error::bounded(args.id.clone()))));
    };
    let whole = whole(&change);
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
            render::print_differences(&change)?;
        }
    }
    Ok(whole)
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
    let bar = render::progress(None, "changes exported");
    let mut listed = Vec::new();
    each_change(&store, &window(&args.window)?, |row| {
        listed.push(row);
        Ok(())
    })
    .await?;
    bar.set_length(listed.len() as u64);
    let mut writer = csv::Writer::from_writer(std::io::stdout().lock());
    let (mut first, mut all_whole) = (true, true);
    if format == Format::Json {
        print_exact("[")?;
    }
    for row in listed {
        // An index row or a change in parts: the whole change, with its differences.
        let change = match row.get("differences") {
            Some(_) => {
                // Said only by the reading of parts, never by what was stored.
                let mut row = row;
                row.remove(INCOMPLETE);
                row
            }
            None => {
                let id = render::cell(row.get("changeId"));
                let workflow = render::cell(row.get("workflowId"));
                store.change_with_differences(&id, Some(&workflow)).await?.unwrap_or(row)
            }
        };
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
    if first && format == Format::Csv {
        write_rows(&mut writer, &[], true, args.csv_exact)?;
    }
    if format == Format::Json {
        print_exact("]")?;
    }
    bar.finish_and_clear();
    Ok(all_whole)
}

fn event_listing(rows: Vec<Row>) -> Listing {
    let rows = rows
        .into_iter()
        .map(|mut row| {
            if let Some(subject) = row.get("alert").and_then(|a| a.get("subject")).cloned() {
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
    let mut window = Window { workflow: args.workflow.clone(), since: args.since.clone(), until: None };
    let mut rows = read_events(&store, &window).await?;
    rows.sort_by_key(|row| std::cmp::Reverse(render::cell(row.get("timestamp"))));
    if !args.follow {
        render::print(&event_listing(rows), context.format, None)?;
        return Ok(true);
    }
    // Oldest first while following, each new event a line as it is stored.
    rows.reverse();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let format = context.format.unwrap_or(Format::Jsonl);
    loop {
        for row in rows {
            let key = format!("{}|{}", render::cell(row.get("pk")), render::cell(row.get("sk")));
            if !seen.insert(key) {
                continue;
            }
            match (format, context.format) {
                (_, None) => render::say(
                    None,
                    &format!(
                        "{}  {:<28} {:<12} {}  {}",
                        render::cell(row.get("timestamp")),
                        render::cell(row.get("eventType")),
                        render::cell(row.get("status")),
                        render::cell(row.get("workflowId")),
                        render::cell(row.get("alert").and_then(|a| a.get("subject")))
                    ),
                )?,
                _ => print_exact(&Value::Object(row).to_string())?,
            }
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
        // The last day of event time, read again (what was printed is skipped by `seen`).
        let look_back = crate::timestamp::Timestamp::now().plus_millis(-FOLLOW_LOOK_BACK_MS).map(|t| t.to_key_string());
        window.since = match (&args.since, look_back) {
            (Some(since), Some(back)) => Some(since.clone().max(back)),
            (since, back) => since.clone().or(back),
        };
        rows = read_events(&store, &window).await?;
        rows.sort_by_key(|row| render::cell(row.get("timestamp")));
    }
}

async fn read_events(store: &Store, window: &Window) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
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
