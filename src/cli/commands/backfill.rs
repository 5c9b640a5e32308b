//! `kadoa backfill`: items stored before the `timeline` index (a stack upgraded from an
//! earlier layout) are not in it, so the table-wide views would not show them. This scans
//! the table once, a page at a time, and gives each change, event and health item that
//! lacks them its `bucket` and `position` (and an alerted event its `alertSubject`).
//! Idempotent (an item already in the index is left as it is, by a condition), paced
//! (`--rate`), and resumable (`--resume` with the key it prints).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};

use super::{report, Context};
use crate::cli::render;
use crate::cli::BackfillArgs;
use crate::error::Error;

/// Items looked at per page of the scan.
const PAGE: i32 = 100;

/// Runs `kadoa backfill`.
pub async fn run(context: &Context, args: &BackfillArgs) -> Result<bool, Error> {
    let store = context.store()?;
    let mut start = args.resume.as_deref().map(decode).transpose()?;
    let (mut looked_at, mut added, mut already) = (0usize, 0usize, 0usize);
    let began = Instant::now();
    let bar = render::progress(None, "items put in the timeline index");
    loop {
        let resume = start.as_ref().map(encode).unwrap_or_default();
        let stopped = |e: Error| match resume.is_empty() {
            true => e,
            false => Error::invalid(format!("{}; go on with kadoa backfill --resume '{resume}'", e.detail())),
        };
        let (rows, seen, next) = store.backfill_page(start.take(), PAGE).await.map_err(stopped)?;
        looked_at += seen;
        for row in &rows {
            match store.backfill_item(row).await.map_err(stopped)? {
                true => added += 1,
                false => already += 1,
            }
            // At most `rate` writes a second, on average since the start.
            let due = Duration::from_secs_f64((added + already) as f64 / f64::from(args.rate));
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                tokio::time::sleep(wait).await;
            }
            bar.inc(1);
        }
        match next {
            Some(next) => {
                bar.set_message(&format!("looked at {looked_at}; resume key {}", encode(&next)));
                start = Some(next);
            }
            None => break,
        }
    }
    bar.finish_and_clear();
    let steps = [
        ("looked at".to_owned(), format!("{looked_at} items")),
        ("added to the timeline index".to_owned(), added.to_string()),
        ("already there".to_owned(), already.to_string()),
    ];
    report(context, &steps, json!({"lookedAt": looked_at, "added": added, "alreadyThere": already}))?;
    Ok(true)
}

/// A scan's key as text to pass back: `{"pk": …, "sk": …}`.
fn encode(key: &HashMap<String, AttributeValue>) -> String {
    let plain: serde_json::Map<String, Value> =
        key.iter().filter_map(|(name, value)| Some((name.clone(), json!(value.as_s().ok()?)))).collect();
    Value::Object(plain).to_string()
}

fn decode(text: &str) -> Result<HashMap<String, AttributeValue>, Error> {
    let bad = || Error::invalid("--resume takes the key an interrupted kadoa backfill printed");
    let Value::Object(map) = serde_json::from_str(text).map_err(|_| bad())? else { return Err(bad()) };
    let key: HashMap<String, AttributeValue> = map
        .into_iter()
        .filter_map(|(name, value)| Some((name, AttributeValue::S(value.as_str()?.to_owned()))))
        .collect();
    match key.contains_key("pk") && key.contains_key("sk") && key.len() == 2 {
        true => Ok(key),
        false => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_key_reads_back_as_written() {
        let key = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("WORKFLOW#w\"1".into())),
            ("sk".to_owned(), AttributeValue::S("HEALTH".into())),
        ]);
        assert_eq!(decode(&encode(&key)).unwrap(), key);
        assert!(decode("{\"pk\":\"x\"}").is_err());
        assert!(decode("nope").is_err());
    }
}
