//! `kadoa connect`: Kadoa's webhook channel pointed at this stack, subscribed, tested;
//! `kadoa test`: a sample delivery from here.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{report, Context};
use crate::cli::render;
use crate::cli::ConnectArgs;
use crate::error::Error;
use crate::kadoa_api::{ApiRetry, KadoaApi, DEFAULT_API_URL};
use crate::store::browse::Window;
use crate::timestamp::Timestamp;

/// The event types `connect` subscribes. `workflow_finished` is left out on purpose: Kadoa
/// then sends `workflow_recovered` itself (it suppresses it when `workflow_finished` is
/// subscribed), and the table is spared an event per run.
pub const SUBSCRIBED: &[&str] = &[
    "workflow_data_change",
    "workflow_failed",
    "credits_low",
    "free_trial_ending",
    "service_degradation",
    "system_maintenance",
];

/// The event type of the test notification: a data change with Kadoa's mock data is
/// stored like any other, and alerts nobody.
const TEST_EVENT: &str = "workflow_data_change";

/// The channel's `auth` for the stack's header and secret.
pub fn channel_auth(header: &str, secret: &str) -> Value {
    match header {
        "authorization" => json!({"type": "bearer", "token": secret}),
        other => json!({"type": "header", "headers": {other: secret}}),
    }
}

/// A webhook channel's body: `name`, POST to `url`, authenticated by `auth`.
pub fn channel_body(name: &str, url: &str, auth: Value) -> Value {
    json!({"name": name, "channelType": "WEBHOOK", "config": {"webhookUrl": url, "httpMethod": "POST", "auth": auth}})
}

/// `body` with the secret replaced, for printing.
fn masked(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(auth) = body.pointer_mut("/config/auth") {
        if auth.get("token").is_some() {
            auth["token"] = json!("****");
        }
        if let Some(headers) = auth.get_mut("headers").and_then(Value::as_object_mut) {
            headers.values_mut().for_each(|v| *v = json!("****"));
        }
    }
    body
}

fn api_key(args: &ConnectArgs) -> Result<String, Error> {
    match (&args.api_key, &args.api_key_env) {
        (Some(key), _) => Ok(key.clone()),
        (None, Some(variable)) => std::env::var(variable)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| Error::invalid(format!("{variable} holds no API key"))),
        (None, None) => Err(Error::invalid("give --api-key or --api-key-env")),
    }
}

/// The Kadoa API client for `key` (at `KADOA_API_URL`, else Kadoa's).
pub fn api(key: String) -> Result<KadoaApi, Error> {
    let url = std::env::var("KADOA_API_URL").unwrap_or_else(|_| DEFAULT_API_URL.to_owned());
    KadoaApi::new(&url, key, ApiRetry::default())
}

/// The channel of `channels` that points at `url`, if any.
pub fn find_channel<'a>(channels: &'a [Value], url: &str) -> Option<&'a Value> {
    channels.iter().find(|c| [c.pointer("/config/webhookUrl"), c.get("webhookUrl")].contains(&Some(&json!(url))))
}

/// `kadoa connect`
pub async fn connect(context: &Context, args: &ConnectArgs) -> Result<bool, Error> {
    let url = context.target.need(&context.target.webhook_url, "webhook URL", "WEBHOOK_URL")?.to_owned();
    let secret = context.newest_secret().await?;
    let api = api(api_key(args)?)?;
    let name = format!("AWS {}", context.target.table.as_deref().unwrap_or("kadoa-webhook"));
    let wanted = channel_body(&name, &url, channel_auth(&context.target.auth_header, &secret));
    let mut steps: Vec<(String, String)> = Vec::new();

    let channels = api.channels().await?;
    let existing = find_channel(&channels, &url).cloned();
    let id = match &existing {
        Some(channel) if channel.pointer("/config/auth") == wanted.pointer("/config/auth") => {
            let id = render::cell(channel.get("id"));
            steps.push((
                "channel".into(),
                format!("{id} already points at {url} with the current secret: nothing to change"),
            ));
            report(context, &steps, json!({"channelId": id, "changed": false}))?;
            return Ok(true);
        }
        Some(channel) => {
            let id = render::cell(channel.get("id"));
            if args.dry_run {
                steps.push(("would send".into(), format!("PUT /v5/notifications/channels/{id} {}", masked(&wanted))));
            } else {
                api.update_channel(&id, &wanted).await?;
                steps.push(("channel".into(), format!("{id} updated: {url}, the current secret")));
            }
            id
        }
        None if args.dry_run => {
            steps.push(("would send".into(), format!("POST /v5/notifications/channels {}", masked(&wanted))));
            "<new channel>".to_owned()
        }
        None => {
            let id = api.create_channel(&wanted).await?;
            steps.push(("channel".into(), format!("{id} created: {url}")));
            id
        }
    };
    for event_type in SUBSCRIBED {
        let setting = json!({"eventType": event_type, "eventConfiguration": {}, "enabled": true, "channelIds": [id]});
        if args.dry_run {
            steps.push(("would send".into(), format!("POST /v5/notifications/settings {setting}")));
        } else {
            api.subscribe(&setting).await?;
        }
    }
    if !args.dry_run {
        steps.push((
            "subscribed".into(),
            format!("{} (not workflow_finished: Kadoa sends workflow_recovered instead)", SUBSCRIBED.join(", ")),
        ));
    }
    if args.dry_run {
        steps.push(("would send".into(), format!("POST /v5/notifications/test {}", json!({"eventType": TEST_EVENT}))));
        report(context, &steps, json!({"dryRun": true}))?;
        return Ok(true);
    }

    let started = Timestamp::now();
    let test = api.test_notification(TEST_EVENT).await?;
    steps.push(("test notification".into(), format!("sent ({})", render::cell(test.get("eventId")))));
    let workflow = test.get("workflowId").and_then(Value::as_str).map(str::to_owned);
    let stored = wait_for_change(context, workflow, started, Duration::from_secs(args.wait)).await?;
    let arrived = match &stored {
        Some(change) => format!("stored as change {}", render::cell(change.get("changeId"))),
        None => format!("not stored within {} s: check `kadoa status` and the webhook's log", args.wait),
    };
    steps.push(("test delivery".into(), arrived));
    report(context, &steps, json!({"channelId": id, "changed": true, "testStored": stored.is_some()}))?;
    Ok(stored.is_some())
}

