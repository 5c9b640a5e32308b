//! Where the webhook secrets come from: `WEBHOOK_SECRET` inline, and/or a Secrets Manager
//! secret (the adapter here). The remote value is read during init, re-read in the
//! background once it is older than [`SecretPolicy::refresh_after`], one read at a time and
//! with backoff after a failure, so no request waits for Secrets Manager once a value is
//! known and no flood of requests can drive it. A value that cannot be refreshed is used
//! for at most [`SecretPolicy::accept_stale_for`]; after that requests get 503 until
//! Secrets Manager answers again (a rotated-out secret stops working within that bound
//! even while Secrets Manager is down).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::aws::sdk_error;
use crate::error::Error;
use crate::secret::Secret;

/// When the remote secret is read again, and for how long an old value is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretPolicy {
    /// A value older than this is refreshed (a rotation lands within this time).
    pub refresh_after: Duration,
    /// A value that could not be refreshed is accepted this long after it was read.
    pub accept_stale_for: Duration,
    /// After a failed read, the next one waits this long, doubling up to 16×.
    pub retry_after: Duration,
}

impl Default for SecretPolicy {
    fn default() -> Self {
        Self {
            refresh_after: Duration::from_secs(300),
            accept_stale_for: Duration::from_secs(3600),
            retry_after: Duration::from_secs(5),
        }
    }
}

/// How long one read of the secret may take.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Every secret that currently authorizes a delivery.
pub struct SecretStore {
    inline: Vec<Secret>,
    remote: Option<Arc<RemoteSecret>>,
}

struct RemoteSecret {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
    policy: SecretPolicy,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    value: Option<(Instant, Arc<Vec<Secret>>)>,
    /// A read is in flight: nobody starts another.
    reading: bool,
    /// No read before this (backoff after failures).
    next_read: Option<Instant>,
    failures: u32,
}

impl SecretStore {
    /// Secrets from `WEBHOOK_SECRET` (`inline`) and, when given, a Secrets Manager secret.
    pub fn new(
        inline: Vec<Secret>,
        remote: Option<(aws_sdk_secretsmanager::Client, String)>,
        policy: SecretPolicy,
    ) -> Self {
        let remote =
            remote.map(|(client, arn)| Arc::new(RemoteSecret { client, arn, policy, state: Mutex::default() }));
        Self { inline, remote }
    }

    /// Reads the remote secret now (during init, so the first request does not wait).
    pub async fn prefetch(&self) {
        if let Some(remote) = &self.remote {
            if let Err(error) = remote.refresh().await {
                tracing::warn!(error = error.detail(), "webhook secret not readable at start; requests will retry");
            }
        }
    }

    /// Every secret that currently authorizes a delivery; 503 when only a remote secret is
    /// configured and no value of it may be used (with inline secrets too, those alone).
    pub async fn current(&self) -> Result<Vec<Secret>, Error> {
        let mut secrets = self.inline.clone();
        if let Some(remote) = &self.remote {
            match remote.current().await {
                Ok(remote) => secrets.extend(remote.iter().cloned()),
                // `WEBHOOK_SECRET` still opens the door while Secrets Manager cannot.
                Err(_) if !self.inline.is_empty() => {}
                Err(error) => return Err(error),
            }
        }
        Ok(secrets)
    }
}

/// What a request does about the remote value.
enum Next {
    Use(Arc<Vec<Secret>>),
    UseAndRefresh(Arc<Vec<Secret>>),
    ReadNow,
    Unavailable,
}

impl RemoteSecret {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn current(self: &Arc<Self>) -> Result<Arc<Vec<Secret>>, Error> {
        let next = {
            let mut state = self.state();
            let now = Instant::now();
            let may_read = !state.reading && state.next_read.is_none_or(|at| now >= at);
            match state.value.clone() {
                Some((read_at, value)) if now.duration_since(read_at) < self.policy.refresh_after => Next::Use(value),
                Some((read_at, value)) if now.duration_since(read_at) < self.policy.accept_stale_for => {
                    if may_read {
                        state.reading = true;
                        Next::UseAndRefresh(value)
                    } else {
                        Next::Use(value)
                    }
                }
                _ if may_read => {
                    state.reading = true;
                    Next::ReadNow
                }
                _ => Next::Unavailable,
            }
        };
        match next {
            Next::Use(value) => Ok(value),
            Next::UseAndRefresh(value) => {
                let remote = Arc::clone(self);
                // In the background: this request does not wait for Secrets Manager.
                tokio::spawn(async move { remote.read_and_record().await });
                Ok(value)
            }
            Next::ReadNow => self.read_and_record().await,
            Next::Unavailable => Err(Error::Unavailable("the webhook secret cannot be read (backing off)".into())),
        }
    }

    async fn refresh(&self) -> Result<Arc<Vec<Secret>>, Error> {
        self.state().reading = true;
        self.read_and_record().await
    }

    async fn read_and_record(&self) -> Result<Arc<Vec<Secret>>, Error> {
        let result = self.read().await;
        let mut state = self.state();
        state.reading = false;
        match result {
            Ok(secrets) => {
                let secrets = Arc::new(secrets);
                state.value = Some((Instant::now(), Arc::clone(&secrets)));
                state.failures = 0;
                state.next_read = None;
                Ok(secrets)
            }
            Err(error) => {
                tracing::warn!(error = error.detail(), "webhook secret refresh failed");
                let backoff = self.policy.retry_after * (1 << state.failures.min(4));
                state.failures += 1;
                state.next_read = Some(Instant::now() + backoff);
                Err(error)
            }
        }
    }

