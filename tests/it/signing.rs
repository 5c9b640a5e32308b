//! Every request is signed over the body it carries: the app hashes bodies itself (AWS-LC,
//! `kadoa_webhook::aws::BodyHash`) and hands the hash to the SDK's signer, so each signature
//! sent is checked against one the SDK's signer computes from scratch over the request as
//! sent. moto accepts any signature; AWS would refuse a request whose body hash is wrong.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::config::Credentials;
use serde_json::{json, Value};

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

#[tokio::test]
async fn every_request_is_signed_over_the_body_it_carries() {
    let harness = Harness::with(Options { through_proxy: true, spool: true, ..Options::default() }).await;
    // A small change (one transaction), a large one (read, batches, conditional put), an
    // alert (claim, publish, commit), and a delivery spooled while DynamoDB is away.
    for body in [change("c-small", 3), change("c-large", 150), fixture_body("workflow_failed.json")] {
        assert_eq!(harness.deliver(&body).await.0, 200);
    }
    harness.proxy.as_ref().unwrap().set_up(false);
    assert_eq!(harness.deliver(&change("c-spooled", 2)).await.1["status"], "queued");

    let credentials = Credentials::new("testing", "testing", None, None, "tests");
    let sent = harness.signed.take();
    let mut operations = BTreeSet::new();
    for request in &sent {
        let (expected, carried) = request.signatures(&credentials);
        assert_eq!(carried, expected, "{} is signed over another body", request.operation());
        operations.insert(request.operation());
    }
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

    // The check can fail: one byte of a body changed, and the signatures differ.
    let mut tampered = sent.into_iter().find(|r| r.operation().ends_with("BatchWriteItem")).unwrap();
    let last = tampered.body.len() - 2;
    tampered.body[last] = b' ';
    let (expected, carried) = tampered.signatures(&credentials);
    assert_ne!(carried, expected);
}
