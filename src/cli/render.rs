//! How the command answers: a table (coloured on a terminal) by default, or JSON, JSON
//! lines or CSV with `--output`. One place renders a change's differences, for `kadoa
//! changes show` and `make show` alike.
//!
//! Ids, names, values and reasons come from scraped pages that anyone can write. Human
//! output reaches the terminal only through [`print()`]'s tables, [`say`], [`error`] and
//! [`Progress`], which make every control character visible ([`shown`]); CSV cells go
//! through [`csv_cell`]. JSON and JSON lines are left exact: their format escapes.

use std::borrow::Cow;
use std::fmt::Write as _;
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
    /// On a terminal, one column's cells coloured by their value.
    pub colour: Option<ColumnColour>,
}

/// A column (its JSON field) and the ANSI colour code of each of its cells, by their text.
pub type ColumnColour = (&'static str, fn(&str) -> u8);

/// Whether `c` would act on a terminal instead of being shown: C0 controls (ESC, BEL, BS,
/// CR, LF, TAB, …), DEL, C1 controls (U+009B is the 8-bit CSI), and Unicode's bidi
/// controls, which reorder the text around them.
fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with the characters `escape` picks written as `\x1b` (ASCII) or `\u{9b}`.
fn escaped(text: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match (escape(c), c.is_ascii()) {
            (false, _) => out.push(c),
            (true, true) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            (true, false) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// `text` as a terminal may show it: every control character written out (`\x1b`,
/// `\x07`, `\u{9b}`, `\u{202e}`, …), so that nothing in it acts on the terminal (writes
/// the clipboard, retitles the window, clears the screen, overwrites the line). Shown
/// twice, text is shown the same (backslashes are left as they are).
pub fn shown(text: &str) -> Cow<'_, str> {
    escaped(text, acts_on_terminal)
}

/// Whether `text` is a plain number (`12`, `-12.5`, `+3`, `1e-5`): a spreadsheet reads it as
/// a number, never as a formula.
fn is_number(text: &str) -> bool {
    fn unsigned(text: &str) -> &str {
        text.strip_prefix(['+', '-']).unwrap_or(text)
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let (mantissa, exponent) = match unsigned(text).split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(unsigned(exponent))),
        None => (unsigned(text), None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    (!whole.is_empty() || !fraction.is_empty())
        && digits(whole)
        && digits(fraction)
        && exponent.is_none_or(|e| !e.is_empty() && digits(e))
}

/// A CSV cell that a spreadsheet will not run (OWASP's rule against CSV injection): a cell
/// that begins with `=`, `+`, `-`, `@`, a tab or a CR gets a leading `'`, unless the whole
/// cell is a plain number, which stays a number. Control characters are shown as on a
/// terminal ([`shown`]), but for line breaks and tabs inside a cell, which CSV quotes.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_number(text);
    let visible = escaped(text, |c| acts_on_terminal(c) && c != '\n' && c != '\t');
    match formula {
        true => Cow::Owned(format!("'{visible}")),
        false => visible,
    }
}

/// Whether standard output is a terminal that takes colours.
pub fn colours() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// How human output is drawn: in colour or not, with a terminal's box lines or as
/// Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours ([`colours`]).
    pub colour: bool,
    /// Standard output is a terminal: tables get box lines and fit its width.
    pub terminal: bool,
}

impl Style {
    /// Plain text, as into a pipe or a file.
    pub const PLAIN: Self = Self { colour: false, terminal: false };

    /// As standard output takes it.
    pub fn stdout() -> Self {
        Self { colour: colours(), terminal: std::io::stdout().is_terminal() }
    }
}

/// `text` in `colour` (an ANSI code: 31 red, 32 green, 33 yellow, 2 dim, 1 bold) when
/// `style` takes colours.
fn paint(text: &str, colour: u8, style: Style) -> String {
    if style.colour {
        format!("\u{1b}[{colour}m{text}\u{1b}[0m")
    } else {
        text.to_owned()
    }
}

/// A value as text: strings as they are, the rest as JSON, `-` for nothing. Exact: shown
/// to a person only through the functions of this module.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// One line of human output: `lead` (the command's own words, coloured when `style` takes
/// colours), then `text`, every control character in either shown ([`shown`]).
pub fn line(lead: Option<(&str, u8)>, text: &str, style: Style) -> String {
    match lead {
        Some((lead, colour)) if text.is_empty() => paint(&shown(lead), colour, style),
        Some((lead, colour)) => format!("{} {}", paint(&shown(lead), colour, style), shown(text)),
        None => shown(text).into_owned(),
    }
}

/// Prints one [`line()`] to standard output.
pub fn say(lead: Option<(&str, u8)>, text: &str) -> Result<(), Error> {
    writeln!(std::io::stdout().lock(), "{}", line(lead, text, Style::stdout()))?;
    Ok(())
}

/// Prints `listing` as `format` asks (a table without one). `title`, when given, heads the
/// table; machine output carries no titles.
pub fn print(listing: &Listing, format: Option<Format>, title: Option<&str>) -> Result<(), Error> {
    write_listing(&mut std::io::stdout().lock(), listing, format, title, Style::stdout())
}

/// Writes `listing` to `out` as `format` asks (a table drawn in `style` without one).
pub fn write_listing(
    out: &mut impl Write,
    listing: &Listing,
    format: Option<Format>,
    title: Option<&str>,
    style: Style,
) -> Result<(), Error> {
    let written = match format {
        None => {
            if let Some(title) = title {
                writeln!(out, "{}", paint(&shown(title), 1, style))?;
            }
            if listing.rows.is_empty() {
                writeln!(out, "  (none)")
            } else {
                writeln!(out, "{}", table(listing, style))
            }
        }
        Some(Format::Json) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&listing.rows).map_err(|e| Error::internal("json", e))?)
        }
        Some(Format::Jsonl) => listing.rows.iter().try_for_each(|row| writeln!(out, "{}", Value::Object(row.clone()))),
        Some(Format::Csv) => {
            let mut writer = csv::Writer::from_writer(out);
            let header: Vec<&str> = listing.columns.iter().map(|(_, field)| *field).collect();
            let rows = listing.rows.iter().map(|row| listing.columns.iter().map(|(_, f)| cell(row.get(*f))).collect());
            write_csv(&mut writer, &header, rows)?;
            Ok(())
        }
    };
    written.map_err(Error::from)
}

