//! `kadoa secret rotate [--finish]`: the two-line rotation of the webhook secret.
//!
//! 1. `rotate` adds a new secret as a second line: the webhook accepts both once its cache
//!    refreshes (at most 5 minutes);
//! 2. `rotate --finish` (after those 5 minutes) switches Kadoa's channel to the new secret
//!    when given `--kadoa-api-key`, then keeps only the new line.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::connect::{api, channel_name};
use super::notifications::{channel_auth, channel_body, ensure_channel};
use super::{Context, WebhookSecret};
use crate::cli::report::{emit, Step, Steps};
use crate::cli::RotateArgs;
use crate::error::Error;
use crate::secrets::replace_current;

/// How long the webhook keeps a secret it read (`SecretPolicy`'s refresh), in seconds.
const CACHE_SECS: i64 = 300;

/// As long as the secret the stack generates: 48 letters and digits.
const SECRET_LENGTH: usize = 48;

/// A new random secret of letters and digits.
fn new_secret() -> Result<String, Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut secret = String::with_capacity(SECRET_LENGTH);
    let random = SystemRandom::new();
    while secret.len() < SECRET_LENGTH {
        let mut byte = [0u8; 1];
        random.fill(&mut byte).map_err(|_| Error::internal("random", "no randomness"))?;
        // 248 = 4 × 62: below it every letter is equally likely.
        if let Some(&c) = ALPHABET.get(usize::from(byte[0]) % ALPHABET.len()).filter(|_| byte[0] < 248) {
            secret.push(char::from(c));
        }
    }
    Ok(secret)
}

/// Writes `value` as the secret in use, if the version in use is still `read` (see
/// [`replace_current`]: of two rotations at once, one wins and the other fails).
async fn put(context: &Context, read: &str, value: String) -> Result<(), Error> {
    let arn = context.target.need(&context.target.secret_arn, "webhook secret", "WEBHOOK_SECRET_ARN")?;
    replace_current(&context.secrets(), arn, read, value).await.map(|_| ())
}

/// `kadoa secret rotate`
pub async fn rotate(context: &Context, args: &RotateArgs) -> Result<bool, Error> {
    let secret = context.secret().await?;
    if args.finish {
        finish(context, args, secret).await
    } else {
        start(context, secret).await
    }
}

/// What a rotation came to; its report is the steps it took with this beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Only the newest secret is accepted.
    pub finished: bool,
    /// With `--finish`: whether the old secret was dropped (absent without `--finish`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

impl Rotation {
    /// A new secret added beside the current one.
    const STARTED: Self = Self { finished: false, changed: None };
    /// `--finish` with one secret only.
    const NOTHING_TO_FINISH: Self = Self { finished: true, changed: Some(false) };
    /// `--finish` dropped the old secret.
    const FINISHED: Self = Self { finished: true, changed: Some(true) };
}

/// `rotate`: a new secret beside the current one.
async fn start(context: &Context, secret: WebhookSecret) -> Result<bool, Error> {
    let WebhookSecret { lines, version, .. } = secret;
    if lines.len() > 1 {
        return Err(Error::invalid(
            "a rotation is under way (the secret has two lines): finish it first with `kadoa secret rotate --finish`",
        ));
    }
    let mut value = lines.join("\n");
    value.push('\n');
    value.push_str(&new_secret()?);
    put(context, &version, value).await?;
    let steps = vec![
        Step::new("secret", "a new secret added beside the current one; both are accepted"),
        Step::new(
            "next",
            "wait 5 minutes (the webhook's cache), then `kadoa secret rotate --finish --kadoa-api-key …`",
        ),
    ];
    emit(&Steps { steps, outcome: Rotation::STARTED }, context.format)?;
    Ok(true)
}

/// The Kadoa API key `--finish` was given, if any.
fn kadoa_key(args: &RotateArgs) -> Result<Option<String>, Error> {
    match (&args.kadoa_api_key, &args.kadoa_api_key_env) {
        (Some(key), _) => Ok(Some(key.clone())),
        (None, Some(variable)) => std::env::var(variable)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("{variable} holds no API key"))),
        (None, None) => Ok(None),
    }
}

