//! The SNS adapter: one publish per alert, every protocol's text in one message, and the
//! attributes subscriptions filter on. It is the [`Publisher`] the stack deploys.

use std::time::Duration;

use aws_sdk_sns::types::MessageAttributeValue;
use futures::future::BoxFuture;

use super::{AlertMessage, Publisher};
use crate::aws::{sdk_error, within};
use crate::error::Error;
use crate::rules::Notify;

/// How long a publish may take before the alert is given up (and its claim released).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

/// Publishes alerts to the topic.
#[derive(Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    timeout: Duration,
}

impl SnsPublisher {
    /// A publisher to `topic_arn`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        Self { client, topic_arn, timeout: PUBLISH_TIMEOUT }
    }

    /// The same publisher with another timeout (tests that are not about timeouts).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// Sends `message` to every subscriber, within [`PUBLISH_TIMEOUT`] (in production).
    async fn send(&self, message: &AlertMessage) -> Result<(), Error> {
        let mut publish = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&message.subject)
            .message_structure("json")
            .message(message.to_sns_json())
            // Subscriptions filter on these (e.g. SMS for failures only).
            .message_attributes("eventType", attribute("String", &message.event_type)?)
            .message_attributes("notify", attribute("String.Array", &channels(message.notify))?);
        if let Some(workflow_id) = &message.workflow_id {
            publish = publish.message_attributes("workflowId", attribute("String", workflow_id)?);
        }
        within(self.timeout, "Publish", publish.send()).await?.map_err(|e| sdk_error("Publish", e))?;
        Ok(())
    }
}

impl Publisher for SnsPublisher {
    fn publish<'a>(&'a self, message: &'a AlertMessage) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.send(message))
    }
}

/// A message attribute of `data_type` holding `value`.
fn attribute(data_type: &str, value: &str) -> Result<MessageAttributeValue, Error> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|e| Error::internal("Publish attribute", e))
}

/// The `notify` attribute's value: the channels told as a JSON list (`["email","sms"]`),
/// which the email and SMS subscriptions' filter policies match (template.yaml).
fn channels(notify: Notify) -> String {
    let channels: Vec<&str> = [(notify.email(), "email"), (notify.sms(), "sms")]
        .into_iter()
        .filter_map(|(told, channel)| told.then_some(channel))
        .collect();
    serde_json::json!(channels).to_string()
}