/// Waits up to `wait` for a change received after `since` (in `workflow`, when known).
async fn wait_for_change(
    context: &Context,
    workflow: Option<String>,
    since: Timestamp,
    wait: Duration,
) -> Result<Option<serde_json::Map<String, Value>>, Error> {
    let store = context.store()?;
    let deadline = Instant::now() + wait;
    let bar = render::progress(None, "waiting for the test delivery");
    let since = since.to_key_string();
    let received = |row: &serde_json::Map<String, Value>| {
        row.get("receivedAt").and_then(Value::as_str).is_some_and(|at| at >= since.as_str())
    };
    loop {
        let window = Window { workflow: workflow.clone(), ..Window::default() };
        let mut start = None;
        loop {
            let page = store.changes_page(&window, start, None).await?;
            if let Some(change) = page.rows.into_iter().find(received) {
                bar.finish_and_clear();
                return Ok(Some(change));
            }
            match page.next {
                Some(next) if Instant::now() < deadline => start = Some(next),
                _ => break,
            }
        }
        if Instant::now() >= deadline {
            bar.finish_and_clear();
            return Ok(None);
        }
        bar.tick();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `kadoa test`: an authenticated sample delivery to the stack's URL.
pub async fn test(context: &Context) -> Result<bool, Error> {
    let url = context.target.need(&context.target.webhook_url, "webhook URL", "WEBHOOK_URL")?.to_owned();
    let secret = context.newest_secret().await?;
    let now = Timestamp::now();
    let change_id = format!("kadoa-test-{}", now.unix_millis());
    let body = json!({"eventType": "workflow_data_change", "timestamp": now.to_key_string(),
        "data": {"id": change_id, "workflowId": "kadoa-cli-test", "workflowName": "kadoa test",
                 "url": "https://example.com/kadoa-test",
                 "differences": [{"type": "changed", "fields": [{"key": "price", "value": "19.99", "previousValue": "24.99"}]}]}});
    let header = context.target.auth_header.as_str();
    let credential = if header == "authorization" { format!("Bearer {secret}") } else { secret };
    let answer = reqwest::Client::new()
        .post(&url)
        .header(header, credential)
        .header("x-kadoa-event", "workflow_data_change")
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| Error::unavailable("the webhook", e.without_url()))?;
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap_or_default();
    let store = context.store()?;
    let stored = store.change_with_differences(&change_id, Some("kadoa-cli-test")).await?;
    let steps = vec![
        ("sent".to_owned(), format!("change {change_id} to {url}")),
        ("answer".to_owned(), format!("{status} {}", crate::error::bounded(text.clone()))),
        (
            "stored".to_owned(),
            match &stored {
                Some(change) => format!(
                    "yes, {} difference(s), at {}",
                    render::cell(change.get("differenceCount")),
                    render::cell(change.get("receivedAt"))
                ),
                None => "no".to_owned(),
            },
        ),
    ];
    report(
        context,
        &steps,
        json!({"status": status, "answer": serde_json::from_str::<Value>(&text).unwrap_or(Value::Null), "stored": stored.is_some()}),
    )?;
    if context.format.is_none() {
        if let Some(change) = &stored {
            render::print_differences(change)?;
        }
    }
    Ok(status == 200 && stored.is_some())
}
