//! Kadoa's side of a connection: the webhook channel that points at this stack, and the
//! notification settings that send it each event type. Kadoa keeps one settings object
//! per (workflow or workspace, event type), holding a list of channels, and answers a
//! second POST for the same pair with 400: so our channel is added to the settings that
//! exist (PUT, keeping their other channels, `enabled` and `eventConfiguration`), and
//! settings are created only where none exist. `connect` and `secret rotate --finish`
//! both change Kadoa through here.

use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::render;
use crate::cli::report::Step;
use crate::error::Error;
use crate::kadoa_api::KadoaApi;

/// The channel id shown by a dry run that would create the channel.
const NEW_CHANNEL: &str = "<new channel>";

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
pub fn masked(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(auth) = body.pointer_mut("/config/auth") {
        if auth.get("token").is_some() {
            auth["token"] = json!("****");
        }
        if auth.get("password").is_some() {
            auth["password"] = json!("****");
        }
        if let Some(headers) = auth.get_mut("headers").and_then(Value::as_object_mut) {
            headers.values_mut().for_each(|v| *v = json!("****"));
        }
    }
    body
}

/// Our channel among `channels`: the one that points at `url`, else the webhook channel
/// named `name` (made by an earlier `connect` before the stack's URL changed).
pub fn find_channel<'a>(channels: &'a [Value], url: &str, name: &str) -> Option<&'a Value> {
    let points_here = |c: &&Value| [c.pointer("/config/webhookUrl"), c.get("webhookUrl")].contains(&Some(&json!(url)));
    let named = |c: &&Value| c.get("name") == Some(&json!(name)) && c.get("channelType") == Some(&json!("WEBHOOK"));
    channels.iter().find(points_here).or_else(|| channels.iter().find(named))
}

/// Whether `channel` already sends what `wanted` describes (URL, method, credential).
fn sends_as_wanted(channel: &Value, wanted: &Value) -> bool {
    ["/config/webhookUrl", "/config/httpMethod", "/config/auth"].iter().all(|p| channel.pointer(p) == wanted.pointer(p))
}

/// `wanted` under the name `channel` has now (the user may have renamed it).
fn keeping_name(channel: &Value, wanted: &Value) -> Value {
    let mut body = wanted.clone();
    let name = channel.get("name").filter(|n| n.as_str().is_some_and(|n| !n.is_empty()));
    if let (Some(name), Some(body)) = (name, body.as_object_mut()) {
        body.insert("name".into(), name.clone());
    }
    body
}

/// What `ensure_channel` did: the channel's id, and whether anything was (or, in a dry
/// run, would be) sent.
pub struct ChannelOutcome {
    /// The channel's id (`<new channel>` in a dry run that would create it).
    pub id: String,
    /// A PUT or POST was sent (or would be).
    pub changed: bool,
}

/// Our channel made to point at `wanted`'s URL with its credential: left alone when it
/// does, replaced in place when its URL, method or secret is stale, created when there is
/// none (unless `create` is false: then a missing channel is an error). One step each.
pub async fn ensure_channel(
    api: &KadoaApi,
    wanted: &Value,
    create: bool,
    dry_run: bool,
    steps: &mut Vec<Step>,
) -> Result<ChannelOutcome, Error> {
    let url = wanted.pointer("/config/webhookUrl").and_then(Value::as_str).unwrap_or_default();
    let name = wanted.get("name").and_then(Value::as_str).unwrap_or_default();
    let channels = api.channels().await?;
    let step = |what: String| Step::new("channel", what);
    match find_channel(&channels, url, name) {
        Some(channel) if sends_as_wanted(channel, wanted) => {
            let id = render::cell(channel.get("id"));
            steps.push(step(format!("{id} already points at {url} with the current secret: nothing to change")));
            Ok(ChannelOutcome { id, changed: false })
        }
        Some(channel) => {
            let id = render::cell(channel.get("id"));
            let body = keeping_name(channel, wanted);
            if dry_run {
                steps.push(would_send("PUT", &format!("/v5/notifications/channels/{id}"), &masked(&body)));
            } else {
                api.update_channel(&id, &body).await?;
                steps.push(step(format!("{id} updated: {url}, the current secret")));
            }
            Ok(ChannelOutcome { id, changed: true })
        }
        None if !create => Err(Error::invalid(format!("no Kadoa channel points at {url}: run `kadoa connect` first"))),
        None if dry_run => {
            steps.push(would_send("POST", "/v5/notifications/channels", &masked(wanted)));
            Ok(ChannelOutcome { id: NEW_CHANNEL.to_owned(), changed: true })
        }
        None => {
            let id = api.create_channel(wanted).await?;
            steps.push(step(format!("{id} created: {url}")));
            Ok(ChannelOutcome { id, changed: true })
        }
    }
}

/// A dry run's step: the request it would send.
pub fn would_send(method: &str, path: &str, body: &Value) -> Step {
    Step::new("would send", format!("{method} {path} {body}"))
}

