//! What each of `kadoa`'s views reads, counted by DynamoDB (each Query's and Scan's
//! `ScannedCount`, each item a Get returned) through a proxy, on a seeded table (20
//! workflows, changes of about 2 KB) that then grows fourfold with older history: every
//! view reads what it shows, so the count stays flat. `events --follow` reads nothing old
//! after its first poll, and `export`'s peak memory stays flat while its output grows.
//! With --nocapture it prints the figures (docs/kadoa-cli.md holds them).

#![allow(clippy::print_stdout)] // The figures, with --nocapture.

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::StreamExt;
use kadoa_webhook::envelope::Envelope;
use kadoa_webhook::events::DataChange;
use kadoa_webhook::outcome::{Arrival, EventStatus};
use kadoa_webhook::table::change::ChangePlan;
use kadoa_webhook::table::event_log::EventRecord;
use kadoa_webhook::table::{timeline, Item, Receipt};
use kadoa_webhook::timestamp::Timestamp;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::support::moto::moto;
use crate::support::reads::{ReadCounter, Reads};
use crate::support::Harness;

const WORKFLOWS: usize = 20;
/// Changes created in the last two days: what the views show.
const RECENT: usize = 100;
const SMALL: usize = 400;
const LARGE: usize = 4 * SMALL;
/// Events older than the views' windows, per thousand changes.
const OLD_EVENTS_PER_1000: usize = 250;

fn stack_env(harness: &Harness, endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("TABLE_NAME", harness.table.clone()),
        // A starved moto must not time out views that are not about time (docs/tests.md).
        (kadoa_webhook::aws::PATIENCE_VARIABLE, "60".to_owned()),
    ]
}

