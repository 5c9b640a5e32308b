//! The pure part of a delivery, timed without any server: parse + validate + plan the
//! DynamoDB items of a data change, authenticate, format an alert. Prints figures; asserts
//! nothing about speed (timed tests flake). Run: `cargo bench --bench pure_path`.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use kadoa_webhook::alerts::{AlertMessage, AlertReason};
use kadoa_webhook::envelope::Envelope;
use kadoa_webhook::events::{DataChange, HealthEvent, HealthEventKind};
use kadoa_webhook::http::auth::{is_authorized, Secret};
use kadoa_webhook::outcome::Arrival;
use kadoa_webhook::table::change::ChangePlan;
use kadoa_webhook::table::Receipt;
use kadoa_webhook::timestamp::Timestamp;
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

fn change_body(differences: usize) -> String {
    let differences: Vec<_> = (0..differences)
        .map(|i| {
            json!({"type": "changed", "fields": [
                {"key": "price", "value": 10.5 + i as f64, "previousValue": 9.5 + i as f64},
                {"key": "name", "value": format!("Product {i}"), "previousValue": format!("Produkt {i}")}
            ]})
        })
        .collect();
    json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": "change_1", "workflowId": "wf_1", "differences": differences,
                 "metadata": {"workflowName": "Product Monitor", "tags": ["pricing"]}}})
    .to_string()
}

/// Runs `f` repeatedly for about `budget`, returns the mean time per run.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let started = Instant::now();
    let mut runs = 0u32;
    while started.elapsed() < budget {
        f();
        runs += 1;
    }
    started.elapsed() / runs
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// One run of each pure operation, in a function of its own that callgrind counts
/// (`--toggle-collect=*measured_*`, see scripts/profile.py): instruction counts that hold on
/// a noisy machine, as iai-callgrind takes them.
mod measured {
    use super::*;

    #[inline(never)]
    pub fn measured_parse_plan(body: &str, receipt: Receipt) {
        let envelope = Envelope::parse(body.as_bytes(), Some("workflow_data_change")).unwrap();
        let change = DataChange::parse(&envelope).unwrap();
        black_box(ChangePlan::new(&change, &envelope, receipt, None).unwrap());
    }

    #[inline(never)]
    pub fn measured_authenticate(headers: &HeaderMap, header: &HeaderName, secrets: &[Secret]) {
        assert!(is_authorized(black_box(headers), header, secrets));
    }

    /// SHA-256 of `data`: what SigV4 does to every request body.
    #[inline(never)]
    pub fn measured_sha256(data: &[u8]) {
        use sha2::Digest;
        black_box(sha2::Sha256::digest(black_box(data)));
    }

    #[inline(never)]
    pub fn measured_sha256_awslc(data: &[u8]) {
        black_box(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(data)));
    }

    #[inline(never)]
    pub fn measured_format_alert(event: &HealthEvent, at: Timestamp) {
        black_box(AlertMessage::health(event, at, AlertReason::Failed, false).to_sns_json());
    }
}

