//! Where the webhook secrets come from: `WEBHOOK_SECRET` inline, and/or a Secrets Manager
//! secret that is cached and re-read at most every five minutes (so a rotation lands
//! without a redeploy).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::auth::Secret;
use crate::error::RequestError;

pub const SECRET_CACHE_TTL: Duration = Duration::from_secs(300);

pub struct SecretStore {
    inline: Vec<Secret>,
    remote: Option<RemoteSecret>,
}

struct RemoteSecret {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
    cache: Mutex<Option<CachedSecrets>>,
}

struct CachedSecrets {
    read_at: Instant,
    secrets: Arc<Vec<Secret>>,
}

impl SecretStore {
    pub fn new(inline: Vec<Secret>, remote: Option<(aws_sdk_secretsmanager::Client, String)>) -> Self {
        Self { inline, remote: remote.map(|(client, arn)| RemoteSecret { client, arn, cache: Mutex::new(None) }) }
    }

    /// Every secret that currently authorizes a delivery.
    pub async fn current(&self) -> Result<Vec<Secret>, RequestError> {
        let mut secrets = self.inline.clone();
        if let Some(remote) = &self.remote {
            secrets.extend(remote.current().await?.iter().cloned());
        }
        Ok(secrets)
    }
}

impl RemoteSecret {
    async fn current(&self) -> Result<Arc<Vec<Secret>>, RequestError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref() {
            if cached.read_at.elapsed() < SECRET_CACHE_TTL {
                return Ok(cached.secrets.clone());
            }
        }
        match self.read().await {
            Ok(secrets) => {
                let secrets = Arc::new(secrets);
                *cache = Some(CachedSecrets { read_at: Instant::now(), secrets: secrets.clone() });
                Ok(secrets)
            }
            // A failed refresh keeps the last good value rather than turning Kadoa away.
            Err(error) => match cache.as_ref() {
                Some(stale) => {
                    tracing::warn!(error = error.detail(), "secret refresh failed; using the cached value");
                    Ok(stale.secrets.clone())
                }
                None => Err(error),
            },
        }
    }

    async fn read(&self) -> Result<Vec<Secret>, RequestError> {
        let output = self.client.get_secret_value().secret_id(&self.arn).send().await.map_err(|e| {
            RequestError::unavailable("GetSecretValue", aws_sdk_secretsmanager::error::DisplayErrorContext(e))
        })?;
        let secrets = output.secret_string().map(Secret::parse_lines).unwrap_or_default();
        if secrets.is_empty() {
            // Fail closed: an empty secret must not let everyone in.
            return Err(RequestError::Unavailable("the secret in WEBHOOK_SECRET_ARN holds no secret string".into()));
        }
        Ok(secrets)
    }
}