/// `rotate --finish`: Kadoa switched to the newest secret (with a key), then only it kept.
async fn finish(context: &Context, args: &RotateArgs, secret: WebhookSecret) -> Result<bool, Error> {
    let WebhookSecret { lines, age, version } = secret;
    let Some(newest) = lines.last().cloned() else { return Err(Error::invalid("the webhook secret is empty")) };
    if lines.len() == 1 {
        let steps = vec![Step::new("secret", "one secret only: nothing to finish")];
        emit(&Steps { steps, outcome: Rotation::NOTHING_TO_FINISH }, context.format)?;
        return Ok(true);
    }
    let key = kadoa_key(args)?;
    may_finish(key.is_some(), age, args.force)?;
    let mut steps = Vec::new();
    switch_kadoa(context, key, &newest, &mut steps).await?;
    put(context, &version, format!("{newest}\n")).await?;
    steps.push(Step::new("secret", "the old secret dropped; only the new one is accepted from now on"));
    emit(&Steps { steps, outcome: Rotation::FINISHED }, context.format)?;
    Ok(true)
}

/// Whether the old secret, and a new one `age` seconds old, may be dropped now: Kadoa
/// switched first (a key), or `force` says it already sends the new one.
fn may_finish(has_key: bool, age: Option<i64>, force: bool) -> Result<(), Error> {
    if !has_key && !force {
        return Err(Error::invalid(
            "--finish drops the old secret: give --kadoa-api-key (or --kadoa-api-key-env) to switch Kadoa first, \
             or --force once Kadoa already sends the new one",
        ));
    }
    // The webhook re-reads the secret every 5 minutes: Kadoa sending the new one earlier
    // could meet an instance that knows only the old one.
    match age.filter(|age| !force && *age < CACHE_SECS) {
        Some(age) => Err(Error::invalid(format!(
            "the new secret is {age} s old: wait {} s more (the webhook's 5-minute cache), then finish",
            CACHE_SECS - age
        ))),
        None => Ok(()),
    }
}

/// Kadoa's channel switched to the `newest` secret with `key`; without a key (`--force`),
/// Kadoa left as it is. One step either way.
async fn switch_kadoa(
    context: &Context,
    key: Option<String>,
    newest: &str,
    steps: &mut Vec<Step>,
) -> Result<(), Error> {
    let Some(key) = key else {
        steps.push(Step::new("Kadoa", "not changed here (--force): it already sends the new secret"));
        return Ok(());
    };
    let url = context.target.need(&context.target.webhook_url, "webhook URL", "WEBHOOK_URL")?;
    let wanted = channel_body(&channel_name(context), url, channel_auth(&context.target.auth_header, newest));
    // The channel only: its settings already send it every subscribed event type.
    let channel = ensure_channel(&api(key)?, &wanted, false, false, steps).await?;
    if channel.changed {
        steps.push(Step::new("Kadoa", format!("channel {} now sends the new secret", channel.id)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cli::render::Format;
    use crate::cli::report::written;

    #[test]
    fn each_rotation_outcome_serialises_as_before() {
        let steps = |outcome| Steps { steps: vec![Step::new("secret", "kept")], outcome };
        for (outcome, expected) in [
            (Rotation::STARTED, json!({"finished": false})),
            (Rotation::NOTHING_TO_FINISH, json!({"finished": true, "changed": false})),
            (Rotation::FINISHED, json!({"finished": true, "changed": true})),
        ] {
            let mut expected = expected;
            expected["steps"] = json!([{"step": "secret", "result": "kept"}]);
            let text = written(&steps(outcome), Some(Format::Jsonl));
            assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), expected, "{text}");
            assert_eq!(written(&steps(outcome), None), "• secret: kept\n");
        }
    }

    #[test]
    fn the_old_secret_is_dropped_only_once_kadoa_can_send_the_new_one() {
        let refused = |has_key, age, force| may_finish(has_key, age, force).map_err(|e| e.detail().to_owned());
        assert!(refused(false, Some(600), false).is_err_and(|e| e.contains("--force")), "no key");
        assert!(refused(true, Some(100), false).is_err_and(|e| e.contains("wait 200 s more")), "too young");
        assert_eq!(refused(true, Some(300), false), Ok(()));
        assert_eq!(refused(true, None, false), Ok(()), "an age Secrets Manager did not give");
        assert_eq!(refused(false, Some(1), true), Ok(()), "--force");
    }

    #[test]
    fn new_secrets_are_48_letters_and_digits_and_differ() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_eq!(a.len(), 48);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
