//! The function's configuration, read once at init from its environment (SPEC section 2).

use std::fmt;
use std::time::Duration;

use std::collections::BTreeSet;

use lambda_http::http::HeaderName;

use crate::receiver::{Rules, DEFAULT_ALERT_TYPES};
use crate::secret::Secret;

/// Longest retention: 100 years (DynamoDB TTL wants a date it can represent).
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Longest repeat interval: 30 days.
pub const MAX_REPEAT_MINUTES: u32 = 43_200;

/// Every environment variable the function reads (besides the SDK's own `AWS_*`).
pub const VARIABLES: &[&str] = &[
    "TABLE_NAME",
    "ALERT_TOPIC_ARN",
    "WEBHOOK_SECRET",
    "WEBHOOK_SECRET_ARN",
    "AUTH_HEADER_NAME",
    "RETENTION_DAYS",
    "ALERT_REPEAT_MINUTES",
    "ALERT_EVENT_TYPES",
    "SPOOL_QUEUE_URL",
    "SPOOL_BUCKET",
    "KADOA_API_KEY",
    "KADOA_API_KEY_ARN",
    "KADOA_API_URL",
    "METRICS_NAMESPACE",
    "EVENT_BUS",
    "AWS_LAMBDA_LOG_LEVEL",
    "LOG_LEVEL",
    "RUST_LOG",
    // Read by the allocator (mimalloc), set by the template.
    "MIMALLOC_ARENA_EAGER_COMMIT",
];

/// Everything the function needs to know before its first request.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `TABLE_NAME`
    pub table_name: String,
    /// `ALERT_TOPIC_ARN`
    pub alert_topic_arn: String,
    /// Secrets given inline in `WEBHOOK_SECRET`, one per line.
    pub inline_secrets: Vec<Secret>,
    /// Secrets Manager secret whose value holds more secrets, one per line.
    pub secret_arn: Option<String>,
    /// `AUTH_HEADER_NAME`, lower-cased: the header that carries the secret.
    pub auth_header: HeaderName,
    /// Retention, repeat interval, which event types alert.
    pub rules: Rules,
    /// Where deliveries wait when they cannot be applied now (`SPOOL_QUEUE_URL` and
    /// `SPOOL_BUCKET`); without it such a delivery is answered 503.
    pub spool: Option<SpoolSettings>,
    /// `METRICS_NAMESPACE`: where the metrics go (`KadoaWebhook` by default; the template
    /// gives each stack its own).
    pub metrics_namespace: String,
}

/// The metrics' namespace when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_METRICS_NAMESPACE: &str = "KadoaWebhook";

/// The spool's queue and bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// `SPOOL_QUEUE_URL`
    pub queue_url: String,
    /// `SPOOL_BUCKET`: bodies too large for a queue message.
    pub bucket: String,
}

/// Where Kadoa's API is and how reconciliation authenticates to it.
#[derive(Clone, PartialEq, Eq)]
pub struct KadoaApiSettings {
    /// `KADOA_API_URL`, default `https://api.kadoa.com`.
    pub url: String,
    /// `KADOA_API_KEY`, the key itself…
    pub key: Option<String>,
    /// …or `KADOA_API_KEY_ARN`, a Secrets Manager secret holding it.
    pub key_arn: Option<String>,
}

impl std::fmt::Debug for KadoaApiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KadoaApiSettings").field("url", &self.url).field("key_arn", &self.key_arn).finish()
    }
}

impl KadoaApiSettings {
    /// Reads `KADOA_API_URL`, `KADOA_API_KEY`, `KADOA_API_KEY_ARN` through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let settings = Self {
            url: non_empty("KADOA_API_URL").unwrap_or_else(|| crate::kadoa_api::DEFAULT_API_URL.to_owned()),
            key: non_empty("KADOA_API_KEY"),
            key_arn: non_empty("KADOA_API_KEY_ARN"),
        };
        if settings.key.is_none() && settings.key_arn.is_none() {
            return Err(ConfigError("KADOA_API_KEY or KADOA_API_KEY_ARN is required".into()));
        }
        Ok(settings)
    }
}

