//! A test's AWS resources on moto, created by scripts/local_aws.py as `make dev` creates
//! its own: one place that reads template.yaml for the table, topic, spool and secret.

use std::process::Stdio;

use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::moto::{moto, python};

/// What was created: names, URLs and ARNs.
#[derive(Debug, Deserialize)]
pub struct Resources {
    pub table: String,
    pub topic_arn: String,
    /// A queue subscribed to the topic: every alert people would get.
    pub inbox_url: String,
    pub spool_url: Option<String>,
    pub dead_letter_url: Option<String>,
    pub bucket: Option<String>,
    pub secret_arn: Option<String>,
}

/// Creates the resources named with `suffix`: with `spool`, the spool (its queue redriving
/// after `max_receives` receives); with `secret`, a Secrets Manager secret holding it.
pub async fn create(suffix: &str, spool: bool, max_receives: usize, secret: Option<&str>) -> Resources {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local_aws.py");
    let mut child = tokio::process::Command::new(python())
        .args([script, "create"])
        .env("AWS_ENDPOINT_URL", &moto().endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}; run `make test`, which installs its tools"));
    let spec = json!({"suffix": suffix, "spool": spool, "max_receives": max_receives, "secret": secret});
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(spec.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success(), "local_aws.py create failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}
