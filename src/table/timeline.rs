//! The `timeline` index: the table-wide views (every workflow's changes or events, newest
//! first, in a window; every workflow's health) read it instead of scanning the table.
//!
//! One sparse index, `bucket` / `position`, three kinds of partitions:
//! - `CHANGE#<YYYY-MM-DD>`: the change items created that day (UTC, `createdAt`);
//! - `EVENT#<YYYY-MM-DD>`: the event-log items dated that day (`timestamp`; a data change's
//!   record is its change item, under `CHANGE#`);
//! - `HEALTH`: one entry per workflow's health item, its position the workflow's key.
//!
//! A day a partition keeps writes spread over partitions as days pass and lets a window
//! read only its own days. Inside a day, `position` is `<time written>#<16 hex of the
//! item's key>`: what `events --follow` asks for ("written after what I last saw") even
//! for an event stored late (replayed, reconciled), whose own time is older.

use super::{Attr, Item, ENTITY_CHANGE, ENTITY_EVENT};
use crate::timestamp::Timestamp;

/// The index's name (template.yaml).
pub const INDEX: &str = "timeline";
/// Its partition key.
pub const BUCKET: &str = "bucket";
/// Its sort key.
pub const POSITION: &str = "position";
/// Bucket prefix of change items.
pub const CHANGE_PREFIX: &str = "CHANGE#";
/// Bucket prefix of event items.
pub const EVENT_PREFIX: &str = "EVENT#";
/// The bucket of every health item: a directory of the workflows.
pub const HEALTH_BUCKET: &str = "HEALTH";
/// An event's alert subject, beside its `alert`: the index projects the subject alone
/// (the whole alert, with the e-mail's text, would cost write units per event).
pub const ALERT_SUBJECT: &str = "alertSubject";

/// `<prefix><YYYY-MM-DD>` of a key-form time (`2025-01-15T…`); `None` when `time` is not one.
pub fn bucket_of(prefix: &str, time: &str) -> Option<String> {
    let day = time.get(..10)?;
    let digits = day.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    digits.then(|| format!("{prefix}{day}"))
}

/// `<time written>#<16 hex of pk and sk>`.
pub fn position(written: Timestamp, pk: &str, sk: &str) -> String {
    let key = format!("{pk}\n{sk}");
    format!("{}#{}", written.to_key_string(), crate::digest::short_hash(key.as_bytes()))
}

/// The bucket and position `item` takes in the index, written at `written`: change and
/// event items by their time, others none (health items get theirs in their update).
pub fn entry_of(item: &Item, written: Timestamp) -> Option<(String, String)> {
    let text = |name: &str| match item.get(name) {
        Some(Attr::S(text)) => Some(text.as_str()),
        _ => None,
    };
    let bucket = match text("entity")? {
        ENTITY_CHANGE => bucket_of(CHANGE_PREFIX, text("createdAt")?)?,
        ENTITY_EVENT => bucket_of(EVENT_PREFIX, text("timestamp")?)?,
        _ => return None,
    };
    Some((bucket, position(written, text("pk")?, text("sk")?)))
}

/// Puts `item` in the index (see [`entry_of`]); an item that has no place there is left as it is.
pub fn stamp(item: &mut Item, written: Timestamp) {
    if let Some((bucket, position)) = entry_of(item, written) {
        item.insert(BUCKET.into(), Attr::S(bucket));
        item.insert(POSITION.into(), Attr::S(position));
    }
}

/// The days (`YYYY-MM-DD`) from `since` to `until` (key-form times or dates), newest
/// first; `None` when either is not a time.
pub fn days(since: &str, until: &str) -> Option<Vec<String>> {
    let day = |text: &str| Timestamp::parse_rfc3339(&format!("{}T00:00:00Z", text.get(..10)?));
    let (first, last) = (day(since)?, day(until)?);
    let mut days = Vec::new();
    let mut at = last;
    while at >= first {
        days.push(at.to_key_string().get(..10)?.to_owned());
        at = at.plus_millis(-86_400_000)?;
    }
    Some(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::keyed;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn changes_and_events_go_to_their_day_others_nowhere() {
        let mut change = keyed("WORKFLOW#w".into(), "CHANGE#c#".into(), ENTITY_CHANGE);
        change.insert("createdAt".into(), Attr::s("2025-01-15T10:30:00.000Z"));
        stamp(&mut change, at("2025-01-16T00:00:01Z"));
        assert_eq!(change[BUCKET], Attr::s("CHANGE#2025-01-15"));
        let Attr::S(position) = &change[POSITION] else { panic!() };
        assert!(position.starts_with("2025-01-16T00:00:01.000Z#") && position.len() == 24 + 1 + 16, "{position}");

        let mut event = keyed("ACCOUNT".into(), "EVENT#x".into(), ENTITY_EVENT);
        event.insert("timestamp".into(), Attr::s("2025-01-14T23:59:59.999Z"));
        stamp(&mut event, at("2025-01-16T00:00:01Z"));
        assert_eq!(event[BUCKET], Attr::s("EVENT#2025-01-14"));

        let mut part = keyed("WORKFLOW#w".into(), "CHANGE#c#PART#v#0000".into(), "changePart");
        stamp(&mut part, at("2025-01-16T00:00:01Z"));
        assert!(!part.contains_key(BUCKET));
        let mut odd = keyed("WORKFLOW#w".into(), "CHANGE#d#".into(), ENTITY_CHANGE);
        odd.insert("createdAt".into(), Attr::s("soon"));
        stamp(&mut odd, at("2025-01-16T00:00:01Z"));
        assert!(!odd.contains_key(BUCKET), "no day, no entry");
    }

    #[test]
    fn positions_sort_by_the_time_written_and_differ_by_item() {
        let early = position(at("2025-01-16T00:00:01Z"), "WORKFLOW#w", "CHANGE#z#");
        let late = position(at("2025-01-16T00:00:02Z"), "WORKFLOW#w", "CHANGE#a#");
        assert!(early < late);
        assert_ne!(position(at("2025-01-16T00:00:01Z"), "A", "B"), position(at("2025-01-16T00:00:01Z"), "A", "C"));
    }

    #[test]
    fn a_window_is_its_days_newest_first() {
        let days = days("2024-12-30T10:00:00.000Z", "2025-01-02").unwrap();
        assert_eq!(days, ["2025-01-02", "2025-01-01", "2024-12-31", "2024-12-30"]);
        assert_eq!(super::days("2025-01-02", "2025-01-01").unwrap(), Vec::<String>::new());
        assert!(super::days("nope", "2025-01-01").is_none());
    }
}
