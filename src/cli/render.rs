//! How the command answers: a table (coloured on a terminal) by default, or JSON, JSON
//! lines or CSV with `--output`. One place renders a change's differences, for `kadoa
//! changes show` and `make show` alike.

use std::io::{IsTerminal, Write};

use comfy_table::{presets, ContentArrangement, Table};
use serde_json::{Map, Value};

use crate::error::Error;

/// `--output`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
}

/// A listing: its columns, and each row as the JSON object machine output prints.
pub struct Listing {
    /// Column titles and the JSON field each shows.
    pub columns: Vec<(&'static str, &'static str)>,
    /// The rows.
    pub rows: Vec<Map<String, Value>>,
}

/// Whether standard output is a terminal that takes colours.
pub fn colours() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` in `colour` (an ANSI code: 31 red, 32 green, 33 yellow, 2 dim) on a terminal.
pub fn paint(text: &str, colour: u8) -> String {
    if colours() {
        format!("\u{1b}[{colour}m{text}\u{1b}[0m")
    } else {
        text.to_owned()
    }
}

/// A value as a cell: strings as they are, the rest as JSON, `-` for nothing.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// Prints `listing` as `format` asks (a table without one). `title`, when given, heads the
/// table; machine output carries no titles.
pub fn print(listing: &Listing, format: Option<Format>, title: Option<&str>) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let written = match format {
        None => {
            if let Some(title) = title {
                writeln!(out, "{}", paint(title, 1))?;
            }
            if listing.rows.is_empty() {
                writeln!(out, "  (none)")
            } else {
                writeln!(out, "{}", table(listing))
            }
        }
        Some(Format::Json) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&listing.rows).map_err(|e| Error::internal("json", e))?)
        }
        Some(Format::Jsonl) => listing.rows.iter().try_for_each(|row| writeln!(out, "{}", Value::Object(row.clone()))),
        Some(Format::Csv) => {
            let mut writer = csv::Writer::from_writer(&mut out);
            let header: Vec<&str> = listing.columns.iter().map(|(_, field)| *field).collect();
            let rows = listing.rows.iter().map(|row| listing.columns.iter().map(|(_, f)| cell(row.get(*f))).collect());
            write_csv(&mut writer, &header, rows)?;
            Ok(())
        }
    };
    written.map_err(Error::from)
}

/// Writes a CSV header and rows.
pub fn write_csv<W: Write>(
    writer: &mut csv::Writer<W>,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), Error> {
    writer.write_record(header).map_err(|e| Error::internal("csv", e))?;
    for row in rows {
        writer.write_record(&row).map_err(|e| Error::internal("csv", e))?;
    }
    writer.flush().map_err(Error::from)
}

fn table(listing: &Listing) -> Table {
    let mut table = Table::new();
    table
        .load_style(if std::io::stdout().is_terminal() {
            presets::UTF8_FULL_CONDENSED
        } else {
            presets::ASCII_MARKDOWN
        })
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(listing.columns.iter().map(|(title, _)| *title));
    for row in &listing.rows {
        table.add_row(listing.columns.iter().map(|(_, field)| cell(row.get(*field))));
    }
    table
}

/// A change's differences as `make show` has always shown them: one line per difference,
/// `+` added, `-` removed, `~` changed, each field `key: value` (`old → new` when changed).
pub fn differences(change: &Map<String, Value>) -> String {
    let mut lines = Vec::new();
    for difference in change.get("differences").and_then(Value::as_array).into_iter().flatten() {
        let kind = difference["type"].as_str().unwrap_or("?");
        let (mark, colour) = match kind {
            "added" => ("+", 32),
            "removed" => ("-", 31),
            "changed" => ("~", 33),
            _ => ("?", 2),
        };
        let fields: Vec<String> = difference["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|field| {
                let key = field["key"].as_str().unwrap_or("?");
                let value = shown(&field["value"]);
                match field.get("previousValue") {
                    Some(previous) if kind == "changed" => format!("{key}: {} → {value}", shown(previous)),
                    _ => format!("{key}: {value}"),
                }
            })
            .collect();
        lines.push(format!("  {} {}", paint(mark, colour), fields.join(", ")));
    }
    lines.join("\n")
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// Reports `error` on standard error (and as JSON on standard output with `--output`).
pub fn error(error: &Error, format: Option<Format>) {
    let text = error.detail();
    let _ = writeln!(std::io::stderr().lock(), "kadoa: {text}");
    if matches!(format, Some(Format::Json | Format::Jsonl)) {
        let _ = writeln!(std::io::stdout().lock(), "{}", serde_json::json!({"error": text}));
    }
}

/// A progress bar on standard error, shown only on a terminal.
pub fn progress(length: Option<u64>, message: &'static str) -> indicatif::ProgressBar {
    let bar = match length {
        Some(length) => indicatif::ProgressBar::new(length),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_message(message);
    bar
}
