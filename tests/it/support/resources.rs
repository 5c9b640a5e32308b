//! A test's AWS resources on moto, created by scripts/local_aws.py as `make dev` creates
//! its own: one place that reads template.yaml for the table, topic, spool and secret.
//! One Python process serves the whole test run (a JSON spec a line in, a line out).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde::Deserialize;
use serde_json::json;

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
    /// With a bus: the bus, the table's stream, and a queue per rule of local_aws.py's
    /// BUS_RULES (`all`, `price`, `failures`).
    pub bus_arn: Option<String>,
    pub stream_arn: Option<String>,
    pub bus_queues: Option<std::collections::BTreeMap<String, String>>,
}

struct Creator {
    _process: Child,
    specs: ChildStdin,
    created: BufReader<ChildStdout>,
}

static CREATOR: OnceLock<Mutex<Creator>> = OnceLock::new();

fn creator() -> &'static Mutex<Creator> {
    CREATOR.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local_aws.py");
        let mut process = Command::new(python())
            .args([script, "create"])
            .env("AWS_ENDPOINT_URL", &moto().endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}; run `make test`, which installs its tools"));
        let specs = process.stdin.take().unwrap();
        let created = BufReader::new(process.stdout.take().unwrap());
        Mutex::new(Creator { _process: process, specs, created })
    })
}

/// Creates the resources named with `suffix`: with `spool`, the spool (its queue redriving
/// after `max_receives` receives); with `secret`, a Secrets Manager secret holding it.
pub async fn create(suffix: &str, spool: bool, max_receives: usize, secret: Option<&str>, bus: bool) -> Resources {
    let spec = json!({"suffix": suffix, "spool": spool, "max_receives": max_receives, "secret": secret, "bus": bus});
    serde_json::from_value(ask(spec).await).unwrap()
}

/// The records written to `stream_arn` since the last call, as the Lambda event of a
/// DynamoDB stream trigger.
pub async fn stream_event(stream_arn: &str) -> serde_json::Value {
    ask(json!({"op": "stream", "stream_arn": stream_arn})).await
}

async fn ask(spec: serde_json::Value) -> serde_json::Value {
    tokio::task::spawn_blocking(move || {
        // A test that panicked while holding the lock left the process as it was.
        let mut creator = creator().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        writeln!(creator.specs, "{spec}").unwrap();
        let mut line = String::new();
        creator.created.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "local_aws.py create stopped (see its error above)");
        serde_json::from_str(&line).unwrap()
    })
    .await
    .unwrap()
}