/// Why the configuration is refused (the function then does not start).
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The replay function's settings: the same, but it needs the spool and no secret.
    pub fn for_replay(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Self::read(&lookup, false)?;
        if settings.spool.is_none() {
            return Err(ConfigError("SPOOL_QUEUE_URL and SPOOL_BUCKET are required".into()));
        }
        Ok(settings)
    }

    /// Reconciliation's settings: the table and topic (and rules), no webhook secret.
    pub fn for_reconcile(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&lookup, false)
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&lookup, true)
    }

    fn read(lookup: &impl Fn(&str) -> Option<String>, needs_secret: bool) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &str| non_empty(name).ok_or_else(|| ConfigError(format!("{name} is required")));

        let table_name = required("TABLE_NAME")?;
        let alert_topic_arn = required("ALERT_TOPIC_ARN")?;
        let inline_secrets = lookup("WEBHOOK_SECRET").map(|v| Secret::parse_lines(&v)).unwrap_or_default();
        let secret_arn = non_empty("WEBHOOK_SECRET_ARN");
        if lookup("WEBHOOK_SECRET").is_some() && inline_secrets.is_empty() && secret_arn.is_none() {
            return Err(ConfigError("WEBHOOK_SECRET holds no secret (only blank lines)".into()));
        }
        if needs_secret && inline_secrets.is_empty() && secret_arn.is_none() {
            // Fail closed: without a secret every request would have to be let in.
            return Err(ConfigError("WEBHOOK_SECRET or WEBHOOK_SECRET_ARN is required".into()));
        }

        let auth_header = match non_empty("AUTH_HEADER_NAME") {
            None => HeaderName::from_static("authorization"),
            Some(name) => HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| ConfigError(format!("AUTH_HEADER_NAME {name:?} is not a valid header name")))?,
        };
        let spool = match (non_empty("SPOOL_QUEUE_URL"), non_empty("SPOOL_BUCKET")) {
            (Some(queue_url), Some(bucket)) => Some(SpoolSettings { queue_url, bucket }),
            (None, None) => None,
            _ => return Err(ConfigError("SPOOL_QUEUE_URL and SPOOL_BUCKET go together".into())),
        };
        let retention_days = parse_number(&non_empty, "RETENTION_DAYS", 0, MAX_RETENTION_DAYS)?;
        let repeat_minutes = parse_number(&non_empty, "ALERT_REPEAT_MINUTES", 60, MAX_REPEAT_MINUTES)?;
        let alert_types = match lookup("ALERT_EVENT_TYPES") {
            None => DEFAULT_ALERT_TYPES.iter().map(|t| t.to_string()).collect(),
            // Comma- or space-separated; empty turns every alert off.
            Some(list) => list.split([',', ' ', '\n']).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        };

        let metrics_namespace = metrics_namespace(lookup)?;

        Ok(Self {
            table_name,
            alert_topic_arn,
            inline_secrets,
            secret_arn,
            auth_header,
            rules: Rules {
                retention_days,
                alert_repeat: Duration::from_secs(u64::from(repeat_minutes) * 60),
                alert_types,
            },
            spool,
            metrics_namespace,
        })
    }
}

fn parse_number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    let Some(text) = lookup(name) else { return Ok(default) };
    match text.parse::<u32>() {
        Ok(number) if number <= max => Ok(number),
        _ => Err(ConfigError(format!(
            "{name} must be a whole number from 0 to {max}, got {:?}",
            crate::error::bounded(text)
        ))),
    }
}

/// `METRICS_NAMESPACE`, checked against CloudWatch's rule: 1-255 of these characters, and
/// not AWS's own prefix.
pub fn metrics_namespace(lookup: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let namespace = lookup("METRICS_NAMESPACE")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.into());
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
    if namespace.len() > 255 || !namespace.chars().all(allowed) || namespace.starts_with("AWS/") {
        return Err(ConfigError(format!(
            "METRICS_NAMESPACE {:?} is not a CloudWatch namespace",
            crate::error::bounded(namespace)
        )));
    }
    Ok(namespace)
}

/// The outbox drain's settings: the bus, and where its metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxSettings {
    /// `EVENT_BUS`: the bus's name or ARN.
    pub bus: String,
    /// `METRICS_NAMESPACE`
    pub metrics_namespace: String,
}

impl OutboxSettings {
    /// Reads them through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bus = lookup("EVENT_BUS")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ConfigError("EVENT_BUS is required".into()))?;
        Ok(Self { bus, metrics_namespace: metrics_namespace(&lookup)? })
    }
}