/// Writes a CSV header and rows, each cell safe to open in a spreadsheet ([`csv_cell`]).
pub fn write_csv<W: Write>(
    writer: &mut csv::Writer<W>,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), Error> {
    writer.write_record(header).map_err(|e| Error::internal("csv", e))?;
    for row in rows {
        writer
            .write_record(row.iter().map(|text| csv_cell(text).into_owned()))
            .map_err(|e| Error::internal("csv", e))?;
    }
    writer.flush().map_err(Error::from)
}

fn table(listing: &Listing, style: Style) -> Table {
    let mut table = Table::new();
    if !style.terminal {
        // Not a terminal's width to fit: the table as wide as its cells.
        table.force_no_tty();
    }
    table
        .load_style(if style.terminal { presets::UTF8_FULL_CONDENSED } else { presets::ASCII_MARKDOWN })
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(listing.columns.iter().map(|(title, _)| *title));
    for row in &listing.rows {
        table.add_row(listing.columns.iter().map(|(_, field)| {
            let text = cell(row.get(*field));
            match listing.colour {
                Some((column, colour)) if column == *field => paint(&shown(&text), colour(&text), style),
                _ => shown(&text).into_owned(),
            }
        }));
    }
    table
}

/// Prints a change's differences as `make show` has always shown them: one line per
/// difference, `+` added, `-` removed, `~` changed, each field `key: value` (`old → new`
/// when changed).
pub fn print_differences(change: &Map<String, Value>) -> Result<(), Error> {
    for difference in change.get("differences").and_then(Value::as_array).into_iter().flatten() {
        let kind = difference["type"].as_str().unwrap_or("?");
        let (mark, colour) = match kind {
            "added" => ("  +", 32),
            "removed" => ("  -", 31),
            "changed" => ("  ~", 33),
            _ => ("  ?", 2),
        };
        let fields: Vec<String> = difference["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|field| {
                let key = field["key"].as_str().unwrap_or("?");
                let value = value_text(&field["value"]);
                match field.get("previousValue") {
                    Some(previous) if kind == "changed" => format!("{key}: {} → {value}", value_text(previous)),
                    _ => format!("{key}: {value}"),
                }
            })
            .collect();
        say(Some((mark, colour)), &fields.join(", "))?;
    }
    Ok(())
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// Reports `error` on standard error, shown ([`shown`]: it may quote what a page or
/// Kadoa's API said), and exactly as JSON on standard output with `--output json|jsonl`.
pub fn error(error: &Error, format: Option<Format>) {
    let text = error.detail();
    let _ = writeln!(std::io::stderr().lock(), "kadoa: {}", shown(text));
    if matches!(format, Some(Format::Json | Format::Jsonl)) {
        let _ = writeln!(std::io::stdout().lock(), "{}", serde_json::json!({"error": text}));
    }
}

