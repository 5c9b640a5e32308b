//! `kadoa connect`: Kadoa's webhook channel pointed at this stack, subscribed, tested;
//! `kadoa test`: a sample delivery from here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::notifications::{self, channel_auth, channel_body, ChannelOutcome, SettingsPlan, Subscription};
use super::{report, Context};
use crate::cli::render;
use crate::cli::report::{emit, Step, Steps};
use crate::cli::ConnectArgs;
use crate::error::Error;
use crate::kadoa_api::{read_capped, ApiRetry, KadoaApi, DEFAULT_API_URL};
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

/// The name `connect` gives the stack's channel (how it is found again after the stack's
/// URL changed).
pub fn channel_name(context: &Context) -> String {
    format!("AWS {}", context.target.table.as_deref().unwrap_or("kadoa-webhook"))
}

/// What `kadoa connect` came to: its report is the steps it took with this beside them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Our channel's id (`<new channel>` in a dry run that would create it).
    pub channel_id: String,
    /// Whether anything was (in a dry run, would be) sent to Kadoa.
    pub changed: bool,
    /// Each subscribed event type's outcome.
    pub subscriptions: BTreeMap<&'static str, Subscription>,
    /// The event types disabled in Kadoa and left so.
    pub not_reaching: Vec<&'static str>,
    /// Whether the test notification was stored (absent when none was sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_stored: Option<bool>,
    /// A dry run: nothing was sent (absent otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl Connection {
    /// What the channel and each event type's plan come to, before any test.
    fn new(channel: &ChannelOutcome, plans: &[(&'static str, SettingsPlan)], dry_run: bool) -> Self {
        let not_reaching = plans.iter().filter(|(_, p)| *p == SettingsPlan::DisabledLeftAlone).map(|(t, _)| *t);
        Self {
            channel_id: channel.id.clone(),
            changed: channel.changed || plans.iter().any(|(_, plan)| plan.sends()),
            subscriptions: plans.iter().map(|(event_type, plan)| (*event_type, plan.outcome())).collect(),
            not_reaching: not_reaching.collect(),
            test_stored: None,
            dry_run,
        }
    }
}

/// `kadoa connect`
pub async fn connect(context: &Context, args: &ConnectArgs) -> Result<bool, Error> {
    let url = context.target.need(&context.target.webhook_url, "webhook URL", "WEBHOOK_URL")?.to_owned();
    let secret = context.newest_secret().await?;
    let api = api(api_key(args)?)?;
    let wanted = channel_body(&channel_name(context), &url, channel_auth(&context.target.auth_header, &secret));
    let mut steps = Vec::new();
    let channel = notifications::ensure_channel(&api, &wanted, true, args.dry_run, &mut steps).await?;
    let mut plans = Vec::new();
    for event_type in SUBSCRIBED {
        let plan =
            notifications::subscribe(&api, event_type, &channel.id, args.enable_disabled, args.dry_run, &mut steps)
                .await?;
        plans.push((*event_type, plan));
    }
    let mut connection = Connection::new(&channel, &plans, args.dry_run);
    if !connection.not_reaching.is_empty() {
        let disabled = connection.not_reaching.join(", ");
        steps.push(Step::new("not reaching the stack", format!("{disabled} (disabled in Kadoa)")));
    }
    match test_skipped(args, &connection) {
        Some(skipped) => steps.push(skipped),
        None => connection.test_stored = Some(send_test(context, &api, args.wait, &mut steps).await?),
    }
    emit(&Steps { steps, outcome: &connection }, context.format)?;
    Ok(connection.test_stored.unwrap_or(true))
}

/// Why no test notification is sent, when none is: a dry run, nothing changed, or the
/// test's event type does not reach the stack.
fn test_skipped(args: &ConnectArgs, connection: &Connection) -> Option<Step> {
    let step = |what: String| Some(Step::new("test notification", what));
    if !connection.changed {
        return step("not sent: nothing changed".to_owned());
    }
    if connection.not_reaching.contains(&TEST_EVENT) {
        return step(format!("not sent: {TEST_EVENT} is disabled in Kadoa, so it would not reach the stack"));
    }
    args.dry_run.then(|| notifications::would_send("POST", "/v5/notifications/test", &json!({"eventType": TEST_EVENT})))
}

/// Asks Kadoa for a test notification and waits for it to be stored; whether it was.
async fn send_test(context: &Context, api: &KadoaApi, wait: u64, steps: &mut Vec<Step>) -> Result<bool, Error> {
    let started = Timestamp::now();
    let test = api.test_notification(TEST_EVENT).await?;
    steps.push(Step::new("test notification", format!("sent ({})", render::cell(test.get("eventId")))));
    let workflow = test.get("workflowId").and_then(Value::as_str).map(str::to_owned);
    let stored = wait_for_change(context, workflow, started, Duration::from_secs(wait)).await?;
    let arrived = match &stored {
        Some(change) => format!("stored as change {}", render::cell(change.get("changeId"))),
        None => format!("not stored within {wait} s: check `kadoa status` and the webhook's log"),
    };
    steps.push(Step::new("test delivery", arrived));
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
    let (status, text) = send_sample(&url, &context.target.auth_header, secret, &body).await?;
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

/// The most of the webhook's answer `kadoa test` reads: the receiver answers one line of
/// JSON; anything longer is not the stack.
const TEST_ANSWER_BYTES: usize = 64 * 1024;

/// POSTs `body` to `url` with the secret in `header`; the answer's status and text. A
/// redirect is not followed (the secret would go with it, to wherever it points: reqwest
/// strips only `authorization` on the way) and fails the test, naming where it pointed.
async fn send_sample(url: &str, header: &str, secret: String, body: &Value) -> Result<(u16, String), Error> {
    let credential = if header == "authorization" { format!("Bearer {secret}") } else { secret };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::internal("HTTP client", e))?;
    let answer = client
        .post(url)
        .header(header, credential)
        .header("x-kadoa-event", "workflow_data_change")
        .json(body)
        .send()
        .await
        .map_err(|e| Error::unavailable("the webhook", e.without_url()))?;
    let status = answer.status().as_u16();
    if answer.status().is_redirection() {
        let location = answer.headers().get("location").map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        return Err(Error::invalid(format!(
            "the webhook answered {status}, a redirect to {:?}: not followed, so the secret did not go there; \
             WEBHOOK_URL should be the stack's own URL",
            location.unwrap_or_default()
        )));
    }
    let text = read_capped(answer, TEST_ANSWER_BYTES, "the webhook").await?;
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render::Format;
    use crate::cli::report::written;

    fn args(dry_run: bool) -> ConnectArgs {
        ConnectArgs { api_key: Some("k".into()), api_key_env: None, dry_run, enable_disabled: false, wait: 60 }
    }

    fn update(adds: bool, enables: bool) -> SettingsPlan {
        SettingsPlan::Update { id: "s1".into(), body: json!({}), adds, enables, others: 1 }
    }

    fn connection(changed_channel: bool, plans: &[(&'static str, SettingsPlan)]) -> Connection {
        Connection::new(&ChannelOutcome { id: "ch\u{1b}[2J".into(), changed: changed_channel }, plans, false)
    }

    fn plans() -> Vec<(&'static str, SettingsPlan)> {
        vec![
            ("workflow_data_change", SettingsPlan::Create(json!({}))),
            ("workflow_failed", update(true, false)),
            ("credits_low", SettingsPlan::DisabledLeftAlone),
            ("free_trial_ending", update(false, true)),
            ("service_degradation", SettingsPlan::AlreadyThere),
        ]
    }

    #[test]
    fn the_report_serialises_every_field() {
        let mut connected = connection(false, &plans());
        connected.test_stored = Some(true);
        let steps = vec![Step::new("channel", "ch\u{1b}[2J created: https://x/")];
        let expected = json!({"steps": [{"step": "channel", "result": "ch\u{1b}[2J created: https://x/"}],
            "channelId": "ch\u{1b}[2J", "changed": true, "notReaching": ["credits_low"], "testStored": true,
            "subscriptions": {"workflow_data_change": "created", "workflow_failed": "added", "credits_low":
                "disabledLeftAlone", "free_trial_ending": "enabled", "service_degradation": "alreadyThere"}});
        let text = written(&Steps { steps, outcome: &connected }, Some(Format::Json));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected, "{text}");
    }

    #[test]
    fn a_dry_run_says_so_and_a_run_without_a_test_leaves_test_stored_out() {
        let mut dry = connection(true, &[]);
        dry.dry_run = true;
        let answer = serde_json::to_value(&dry).unwrap();
        assert_eq!(answer["dryRun"], true);
        assert!(answer.get("testStored").is_none(), "{answer}");
        assert!(serde_json::to_value(connection(true, &[])).unwrap().get("dryRun").is_none());
    }

    #[test]
    fn only_what_sends_counts_as_a_change() {
        let quiet = [("workflow_failed", SettingsPlan::AlreadyThere), ("credits_low", SettingsPlan::DisabledLeftAlone)];
        assert!(!connection(false, &quiet).changed);
        assert!(connection(true, &quiet).changed, "the channel replaced");
        assert!(connection(false, &[("workflow_failed", update(false, true))]).changed, "settings enabled");
    }

    #[test]
    fn the_test_is_skipped_when_nothing_changed_its_type_is_disabled_or_in_a_dry_run() {
        let skipped = |args: &ConnectArgs, connected: &Connection| test_skipped(args, connected).map(|s| s.result);
        let unchanged = connection(false, &[("workflow_failed", SettingsPlan::AlreadyThere)]);
        assert_eq!(skipped(&args(false), &unchanged).as_deref(), Some("not sent: nothing changed"));
        let disabled = connection(true, &[(TEST_EVENT, SettingsPlan::DisabledLeftAlone)]);
        assert!(skipped(&args(false), &disabled).is_some_and(|s| s.contains("is disabled in Kadoa")));
        let changed = connection(true, &[]);
        assert_eq!(skipped(&args(false), &changed), None, "sent");
        let dry = skipped(&args(true), &changed);
        assert_eq!(dry.as_deref(), Some(r#"POST /v5/notifications/test {"eventType":"workflow_data_change"}"#));
    }
}
