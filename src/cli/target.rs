//! Which stack the command operates: its table, topic, secret, queues and URL.
//!
//! In order: the environment's own variables (`TABLE_NAME`, …) win over everything; then
//! the stack named by `--stack` / `KADOA_STACK`, read from CloudFormation's outputs; then
//! the local stack that `make dev` wrote into this checkout's `.local/dev.env` (never the
//! working directory's; its endpoint only on loopback); then `samconfig.toml`'s
//! `stack_name`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Where `make dev` writes the local stack's settings.
pub const LOCAL_ENV: &str = ".local/dev.env";

/// The stack's resources, as the command needs them.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Where the settings came from, for messages.
    pub source: String,
    /// The table.
    pub table: Option<String>,
    /// The alert topic.
    pub topic_arn: Option<String>,
    /// The webhook secret.
    pub secret_arn: Option<String>,
    /// The spool queue.
    pub spool_url: Option<String>,
    /// The spool's dead-letter queue.
    pub dead_letter_url: Option<String>,
    /// The webhook's URL.
    pub webhook_url: Option<String>,
    /// The header that carries the secret.
    pub auth_header: String,
    /// The spool's bucket (large bodies).
    pub spool_bucket: Option<String>,
}

/// (environment variable, stack output) for each setting.
pub const SETTINGS: &[(&str, &str)] = &[
    ("TABLE_NAME", "TableName"),
    ("ALERT_TOPIC_ARN", "AlertTopicArn"),
    ("WEBHOOK_SECRET_ARN", "WebhookSecretArn"),
    ("SPOOL_QUEUE_URL", "SpoolQueueUrl"),
    ("SPOOL_DEAD_LETTER_QUEUE_URL", "SpoolDeadLetterQueueUrl"),
    ("WEBHOOK_URL", "WebhookUrl"),
    ("AUTH_HEADER_NAME", "AuthHeaderName"),
    ("SPOOL_BUCKET", "SpoolBucketName"),
];

impl Target {
    /// A required setting, or an error naming where to set it.
    pub fn need<'a>(&self, value: &'a Option<String>, what: &str, variable: &str) -> Result<&'a str, Error> {
        value.as_deref().ok_or_else(|| {
            Error::invalid(format!("no {what} for {}: set {variable}, or name the stack with --stack", self.source))
        })
    }

    /// The table, which every command but `connect --dry-run` needs.
    pub fn table(&self) -> Result<&str, Error> {
        self.need(&self.table, "table", "TABLE_NAME")
    }
}

/// How the stack was named.
pub enum StackChoice {
    /// `--stack` or `KADOA_STACK`.
    Named(String),
    /// The local stack of this checkout (see [`local_env_path`]): its settings, keyed by
    /// stack output name as [`resolve`] takes them.
    Local(HashMap<String, String>),
    /// `samconfig.toml`'s `stack_name`.
    Configured(String),
    /// None: the environment alone.
    None,
}

/// The variables the local stack's file may set in this process (where unset) for the
/// AWS SDK, which reads them from the environment. Nothing else in the file reaches the
/// environment: not `KADOA_API_URL`, not a Kadoa key, not `RUST_LOG`.
const LOCAL_AWS_VARIABLES: &[&str] = &["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

/// The local stack's file of the checkout this binary was built from. `make dev` writes
/// it there; a `.local/dev.env` in the working directory is anyone's (a cloned repository,
/// a shared folder), so it is not read unless it is this same file. It is read only while
/// the command runs inside that checkout.
pub fn local_env_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(LOCAL_ENV)
}

/// Chooses the stack. For the local stack, its AWS settings (a loopback endpoint, the
/// local credentials) go into this process's environment where unset, since the SDK reads
/// them there. Called before any AWS client is built.
pub fn choose(stack: Option<&str>) -> Result<StackChoice, Error> {
    if let Some(stack) = stack {
        return Ok(StackChoice::Named(stack.to_owned()));
    }
    if std::env::var_os("TABLE_NAME").is_some() {
        return Ok(StackChoice::None);
    }
    let own = local_env_path();
    warn_about_a_foreign_local_env(&own);
    // Only inside the checkout: elsewhere the command means the stack samconfig.toml names,
    // or the one given, not whatever `make dev` last left running.
    let text = if working_in_the_checkout() { std::fs::read_to_string(&own).ok() } else { None };
    if let Some(text) = text {
        let local = parse_local_env(&text);
        ensure_loopback(local.get("AWS_ENDPOINT_URL").map(String::as_str), &own)?;
        for name in LOCAL_AWS_VARIABLES {
            if let (Some(value), None) = (local.get(*name), std::env::var_os(name)) {
                // Single-threaded still: no client or task has been started.
                std::env::set_var(name, value);
            }
        }
        let outputs = SETTINGS
            .iter()
            .filter_map(|(variable, output)| Some(((*output).to_owned(), local.get(*variable)?.clone())))
            .collect();
        return Ok(StackChoice::Local(outputs));
    }
    Ok(match samconfig_stack(Path::new("samconfig.toml")) {
        Some(stack) => StackChoice::Configured(stack),
        None => StackChoice::None,
    })
}