    async fn read(&self) -> Result<Vec<Secret>, Error> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            // What a rotation moves (see `replace_current`); the default, said explicitly.
            .version_stage(CURRENT)
            .customize()
            .config_override(
                aws_sdk_secretsmanager::config::Builder::default().timeout_config(
                    aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
                        .operation_timeout(READ_TIMEOUT)
                        .build(),
                ),
            )
            .send()
            .await
            .map_err(|e| sdk_error("GetSecretValue", e))?;
        let secrets = output.secret_string().map(Secret::parse_lines).unwrap_or_default();
        if secrets.is_empty() {
            // Fail closed: an empty secret must not let everyone in.
            return Err(Error::Unavailable("the secret in WEBHOOK_SECRET_ARN holds no secret string".into()));
        }
        Ok(secrets)
    }
}

/// The Kadoa API key `settings` name: given inline, or read from the Secrets Manager
/// secret `KADOA_API_KEY_ARN` names (the deployed reconciliation's way).
pub async fn kadoa_api_key(
    settings: &crate::config::KadoaApiSettings,
    client: &aws_sdk_secretsmanager::Client,
) -> Result<String, Error> {
    let arn = match (&settings.key, &settings.key_arn) {
        (Some(key), _) => return Ok(key.clone()),
        (None, Some(arn)) => arn,
        (None, None) => return Err(Error::invalid("KADOA_API_KEY or KADOA_API_KEY_ARN is required")),
    };
    let output = client.get_secret_value().secret_id(arn).send().await.map_err(|e| sdk_error("GetSecretValue", e))?;
    output
        .secret_string()
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| Error::invalid("the secret in KADOA_API_KEY_ARN is empty"))
}

/// The staging label of the version in use.
pub const CURRENT: &str = "AWSCURRENT";
/// The staging label of a version on its way in (written, not yet in use).
const PENDING: &str = "AWSPENDING";

/// Says that the secret changed between a rotation's read and its write.
pub const ANOTHER_ROTATION_WON: &str = "another rotation won";

/// Puts `value` in use as secret `arn`'s current version, only if the current version is
/// still `read_version` (the one the caller read): `value` is written as a pending
/// version, then the current label is moved to it from `read_version`, which Secrets
/// Manager refuses once the label has moved (someone wrote in between). Of two rotations
/// that read the same version, exactly one succeeds; the other's value is never used.
/// The new version's id.
pub async fn replace_current(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    read_version: &str,
    value: String,
) -> Result<String, Error> {
    let written = client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .version_stages(PENDING)
        .send()
        .await
        .map_err(|e| sdk_error("PutSecretValue", e))?;
    let new_version =
        written.version_id().ok_or_else(|| Error::internal("PutSecretValue", "no version id"))?.to_owned();
    let moved = client
        .update_secret_version_stage()
        .secret_id(arn)
        .version_stage(CURRENT)
        .remove_from_version_id(read_version)
        .move_to_version_id(&new_version)
        .send()
        .await;
    // The pending label has done its work (or belongs to a loser): off, where it still is.
    let untagged =
        client.update_secret_version_stage().secret_id(arn).version_stage(PENDING).remove_from_version_id(&new_version);
    if let Err(error) = untagged.send().await {
        tracing::debug!(error = %sdk_error("UpdateSecretVersionStage", error), "pending label already moved on");
    }
    match moved {
        Ok(_) => Ok(new_version),
        Err(error) => match current_version(client, arn).await? {
            Some(current) if current != read_version => Err(Error::invalid(format!(
                "{ANOTHER_ROTATION_WON}: the secret changed after this run read it, so this run's secret was not \
                 put in use; look again (`kadoa secret rotate` says whether a rotation is under way)"
            ))),
            _ => Err(sdk_error("UpdateSecretVersionStage", error)),
        },
    }
}

/// The id of the version in use.
async fn current_version(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<Option<String>, Error> {
    let current = client
        .get_secret_value()
        .secret_id(arn)
        .version_stage(CURRENT)
        .send()
        .await
        .map_err(|e| sdk_error("GetSecretValue", e))?;
    Ok(current.version_id().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Secrets Manager client that can never connect.
    async fn unreachable() -> aws_sdk_secretsmanager::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new("a", "b", None, None, "test"))
            .endpoint_url("http://127.0.0.1:1")
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        aws_sdk_secretsmanager::Client::new(&config)
    }

    #[tokio::test]
    async fn the_inline_secret_works_while_secrets_manager_cannot_be_read() {
        let inline = Secret::parse_lines("inline-secret");
        let store =
            SecretStore::new(inline.clone(), Some((unreachable().await, "arn".into())), SecretPolicy::default());
        store.prefetch().await;
        assert_eq!(store.current().await.unwrap(), inline);
        let remote_only =
            SecretStore::new(Vec::new(), Some((unreachable().await, "arn".into())), SecretPolicy::default());
        assert!(remote_only.current().await.unwrap_err().is_transient(), "without it: 503, never let in");
    }
}