fn kadoa(args: &[&str], env: &[(&'static str, String)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kadoa"));
    command.args(args).env_clear().envs(env.iter().map(|(k, v)| (*k, v.as_str()))).current_dir(std::env::temp_dir());
    command
}

fn ago(minutes: i64) -> Timestamp {
    Timestamp::now().plus_millis(-minutes * 60_000).unwrap()
}

/// Change `n`'s items as the receiver builds them, about 2 KB, in the index as if
/// written when received.
fn change_item(n: usize, created: Timestamp) -> Item {
    let differences: Vec<Value> = (0..10)
        .map(|i| {
            json!({"type": "changed", "fields": [
            {"key": "price", "value": 10.5 + i as f64, "previousValue": 9.5 + i as f64},
            {"key": "name", "value": format!("Product number {i} of change {n}, a longer name"),
             "previousValue": format!("Produkt {i} of change {n}, ein längerer Name")}]})
        })
        .collect();
    let at = created.to_key_string();
    let body = json!({"eventType": "workflow_data_change", "timestamp": at,
        "data": {"id": format!("change-{n}"), "workflowId": format!("wf_{}", n % WORKFLOWS), "createdAt": at,
                 "url": "https://shop.example/products", "differences": differences,
                 "metadata": {"workflowName": "Shop"}}})
    .to_string();
    let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
    let receipt = Receipt::new(created, 0, Arrival::Webhook);
    let mut item = ChangePlan::new(&DataChange::parse(&envelope).unwrap(), &envelope, receipt, None).unwrap().change;
    timeline::stamp(&mut item, created);
    item
}

fn old_event(n: usize, at: Timestamp) -> Item {
    let body = json!({"eventType": "workflow_finished", "timestamp": at.to_key_string(),
        "data": {"workflowId": format!("wf_{}", n % WORKFLOWS), "jobId": format!("job-{n}")}})
    .to_string();
    let envelope = Envelope::parse(body.as_bytes(), None).unwrap();
    let receipt = Receipt::new(at, 0, Arrival::Webhook);
    let workflow = format!("wf_{}", n % WORKFLOWS);
    let mut item =
        EventRecord::with_payload(&envelope, Some(&workflow), receipt, EventStatus::Stored).to_item().unwrap();
    timeline::stamp(&mut item, at);
    item
}

/// Writes `items` 25 a call, a few calls at once.
async fn seed(harness: &Harness, items: Vec<Item>) {
    seed_raw(harness, items.into_iter().map(kadoa_webhook::store::to_dynamodb).collect()).await;
}

async fn seed_raw(harness: &Harness, items: Vec<crate::support::Item>) {
    let batches: Vec<Vec<crate::support::Item>> = items.chunks(25).map(<[_]>::to_vec).collect();
    futures::stream::iter(batches)
        .map(|batch| async move {
            let mut requests: Vec<WriteRequest> = batch
                .into_iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                        .build()
                })
                .collect();
            while !requests.is_empty() {
                let output =
                    harness.dynamodb.batch_write_item().request_items(&harness.table, requests).send().await.unwrap();
                requests = output.unprocessed_items.and_then(|mut u| u.remove(&harness.table)).unwrap_or_default();
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
}

/// Older history: changes 40 to 400 days old, and old events, numbered from `from`.
fn history(from: usize, to: usize) -> Vec<Item> {
    let mut items: Vec<Item> = (from..to).map(|n| change_item(n, ago(60 * 24 * (40 + (n % 360) as i64)))).collect();
    let events = (from..to).step_by(1000 / OLD_EVENTS_PER_1000);
    items.extend(events.map(|n| old_event(n, ago(60 * 24 * (40 + (n % 360) as i64) + 7))));
    items
}

/// The recent part the views show: changes of the last two days, a failure per workflow
/// (through the receiver: health items and alerts as deployed), account events.
async fn seed_recent(harness: &Harness) {
    seed(harness, (0..RECENT).map(|n| change_item(n, ago(10 * n as i64 + 5))).collect()).await;
    let failures = (0..WORKFLOWS).map(|w| {
        json!({"eventType": "workflow_failed", "timestamp": ago(w as i64 + 1).to_key_string(),
            "data": {"workflowId": format!("wf_{w}"), "workflowName": "Shop", "reason": "blocked"}})
    });
    let account = (0..10).map(|n| {
        json!({"eventType": "credits_low", "timestamp": ago(60 * n + 30).to_key_string(),
            "data": {"message": format!("{n} credits left")}})
    });
    let bodies: Vec<String> = failures.chain(account).map(|b| b.to_string()).collect();
    futures::stream::iter(bodies.iter())
        .for_each_concurrent(8, |body| async move {
            assert_eq!(harness.deliver(body).await.0, 200);
        })
        .await;
}

#[derive(Debug)]
struct Figures {
    status: u64,
    events: u64,
    list: u64,
    show: u64,
    export_kb: u64,
}

/// Runs `kadoa args`, through the counter; its output and what it read.
async fn run(counter: &ReadCounter, env: &[(&'static str, String)], args: &[&str]) -> (String, Reads) {
    counter.take();
    let output = kadoa(args, env).output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.code().is_some_and(|c| c <= 1), "{args:?}: {output:?}");
    (text, counter.take())
}

/// `kadoa export`'s peak resident memory (VmHWM, KB) and the changes it wrote.
async fn export_peak(env: &[(&'static str, String)]) -> (u64, usize) {
    let mut child =
        kadoa(&["export", "-o", "jsonl"], env).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let lines = tokio::spawn(async move {
        let mut text = Vec::new();
        stdout.read_to_end(&mut text).await.unwrap();
        text.iter().filter(|&&b| b == b'\n').count()
    });
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
        peak = peak.max(hwm.unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lines = lines.await.unwrap();
    (peak, lines)
}

async fn figures(harness: &Harness, counter: &ReadCounter, total: usize) -> Figures {
    let env = stack_env(harness, &counter.endpoint);
    let (text, status) = run(counter, &env, &["status", "-o", "json"]).await;
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["workflows"].as_array().unwrap().len(), WORKFLOWS, "{text}");
    assert_eq!(answer["accountEvents"].as_array().unwrap().len(), 10);

    // The last two days (the default is a week: fewer queries of moto, whose every query
    // of an index walks the whole table).
    let since = ago(2 * 24 * 60).to_key_string();
    let (text, events) = run(counter, &env, &["events", "--since", &since, "-o", "jsonl"]).await;
    assert_eq!(text.lines().count(), WORKFLOWS + 10, "the window's events");
    let (text, list) = run(counter, &env, &["changes", "list", "--since", &since, "-o", "jsonl"]).await;
    assert_eq!(text.lines().count(), RECENT, "the window's changes: {}", &text[..text.len().min(600)]);
    let (text, show) = run(counter, &env, &["changes", "show", "change-50", "--since", &since, "-o", "json"]).await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["changeId"], "change-50");

    let (export_kb, exported) = export_peak(&stack_env(harness, &moto().endpoint)).await;
    assert_eq!(exported, total, "every change exported");
    Figures { status: status.items, events: events.items, list: list.items, show: show.items, export_kb }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_reads_what_it_shows_as_the_table_grows_fourfold() {
    let harness = Harness::new().await;
    let counter = ReadCounter::start(&moto().endpoint).await;
    seed_recent(&harness).await;
    seed(&harness, history(RECENT, SMALL)).await;
    let small = figures(&harness, &counter, SMALL).await;
    seed(&harness, history(SMALL, LARGE)).await;
    let large = figures(&harness, &counter, LARGE).await;

    println!("Items DynamoDB read per view ({WORKFLOWS} workflows, changes of about 2 KB; none with --workflow):");
    println!("  {:32} {:>14} {:>14}", "view", format!("{SMALL} changes"), format!("{LARGE} changes"));
    let rows = [
        ("kadoa status", small.status, large.status),
        ("kadoa events --since (2 days)", small.events, large.events),
        ("kadoa changes list --since", small.list, large.list),
        ("kadoa changes show ID --since", small.show, large.show),
        ("kadoa export, peak memory (KB)", small.export_kb, large.export_kb),
    ];
    for (view, at_small, at_large) in rows {
        println!("  {view:32} {at_small:>14} {at_large:>14}");
    }
    for (view, at_small, at_large) in &rows[..4] {
        assert!(at_large <= at_small, "{view} read {at_small} items, then {at_large} on a table four times larger");
        assert!(*at_small > 0, "{view} read nothing: the counter is broken");
    }
    // Memory grows with what one page holds, not with the table: the export's output grew
    // fourfold, by about 2.5 MB, and holding it all as JSON would add several times that.
    // The slack is the allocator's and a page's: pinned to a busy core, the same export
    // measured up to 4.3 MB apart from one run to the next.
    assert!(large.export_kb < small.export_kb + 8 * 1024, "export's peak memory: {small:?} then {large:?}");

    follow_reads_nothing_old(&harness, &counter).await;
}

/// `events --follow` prints the week's events, then each poll reads only what was written
/// after the last one: a new event, and nothing of the thousands already there.
async fn follow_reads_nothing_old(harness: &Harness, counter: &ReadCounter) {
    // What was written just before the first poll may be read again once (the index shows
    // writes a moment late): start well after the seeding.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let env = stack_env(harness, &counter.endpoint);
    let mut follow =
        kadoa(&["events", "--follow", "-o", "jsonl"], &env).stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut out = tokio::io::BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..WORKFLOWS + 10 {
        line.clear();
        tokio::time::timeout(Duration::from_secs(60), out.read_line(&mut line)).await.unwrap().unwrap();
    }
    // The first poll printed the week; from here on, only new writes may be read.
    tokio::time::sleep(Duration::from_secs(1)).await;
    counter.take();
    let now = Timestamp::now().to_key_string();
    let recovered = json!({"eventType": "workflow_recovered", "timestamp": now, "data": {"workflowId": "wf_7"}});
    assert_eq!(harness.deliver(&recovered.to_string()).await.0, 200);
    line.clear();
    tokio::time::timeout(Duration::from_secs(30), out.read_line(&mut line)).await.unwrap().unwrap();
    assert!(line.contains("workflow_recovered") && line.contains("wf_7"), "{line}");
    // One more poll, with nothing new.
    tokio::time::sleep(Duration::from_secs(3)).await;
    follow.kill().await.unwrap();
    let reads = counter.take();
    assert!(reads.calls >= 2, "it polled: {reads:?}");
    assert!(reads.keys.iter().all(|sk| sk.contains("workflow_recovered")), "only the new event was read: {reads:?}");
    assert_eq!(reads.items, reads.keys.len() as u64, "nothing read and filtered out: {reads:?}");
    println!("  kadoa events --follow, after its first poll: {} items read in {} calls", reads.items, reads.calls);
}

/// An item as a table written before the `timeline` index holds it.
fn before_the_index(mut item: crate::support::Item) -> crate::support::Item {
    for name in [timeline::BUCKET, timeline::POSITION, timeline::ALERT_SUBJECT] {
        item.remove(name);
    }
    item
}

#[tokio::test]
async fn backfill_puts_older_items_in_the_index_once() {
    let harness = Harness::new().await;
    let env = stack_env(&harness, &moto().endpoint);
    let failed = json!({"eventType": "workflow_failed", "timestamp": ago(30).to_key_string(),
        "data": {"workflowId": "wf_old", "workflowName": "Shop", "reason": "blocked"}});
    assert_eq!(harness.deliver(&failed.to_string()).await.0, 200);
    // The same items as the layout before the index wrote them: no bucket, no position.
    let mut old = Vec::new();
    for item in harness.items_of("event").await.into_iter().chain(harness.items_of("health").await) {
        old.push(before_the_index(item));
    }
    old.push(before_the_index(kadoa_webhook::store::to_dynamodb(change_item(1, ago(90)))));
    seed_raw(&harness, old).await;
    let since = ago(2 * 24 * 60).to_key_string();
    let views = |since: String| {
        let env = env.clone();
        async move {
            let status = kadoa(&["status", "-o", "json"], &env).output().await.unwrap();
            let events = kadoa(&["events", "--since", &since, "-o", "jsonl"], &env).output().await.unwrap();
            let changes = kadoa(&["changes", "list", "--since", &since, "-o", "jsonl"], &env).output().await.unwrap();
            let status: Value = serde_json::from_slice(&status.stdout).unwrap();
            (
                status["workflows"].as_array().unwrap().len(),
                String::from_utf8_lossy(&events.stdout).into_owned(),
                String::from_utf8_lossy(&changes.stdout).lines().count(),
            )
        }
    };
    // Before: the table-wide views do not show them (one workflow's views do).
    assert_eq!(views(since.clone()).await, (0, String::new(), 0));

    let run = kadoa(&["backfill", "--rate", "1000", "-o", "json"], &env).output().await.unwrap();
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!((report["added"].as_u64(), report["alreadyThere"].as_u64()), (Some(3), Some(0)), "{report}");
    let (workflows, events, changes) = views(since).await;
    assert_eq!((workflows, changes), (1, 1));
    assert!(
        events.contains("workflow_failed") && events.contains("Kadoa: workflow failed"),
        "with its alert: {events}"
    );

    // Idempotent: a second run finds nothing to do; a bad resume key is refused.
    let again: Value =
        serde_json::from_slice(&kadoa(&["backfill", "-o", "json"], &env).output().await.unwrap().stdout).unwrap();
    assert_eq!(again["added"], 0, "{again}");
    let bad = kadoa(&["backfill", "--resume", "nope"], &env).output().await.unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--resume takes the key"), "{bad:?}");
}