/// Whether the working directory is this binary's checkout or inside it.
fn working_in_the_checkout() -> bool {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize();
    let here = std::env::current_dir().and_then(|here| here.canonicalize());
    matches!((checkout, here), (Ok(checkout), Ok(here)) if here.starts_with(&checkout))
}

/// Says on standard error that a `.local/dev.env` in the working directory, other than
/// this checkout's, is ignored: an operator who meant it learns why it had no effect.
fn warn_about_a_foreign_local_env(own: &Path) {
    let here = Path::new(LOCAL_ENV);
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if here.is_file() && !same(here, own) {
        eprintln!(
            "note: ignoring {LOCAL_ENV} in the working directory; the local stack is read only from {}",
            own.display()
        );
    }
}

/// `NAME=value` lines, as `make dev` writes them; comments and other lines are skipped.
fn parse_local_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The local stack's AWS endpoint must be on this machine: requests to it are signed with
/// whatever credentials the environment holds.
fn ensure_loopback(endpoint: Option<&str>, file: &Path) -> Result<(), Error> {
    let loopback = endpoint.and_then(|endpoint| reqwest::Url::parse(endpoint).ok()).is_some_and(|url| {
        let host = url.host_str().unwrap_or_default();
        let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
        matches!(url.scheme(), "http" | "https")
            && (host.eq_ignore_ascii_case("localhost") || ip.is_ok_and(|ip| ip.is_loopback()))
    });
    if loopback {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{}: AWS_ENDPOINT_URL {:?} is not on this machine (127.0.0.0/8, ::1 or localhost); the local stack's \
         endpoint must be, so it is not used",
        file.display(),
        crate::error::bounded(endpoint.unwrap_or("(missing)").to_owned())
    )))
}

/// `stack_name = "…"` from samconfig.toml, if there is one.
fn samconfig_stack(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == "stack_name").then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The target: the stack's outputs (`outputs`, for a named or configured stack) under the
/// environment's variables.
pub fn resolve(source: String, outputs: &HashMap<String, String>) -> Target {
    let pick = |(variable, output): &(&str, &str)| {
        std::env::var(variable).ok().filter(|v| !v.trim().is_empty()).or_else(|| outputs.get(*output).cloned())
    };
    let [table, topic_arn, secret_arn, spool_url, dead_letter_url, webhook_url, auth_header, spool_bucket] =
        [0, 1, 2, 3, 4, 5, 6, 7].map(|i| SETTINGS.get(i).and_then(pick));
    Target {
        source,
        table,
        topic_arn,
        secret_arn,
        spool_url,
        dead_letter_url,
        webhook_url,
        auth_header: auth_header.unwrap_or_else(|| "authorization".to_owned()).to_ascii_lowercase(),
        spool_bucket,
    }
}

/// The outputs of `stack`, from CloudFormation.
pub async fn stack_outputs(
    client: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<HashMap<String, String>, Error> {
    let output = client.describe_stacks().stack_name(stack).send().await.map_err(|e| {
        Error::invalid(format!("stack {stack}: {}", crate::aws::sdk_error("DescribeStacks", e).detail()))
    })?;
    let outputs = output
        .stacks()
        .first()
        .map(|stack| stack.outputs())
        .unwrap_or_default()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect();
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samconfig_names_the_default_stack() {
        assert_eq!(
            samconfig_stack(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/samconfig.toml"))).as_deref(),
            Some("kadoa-webhook")
        );
        assert_eq!(samconfig_stack(Path::new("/nonexistent/samconfig.toml")), None);
    }

    #[test]
    fn the_local_stack_endpoint_must_be_loopback() {
        let file = Path::new("dev.env");
        for endpoint in ["http://127.0.0.1:5000", "http://127.9.8.7", "http://[::1]:4566/", "http://LOCALHOST:5000"] {
            assert!(ensure_loopback(Some(endpoint), file).is_ok(), "{endpoint}");
        }
        for endpoint in [
            "http://192.0.2.1:9",
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://127.0.0.1.attacker.example",
            "http://localhost.attacker.example",
            "http://10.0.0.1",
            "http://[::ffff:8.8.8.8]",
            "file:///etc/passwd",
            "not a url",
        ] {
            let error = ensure_loopback(Some(endpoint), file).unwrap_err();
            assert!(error.detail().contains("is not on this machine"), "{endpoint}: {}", error.detail());
        }
        assert!(ensure_loopback(None, file).is_err(), "a local stack without an endpoint would be AWS itself");
    }

    #[test]
    fn only_named_settings_are_read_from_the_local_file() {
        let local = parse_local_env("# made by make dev\nTABLE_NAME = t\nKADOA_API_URL=https://x\nnoise\n");
        assert_eq!(local.get("TABLE_NAME").map(String::as_str), Some("t"));
        assert!(!LOCAL_AWS_VARIABLES.contains(&"KADOA_API_URL") && !LOCAL_AWS_VARIABLES.contains(&"KADOA_API_KEY"));
        assert!(!SETTINGS.iter().any(|(variable, _)| variable.starts_with("KADOA_")));
    }

    #[test]
    fn the_local_stack_is_this_checkouts_own() {
        assert_eq!(local_env_path(), Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/dev.env"));
        assert!(local_env_path().is_absolute(), "never relative to the working directory");
    }
}
