//! What a data change costs in DynamoDB, computed from the requests as sent, against the
//! targets of the data model (issue 18): at most 3 write units and 1 call for a 10-difference
//! change; for a 3000-difference change, at most 1.25 write units per KB of differences and
//! at most 5 calls. Side by side, the same delivery stored the way this receiver used to
//! (one item per difference and an event-log item, in one transaction up to 98
//! differences, in batches beyond) and the way a plain BatchWriteItem receiver does (one
//! item per difference and one per change, 25 per call). `make cost` prints the table.

#![allow(clippy::print_stdout)] // `make cost` prints the figures.

use serde_json::{json, Value};

use crate::support::sent::{bill, index_entries, index_units, item_size, items_put, units};
use crate::support::Harness;

/// A change shaped as `make profile`'s: a price and a name per difference.
fn change(id: &str, differences: usize) -> (String, usize) {
    let differences: Vec<Value> = (0..differences)
        .map(|i| {
            json!({"type": "changed", "fields": [
                {"key": "price", "value": 10.5 + i as f64, "previousValue": 9.5 + i as f64},
                {"key": "name", "value": format!("Product {i}"), "previousValue": format!("Produkt {i}")}]})
        })
        .collect();
    let bytes = serde_json::to_string(&differences).unwrap().len();
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": id, "workflowId": "wf_profile", "differences": differences, "url": "https://monitored-page.com",
                 "createdAt": "2025-01-15T10:30:00Z", "metadata": {"workflowName": "Product Monitor", "tags": ["pricing"]}}});
    (body.to_string(), bytes)
}

fn s(text: &str) -> Value {
    json!({ "S": text })
}

/// The items of the per-difference layout, made from what was sent: one per difference
/// (keys, ids, index, type, fields, receipt), and the change item without its differences.
fn per_difference_items(sent: &[(String, Value)]) -> (Vec<Value>, Value) {
    let mut change = Value::Null;
    let mut differences = Vec::new();
    for (operation, body) in sent {
        let items: Vec<&Value> = match operation.as_str() {
            "PutItem" => vec![&body["Item"]],
            "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|requests| requests.as_array().unwrap())
                .map(|request| &request["PutRequest"]["Item"])
                .collect(),
            _ => vec![],
        };
        for item in items {
            if item["entity"] == s("change") {
                change = item.clone();
            }
            differences.extend(item["differences"]["L"].as_array().into_iter().flatten().cloned());
        }
    }
    let differences = differences
        .into_iter()
        .enumerate()
        .map(|(i, difference)| {
            let mut item = difference["M"].clone();
            let sk = format!("{}DIFF#{i:06}", change["sk"]["S"].as_str().unwrap());
            for name in ["pk", "workflowId", "changeId", "receivedAt"] {
                item[name] = change[name].clone();
            }
            item["sk"] = s(&sk);
            item["entity"] = s("difference");
            item
        })
        .collect();
    let object = change.as_object_mut().unwrap();
    for name in ["differences", "partVersion", "partCount", "eventKey", "eventType", "timestamp"] {
        object.remove(name);
    }
    (differences, change)
}

struct Figures {
    kb: f64,
    /// Write units of index entries: without the `timeline` index, and with it.
    index_before: usize,
    index_now: usize,
    now: (usize, usize),
    before: (usize, usize),
    plain: (usize, usize),
}

async fn figures(harness: &Harness, id: &str, count: usize) -> Figures {
    let (body, bytes) = change(id, count);
    harness.sent.take();
    assert_eq!(harness.deliver(&body).await.1["status"], "stored");
    let sent = harness.sent.take();
    let now = bill(&sent);
    let entries: Vec<(String, usize)> = items_put(&sent).into_iter().flat_map(index_units).collect();
    let index_now: usize = entries.iter().map(|(_, units)| units).sum();
    let index_before: usize = entries.iter().filter(|(index, _)| index != "timeline").map(|(_, units)| units).sum();
    let (differences, change) = per_difference_items(&sent);
    let mut event = change.clone();
    event["sk"] = s(&format!("EVENT#2025-01-15T10:30:00.000Z#workflow_data_change#{}", "0".repeat(16)));
    event["entity"] = s("event");
    let each: usize = differences.iter().map(units).sum();
    let before = match count + 2 <= 100 {
        true => (2 * (each + units(&event) + units(&change)), 1),
        false => (each + units(&event) + units(&change), 1 + (count + 1).div_ceil(25) + 1),
    };
    let plain = (each + units(&change), (count + 1).div_ceil(25));
    Figures { kb: bytes as f64 / 1024.0, index_before, index_now, now, before, plain }
}

