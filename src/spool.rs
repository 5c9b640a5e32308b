//! The spool adapter (SQS, and S3 for large bodies): where an accepted delivery waits when
//! it cannot be applied now, exactly as it was received, until [`crate::replay`] applies
//! it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aws::{sdk_error, Lazy};
use crate::error::Error;
use crate::timestamp::Timestamp;

/// Largest spool message sent as is; a larger delivery's body goes to S3 and the message
/// points to it. (SQS takes 256 KiB; the margin covers the message's own fields.)
pub const MAX_INLINE_MESSAGE_BYTES: usize = 200 * 1024;
/// The first delay before a failed replay is tried again; it doubles with every receive.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(60);
/// The longest delay between two tries of one spooled delivery.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// One spooled delivery, as the queue message carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpooledDelivery {
    /// When the webhook received it (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
    pub received_at: String,
    /// The `X-Kadoa-Event` header, when the request had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_event: Option<String>,
    /// The body, when it fits the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Otherwise the key of the S3 object that holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_object: Option<String>,
}

/// The spool: a queue, and a bucket for bodies too large for a message.
#[derive(Clone)]
pub struct Spool {
    sqs: Lazy<aws_sdk_sqs::Client>,
    queue_url: String,
    s3: Lazy<aws_sdk_s3::Client>,
    bucket: String,
}

impl Spool {
    /// The spool `queue_url`, with large bodies in `bucket`.
    pub fn new(
        sqs: Lazy<aws_sdk_sqs::Client>,
        queue_url: String,
        s3: Lazy<aws_sdk_s3::Client>,
        bucket: String,
    ) -> Self {
        Self { sqs, queue_url, s3, bucket }
    }

    /// Puts a delivery on the spool: one `SendMessage`, after one `PutObject` when the
    /// body is too large for a message.
    pub async fn put(&self, body: &str, header_event: Option<&str>, received_at: Timestamp) -> Result<(), Error> {
        let mut message = SpooledDelivery {
            received_at: received_at.to_key_string(),
            header_event: header_event.map(str::to_owned),
            body: Some(body.to_owned()),
            body_object: None,
        };
        let mut text = serde_json::to_string(&message).map_err(|e| Error::internal("spool message", e))?;
        // SQS takes only some characters in a message (not U+FFFE, U+FFFF, most controls);
        // JSON allows them unescaped. Such a body goes to S3 whatever its size.
        let sqs_safe =
            |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
        if text.len() > MAX_INLINE_MESSAGE_BYTES || !text.chars().all(sqs_safe) {
            let digest = crate::envelope::short_hash(body.as_bytes());
            let key = format!("spool/{}-{digest}.json", received_at.unix_millis());
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_type("application/json")
                .body(body.as_bytes().to_vec().into())
                .send()
                .await
                .map_err(|e| sdk_error("PutObject", e))?;
            message.body = None;
            message.body_object = Some(key);
            text = serde_json::to_string(&message).map_err(|e| Error::internal("spool message", e))?;
        }
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(text)
            .send()
            .await
            .map_err(|e| sdk_error("SendMessage", e))?;
        Ok(())
    }

    /// The body of a spooled delivery (read from S3 when it is there), or `None` when its
    /// S3 object is gone. An object is deleted only after its delivery was applied (and the
    /// bucket's lifecycle keeps it longer than the queue keeps a message), so a message
    /// whose object is gone is a second copy of one already applied: an SDK retry of a
    /// `SendMessage` whose answer was lost, or a batch that came back after a timeout.
    pub async fn body(&self, message: &SpooledDelivery) -> Result<Option<String>, Error> {
        if let Some(body) = &message.body {
            return Ok(Some(body.clone()));
        }
        let key = message.body_object.as_deref().ok_or_else(|| Error::invalid("spool message has no body"))?;
        let object = match self.s3.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(sdk_error("GetObject", e)),
        };
        let bytes = object.body.collect().await.map_err(|e| Error::unavailable("GetObject body", e))?.into_bytes();
        String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| Error::invalid("spooled body is not UTF-8"))
    }

    /// Removes what a replayed delivery left in S3 (its queue message is deleted by Lambda).
    pub async fn forget(&self, message: &SpooledDelivery) {
        if let Some(key) = &message.body_object {
            if let Err(error) = self.s3.delete_object().bucket(&self.bucket).key(key).send().await {
                // The bucket's lifecycle rule removes it later.
                tracing::warn!(error = %aws_sdk_s3::error::DisplayErrorContext(error), "spooled body not deleted");
            }
        }
    }

    /// Keeps a message that failed hidden for `delay` before it is tried again.
    pub async fn retry_after(&self, receipt_handle: &str, delay: Duration) {
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs() as i32)
            .send()
            .await;
        if let Err(error) = result {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(error), "retry delay not set");
        }
    }
}

/// How long a delivery that failed its `receive_count`-th try waits before the next:
/// `first`, then doubling, up to [`MAX_RETRY_DELAY`] (in production 1 min, 2, 4, … 1 h).
pub fn retry_delay(first: Duration, receive_count: u32) -> Duration {
    let doubled = first.saturating_mul(1 << receive_count.saturating_sub(1).min(12));
    doubled.min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spool queue's `maxReceiveCount` in template.yaml.
    const MAX_RECEIVES: u32 = 20;

    #[test]
    fn delays_grow_then_cap() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(FIRST_RETRY_DELAY, n).as_secs()).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn a_spooled_delivery_outlives_a_six_hour_outage() {
        let waited: Duration = (1..MAX_RECEIVES).map(|n| retry_delay(FIRST_RETRY_DELAY, n)).sum();
        assert!(waited > Duration::from_secs(6 * 3600), "{waited:?}");
        assert_eq!(waited.as_secs(), 60 + 120 + 240 + 480 + 960 + 1920 + 13 * 3600);
    }
}