/// A warning on standard error, shown ([`shown`]).
pub fn warn(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "kadoa: {}", shown(text));
}

/// A progress bar on standard error, shown only on a terminal; its messages shown
/// ([`shown`]).
pub struct Progress(indicatif::ProgressBar);

/// A progress bar of `length` steps (a spinner without), headed `message`.
pub fn progress(length: Option<u64>, message: &'static str) -> Progress {
    let bar = match length {
        Some(length) => indicatif::ProgressBar::new(length),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_message(message);
    Progress(bar)
}

impl Progress {
    /// Its message now.
    pub fn set_message(&self, message: &str) {
        self.0.set_message(shown(message).into_owned());
    }

    /// Now `length` steps long, drawn as a bar.
    pub fn set_length(&self, length: u64) {
        self.0.set_length(length);
        self.0.set_style(indicatif::ProgressStyle::default_bar());
    }

    /// One more step done.
    pub fn inc(&self, steps: u64) {
        self.0.inc(steps);
    }

    /// The spinner moves.
    pub fn tick(&self) {
        self.0.tick();
    }

    /// Done: the bar is gone.
    pub fn finish_and_clear(&self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a scraped page could carry: OSC 52 (clipboard), OSC 0 (title), OSC 8 (link),
    /// clear screen, a colour, a bare CR, backspace, BEL, the 8-bit CSI, DEL, a bidi override.
    const HOSTILE: &str = "\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}]0;pwned\u{7}\u{1b}]8;;https://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\\u{1b}[2J\u{1b}[31mred\rover\u{8}\u{7}\u{9b}31m\u{7f}\u{202e}abc\u{2066}\tz\n";

    #[test]
    fn shown_text_carries_no_control_character() {
        let text = shown(HOSTILE);
        assert!(!text.chars().any(acts_on_terminal), "{text}");
        assert_eq!(
            text,
            "\\x1b]52;c;ZXZpbA==\\x07\\x1b]0;pwned\\x07\\x1b]8;;https://evil.example\\x1b\\link\\x1b]8;;\\x1b\\\
             \\x1b[2J\\x1b[31mred\\x0dover\\x08\\x07\\u{9b}31m\\x7f\\u{202e}abc\\u{2066}\\x09z\\x0a"
        );
        assert_eq!(shown(&text), text, "shown twice, the same");
        assert!(matches!(shown("Café → 2, a\\b"), Cow::Borrowed("Café → 2, a\\b")), "plain text untouched");
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_quoted() {
        for (cell, written) in [
            ("=HYPERLINK(\"https://evil.example\",\"x\")", "'=HYPERLINK(\"https://evil.example\",\"x\")"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
            ("-2+3", "'-2+3"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "'\\x0d=1+1"),
            ("-", "'-"),
            ("+.", "'+."),
            ("-1e", "'-1e"),
        ] {
            assert_eq!(csv_cell(cell), written, "{cell:?}");
        }
    }

    #[test]
    fn csv_numbers_and_plain_text_stay_as_they_are() {
        for cell in
            ["-12.5", "+3", "-0", "12", "1.50", "-.5", "1e400", "-1E-7", "19.99", "Café", "a=b", "", "two\nlines\tx"]
        {
            assert_eq!(csv_cell(cell), cell, "{cell:?}");
        }
        assert_eq!(csv_cell("a\u{1b}[2Jb\u{9b}"), "a\\x1b[2Jb\\u{9b}", "control characters shown");
    }
}
