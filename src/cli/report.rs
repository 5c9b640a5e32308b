//! What a command answers, as a value: each long command builds a typed report, and one
//! renderer ([`write`]) draws any report. `--output json` is the report serialised
//! (indented; `jsonl` on one line), `--output csv` its main [`Listing`], and without
//! `--output` its [`Block`]s as text for people, every character from outside shown
//! ([`render::shown`]).

use std::io::Write;

use serde::Serialize;
use serde_json::{Map, Value};

use super::render::{self, Format, Listing, Style};
use crate::error::Error;

/// A command's answer.
pub trait Report: Serialize {
    /// What a person reads, in order.
    fn blocks(&self) -> Result<Vec<Block>, Error>;

    /// The table `--output csv` writes.
    fn listing(&self) -> Result<Listing, Error>;
}

/// A piece of a report as people read it.
pub enum Block {
    /// A table under a title (`(none)` when it has no rows).
    Table {
        /// Its title.
        title: String,
        /// Its columns and rows.
        listing: Listing,
    },
    /// A line: the command's own words in a colour (an ANSI code), then text.
    Line {
        /// The leading words and their colour.
        lead: Option<(&'static str, u8)>,
        /// The rest of the line.
        text: String,
    },
}

impl Block {
    /// A plain line.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Line { lead: None, text: text.into() }
    }

    /// A line that begins with `lead` in `colour`.
    pub fn led(lead: &'static str, colour: u8, text: impl Into<String>) -> Self {
        Self::Line { lead: Some((lead, colour)), text: text.into() }
    }
}

/// Prints `report` to standard output as `format` asks.
pub fn emit(report: &impl Report, format: Option<Format>) -> Result<(), Error> {
    write(report, format, Style::stdout(), &mut std::io::stdout().lock())
}

/// The one renderer: `report` written to `out` as `format` asks, drawn in `style` for
/// people.
pub fn write(report: &impl Report, format: Option<Format>, style: Style, out: &mut impl Write) -> Result<(), Error> {
    let json = |text: Result<String, serde_json::Error>| text.map_err(|e| Error::internal("json", e));
    match format {
        None => draw(&report.blocks()?, style, out),
        Some(Format::Json) => Ok(writeln!(out, "{}", json(serde_json::to_string_pretty(report))?)?),
        Some(Format::Jsonl) => Ok(writeln!(out, "{}", json(serde_json::to_string(report))?)?),
        Some(Format::Csv) => render::write_listing(out, &report.listing()?, Some(Format::Csv), None, style),
    }
}

/// `blocks` as text.
fn draw(blocks: &[Block], style: Style, out: &mut impl Write) -> Result<(), Error> {
    for block in blocks {
        match block {
            Block::Table { title, listing } => render::write_listing(out, listing, None, Some(title), style)?,
            Block::Line { lead, text } => writeln!(out, "{}", render::line(*lead, text, style))?,
        }
    }
    Ok(())
}

/// `items` as the JSON objects a [`Listing`] holds: the fields a report serialises are the
/// fields its tables show.
pub fn rows<T: Serialize>(items: &[T]) -> Result<Vec<Map<String, Value>>, Error> {
    items
        .iter()
        .map(|item| match serde_json::to_value(item) {
            Ok(Value::Object(row)) => Ok(row),
            Ok(other) => Err(Error::internal("report", format!("a row is not an object: {other}"))),
            Err(e) => Err(Error::internal("json", e)),
        })
        .collect()
}

/// One step a command took, and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What it was about (`channel`, `secret`, an event type, …).
    pub step: String,
    /// What happened.
    pub result: String,
}

impl Step {
    /// `step`: `result`.
    pub fn new(step: impl Into<String>, result: impl Into<String>) -> Self {
        Self { step: step.into(), result: result.into() }
    }
}

/// A report of steps and what they came to: a line per step for people, `step,result`
/// rows in CSV, and in JSON `{"steps": [{"step", "result"}, …]}` with the outcome's
/// fields beside `steps`.
#[derive(Debug, Serialize)]
pub struct Steps<O: Serialize> {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What they came to (serialised as an object).
    #[serde(flatten)]
    pub outcome: O,
}

impl<O: Serialize> Report for Steps<O> {
    fn blocks(&self) -> Result<Vec<Block>, Error> {
        Ok(self.steps.iter().map(|Step { step, result }| Block::led("•", 36, format!("{step}: {result}"))).collect())
    }

    fn listing(&self) -> Result<Listing, Error> {
        Ok(Listing { columns: vec![("step", "step"), ("result", "result")], rows: rows(&self.steps)?, colour: None })
    }
}

/// `report` as `format` writes it, without colours or a terminal (for the reports' tests).
#[cfg(test)]
pub fn written(report: &impl Report, format: Option<Format>) -> String {
    let mut out = Vec::new();
    write(report, format, Style::PLAIN, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Outcome {
        finished: bool,
        moved_count: u32,
    }

    fn steps() -> Steps<Outcome> {
        Steps {
            steps: vec![Step::new("channel", "ch\u{1b}]0;x\u{7} updated"), Step::new("secret", "=kept")],
            outcome: Outcome { finished: true, moved_count: 2 },
        }
    }

    #[test]
    fn steps_are_drawn_one_line_each_with_what_came_from_outside_shown() {
        assert_eq!(written(&steps(), None), "• channel: ch\\x1b]0;x\\x07 updated\n• secret: =kept\n");
    }

    #[test]
    fn only_the_commands_own_words_are_coloured() {
        let mut out = Vec::new();
        write(&steps(), None, Style { colour: true, terminal: false }, &mut out).unwrap();
        let first = String::from_utf8(out).unwrap().lines().next().map(str::to_owned);
        assert_eq!(first.as_deref(), Some("\u{1b}[36m•\u{1b}[0m channel: ch\\x1b]0;x\\x07 updated"));
    }

    #[test]
    fn steps_serialise_every_field_beside_the_outcome() {
        let expected = json!({"steps": [{"step": "channel", "result": "ch\u{1b}]0;x\u{7} updated"},
            {"step": "secret", "result": "=kept"}], "finished": true, "movedCount": 2});
        for format in [Format::Json, Format::Jsonl] {
            let text = written(&steps(), Some(format));
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected, "{format:?}");
            assert_eq!(text.lines().count() == 1, format == Format::Jsonl, "{text}");
        }
    }

    #[test]
    fn steps_in_csv_are_rows_a_spreadsheet_will_not_run() {
        assert_eq!(
            written(&steps(), Some(Format::Csv)),
            "step,result\nchannel,ch\\x1b]0;x\\x07 updated\nsecret,'=kept\n"
        );
    }
}