#[tokio::test]
async fn a_change_costs_near_the_floor_in_write_units_and_calls() {
    let harness = Harness::new().await;
    let small = figures(&harness, "c-10", 10).await;
    let large = figures(&harness, "c-3000", 3000).await;
    println!(
        "DynamoDB per data change, from the requests as sent (write units, calls; on-demand, index entries below):"
    );
    println!("  {:34} {:>16} {:>22} {:>26}", "delivery", "now", "per-difference items", "plain BatchWriteItem");
    for (name, f) in [("10 differences", &small), ("3000 differences", &large)] {
        let label = format!("{name} ({:.1} KB)", f.kb);
        let cell = |(units, calls): (usize, usize)| format!("{units} WU, {calls} calls");
        println!("  {label:34} {:>16} {:>22} {:>26}", cell(f.now), cell(f.before), cell(f.plain));
    }
    println!("  3000 differences: {:.2} write units per KB of differences", large.now.0 as f64 / large.kb);
    println!("Per delivery with its index entries (changesByTime, eventsByTime; then the timeline index too):");
    for (name, f) in [("10 differences", &small), ("3000 differences", &large)] {
        println!(
            "  {name:18} items {} WU + index entries {} WU = {} WU before; + timeline {} WU = {} WU now",
            f.now.0,
            f.index_before,
            f.now.0 + f.index_before,
            f.index_now - f.index_before,
            f.now.0 + f.index_now
        );
    }

    assert!(small.now.0 <= 3 && small.now.1 == 1, "10 differences: {:?}", small.now);
    assert!(large.now.0 as f64 <= 1.25 * large.kb, "3000 differences: {:?} for {:.0} KB", large.now, large.kb);
    assert!(large.now.1 <= 5, "3000 differences: {} calls", large.now.1);
    assert!(small.before.0 > 5 * small.now.0, "the per-difference layout cost more: {:?}", small.before);
    // The timeline index adds one entry per change, of at most one write unit.
    for f in [&small, &large] {
        assert_eq!(f.index_now - f.index_before, 1, "the timeline's entry: {} then {}", f.index_before, f.index_now);
    }
}

/// Write units of the index entries what was sent writes, and the bytes its items and
/// entries store: a put item writes an entry in each index whose keys it has
/// ([`index_units`], from the template); an update of an attribute an index projects costs
/// one unit per such index (an upper bound: the item may not be in it).
fn index_units_and_bytes(sent: &[(String, Value)]) -> (usize, usize) {
    let table = &crate::support::template::resource("EventsTable")["Properties"];
    let projected: Vec<Vec<String>> = table["GlobalSecondaryIndexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|index| {
            let keys = index["KeySchema"].as_array().unwrap().iter().map(|k| &k["AttributeName"]);
            let others = index["Projection"]["NonKeyAttributes"].as_array().into_iter().flatten();
            keys.chain(others).filter_map(Value::as_str).map(str::to_owned).collect()
        })
        .collect();
    let mut index = 0;
    for (_, body) in sent.iter().filter(|(operation, _)| operation == "UpdateItem") {
        let expression = body["UpdateExpression"].as_str().unwrap_or_default().to_owned()
            + &body["ExpressionAttributeNames"].to_string();
        index += projected.iter().filter(|names| names.iter().any(|name| expression.contains(name.as_str()))).count();
    }
    let mut stored = 0;
    for item in items_put(sent) {
        // DynamoDB counts 100 bytes of overhead per item and per index entry stored.
        stored += item_size(item) + 100;
        for (_, bytes) in index_entries(item) {
            index += bytes.div_ceil(1024);
            stored += bytes;
        }
    }
    (index, stored)
}

fn health(workflow: &str, event_type: &str, at: &str) -> String {
    json!({"eventType": event_type, "timestamp": at, "data": {"workflowId": workflow, "workflowName": "Product Monitor",
        "reason": "Access blocked by bot protection", "action": "No action needed.", "url": "https://monitored-page.com"}})
    .to_string()
}

/// What `make cost` (scripts/cost.py) prices, per kind of delivery, from the requests as
/// sent: write units of the items and of their index entries, calls, bytes stored, and the
/// metric line's bytes (logged on every invocation). Written to $COST_FIGURES when set.
#[tokio::test]
async fn the_bill_per_delivery_counts_index_entries_and_the_metric_line() {
    let harness = Harness::new().await;
    let mut figures = serde_json::Map::new();
    let deliveries = [
        ("change", change("c-bill", 10).0, "stored"),
        ("duplicate", change("c-bill", 10).0, "duplicate"),
        ("failure", health("wf_bill", "workflow_failed", "2025-01-15T10:00:00Z"), "alerted"),
        ("recovery", health("wf_bill", "workflow_recovered", "2025-01-15T11:00:00Z"), "alerted"),
    ];
    for (kind, body, status) in deliveries {
        harness.sent.take();
        assert_eq!(harness.deliver(&body).await.1["status"], status, "{kind}");
        let sent = harness.sent.take();
        let (write_units, calls) = bill(&sent);
        // A duplicate's put fails its condition: its units are billed, nothing is written.
        let (index, stored) = if status == "duplicate" { (0, 0) } else { index_units_and_bytes(&sent) };
        let metric_line = harness.metrics.lines().last().map_or(0, String::len);
        println!(
            "  {kind:10} {write_units} WU + {index} WU of index entries, {calls} DynamoDB calls, {stored} bytes stored, \
             metric line {metric_line} bytes"
        );
        figures.insert(
            kind.into(),
            json!({"write_units": write_units, "index_units": index, "calls": calls, "stored_bytes": stored,
                   "metric_line_bytes": metric_line}),
        );
    }
    // A change is in both indexes (its record carries eventKey): its entries cost units.
    assert!(figures["change"]["index_units"].as_u64().unwrap() >= 2, "{figures:?}");
    assert!(figures["failure"]["index_units"].as_u64().unwrap() >= 1, "the incident is in the event log's index");
    if let Ok(path) = std::env::var("COST_FIGURES") {
        std::fs::write(path, Value::Object(figures).to_string()).unwrap();
    }
}