/// `--once NAME`: runs one operation once, for callgrind.
fn once(name: &str) {
    let receipt = Receipt::new(Timestamp::now(), 30, Arrival::Webhook);
    match name {
        "parse_plan_10" => measured::measured_parse_plan(&change_body(10), receipt),
        "parse_plan_3000" => measured::measured_parse_plan(&change_body(3000), receipt),
        "authenticate" => {
            let secrets = Secret::parse_lines("old-secret-value-0123456789\nnew-secret-value-0123456789");
            let mut headers = HeaderMap::new();
            headers.insert("authorization", HeaderValue::from_static("Bearer new-secret-value-0123456789"));
            measured::measured_authenticate(&headers, &HeaderName::from_static("authorization"), &secrets);
        }
        "format_alert" => {
            let data = json!({"workflowId": "wf_1", "workflowName": "Café Monitor 🚀", "reason": "Access blocked",
                "action": "No action needed.", "url": "https://monitored-page.com"});
            let data = serde_json::value::RawValue::from_string(data.to_string()).unwrap();
            let event = HealthEvent::parse(HealthEventKind::Failed, &data).unwrap();
            measured::measured_format_alert(&event, Timestamp::now());
        }
        "sha256_64k" => measured::measured_sha256(&vec![b'x'; 64 * 1024]),
        "sha256_64k_awslc" => measured::measured_sha256_awslc(&vec![b'x'; 64 * 1024]),
        other => panic!("no operation {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--once") {
        return once(&args[position + 1]);
    }
    let budget = Duration::from_millis(700);
    let receipt = Receipt::new(Timestamp::now(), 30, Arrival::Webhook);
    let mut per_difference = Vec::new();
    for differences in [10usize, 3000] {
        let body = change_body(differences);
        let mean = time(budget, || {
            let envelope = Envelope::parse(body.as_bytes(), Some("workflow_data_change")).unwrap();
            let change = DataChange::parse(&envelope).unwrap();
            black_box(ChangePlan::new(&change, &envelope, receipt, None).unwrap());
        });
        let per = mean / differences as u32;
        per_difference.push(per);
        println!(
            "data change, {differences:>4} differences ({:>7} bytes): parse + plan {:>9.1} µs/event, {:>6.2} µs/difference",
            body.len(),
            mean.as_secs_f64() * 1e6,
            per.as_secs_f64() * 1e6
        );
    }
    println!(
        "cost per difference, 3000 vs 10: {:.2}x (1.0 = linear)",
        per_difference[1].as_secs_f64() / per_difference[0].as_secs_f64()
    );
    println!("peak memory after the 10- and 3000-difference changes: {} MiB", peak_rss_kib() / 1024);

    // The largest body Lambda accepts: 6 MB of differences, parsed and planned once.
    // Written as text: a JSON tree of the input would itself take more memory than the plan.
    let differences: Vec<String> = (0..37_000)
        .map(|i| {
            format!(r#"{{"type":"changed","fields":[{{"key":"price","value":{i}.5,"previousValue":{i}.25}},{{"key":"name","value":"Product {i}","previousValue":"Produkt {i}"}}]}}"#)
        })
        .collect();
    let body = format!(
        r#"{{"eventType":"workflow_data_change","timestamp":"2025-01-15T10:30:00Z","data":{{"id":"change_1","workflowId":"wf_1","differences":[{}]}}}}"#,
        differences.join(",")
    );
    drop(differences);
    // Forget the peak of building the input (Linux: "5" resets VmHWM to the current RSS).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_kib();
    let started = Instant::now();
    let envelope = Envelope::parse(body.as_bytes(), Some("workflow_data_change")).unwrap();
    let change = DataChange::parse(&envelope).unwrap();
    let plan = ChangePlan::new(&change, &envelope, receipt, None).unwrap();
    println!(
        "data change of {:.1} MB ({} differences in {} parts): parse + plan {:.0} ms, peak memory {} MiB ({} MiB of it the body)",
        body.len() as f64 / 1e6,
        change.differences.len(),
        plan.parts.len(),
        started.elapsed().as_secs_f64() * 1e3,
        peak_rss_kib() / 1024,
        before / 1024
    );
    drop((plan, change, envelope));

    let secrets = Secret::parse_lines("old-secret-value-0123456789\nnew-secret-value-0123456789");
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer new-secret-value-0123456789"));
    let header = HeaderName::from_static("authorization");
    let auth = time(budget, || assert!(is_authorized(black_box(&headers), &header, &secrets)));
    println!("authenticate (bearer, 2 secrets): {:.2} µs", auth.as_secs_f64() * 1e6);

    let data = json!({"workflowId": "wf_1", "workflowName": "Café Monitor 🚀", "reason": "Access blocked by bot protection",
        "action": "No action needed.", "url": "https://monitored-page.com"});
    let data = serde_json::value::RawValue::from_string(data.to_string()).unwrap();
    let event = HealthEvent::parse(HealthEventKind::Failed, &data).unwrap();
    let at = Timestamp::now();
    let alert = time(budget, || {
        black_box(AlertMessage::health(&event, at, AlertReason::Failed, false).to_sns_json());
    });
    println!("format an alert (subject, email, SMS, SNS JSON): {:.2} µs", alert.as_secs_f64() * 1e6);
    println!("peak memory of this process: {} MiB (the function has 256 MiB)", peak_rss_kib() / 1024);
}
