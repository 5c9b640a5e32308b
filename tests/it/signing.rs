//! Every request is signed as AWS will check it: the app hashes bodies itself (AWS-LC,
//! `kadoa_webhook::aws::BodyHash`) and signs first attempts itself
//! (`kadoa_webhook::sigv4`), so each signature sent is checked against one the SDK's
//! signer (`aws-sigv4`) computes from scratch over the request as sent. moto accepts any
//! signature; AWS would refuse a request signed wrong.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::config::Credentials;
use serde_json::{json, Value};

use crate::support::signing::SentRequest;
use crate::support::{fixture_body, Harness, Options};

fn change(change_id: &str, differences: usize) -> String {
    let differences: Vec<Value> = (0..differences)
        .map(|i| json!({"type": "changed", "fields": [{"key": "name", "value": format!("Prodükt \"{i}\""), "previousValue": i}]}))
        .collect();
    json!({
        "eventType": "workflow_data_change",
        "timestamp": "2025-01-15T10:30:00Z",
        "data": {"id": change_id, "workflowId": "wf_signed", "differences": differences}
    })
    .to_string()
}

/// Every request in `sent` carries the `Authorization` `aws-sigv4` computes for it, signed
/// just now; returns the operations seen.
fn assert_signed_as_aws_checks(sent: &[SentRequest]) -> BTreeSet<String> {
    let mut operations = BTreeSet::new();
    for request in sent {
        let (expected, carried) = request.authorizations(&credentials());
        assert_eq!(carried, expected, "{} attempt {} is signed wrong", request.operation(), request.attempt());
        assert!(request.signed_seconds_ago().abs() < 60, "{}", request.operation());
        operations.insert(request.operation());
    }
    operations
}

/// The harness's credentials (with a session token, as on Lambda).
fn credentials() -> Credentials {
    crate::support::credentials()
}

#[tokio::test]
async fn every_request_is_signed_as_aws_checks_it() {
    let harness = Harness::with(Options { through_proxy: true, spool: true, ..Options::default() }).await;
    let signed_here = kadoa_webhook::sigv4::signed_here();
    // A small change (one transaction), a large one (read, batches, conditional put), an
    // alert (claim, publish, commit), and a delivery spooled while DynamoDB is away.
    for body in [change("c-small", 3), change("c-large", 150), fixture_body("workflow_failed.json")] {
        assert_eq!(harness.deliver(&body).await.0, 200);
    }
    harness.proxy.as_ref().unwrap().set_up(false);
    assert_eq!(harness.deliver(&change("c-spooled", 2)).await.1["status"], "queued");

    let sent = harness.signed.take();
    let operations = assert_signed_as_aws_checks(&sent);
    for operation in [
        "DynamoDB_20120810.TransactWriteItems",
        "DynamoDB_20120810.GetItem",
        "DynamoDB_20120810.BatchWriteItem",
        "DynamoDB_20120810.PutItem",
        "DynamoDB_20120810.UpdateItem",
        "Action=Publish",
        "AmazonSQS.SendMessage",
    ] {
        assert!(operations.contains(operation), "{operation} not sent: {operations:?}");
    }
    // First attempts are signed by the app, the outage's retries by the SDK (other tests
    // sign at the same time, so the count can only be larger).
    let first_attempts = sent.iter().filter(|r| r.attempt() == 1).count() as u64;
    assert!(first_attempts < sent.len() as u64, "the outage was retried");
    assert!(kadoa_webhook::sigv4::signed_here() - signed_here >= first_attempts);

    // The check can fail: one byte of a body changed, and the signatures differ.
    let mut tampered = sent.into_iter().find(|r| r.operation().ends_with("BatchWriteItem")).unwrap();
    let last = tampered.body.len() - 2;
    tampered.body[last] = b' ';
    let (expected, carried) = tampered.authorizations(&credentials());
    assert_ne!(carried, expected);
}

#[tokio::test]
async fn after_a_retry_requests_are_still_signed_as_aws_checks_them() {
    // DynamoDB's first answer to a transaction is lost: the retry, and the calls after it,
    // are signed by the SDK's signer.
    let lost = Some(("TransactWriteItems", 1));
    let harness = Harness::with(Options { lost_answers: lost, ..Options::default() }).await;
    for body in [change("c-small", 3), change("c-large", 150), fixture_body("workflow_failed.json")] {
        assert_eq!(harness.deliver(&body).await.0, 200);
    }
    let sent = harness.signed.take();
    assert!(sent.iter().any(|r| r.attempt() == 2), "the lost answer was retried");
    assert_signed_as_aws_checks(&sent);
}
