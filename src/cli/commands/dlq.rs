//! `kadoa dlq list|redrive`: the spool's dead letters, and moving them back.

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::{json, Map, Value};

use super::{report, Context};
use crate::cli::render::{self, Listing};
use crate::cli::RedriveArgs;
use crate::error::Error;
use crate::receiver::Delivery;
use crate::spool::SpooledDelivery;
use crate::timestamp::Timestamp;

/// Dead letters read at most (the queue holds more only after a long outage).
const MAX_MESSAGES: usize = 1_000;
/// How long messages being read stay hidden: longer than reading them all takes.
const READ_VISIBILITY_SECS: i32 = 300;

/// Every dead letter (up to [`MAX_MESSAGES`]), hidden while read: the caller gives back or
/// deletes each.
async fn read_all(context: &Context, url: &str) -> Result<Vec<Message>, Error> {
    let sqs = context.sqs();
    let mut messages = Vec::new();
    while messages.len() < MAX_MESSAGES {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(READ_VISIBILITY_SECS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| crate::aws::sdk_error("ReceiveMessage", e))?;
        if output.messages().is_empty() {
            break;
        }
        messages.extend(output.messages.unwrap_or_default());
    }
    Ok(messages)
}

/// Makes `messages` visible again at once.
async fn give_back(context: &Context, url: &str, messages: &[Message]) {
    for message in messages {
        if let Some(handle) = message.receipt_handle() {
            let _ = context
                .sqs()
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await;
        }
    }
}

/// What a dead letter is: its event type, workflow, why it failed, its age.
fn describe(message: &Message) -> Map<String, Value> {
    let spooled: Option<SpooledDelivery> = message.body().and_then(|b| serde_json::from_str(b).ok());
    let attribute = |name: MessageSystemAttributeName| message.attributes().and_then(|a| a.get(&name)).cloned();
    let tries = attribute(MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or_default();
    let age = attribute(MessageSystemAttributeName::SentTimestamp)
        .and_then(|t| t.parse::<i64>().ok())
        .map(|sent| (Timestamp::now().unix_millis() - sent) / 1000);
    let (event_type, workflow, why) = match &spooled {
        None => (None, None, "not a spooled delivery (refused by the replay)".to_owned()),
        Some(SpooledDelivery { body: None, header_event, body_object, .. }) => (
            header_event.clone(),
            None,
            format!("body in S3 ({}); received {tries} times", body_object.as_deref().unwrap_or("?")),
        ),
        Some(SpooledDelivery { body: Some(body), header_event, .. }) => {
            let repaired = crate::envelope::repair_lone_surrogates(body.as_bytes());
            match Delivery::parse(&repaired, header_event.as_deref()) {
                // The replay refuses what the webhook would: that is why.
                Err(error) => (header_event.clone(), None, format!("refused: {}", error.detail())),
                Ok(delivery) => (
                    Some(delivery.envelope.event_type.clone()),
                    delivery.event.workflow_id().map(str::to_owned),
                    format!("received {tries} times (AWS failing, or the function: see the replay's log)"),
                ),
            }
        }
    };
    let mut row = Map::new();
    row.insert("id".into(), json!(message.message_id()));
    row.insert("eventType".into(), json!(event_type));
    row.insert("workflowId".into(), json!(workflow));
    row.insert("why".into(), json!(why));
    row.insert("ageSeconds".into(), json!(age));
    row.insert("receivedAt".into(), json!(spooled.map(|s| s.received_at)));
    row
}

/// Whether a spooled body is still in the bucket.
async fn body_exists(context: &Context, object: &str) -> Result<bool, Error> {
    let bucket = context.target.need(&context.target.spool_bucket, "spool bucket", "SPOOL_BUCKET")?;
    match context.clients.aws.s3.head_object().bucket(bucket).key(object).send().await {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        Err(error) => Err(crate::aws::sdk_error("HeadObject", error)),
    }
}

fn dead_letter_url(context: &Context) -> Result<String, Error> {
    context
        .target
        .need(&context.target.dead_letter_url, "dead-letter queue", "SPOOL_DEAD_LETTER_QUEUE_URL")
        .map(str::to_owned)
}

/// `kadoa dlq list`: exits 1 when there are dead letters.
pub async fn list(context: &Context) -> Result<bool, Error> {
    let url = dead_letter_url(context)?;
    let messages = read_all(context, &url).await?;
    give_back(context, &url, &messages).await;
    let listing = Listing {
        columns: vec![
            ("id", "id"),
            ("event", "eventType"),
            ("workflow", "workflowId"),
            ("received", "receivedAt"),
            ("age (s)", "ageSeconds"),
            ("why", "why"),
        ],
        rows: messages.iter().map(describe).collect(),
        colour: None,
    };
    let empty = listing.rows.is_empty();
    render::print(&listing, context.format, None)?;
    Ok(empty)
}

/// `kadoa dlq redrive`: each dead letter (or the one `--id` names) sent to the spool again,
/// then deleted from the dead-letter queue. Run twice, the second finds nothing to move.
pub async fn redrive(context: &Context, args: &RedriveArgs) -> Result<bool, Error> {
    let url = dead_letter_url(context)?;
    let spool = context.target.need(&context.target.spool_url, "spool queue", "SPOOL_QUEUE_URL")?.to_owned();
    let messages = read_all(context, &url).await?;
    let (chosen, others): (Vec<Message>, Vec<Message>) =
        messages.into_iter().partition(|m| args.id.as_deref().is_none_or(|id| m.message_id() == Some(id)));
    give_back(context, &url, &others).await;
    let sqs = context.sqs();
    let bar = render::progress(Some(chosen.len() as u64), "moved to the spool");
    let (mut moved, mut lost) = (0, Vec::new());
    for message in &chosen {
        let (Some(body), Some(handle)) = (message.body(), message.receipt_handle()) else { continue };
        // A body kept in S3 expires with the bucket's lifecycle (19 days): the replay would
        // take a missing body for one applied and deleted. Such a message stays here.
        if let Some(object) = serde_json::from_str::<SpooledDelivery>(body).ok().and_then(|s| s.body_object) {
            if !body_exists(context, &object).await? {
                lost.push(message.message_id().unwrap_or_default().to_owned());
                give_back(context, &url, std::slice::from_ref(message)).await;
                continue;
            }
        }
        sqs.send_message()
            .queue_url(&spool)
            .message_body(body)
            .send()
            .await
            .map_err(|e| crate::aws::sdk_error("SendMessage", e))?;
        // Sent first, deleted second: a failure between leaves a copy here, never none.
        sqs.delete_message()
            .queue_url(&url)
            .receipt_handle(handle)
            .send()
            .await
            .map_err(|e| crate::aws::sdk_error("DeleteMessage", e))?;
        moved += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let what = match (moved, &args.id) {
        (0, Some(id)) if lost.is_empty() => format!("no dead letter {id}"),
        (0, _) => "no dead letters to move".to_owned(),
        (n, _) => format!("{n} moved back to the spool; the replay applies them"),
    };
    let mut steps = vec![("redrive".to_owned(), what)];
    if !lost.is_empty() {
        steps.push((
            "kept".to_owned(),
            format!(
                "{} whose body has expired from the spool bucket: not replayable; `kadoa reconcile` their window ({})",
                lost.len(),
                lost.join(", ")
            ),
        ));
    }
    report(context, &steps, json!({"moved": moved, "bodyExpired": lost}))?;
    Ok(lost.is_empty() && (args.id.is_none() || moved > 0))
}