/// The alert types as a set, for tests and the template check.
pub fn default_alert_types() -> BTreeSet<String> {
    DEFAULT_ALERT_TYPES.iter().map(|t| t.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| env.get(name).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("TABLE_NAME", "events"),
        ("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:alerts"),
        ("WEBHOOK_SECRET", "s3cret"),
    ];

    #[test]
    fn defaults_apply() {
        let s = settings(&BASE).unwrap();
        assert_eq!(s.table_name, "events");
        assert_eq!(s.auth_header, "authorization");
        assert_eq!(s.rules.retention_days, 0);
        assert_eq!(s.rules.alert_repeat, Duration::from_secs(3600));
        assert_eq!(s.rules.alert_types, default_alert_types());
        assert_eq!(s.inline_secrets.len(), 1);
        assert_eq!(s.secret_arn, None);
    }

    #[test]
    fn refuses_to_start_without_any_secret() {
        let err = settings(&BASE[..2]).unwrap_err();
        assert_eq!(err.0, "WEBHOOK_SECRET or WEBHOOK_SECRET_ARN is required");
        let err = settings(&[BASE[0], BASE[1], ("WEBHOOK_SECRET", " \n\n")]).unwrap_err();
        assert!(err.0.contains("only blank lines"), "{err}");
    }

    #[test]
    fn a_secret_arn_alone_is_enough() {
        let s = settings(&[BASE[0], BASE[1], ("WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:x")]).unwrap();
        assert!(s.inline_secrets.is_empty());
        assert_eq!(s.secret_arn.as_deref(), Some("arn:aws:secretsmanager:x"));
    }

    #[test]
    fn table_and_topic_are_required() {
        assert_eq!(settings(&BASE[1..]).unwrap_err().0, "TABLE_NAME is required");
        assert_eq!(settings(&[BASE[0], BASE[2]]).unwrap_err().0, "ALERT_TOPIC_ARN is required");
    }

    #[test]
    fn numbers_and_header_are_validated() {
        let mut env = BASE.to_vec();
        env.push(("RETENTION_DAYS", "-1"));
        assert!(settings(&env).unwrap_err().0.starts_with("RETENTION_DAYS must be"));
        let mut env = BASE.to_vec();
        env.push(("AUTH_HEADER_NAME", "X Kadoa Token"));
        assert!(settings(&env).unwrap_err().0.contains("not a valid header name"));
        let mut env = BASE.to_vec();
        env.extend([("AUTH_HEADER_NAME", "X-Kadoa-Token"), ("RETENTION_DAYS", "30"), ("ALERT_REPEAT_MINUTES", "5")]);
        let s = settings(&env).unwrap();
        assert_eq!(s.auth_header, "x-kadoa-token");
        assert_eq!(s.rules.retention_days, 30);
        assert_eq!(s.rules.alert_repeat, Duration::from_secs(300));
    }

    #[test]
    fn numbers_are_bounded_so_no_setting_can_panic() {
        let mut env = BASE.to_vec();
        env.push(("RETENTION_DAYS", "3000000"));
        assert_eq!(
            settings(&env).unwrap_err().0,
            "RETENTION_DAYS must be a whole number from 0 to 36500, got \"3000000\""
        );
        let mut env = BASE.to_vec();
        env.push(("ALERT_REPEAT_MINUTES", "99999999999"));
        assert!(settings(&env)
            .unwrap_err()
            .0
            .starts_with("ALERT_REPEAT_MINUTES must be a whole number from 0 to 43200"));
    }

    #[test]
    fn the_spool_is_optional_for_the_webhook_and_required_for_the_replay() {
        assert_eq!(settings(&BASE).unwrap().spool, None);
        let mut env = BASE.to_vec();
        env.push(("SPOOL_QUEUE_URL", "https://sqs/q"));
        assert_eq!(settings(&env).unwrap_err().0, "SPOOL_QUEUE_URL and SPOOL_BUCKET go together");
        env.push(("SPOOL_BUCKET", "b"));
        assert_eq!(settings(&env).unwrap().spool.map(|s| s.bucket), Some("b".to_owned()));
        let map: HashMap<String, String> =
            env[..2].iter().chain(&env[3..]).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let replay = Settings::for_replay(|name| map.get(name).cloned()).unwrap();
        assert!(replay.inline_secrets.is_empty(), "the replay needs no webhook secret");
        let replay = Settings::for_replay(|name| if name.starts_with("SPOOL") { None } else { map.get(name).cloned() });
        assert_eq!(replay.unwrap_err().0, "SPOOL_QUEUE_URL and SPOOL_BUCKET are required");
    }

    #[test]
    fn alert_types_are_configurable() {
        let mut env = BASE.to_vec();
        env.push(("ALERT_EVENT_TYPES", "workflow_failed, credits_low"));
        let types: Vec<String> = settings(&env).unwrap().rules.alert_types.into_iter().collect();
        assert_eq!(types, ["credits_low", "workflow_failed"]);
        let mut env = BASE.to_vec();
        env.push(("ALERT_EVENT_TYPES", ""));
        assert!(settings(&env).unwrap().rules.alert_types.is_empty(), "empty turns alerts off");
    }
}