/// What one event type's settings need for our channel to receive it.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingsPlan {
    /// No settings for the (workspace, event type) pair: POST them, with our channel.
    Create(Value),
    /// Settings `id` lack our channel, or are disabled and the user asked to enable
    /// them: PUT with every channel they had, plus ours.
    Update {
        /// The settings' id.
        id: String,
        /// What is PUT.
        body: Value,
        /// Our channel is added (else it was there already).
        adds: bool,
        /// They were disabled and are enabled now.
        enables: bool,
        /// Channels they had besides ours.
        others: usize,
    },
    /// Our channel is in enabled settings: nothing to send.
    AlreadyThere,
    /// The user disabled these settings; left so: this event type does not reach the stack.
    DisabledLeftAlone,
}

/// What became of one event type's subscription, as `connect`'s report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Subscription {
    /// Settings created, with our channel.
    Created,
    /// Our channel added to settings that sent elsewhere.
    Added,
    /// Disabled settings enabled (`--enable-disabled`).
    Enabled,
    /// Our channel was there already: nothing sent.
    AlreadyThere,
    /// Disabled in Kadoa and left so: the event type does not reach the stack.
    DisabledLeftAlone,
}

impl SettingsPlan {
    /// What it makes of the subscription.
    pub fn outcome(&self) -> Subscription {
        match self {
            Self::Create(_) => Subscription::Created,
            Self::Update { enables: true, .. } => Subscription::Enabled,
            Self::Update { .. } => Subscription::Added,
            Self::AlreadyThere => Subscription::AlreadyThere,
            Self::DisabledLeftAlone => Subscription::DisabledLeftAlone,
        }
    }

    /// Whether it sends anything to Kadoa.
    pub fn sends(&self) -> bool {
        matches!(self, Self::Create(_) | Self::Update { .. })
    }

    /// What the plan does, in words.
    fn describe(&self) -> String {
        match self {
            Self::Create(_) => "no settings yet: created, with our channel".to_owned(),
            Self::Update { adds, enables, others, .. } => {
                let added = if *adds {
                    format!("our channel added beside {others} other(s), kept")
                } else {
                    "our channel was already in it".to_owned()
                };
                if *enables {
                    format!("was disabled: enabled (--enable-disabled), for its other channels too; {added}")
                } else {
                    added
                }
            }
            Self::AlreadyThere => "our channel already there: nothing to change".to_owned(),
            Self::DisabledLeftAlone => "disabled in Kadoa: left alone, so it will not reach the stack \
                                        (--enable-disabled turns it on, for its other channels too)"
                .to_owned(),
        }
    }
}

/// The channel ids `settings` holds (`channels[].id`, or `channelIds`).
fn channel_ids(settings: &Value) -> Vec<String> {
    let from_channels = settings.get("channels").and_then(Value::as_array).map(|channels| {
        channels.iter().filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_owned)).collect()
    });
    let from_ids = || {
        settings
            .get("channelIds")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    };
    from_channels.or_else(from_ids).unwrap_or_default()
}

/// `enabled` defaults to true in Kadoa's description.
fn is_enabled(settings: &Value) -> bool {
    settings.get("enabled").and_then(Value::as_bool).unwrap_or(true)
}

/// What `event_type`'s workspace settings (`existing`, as Kadoa lists them) need so that
/// channel `ours` receives it.
pub fn plan_settings(event_type: &str, existing: &[Value], ours: &str, enable_disabled: bool) -> SettingsPlan {
    let subscribed = |s: &&Value| is_enabled(s) && channel_ids(s).iter().any(|id| id == ours);
    // Kadoa keeps one per pair; should it list more, the one that already sends to us,
    // else an enabled one, is the one that counts.
    let chosen = existing.iter().find(subscribed).or_else(|| existing.iter().find(|s| is_enabled(s)));
    let Some(settings) = chosen.or(existing.first()) else {
        let body = json!({"eventType": event_type, "eventConfiguration": {}, "enabled": true, "channelIds": [ours]});
        return SettingsPlan::Create(body);
    };
    let mut ids = channel_ids(settings);
    let adds = !ids.iter().any(|id| id == ours);
    let enables = !is_enabled(settings);
    match (adds, enables) {
        (false, false) => return SettingsPlan::AlreadyThere,
        (_, true) if !enable_disabled => return SettingsPlan::DisabledLeftAlone,
        _ => {}
    }
    let others = ids.iter().filter(|id| *id != ours).count();
    if adds {
        ids.push(ours.to_owned());
    }
    let configuration = settings.get("eventConfiguration").filter(|c| c.is_object()).cloned().unwrap_or(json!({}));
    let body =
        json!({"eventType": event_type, "eventConfiguration": configuration, "enabled": true, "channelIds": ids});
    SettingsPlan::Update { id: render::cell(settings.get("id")), body, adds, enables, others }
}

