//! Which stack the command operates: its table, topic, secret, queues and URL.
//!
//! In order: the environment's own variables (`TABLE_NAME`, …) win over everything; then
//! the stack named by `--stack` / `KADOA_STACK`, read from CloudFormation's outputs; then,
//! next to `make dev`, `.local/dev.env` (the local stack); then `samconfig.toml`'s
//! `stack_name`.

use std::collections::HashMap;
use std::path::Path;

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
    /// `.local/dev.env`, read into the environment.
    Local,
    /// `samconfig.toml`'s `stack_name`.
    Configured(String),
    /// None: the environment alone.
    None,
}

/// Chooses the stack, and with `.local/dev.env`, puts its settings (the local AWS
/// endpoint and credentials included) into this process's environment where unset.
/// Called before any AWS client is built.
pub fn choose(stack: Option<&str>) -> StackChoice {
    if let Some(stack) = stack {
        return StackChoice::Named(stack.to_owned());
    }
    if std::env::var_os("TABLE_NAME").is_some() {
        return StackChoice::None;
    }
    if let Ok(text) = std::fs::read_to_string(LOCAL_ENV) {
        for (name, value) in text.lines().filter_map(|line| line.split_once('=')) {
            if std::env::var_os(name.trim()).is_none() {
                // Single-threaded still: no client or task has been started.
                std::env::set_var(name.trim(), value.trim());
            }
        }
        return StackChoice::Local;
    }
    match samconfig_stack(Path::new("samconfig.toml")) {
        Some(stack) => StackChoice::Configured(stack),
        None => StackChoice::None,
    }
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
}