/// `event_type` sent to channel `ours` workspace-wide: read, planned, and sent unless
/// `dry_run` (then the request is a step). Adds one step; returns the plan.
pub async fn subscribe(
    api: &KadoaApi,
    event_type: &str,
    ours: &str,
    enable_disabled: bool,
    dry_run: bool,
    steps: &mut Vec<Step>,
) -> Result<SettingsPlan, Error> {
    let existing = api.workspace_settings(event_type).await?;
    let plan = plan_settings(event_type, &existing, ours, enable_disabled);
    match (&plan, dry_run) {
        (SettingsPlan::Create(body), true) => steps.push(would_send("POST", "/v5/notifications/settings", body)),
        (SettingsPlan::Update { id, body, .. }, true) => {
            steps.push(would_send("PUT", &format!("/v5/notifications/settings/{id}"), body))
        }
        (SettingsPlan::Create(body), false) => api.create_settings(body).await?,
        (SettingsPlan::Update { id, body, .. }, false) => api.update_settings(id, body).await?,
        (SettingsPlan::AlreadyThere | SettingsPlan::DisabledLeftAlone, _) => {}
    }
    let prefix = if dry_run && plan.sends() { "would be: " } else { "" };
    steps.push(Step::new(event_type, format!("{prefix}{}", plan.describe())));
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(id: &str, enabled: bool, channels: &[&str]) -> Value {
        let channels: Vec<Value> =
            channels.iter().map(|c| json!({"id": c, "name": c, "channelType": "EMAIL"})).collect();
        json!({"id": id, "eventType": "workflow_failed", "eventConfiguration": {"k": 1}, "enabled": enabled, "channels": channels})
    }

    #[test]
    fn settings_are_created_only_where_none_exist() {
        let plan = plan_settings("workflow_failed", &[], "ours", false);
        assert_eq!(
            plan,
            SettingsPlan::Create(
                json!({"eventType": "workflow_failed", "eventConfiguration": {}, "enabled": true, "channelIds": ["ours"]})
            )
        );
    }

    #[test]
    fn our_channel_joins_the_others_keeping_their_configuration() {
        let plan = plan_settings("workflow_failed", &[settings("s1", true, &["mail"])], "ours", false);
        let SettingsPlan::Update { id, body, adds: true, enables: false, others: 1 } = plan else { panic!("{plan:?}") };
        assert_eq!(id, "s1");
        assert_eq!(body["channelIds"], json!(["mail", "ours"]));
        assert_eq!(body["eventConfiguration"], json!({"k": 1}));
    }

    #[test]
    fn enabled_settings_with_our_channel_need_nothing() {
        let plan = plan_settings("workflow_failed", &[settings("s1", true, &["mail", "ours"])], "ours", true);
        assert_eq!(plan, SettingsPlan::AlreadyThere);
    }

    #[test]
    fn disabled_settings_stay_disabled_unless_asked() {
        for channels in [&["mail"][..], &["mail", "ours"][..]] {
            let existing = [settings("s1", false, channels)];
            assert_eq!(plan_settings("workflow_failed", &existing, "ours", false), SettingsPlan::DisabledLeftAlone);
            let plan = plan_settings("workflow_failed", &existing, "ours", true);
            let SettingsPlan::Update { body, enables: true, .. } = plan else { panic!("{plan:?}") };
            assert_eq!((body["enabled"].clone(), body["channelIds"].clone()), (json!(true), json!(["mail", "ours"])));
        }
    }

    #[test]
    fn of_two_listed_settings_the_enabled_one_counts() {
        let existing = [settings("s1", false, &["mail"]), settings("s2", true, &["mail"])];
        let plan = plan_settings("workflow_failed", &existing, "ours", false);
        assert!(matches!(&plan, SettingsPlan::Update { id, enables: false, .. } if id == "s2"), "{plan:?}");
    }

    #[test]
    fn secrets_are_masked_in_every_auth_kind() {
        for auth in [channel_auth("authorization", "s3cret"), channel_auth("x-token", "s3cret")] {
            let shown = masked(&channel_body("AWS", "https://x/", auth)).to_string();
            assert!(!shown.contains("s3cret") && shown.contains("****"), "{shown}");
        }
    }

    #[test]
    fn our_channel_is_found_by_url_then_by_name() {
        let ours =
            json!({"id": "a", "name": "AWS t", "channelType": "WEBHOOK", "config": {"webhookUrl": "https://old/"}});
        let other =
            json!({"id": "b", "name": "other", "channelType": "WEBHOOK", "config": {"webhookUrl": "https://new/"}});
        let channels = [ours, other];
        assert_eq!(find_channel(&channels, "https://new/", "AWS t").map(|c| &c["id"]), Some(&json!("b")));
        assert_eq!(find_channel(&channels, "https://newer/", "AWS t").map(|c| &c["id"]), Some(&json!("a")));
        assert!(find_channel(&channels, "https://newer/", "AWS u").is_none());
    }
}
